"""The HTTP contract of the BentoML service: pydantic requests and responses (OpenAPI at ``/docs``).

Requests are strict (no type coercion) and closed (unknown fields are rejected), so a bad request is a
400 naming the field. The pyfunc takes the same fields as columns; ``mlflow_signature`` derives its MLflow
input schema from ``RecommendRequest`` (``gatrec register`` logs the equal ``package.SIGNATURE``, tested).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_K = 1000
MAX_BATCH = 1000
MAX_IDS = 10_000
Id = Annotated[str, Field(min_length=1, max_length=512)]
Source = Literal["user", "history", "popularity"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RecommendRequest(_Request):
    user_id: Id | None = Field(None, description="Original user id; unknown users fall back to the history.")
    history: list[Id] = Field(default_factory=list, max_length=MAX_IDS,
                              description="Item ids the user interacted with (scores an unknown user).")
    k: int = Field(10, ge=1, le=MAX_K, description="Number of items to return.")
    exclude_seen: bool = Field(True, description="Drop the user's training items and the history.")
    exclude: list[Id] = Field(default_factory=list, max_length=MAX_IDS, description="Item ids never to return.")


class SimilarItemsRequest(_Request):
    item_id: Id = Field(description="An item id of the catalogue.")
    k: int = Field(10, ge=1, le=MAX_K)


class ScoredItem(BaseModel):
    item_id: str
    score: float


class RecommendResponse(BaseModel):
    items: list[ScoredItem]
    source: Source = Field(description="What scored the items: the user's embedding, the mean of the "
                                       "history's, or training popularity (cold start).")
    model_version: str


class SimilarItemsResponse(BaseModel):
    item_id: str
    items: list[ScoredItem] = Field(description="By cosine similarity of the item embeddings.")
    model_version: str


class ModelInfo(BaseModel):
    name: str
    model_version: str = Field(description="The BentoML model version.")
    registry_version: str | None = None
    run_id: str | None = None
    data_digest: str | None = None
    split_protocol: str | None = None
    model_type: str | None = None
    n_users: int
    n_items: int
    dim: int
    index: str = Field(description="exact, or the approximate index used above the configured size")
    metrics: dict[str, float] = Field(default_factory=dict, description="Metrics at registration.")


def mlflow_signature() -> object:
    """The pyfunc's MLflow signature, its inputs derived from ``RecommendRequest`` (imports mlflow)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    kinds = {str: "string", int: "long", bool: "boolean"}

    def spec(name: str) -> ColSpec:
        annotation = RecommendRequest.model_fields[name].annotation
        if getattr(annotation, "__origin__", None) is list:
            return ColSpec(Array("string"), name, required=False)
        base = next((t for t in kinds if t is annotation or t in getattr(annotation, "__args__", ())), str)
        return ColSpec(kinds[base], name, required=False)

    return ModelSignature(
        inputs=Schema([spec(n) for n in RecommendRequest.model_fields]),
        outputs=Schema([ColSpec(Array("string"), "item_ids"), ColSpec(Array("double"), "scores"),
                        ColSpec("string", "source")]))
