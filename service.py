"""The gatrec BentoML service: the registry's champion, imported by ``gatrec bento build``, over HTTP.

    POST /recommend        {user_id?, history?, k, exclude_seen, exclude?} -> {items, source, model_version}
    POST /recommend_batch  [request, ...] (1..1000; adaptive batching: one product per batch)
    POST /similar_items    {item_id, k} -> items by cosine similarity
    GET  /model            version, run id, data digest, metrics at registration
    /livez, /readyz (ready once the embeddings are loaded and a warm-up query ran), /metrics, /docs

Run: ``bentoml serve service:Gatrec`` (the latest imported ``gatrec`` model) or ``bentoml serve gatrec:latest``
(a built Bento). Settings are BentoML arguments (gatrec/serve/config.py): ``--arg approx_above=100000``.
"""

from __future__ import annotations

import gc
from http import HTTPStatus
from typing import Annotated

import bentoml
from bentoml.exceptions import BentoMLException
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gatrec.serve.batcher import Batcher
from gatrec.serve.config import ServeConfig
from gatrec.serve.limits import BodyLimit
from gatrec.serve.schema import (
    MAX_BATCH,
    ModelInfo,
    RecommendRequest,
    RecommendResponse,
    ScoredItem,
    SimilarItemsRequest,
    SimilarItemsResponse,
)
from gatrec.serve.topk import Catalogue, Query, Ranking

CONFIG = bentoml.use_arguments(ServeConfig)

FALLBACKS = bentoml.metrics.Counter(
    name="gatrec_fallback_total", documentation="Queries not scored by a known user's embedding",
    labelnames=["source"])
UNKNOWN_IDS = bentoml.metrics.Counter(
    name="gatrec_unknown_ids_total", documentation="Ids in queries that the model does not know",
    labelnames=["kind"])


class UnknownItem(BentoMLException):
    error_code = HTTPStatus.NOT_FOUND


async def _model_info(request: Request) -> JSONResponse:
    info = request.app.state.info
    if info is None:
        return JSONResponse({"error": "model not loaded yet"}, status_code=503)
    return JSONResponse(info.model_dump(mode="json"))


MODEL_APP = Starlette(routes=[Route("/model", _model_info, methods=["GET"])])
MODEL_APP.state.info = None


def _query(req: RecommendRequest) -> Query:
    return Query(user_id=req.user_id, history=req.history, k=req.k, exclude_seen=req.exclude_seen,
                 exclude=req.exclude)


# One worker process per CPU, each with its own copy of the embeddings and one BLAS thread: the HTTP
# handling is Python, and two processes parse requests in parallel on a 2-core machine (the serving
# benchmark measured more requests/s than one worker with two BLAS threads). No per-request access log:
# at hundreds of requests/s its formatting costs more than the scoring; /metrics still counts every
# request by endpoint and status.
@bentoml.service(name="gatrec", workers="cpu_count", traffic={"timeout": 30}, logging={"access": {"enabled": False}})
@bentoml.asgi_app(MODEL_APP, path="/")
class Gatrec:
    model = bentoml.models.BentoModel(CONFIG.model)

    def __init__(self) -> None:
        import threadpoolctl

        self.ready = False
        threadpoolctl.threadpool_limits(CONFIG.blas_threads, user_api="blas")
        stored = self.model
        self.catalogue = Catalogue(stored.path)
        labels, meta = dict(stored.info.labels), dict(stored.info.metadata)
        self.version = labels.get("registry_version") or str(stored.tag.version)
        if self.catalogue.n_items > CONFIG.approx_above:
            from gatrec.serve.ann import ApproxIndex

            self.catalogue.index = ApproxIndex(
                self.catalogue.item_emb, self.catalogue.item_bias, kind=CONFIG.approx_index, hnsw_m=CONFIG.hnsw_m,
                ef_search=CONFIG.ef_search, ivf_lists=CONFIG.ivf_lists, nprobe=CONFIG.nprobe)
        self.batcher: Batcher[Query, Ranking] = Batcher(self.catalogue.recommend, CONFIG.max_batch)
        MODEL_APP.state.info = ModelInfo(
            name=stored.tag.name, model_version=str(stored.tag.version),
            registry_version=labels.get("registry_version"), run_id=labels.get("run_id"),
            data_digest=labels.get("data_digest"), split_protocol=labels.get("split"),
            model_type=labels.get("model_type"), n_users=len(self.catalogue.user_ids),
            n_items=self.catalogue.n_items, dim=int(self.catalogue.item_emb.shape[1]),
            index=self.catalogue.index.describe() if self.catalogue.index is not None else "exact",
            metrics={k: float(v) for k, v in (meta.get("metrics") or {}).items()})
        # Warm-up: every path once (user, history, popularity, item-item), so the first request pays no
        # first-call costs; /readyz answers 200 only after it.
        first_item = str(self.catalogue.item_ids[0])
        self.catalogue.recommend([Query(user_id=self.catalogue.user_ids[0]), Query(history=[first_item]), Query()])
        self.catalogue.similar([first_item], 10)
        # The id lists and maps hold ~n_users + n_items Python objects that live as long as the process;
        # frozen, the collector never walks them again (a full collection over them stalls requests).
        gc.collect()
        gc.freeze()
        self.ready = True

    def __is_ready__(self) -> bool:
        return self.ready

    def _response(self, query: Query, ranking: Ranking) -> RecommendResponse:
        unknown_user = query.user_id is not None and ranking.source != "user"
        if ranking.source != "user":
            FALLBACKS.labels(source=ranking.source).inc()
        if unknown_user:
            UNKNOWN_IDS.labels(kind="user").inc()
        if n_items := len(ranking.unknown_ids) - unknown_user:
            UNKNOWN_IDS.labels(kind="item").inc(n_items)
        return RecommendResponse(items=[ScoredItem(item_id=i, score=s) for i, s in
                                        zip(ranking.item_ids, ranking.scores, strict=True)],
                                 source=ranking.source, model_version=self.version)

    @bentoml.api(route="/recommend")
    async def recommend(self, request: RecommendRequest, /) -> RecommendResponse:
        """Top-k items for a user (by id), a history of items, or neither (popularity)."""
        query = _query(request)
        return self._response(query, await self.batcher(query))

    @bentoml.api(route="/recommend_batch", batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=20)
    def recommend_batch(
        self, requests: Annotated[list[RecommendRequest], Field(min_length=1, max_length=MAX_BATCH)], /
    ) -> list[RecommendResponse]:
        """Many requests at once (1..1000), answered in order; concurrent calls share one product."""
        queries = [_query(r) for r in requests]
        return [self._response(q, r) for q, r in zip(queries, self.catalogue.recommend(queries), strict=True)]

    @bentoml.api(route="/similar_items")
    def similar_items(self, request: SimilarItemsRequest, /) -> SimilarItemsResponse:
        """The k items closest to an item by cosine similarity of the item embeddings."""
        (ranking,) = self.catalogue.similar([request.item_id], request.k)
        if ranking is None:
            UNKNOWN_IDS.labels(kind="item").inc()
            raise UnknownItem(f"item_id: unknown item {request.item_id!r}")
        return SimilarItemsResponse(item_id=request.item_id, model_version=self.version,
                                    items=[ScoredItem(item_id=i, score=s)
                                           for i, s in zip(ranking.item_ids, ranking.scores, strict=True)])


Gatrec.add_asgi_middleware(BodyLimit, max_bytes=CONFIG.max_body_bytes)
