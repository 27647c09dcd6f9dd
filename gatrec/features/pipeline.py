"""``gatrec embed`` end to end: item text/image embeddings (cached), PCA fusion, kNN graph, manifest."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gatrec import log as glog
from gatrec import threads
from gatrec.data.dataset import Dataset, items_file_digest
from gatrec.errors import GatrecError
from gatrec.features import store
from gatrec.features.cache import default_cache_root
from gatrec.features.fuse import fill_missing, fuse
from gatrec.features.image import ImageConfig
from gatrec.features.modalities import embed_image, embed_text
from gatrec.features.text import TextConfig
from gatrec.fsutil import write_json
from gatrec.graph.knn import KnnConfig, choose_backend, knn_graph

log = glog.get(__name__)

Modality = Literal["text", "image"]


class EmbedConfig(BaseModel):
    """Everything ``gatrec embed`` does; the CLI builds one of these."""

    model_config = ConfigDict(extra="forbid")

    data: Path
    out: Path | None = Field(None, description="features folder; default <data>/features")
    cache_dir: Path | None = Field(None, description="default $GATREC_CACHE, else <out>/cache")
    modalities: list[Modality] = Field(default_factory=lambda: ["text", "image"], min_length=1)
    text: TextConfig = Field(default_factory=TextConfig)
    image: ImageConfig = Field(default_factory=ImageConfig)
    fused_dim: int = Field(128, ge=1)
    knn: KnnConfig | None = Field(default_factory=KnnConfig, description="None = no graph")
    knn_features: Literal["auto", "text", "image", "fused"] = "auto"  # auto: fused if ≥2 modalities

    @field_validator("modalities")
    @classmethod
    def _unique(cls, v: list[Modality]) -> list[Modality]:
        return list(dict.fromkeys(v))


def _knn_kind(cfg: EmbedConfig, modalities: list[str]) -> str:
    if cfg.knn_features == "auto":
        return "fused" if len(modalities) > 1 else modalities[0]
    if cfg.knn_features not in (*modalities, "fused"):
        raise GatrecError(f"--knn-features {cfg.knn_features}: not computed (have {modalities} + fused)")
    return cfg.knn_features


def _save(out: Path, arrays: dict[str, np.ndarray], masks: dict[str, np.ndarray], stats: dict[str, dict],
          graph: tuple | None, header: dict) -> dict:
    """Arrays first, manifest last; an older manifest is removed up front, so a crash in between leaves
    no manifest and the loaders refuse the half-written folder instead of mixing old and new arrays."""
    (out / store.MANIFEST).unlink(missing_ok=True)
    entries = {}
    for kind, a in arrays.items():
        digest = store.save_array(out / f"{kind}.npy", a)
        store.save_array(out / f"{kind}_mask.npy", masks[kind])
        entries[kind] = {"file": f"{kind}.npy", "mask_file": f"{kind}_mask.npy", "n_items": len(a),
                         "dim": int(a.shape[1]), "sha256": digest, **stats[kind]}
    knn_entries = {}
    if graph is not None:
        edge_index, weight, entry = graph
        store.save_knn(out / entry["file"], edge_index, weight, n_items=header["n_items"], k=entry["k"],
                       features=entry["features"], features_sha256=entries[entry["features"]]["sha256"])
        knn_entries[f"{entry['features']}_k{entry['k']}"] = entry
    manifest = {"format_version": store.FORMAT_VERSION, **header, "arrays": entries, "knn": knn_entries}
    write_json(out / store.MANIFEST, manifest)
    return manifest


def run_embed(cfg: EmbedConfig) -> dict:
    """Compute and save item features (+ kNN graph) for a prepared dataset; returns the features manifest."""
    t_start = time.perf_counter()
    threads.configure()  # this process's share of the CPUs it may use (both models and the PCA)
    items, dmanifest = Dataset.load_items(cfg.data)
    items_digest = items_file_digest(cfg.data, dmanifest)
    out = cfg.out or store.resolve_dir(cfg.data)
    cache_root = cfg.cache_dir or default_cache_root(out)
    if "image" in cfg.modalities and cfg.image.random_weights:
        log.warning("IMAGE_WEIGHTS_RANDOM", model=cfg.image.model,
                    detail="image features come from a RANDOMLY INITIALISED network and carry no visual "
                           "semantics; use --image-weights openai (online) or a checkpoint path")
    results = {}
    if "text" in cfg.modalities:
        results["text"] = embed_text(cfg.text, items, cache_root)
    if "image" in cfg.modalities:
        source = dmanifest.get("source", {}).get("path")  # relative image paths are relative to the raw input
        source_dir = Path(source).expanduser() if source else cfg.data
        results["image"] = embed_image(cfg.image, items, source_dir, cache_root)
    arrays: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    stats: dict[str, dict] = {}
    for kind, (vecs, present, st) in results.items():
        if vecs is None or not present.any():
            log.warning("modality_skipped", modality=kind, reason=st.get("reason", "no item has this input"))
            continue
        arrays[kind], masks[kind], stats[kind] = fill_missing(vecs, present), present, st
        log.info("modality_embedded", modality=kind, dim=vecs.shape[1], **{k: st[k] for k in (
            "n_present", "n_missing", "from_cache", "encoded", "items_per_s")})
    if not arrays:
        raise GatrecError(f"no item in {cfg.data / 'items.parquet'} has any of {cfg.modalities}; nothing to embed")

    t0 = time.perf_counter()
    modalities = list(arrays)
    arrays["fused"], explained = fuse([arrays[m] for m in modalities], cfg.fused_dim)
    masks["fused"] = np.logical_or.reduce([masks[m] for m in modalities])
    stats["fused"] = {"inputs": modalities, "method": "l2-normalise, concatenate, PCA",
                      "n_present": int(masks["fused"].sum()), "explained_variance": round(explained, 4),
                      "seconds": round(time.perf_counter() - t0, 3)}

    graph = None
    if cfg.knn is not None:
        kind = _knn_kind(cfg, modalities)
        t0 = time.perf_counter()
        backend = choose_backend(int(masks[kind].sum()), cfg.knn.backend, cfg.knn.faiss_threshold)
        edge_index, weight = knn_graph(arrays[kind], cfg.knn.k, backend, mask=masks[kind],
                                       block_rows=cfg.knn.block_rows)
        graph = (edge_index, weight, {
            "file": store.knn_filename(kind, cfg.knn.k), "features": kind, "k": cfg.knn.k, "backend": backend,
            "edges": int(edge_index.shape[1]), "items_without_edges": int((~masks[kind]).sum()),
            "seconds": round(time.perf_counter() - t0, 3)})

    header = {"created": datetime.now(UTC).isoformat(timespec="seconds"), "n_items": len(items),
              "data_digest": dmanifest.get("digest"), "items_digest": items_digest,
              "image_weights_random": bool("image" in arrays and cfg.image.random_weights),
              "cache_dir": str(cache_root), "config": cfg.model_dump(mode="json"),
              "seconds": round(time.perf_counter() - t_start, 3)}
    manifest = _save(out, arrays, masks, stats, graph, header)
    log.info("features_written", out=str(out), kinds=sorted(manifest["arrays"]), seconds=header["seconds"])
    return manifest
