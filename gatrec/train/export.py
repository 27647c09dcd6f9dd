"""The run folder of ``gatrec train`` (:class:`RunFolder`, its one reader and writer) and the pickle-free model
export in ``RUNDIR/model/``: embeddings as .npy, metadata and id maps as JSON.

Scoring is ``user_embeddings @ item_embeddings.T (+ item_bias)`` for every model, so evaluation and serving
read this folder without any model code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from gatrec.errors import DataError
from gatrec.fsutil import atomic_dir, atomic_file, remove_stale_temps, write_json

if TYPE_CHECKING:
    from gatrec.data.dataset import Dataset

FORMAT_VERSION = 1
EXPORT_FILES = ("user_embeddings.npy", "item_embeddings.npy", "model.json", "user_ids.json", "item_ids.json")


def _id_list(frame: Any, index_col: str, id_col: str, n: int, file: Path) -> list[str]:
    ids = np.full(n, None, dtype=object)
    idx = frame[index_col].to_numpy()
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise DataError(f"{index_col} outside 0..{n - 1}", file=file, field=index_col)
    ids[idx] = frame[id_col].astype(str).to_numpy()
    filled = np.zeros(n, dtype=bool)
    filled[idx] = True
    if (missing := np.flatnonzero(~filled)).size:
        raise DataError(f"no {id_col} for {index_col} {missing[0]}", file=file, field=id_col)
    return ids.tolist()


def write_export(target: str | Path, *, model: str, user_emb: np.ndarray, item_emb: np.ndarray,
                 item_bias: np.ndarray | None, dataset: Dataset, extra: dict[str, Any] | None = None) -> Path:
    """Write the export folder atomically (a reader never sees a half-written one)."""
    target = Path(target)
    user_emb = np.ascontiguousarray(user_emb, dtype=np.float32)
    item_emb = np.ascontiguousarray(item_emb, dtype=np.float32)
    meta = {
        "format_version": FORMAT_VERSION, "model": model, "dim": int(user_emb.shape[1]),
        "n_users": int(user_emb.shape[0]), "n_items": int(item_emb.shape[0]), "scoring": "dot",
        "has_item_bias": item_bias is not None, "data_path": str(Path(dataset.path).resolve()),
        "data_digest": dataset.digest, "split_protocol": dataset.split_protocol, **(extra or {}),
    }
    user_ids = _id_list(dataset.users, "user", "user_id", dataset.n_users, Path(dataset.path) / "users.parquet")
    item_ids = _id_list(dataset.items, "item", "item_id", dataset.n_items, Path(dataset.path) / "items.parquet")
    with atomic_dir(target) as tmp:
        np.save(tmp / "user_embeddings.npy", user_emb)
        np.save(tmp / "item_embeddings.npy", item_emb)
        if item_bias is not None:
            np.save(tmp / "item_bias.npy", np.ascontiguousarray(item_bias, dtype=np.float32))
        write_json(tmp / "model.json", meta)
        write_json(tmp / "user_ids.json", user_ids)
        write_json(tmp / "item_ids.json", item_ids)
    return target


@dataclass
class ModelExport:
    path: Path
    meta: dict[str, Any]
    user_emb: np.ndarray
    item_emb: np.ndarray
    item_bias: np.ndarray | None = None
    _ids: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def ids(self, kind: str) -> list[str]:
        """Original ``user`` or ``item`` ids, index = internal id."""
        if kind not in self._ids:
            self._ids[kind] = json.loads((self.path / f"{kind}_ids.json").read_text())
        return self._ids[kind]


def load_export(path: str | Path) -> ModelExport:
    """Read and check an export folder (``RUNDIR/model`` or ``RUNDIR``)."""
    path = Path(path)
    if not (path / "model.json").is_file() and (path / "model" / "model.json").is_file():
        path = path / "model"
    mfile = path / "model.json"
    if not mfile.is_file():
        raise DataError("no model export here (model.json missing); did training finish?", file=path)
    try:
        meta = json.loads(mfile.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", file=mfile, line=exc.lineno) from None

    def arr(name: str) -> np.ndarray:
        f = path / name
        if not f.is_file():
            raise DataError("missing from the model export", file=f)
        return np.load(f, allow_pickle=False)

    users, items = arr("user_embeddings.npy"), arr("item_embeddings.npy")
    bias = arr("item_bias.npy") if meta.get("has_item_bias") else None
    for name, a, rows in (("user_embeddings.npy", users, meta.get("n_users")),
                          ("item_embeddings.npy", items, meta.get("n_items"))):
        if a.ndim != 2 or a.shape[0] != rows or a.shape[1] != meta.get("dim"):
            raise DataError(f"shape {a.shape} does not match model.json (rows {rows}, dim {meta.get('dim')})",
                            file=path / name)
    if bias is not None and bias.shape != (items.shape[0],):
        raise DataError(f"shape {bias.shape} != ({items.shape[0]},)", file=path / "item_bias.npy")
    return ModelExport(path=path, meta=meta, user_emb=users, item_emb=items, item_bias=bias)


def read_json(path: Path, *, what: str = "the run folder") -> Any:
    """A JSON file of a run folder; a missing or broken one is a DataError naming it."""
    if not path.is_file():
        raise DataError(f"missing from {what}", file=path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", file=path, line=exc.lineno) from None


@dataclass(frozen=True)
class RunFolder:
    """A ``gatrec train`` run folder (``RUNDIR``), the one reader and writer of its files::

        config.yaml       the resolved TrainConfig (written first: a resume checks it)
        checkpoints/      last.pt, the per-epoch state for resume
        model/            the export (:func:`write_export` / :func:`load_export`)
        metrics.json      valid, test, best_epoch, epochs_run, seconds_per_epoch, config, model, data, history
                          (+ mlflow_run_id, mlflow_tracking_uri once logged); written last
        mlflow_run_id     the MLflow training run, reopened when a killed training is started again

    Serving, sweeps, the registry and evaluation read runs through this class only.
    """

    path: Path

    METRICS: ClassVar[str] = "metrics.json"
    CONFIG: ClassVar[str] = "config.yaml"
    MODEL: ClassVar[str] = "model"
    CHECKPOINTS: ClassVar[str] = "checkpoints"
    RUN_ID: ClassVar[str] = "mlflow_run_id"
    # What a fresh start (--overwrite) removes; the MLflow run id stays so the run can be found again.
    TRAINING_FILES: ClassVar[tuple[str, ...]] = (METRICS, CONFIG, MODEL, CHECKPOINTS)

    @classmethod
    def at(cls, path: str | Path) -> RunFolder:
        """The run folder at ``path``, which may also name its ``model/`` export folder."""
        path = Path(path)
        if path.name == cls.MODEL and (path / "model.json").is_file() and not (path / cls.METRICS).is_file():
            path = path.parent
        return cls(path)

    # ------------------------------------------------------------------ paths
    @property
    def metrics_file(self) -> Path:
        return self.path / self.METRICS

    @property
    def config_file(self) -> Path:
        return self.path / self.CONFIG

    @property
    def model_dir(self) -> Path:
        return self.path / self.MODEL

    @property
    def checkpoint_file(self) -> Path:
        from gatrec.train.checkpoint import LAST

        return self.path / self.CHECKPOINTS / LAST

    @property
    def run_id_file(self) -> Path:
        return self.path / self.RUN_ID

    # ------------------------------------------------------------------ reading
    def is_finished(self) -> bool:
        """Training wrote its result (metrics.json, written after the export)."""
        return self.metrics_file.is_file()

    def metrics(self) -> dict[str, Any]:
        """metrics.json, checked to hold the valid and test metric mappings."""
        metrics = read_json(self.metrics_file)
        if not isinstance(metrics, dict):
            raise DataError("expected a JSON object", file=self.metrics_file)
        for split in ("valid", "test"):
            if not isinstance(metrics.get(split), dict):
                raise DataError("expected a mapping of metric name to value", file=self.metrics_file,
                                field=split)
        return metrics

    def metric_values(self, split: str) -> dict[str, float]:
        """The numeric metrics of ``split`` (valid or test) at the best epoch."""
        return {k: float(v) for k, v in self.metrics()[split].items()
                if isinstance(v, int | float) and not isinstance(v, bool)}

    def config(self) -> dict[str, Any]:
        """The training config: metrics.json's copy, else config.yaml, else the export's (``{}`` if none)."""
        if self.metrics_file.is_file():
            cfg = read_json(self.metrics_file).get("config")
            if isinstance(cfg, dict):
                return cfg
        if self.config_file.is_file():
            import yaml

            return yaml.safe_load(self.config_file.read_text()) or {}
        if (self.model_dir / "model.json").is_file():
            return read_json(self.model_dir / "model.json").get("config") or {}
        return {}

    def saved_config(self) -> dict[str, Any] | None:
        """config.yaml as written when the training started (None before that)."""
        if not self.config_file.is_file():
            return None
        import yaml

        return yaml.safe_load(self.config_file.read_text()) or {}

    def mlflow_run_id(self) -> str | None:
        """The MLflow training run: the ``mlflow_run_id`` file, else metrics.json's record of it."""
        if self.run_id_file.is_file() and (run_id := self.run_id_file.read_text().strip()):
            return run_id
        if self.metrics_file.is_file():
            try:
                return read_json(self.metrics_file).get("mlflow_run_id") or None
            except DataError:
                return None
        return None

    def export(self) -> ModelExport:
        return load_export(self.model_dir)

    def require_export(self) -> None:
        """Raise a DataError naming the first file of ``model/`` that is missing."""
        for name in EXPORT_FILES:
            if not (self.model_dir / name).is_file():
                raise DataError("missing from the exported model", file=self.model_dir / name)

    @property
    def model_type(self) -> str:
        meta = read_json(self.model_dir / "model.json") if (self.model_dir / "model.json").is_file() else {}
        metrics = read_json(self.metrics_file) if self.metrics_file.is_file() else {}
        return str(meta.get("model") or metrics.get("model") or "unknown")

    def dataset(self) -> Dataset:
        """The prepared dataset the run was trained on (its recorded path, absolute or relative to the run),
        checked against the recorded digest."""
        from gatrec.data.dataset import Dataset

        raw = self.data_record("path")
        if not raw:
            raise DataError("no prepared-data path recorded", file=self.metrics_file, field="data.path")
        found = next((p for p in (Path(raw), self.path / raw) if (p / "manifest.json").is_file()), None)
        if found is None:
            raise DataError(f"prepared data {raw!r} not found", file=self.metrics_file, field="data.path")
        data = Dataset.load(found)
        digest = self.data_record("digest")
        if digest and data.digest != digest:
            raise DataError(f"prepared data at {found} has digest {data.digest}, the run was trained on "
                            f"{digest}", file=self.metrics_file, field="data.digest")
        return data

    def data_record(self, key: str) -> Any:
        """``path``, ``digest`` or ``split_protocol`` of the prepared data it was trained on."""
        meta_key = {"path": "data_path", "digest": "data_digest"}.get(key, key)
        value = None
        if self.metrics_file.is_file():
            value = (read_json(self.metrics_file).get("data") or {}).get(key)
        if value in (None, "") and (self.model_dir / "model.json").is_file():
            value = read_json(self.model_dir / "model.json").get(meta_key)
        return value if value not in (None, "") else None

    # ------------------------------------------------------------------ writing (training only)
    def write_config(self, text: str) -> None:
        with atomic_file(self.config_file) as fh:
            fh.write(text)

    def write_metrics(self, result: dict[str, Any]) -> None:
        write_json(self.metrics_file, result)

    def record_mlflow_run(self, run_id: str, tracking_uri: str | None = None) -> None:
        """Remember the MLflow run in the ``mlflow_run_id`` file; with ``tracking_uri`` (the run is logged)
        also in metrics.json."""
        with atomic_file(self.run_id_file) as fh:
            fh.write(run_id + "\n")
        if tracking_uri is not None and self.metrics_file.is_file():
            saved = read_json(self.metrics_file)
            saved.update(mlflow_run_id=run_id, mlflow_tracking_uri=tracking_uri)
            write_json(self.metrics_file, saved)

    def remove_stale_temps(self) -> list[Path]:
        """Remove the temp files and folders that killed writers left beside this folder's files (a 0-byte
        ``checkpoints/.last.pt.tmp-*`` of a SIGKILLed training, and the like; see
        :func:`gatrec.fsutil.remove_stale_temps`); a live writer's are kept. Returns what was removed."""
        targets = [self.path / name for name in (self.METRICS, self.CONFIG, self.MODEL, self.RUN_ID)]
        return [p for t in (*targets, self.checkpoint_file) for p in remove_stale_temps(t)]

    def clear(self) -> None:
        """Remove what a training wrote (for a fresh start); the folder itself stays."""
        import shutil

        for name in self.TRAINING_FILES:
            p = self.path / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
