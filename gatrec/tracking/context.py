"""Tags that say which code, data and features produced an MLflow run (no MLflow import here)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import gatrec
from gatrec import log as glog

log = glog.get(__name__)

PACKAGE_DIR = Path(gatrec.__file__).resolve().parent
IMAGE_KINDS = ("image", "fused")  # feature kinds that carry the image embedding


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _installed_commit() -> str | None:
    """The commit pip recorded when gatrec was installed from a git URL (PEP 610 direct_url.json)."""
    try:
        text = metadata.distribution("gatrec").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    try:
        return (json.loads(text or "{}").get("vcs_info") or {}).get("commit_id")
    except json.JSONDecodeError:
        return None


@lru_cache(maxsize=1)
def code_tags() -> dict[str, str]:
    """``gatrec.version`` and, when known, ``gatrec.git_commit`` (+ ``gatrec.git_dirty``) of the code running.

    Asked of the checkout that holds the gatrec package, not of the working directory; an installed wheel
    falls back to the commit pip recorded, else the commit tag is left out rather than guessed.
    """
    tags = {"gatrec.version": gatrec.__version__}
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["gatrec.git_commit"] = commit
        status = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
        if status is not None:
            tags["gatrec.git_dirty"] = str(bool(status)).lower()
    elif commit := _installed_commit():
        tags["gatrec.git_commit"] = commit
    return tags


def data_tags(manifest: Mapping[str, Any], path: str | Path | None = None) -> dict[str, str]:
    """Digest, split protocol and split seed of a prepared dataset, from its manifest.json."""
    split = manifest.get("split") or {}
    tags = {"data_digest": str(manifest.get("digest", "")), "split": str(split.get("protocol", "")),
            "split_seed": str(split.get("seed", ""))}
    if path is not None:
        tags["data_path"] = str(Path(path).resolve())
    return {k: v for k, v in tags.items() if v}


def features_manifest(features_dir: str | Path) -> dict[str, Any] | None:
    f = Path(features_dir) / "features.json"
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except (OSError, json.JSONDecodeError) as exc:  # the loaders report it properly; a tag is not worth failing
        log.warning("unreadable features manifest", file=str(f), error=str(exc))
        return None


def features_tags(features_dir: str | Path, kinds: Iterable[str | None]) -> dict[str, str]:
    """``image_weights_random=true`` when a feature kind used (as input or for the item graph) holds randomly
    initialised image embeddings (``gatrec embed --image-weights none``), so such runs stand out in the UI
    and in searches; plus the item digest the features were computed from."""
    used = {k for k in kinds if k and k not in ("none", "auto", "interactions")}
    if not used:
        return {}
    manifest = features_manifest(features_dir)
    if manifest is None:
        return {}
    tags = {"features_items_digest": str(manifest.get("items_digest", ""))}
    if used & set(IMAGE_KINDS) and manifest.get("image_weights_random"):
        tags["image_weights_random"] = "true"
    return {k: v for k, v in tags.items() if v}


def redact_uri(uri: str) -> str:
    """``https://user:secret@host/`` → ``https://user@host/``: the URI is written to metrics.json and logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def system_metrics_wanted() -> bool | None:
    """Log system metrics (CPU, memory, disk, network, GPU) unless MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING says
    otherwise; ``None`` lets MLflow read that variable. Without psutil MLflow would refuse to start the run."""
    if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING") is not None:
        return None
    try:
        import psutil  # noqa: F401
    except ImportError:
        log.warning("psutil is not installed: no system metrics")
        return False
    return True


def training_tags(config: Mapping[str, Any], manifest: Mapping[str, Any], data_path: str | Path,
                  run_dir: str | Path) -> dict[str, str]:
    """Tags of a training run: model, seed, data provenance, run folder and the item features it used."""
    params = config.get("model_params") or {}
    features_dir = params.get("features_dir") or Path(data_path) / "features"
    features = params.get("features")
    graph = params.get("knn_source")  # gat: the item-item graph's features ("auto" = the input features)
    tags = {"model": str(config["model"]), "seed": str(config.get("seed", "")),
            "run_dir": str(Path(run_dir).resolve()), **data_tags(manifest, data_path),
            **features_tags(features_dir, [features, features if graph == "auto" else graph])}
    if features:
        tags["features"] = str(features)
    return tags
