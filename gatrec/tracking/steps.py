"""MLflow runs of the non-training steps (``prepare``, ``embed``, ``eval``): cheap records of what was
made from what. Counts become metrics, manifests artifacts, and the data enters as ``mlflow.data`` inputs
with digests; parquet files and feature arrays are never uploaded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gatrec.data.dataset import MANIFEST, SPLITS, Dataset
from gatrec.tracking import metric_key
from gatrec.tracking.context import data_tags
from gatrec.tracking.mlflow_log import MlflowTracker, flatten, tracking_errors

EVAL_PREFIX = "eval_"


class StepLogger:
    """What a step records; with tracking off (``tracker`` None) every method does nothing."""

    def __init__(self, tracker: MlflowTracker | None = None, *, into_existing: bool = False):
        self.tracker, self.into_existing = tracker, into_existing

    @property
    def run_id(self) -> str | None:
        return self.tracker.run_id if self.tracker else None

    def prepared(self, path: str | Path) -> None:
        """A ``gatrec prepare`` output: counts, cleaning numbers, manifest.json, the splits as inputs."""
        if self.tracker is None:
            return
        from gatrec.tracking.datasets import log_splits

        ds = Dataset.load(path)
        path, m = ds.path, ds.manifest
        t = self.tracker
        t.set_tags(data_tags(m, path))
        t.log_metrics({"n_users": m["n_users"], "n_items": m["n_items"], "n_interactions": m["n_interactions"],
                       **{f"n_{k}": v for k, v in m["counts"].items()},
                       **{f"cleaning.{k}": v for k, v in flatten(m.get("cleaning") or {}).items()}})
        t.log_file(path / MANIFEST)
        log_splits({s: ds.split(s) for s in SPLITS}, path, ds.digest)

    def embedded(self, data: str | Path, out: str | Path, manifest: Mapping[str, Any]) -> None:
        """A ``gatrec embed`` output: per-modality sizes and speeds, kNN graph sizes, features.json, the
        item table as an input."""
        if self.tracker is None:
            return
        from gatrec.tracking.datasets import log_items

        data, t = Path(data), self.tracker
        t.set_tags({"data_digest": manifest.get("data_digest") or "", "items_digest": manifest["items_digest"],
                    "image_weights_random": str(bool(manifest.get("image_weights_random"))).lower(),
                    "modalities": ",".join(k for k in manifest["arrays"] if k != "fused")})
        metrics: dict[str, Any] = {"n_items": manifest["n_items"], "seconds": manifest.get("seconds")}
        for kind, entry in manifest["arrays"].items():
            metrics.update({f"{kind}.{k}": v for k, v in entry.items()})
        for name, graph in manifest.get("knn", {}).items():
            metrics.update({f"knn.{name}.{k}": v for k, v in graph.items()})
        t.log_metrics(metrics)
        t.log_file(Path(out) / "features.json")
        log_items(Dataset.load_items(data)[0], data, manifest["items_digest"],
                  manifest.get("data_digest"))  # the items alone: embed accepts a folder of items only

    def evaluated(self, split: str, metrics: Mapping[str, float], ds: Any, report: Mapping[str, Any]) -> None:
        """``eval_<split>_<metric>`` values; in a run of its own also the split as an input and the report."""
        if self.tracker is None:
            return
        t = self.tracker
        t.log_metrics({f"{EVAL_PREFIX}{split}_{metric_key(k)}": v for k, v in metrics.items()})
        if not self.into_existing:
            from gatrec.tracking.datasets import log_splits

            t.set_tags(data_tags(ds.manifest, ds.path))
            log_splits({split: ds.split(split)}, ds.path, ds.digest, splits=(split,))
        import mlflow

        mlflow.log_dict(dict(report), f"eval/{split}.json")


@contextlib.contextmanager
def step_run(name: str, *, enabled: bool = True, experiment: str | None = None,
             params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None,
             run_id: str | None = None) -> Iterator[StepLogger]:
    """An MLflow run named ``name`` around a step (or ``run_id``, an existing run, e.g. the training run
    an evaluation belongs to: then no params are logged, as they would clash with the training's)."""
    if not enabled:
        yield StepLogger()
        return
    with tracking_errors(), MlflowTracker(experiment, run_name=name, tags=tags, run_id=run_id) as tracker:
        if params and not tracker.foreign:
            tracker.log_params(params)
        yield StepLogger(tracker, into_existing=tracker.foreign)


def eval_tags(run_dir: str | Path, export_meta: Mapping[str, Any]) -> dict[str, str]:
    """Which trained run an evaluation run evaluated: its folder, model and MLflow run (when it had one)."""
    from gatrec.train.export import RunFolder

    tags = {"run_dir": str(Path(run_dir).resolve()), "model": str(export_meta.get("model", "")),
            "training_run_id": RunFolder(Path(run_dir)).mlflow_run_id() or ""}
    return {k: v for k, v in tags.items() if v}
