"""The features folder written by ``gatrec embed`` (default ``<dataset>/features/``) and its loaders.

Layout::

    text.npy, image.npy, fused.npy        float32 [n_items, d]; row i = internal item id i
    text_mask.npy, image_mask.npy, ...    bool [n_items]: False = no input, row holds the mean of the others
    knn_<features>_k<k>.npz               edge_index int64 [2, E], edge_weight float32 [E] (+ provenance)
    features.json                         manifest: models, dims, weights, digests, timings (written last)
    cache/                                embedding cache (unless $GATREC_CACHE points elsewhere)

Consumers call :func:`load_features`, :func:`load_mask` and :func:`load_knn`; all check that the features
belong to the dataset as it is now (item count + items.parquet digest) and raise a DataError otherwise.

Only ``gatrec embed`` writes this folder. Readers never change it: a kNN graph with another ``k`` than embed
built is computed in memory (:func:`load_knn` with ``build_missing``), so that the embed step's record still
describes the folder and concurrent trainings with different ``k`` share it safely.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Union

import numpy as np
import torch

from gatrec.data import dataset as prepared
from gatrec.errors import DataError, GatrecError
from gatrec.fsutil import atomic_file

if TYPE_CHECKING:
    from gatrec.data.dataset import Dataset

# A prepared dataset: its loaded Dataset (training: checked against its manifest, nothing read again), or
# its folder (``gatrec embed`` and tools, which may hold items.parquet + manifest.json alone).
DatasetRef = Union[str, Path, "Dataset"]

FEATURES_DIR = "features"
MANIFEST = "features.json"
FORMAT_VERSION = 1
Kind = Literal["text", "image", "fused"]
KINDS: tuple[str, ...] = ("text", "image", "fused")


def _path(dataset: DatasetRef) -> Path:
    return Path(dataset) if isinstance(dataset, str | Path) else Path(dataset.path)


def resolve_dir(dataset_dir: DatasetRef, features_dir: str | Path | None = None) -> Path:
    return Path(features_dir) if features_dir is not None else _path(dataset_dir) / FEATURES_DIR


def _dataset_facts(dataset: DatasetRef) -> tuple[int | None, str | None]:
    """(n_items, sha256 of items.parquet) of the prepared data, None where it has no such record/file."""
    if not isinstance(dataset, str | Path):
        return dataset.n_items, dataset.items_digest
    folder = Path(dataset)
    manifest = prepared.read_manifest(folder) if (folder / prepared.MANIFEST).is_file() else None
    return (int(manifest["n_items"]) if manifest else None), prepared.items_file_digest(folder, manifest)


def knn_filename(features: str, k: int) -> str:
    return f"knn_{features}_k{k}.npz"


def array_digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def save_array(path: Path, a: np.ndarray) -> str:
    """Write ``a`` atomically as .npy; returns the sha256 of its contents."""
    with atomic_file(path, "wb") as fh:
        np.save(fh, a)
    return array_digest(a)


def save_knn(path: Path, edge_index: torch.Tensor, edge_weight: torch.Tensor, *, n_items: int, k: int,
             features: str, features_sha256: str) -> None:
    with atomic_file(path, "wb") as fh:
        np.savez(fh, edge_index=edge_index.numpy().astype(np.int64), edge_weight=edge_weight.numpy(),
                 n_items=np.int64(n_items), k=np.int64(k), features=np.str_(features),
                 features_sha256=np.str_(features_sha256))


def read_manifest(dataset_dir: DatasetRef, features_dir: str | Path | None = None) -> dict:
    """The features manifest, checked against the dataset's current item count and items.parquet."""
    fdir = resolve_dir(dataset_dir, features_dir)
    mpath = fdir / MANIFEST
    if not mpath.is_file():
        raise DataError(f"no item features here; run `gatrec embed --data {_path(dataset_dir)}` first",
                        file=mpath)
    manifest = json.loads(mpath.read_text())
    n_items, items_digest = _dataset_facts(dataset_dir)
    if n_items is not None and manifest.get("n_items") != n_items:
        raise DataError(f"features cover {manifest.get('n_items')} items but the dataset has {n_items}; "
                        "rerun `gatrec embed`", file=mpath, field="n_items")
    if items_digest is not None and manifest.get("items_digest") != items_digest:
        raise DataError("features are stale: items.parquet changed since they were computed; rerun "
                        "`gatrec embed`", file=mpath, field="items_digest")
    return manifest


def _entry(manifest: dict, kind: str, mpath: Path) -> dict:
    if kind not in KINDS:
        raise GatrecError(f"unknown feature kind {kind!r}; expected one of {', '.join(KINDS)}")
    entry = manifest.get("arrays", {}).get(kind)
    if entry is None:
        have = sorted(manifest.get("arrays", {}))
        raise DataError(f"no {kind!r} features (have {have}); rerun `gatrec embed` with that modality",
                        file=mpath, field="arrays")
    return entry


def load_features(dataset_dir: DatasetRef, kind: Kind, *, features_dir: str | Path | None = None
                  ) -> np.ndarray:
    """float32 [n_items, d] for ``kind`` in text (384-d MiniLM), image (512-d CLIP), fused (PCA 128-d).

    Row ``i`` is internal item ``i``. Items without that input hold the mean of the others; see
    :func:`load_mask` to tell them apart.
    """
    fdir = resolve_dir(dataset_dir, features_dir)
    entry = _entry(read_manifest(dataset_dir, features_dir), kind, fdir / MANIFEST)
    a = np.load(fdir / entry["file"])
    if a.shape != (entry["n_items"], entry["dim"]):
        raise DataError(f"shape {a.shape} does not match the manifest", file=fdir / entry["file"])
    return a


def load_mask(dataset_dir: DatasetRef, kind: Kind, *, features_dir: str | Path | None = None) -> np.ndarray:
    """bool [n_items]: True where the item had real input for ``kind`` (fused: any modality)."""
    fdir = resolve_dir(dataset_dir, features_dir)
    entry = _entry(read_manifest(dataset_dir, features_dir), kind, fdir / MANIFEST)
    return np.load(fdir / entry["mask_file"])


def load_knn(dataset_dir: DatasetRef, features: Kind, k: int, *, features_dir: str | Path | None = None,
             build_missing: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The item–item graph over ``features`` with ``k`` neighbours per item.

    Returns ``(edge_index LongTensor [2, E], edge_weight FloatTensor [E])``: symmetric (both directions
    present), no self-loops, weight = cosine similarity, sorted by (source, target). With
    ``build_missing=True`` a graph that was not precomputed (or is stale) is built in memory, as
    ``gatrec embed`` builds it (items without real input get no edges); nothing is written.
    """
    fdir = resolve_dir(dataset_dir, features_dir)
    manifest = read_manifest(dataset_dir, features_dir)
    entry = _entry(manifest, features, fdir / MANIFEST)
    path = fdir / knn_filename(features, k)
    if path.is_file():
        with np.load(path) as z:
            if str(z["features_sha256"]) == entry["sha256"]:
                return torch.from_numpy(z["edge_index"]).long(), torch.from_numpy(z["edge_weight"]).float()
        problem = "was built from older features"
    else:
        problem = "was not built"
    if not build_missing:
        raise DataError(f"the kNN graph {problem}; run `gatrec embed --data {_path(dataset_dir)} --knn-features "
                        f"{features} --knn-k {k}`", file=path)
    from gatrec.graph.knn import knn_graph

    x = load_features(dataset_dir, features, features_dir=features_dir)
    return knn_graph(x, k, mask=load_mask(dataset_dir, features, features_dir=features_dir))
