"""Import a registered champion into the BentoML model store and build the Bento (and its image).

``import_model`` downloads the registry version's pickle-free folder (``artifacts/model`` of the logged
pyfunc) and stores it as a BentoML model labelled with the registry version, run id, data digest and
split; the same registry version is imported once (its tag names the version and run). ``build`` builds
the Bento from ``bentofile.yaml`` with that model as the service's argument; faiss-cpu joins the
Bento's packages only when the catalogue is large enough to be served through an approximate index.
``containerize`` builds the Bento's OCI image with buildah (no Docker daemon), optionally on another base.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gatrec import log as glog
from gatrec.errors import DataError, GatrecError
from gatrec.serve.config import ServeConfig

log = glog.get(__name__)

PROJECT_DIR = Path(__file__).resolve().parents[2]
BENTOFILE = PROJECT_DIR / "bentofile.yaml"
MODEL_FILES = ("item_embeddings.npy", "user_embeddings.npy", "user_ids.json", "item_ids.json", "model.json",
               "seen.npz", "popularity.npy")
DEFAULT_MODEL_URI = "models:/gatrec@champion"
FAISS_PACKAGE = "faiss-cpu"
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass
class ImportedModel:
    tag: str
    n_items: int
    registry_version: str
    reused: bool


def _version(model_uri: str) -> Any:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    match = _URI.match(model_uri)
    if not match:
        raise GatrecError(f"--model-uri {model_uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    client = MlflowClient()
    try:
        if match["alias"]:
            return client.get_model_version_by_alias(match["name"], match["alias"])
        return client.get_model_version(match["name"], match["version"])
    except MlflowException as exc:
        raise GatrecError(f"--model-uri {model_uri}: {exc.message}") from None


def _metrics(tags: dict[str, str]) -> dict[str, float]:
    out = {}
    for key, value in tags.items():
        if key.startswith("metric."):
            try:
                out[key.removeprefix("metric.")] = float(value)
            except ValueError:
                continue
    return out


def import_model(model_uri: str = DEFAULT_MODEL_URI, name: str = "gatrec") -> ImportedModel:
    """The registry version behind ``model_uri`` as a BentoML model ``name:v<version>-<run>``."""
    import bentoml
    import mlflow
    from bentoml.exceptions import NotFound

    mv = _version(model_uri)
    run = (mv.run_id or "norun")[:12]
    tag = f"{name}:v{mv.version}-{run}"
    try:
        existing = bentoml.models.get(tag)
    except NotFound:
        existing = None
    if existing is not None:
        n_items = len(json.loads((Path(existing.path) / "item_ids.json").read_text()))
        log.info("bento model reused", tag=tag, model_uri=model_uri)
        return ImportedModel(tag, n_items, str(mv.version), True)
    with tempfile.TemporaryDirectory(prefix="gatrec-bento-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{mv.name}/{mv.version}", dst_path=tmp))
        folder = local / "artifacts" / "model"
        for f in MODEL_FILES:
            if not (folder / f).is_file():
                raise DataError(f"registry version {mv.name}/{mv.version} is not a gatrec model folder "
                                "(register it with `gatrec register`)", file=folder / f)
        tags = dict(mv.tags)
        labels = {"registry_model": mv.name, "registry_version": str(mv.version), "run_id": mv.run_id or "",
                  "data_digest": tags.get("data_digest", ""), "split": tags.get("split_protocol", ""),
                  "model_type": tags.get("model_type", "")}
        meta = {"model_uri": model_uri, "metrics": _metrics(tags), "tracking_uri": mlflow.get_tracking_uri()}
        with bentoml.models.create(tag, labels=labels, metadata=meta) as model:
            for f in folder.iterdir():
                if f.is_file():
                    shutil.copy2(f, Path(model.path) / f.name)
        n_items = len(json.loads((folder / "item_ids.json").read_text()))
    log.info("bento model imported", tag=tag, model_uri=model_uri, n_items=n_items)
    return ImportedModel(tag, n_items, str(mv.version), False)


def build_options(model: ImportedModel, approx_above: int, name: str, base_image: str | None = None) -> dict:
    """``bentofile.yaml`` with the model, the index threshold and the packages this catalogue needs."""
    try:
        options = yaml.safe_load(BENTOFILE.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read the Bento build file: {exc}", file=BENTOFILE) from None
    python = dict(options.get("python") or {})
    packages = list(python.get("packages") or [])
    if model.n_items > approx_above and not any(p.startswith(FAISS_PACKAGE) for p in packages):
        packages.append(FAISS_PACKAGE)
    python["packages"] = packages
    options["python"] = python
    if base_image:
        options["docker"] = {**(options.get("docker") or {}), "base_image": base_image}
    options["name"] = name
    options["labels"] = {**(options.get("labels") or {}), "model": model.tag,
                         "registry_version": model.registry_version}
    ServeConfig(model=model.tag, approx_above=approx_above)  # validated here, not at serve time
    options["args"] = {"model": model.tag, "approx_above": approx_above}
    return options


def build(model_uri: str = DEFAULT_MODEL_URI, name: str = "gatrec", approx_above: int | None = None,
          base_image: str | None = None) -> tuple[Any, ImportedModel]:
    """Import the champion and build the Bento; returns the bentoml Bento and the imported model."""
    import bentoml

    approx_above = ServeConfig().approx_above if approx_above is None else approx_above
    model = import_model(model_uri, name)
    options = build_options(model, approx_above, name, base_image)
    started = time.monotonic()
    bento = bentoml.bentos.build(build_ctx=str(PROJECT_DIR), **options)
    log.info("bento built", tag=str(bento.tag), model=model.tag, seconds=round(time.monotonic() - started, 1),
             path=bento.path)
    return bento, model


def containerize(bento_tag: str, *, base_image: str | None = None, image_tag: str | None = None) -> str:
    """Build the Bento's image with buildah (chroot isolation, host network); returns the image tag."""
    import bentoml

    if shutil.which("buildah") is None:
        raise GatrecError("buildah not found: install it (Debian: apt-get install buildah, or "
                          "scripts/container_tools.sh)")
    bento = bentoml.bentos.get(bento_tag)
    tag = image_tag or f"{bento.tag.name}:{bento.tag.version}"
    extra = {"from": base_image} if base_image else {}
    bentoml.container.build(str(bento.tag), backend="buildah", image_tag=(tag,), isolation="chroot",
                            network="host", **extra)
    return tag
