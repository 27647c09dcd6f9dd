"""The study around the trials: storage, sampler, pruner, heartbeats, worker processes, the sweep's MLflow
run and the best trial.

Storage is an Optuna RDB URL. The embedded default is ``optuna.db`` (sqlite) beside the MLflow store; for
several workers or machines, PostgreSQL (``postgresql://user@host/db``). Every worker, on this machine
(``--workers N``) or another one running the same command, joins the study by name and sends heartbeats:
a trial whose worker stops beating is marked FAIL and enqueued again (same settings), and its retry
resumes from the dead attempt's checkpoint. Running the command again resumes the study.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import optuna
from optuna.trial import FrozenTrial, TrialState
from pydantic import BaseModel, ConfigDict, Field

from gatrec import log as glog
from gatrec.errors import GatrecError
from gatrec.fsutil import write_json

log = glog.get(__name__)

STORAGE_FILE = "optuna.db"
PARENT_RUN_ATTR = "mlflow_parent_run_id"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class SweepSettings(BaseModel):
    """Everything a worker needs to join the sweep (picklable: it is handed to worker processes)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    data: str = Field(description="prepared dataset folder")
    model: str
    space: str | None = Field(None, description="search-space YAML; None = the one shipped for the model")
    study: str
    storage: str = Field(description="Optuna storage URL (sqlite:///..., postgresql://...)")
    out: str = Field(description="sweep folder: trial run folders, best.json")
    n_trials: int = Field(20, ge=1, description="trials to finish (complete, pruned or failed), all workers")
    timeout: float | None = Field(None, gt=0, description="seconds after which a worker starts no new trial")
    workers: int = Field(1, ge=1)
    seed: int = Field(0, description="TPE seed (worker i uses seed+i) and the training seed of every trial")
    overrides: dict[str, Any] = Field(default_factory=dict, description="training settings for every trial")
    pruner: Literal["median", "halving", "none"] = "median"
    prune_warmup: int = Field(10, ge=0, description="epochs before a trial may be pruned")
    startup_trials: int = Field(5, ge=0, description="random trials before TPE (and the pruner) kick in")
    heartbeat: int = Field(60, ge=1, description="seconds between a running trial's heartbeats")
    max_retry: int = Field(3, ge=0, description="retries of a trial whose worker died")
    threads: int | None = Field(None, ge=1, description="torch threads per worker")
    mlflow: bool = True
    experiment: str | None = None
    parent_run_id: str | None = None


def default_storage(out: str | Path, tracking_uri: str | None) -> str:
    """``optuna.db`` beside an embedded MLflow store (sqlite file or folder), else in the sweep folder."""
    folder = Path(out)
    if tracking_uri:
        parts = urlsplit(tracking_uri)
        if parts.scheme == "sqlite" and parts.path not in ("", "/:memory:"):
            folder = Path(tracking_uri.removeprefix("sqlite:///")).parent
        elif parts.scheme in ("", "file"):
            folder = Path(parts.path).parent
    return f"sqlite:///{(folder / STORAGE_FILE).resolve()}"


def _retry_callback(max_retry: int) -> Any:
    # Optuna 4.9 renamed RetryFailedTrialCallback (deprecated, removed in 6) to RetryHeartbeatStaleTrialCallback.
    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    return cls(max_retry=max_retry, inherit_intermediate_values=True)


def storage(settings: SweepSettings) -> optuna.storages.RDBStorage:
    url = settings.storage
    if url.startswith(("postgresql://", "postgres://")):
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; gatrec depends on psycopg2.
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite:///"):
        kwargs["connect_args"] = {"timeout": 60}  # several processes on one file wait for its lock
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    callback_kw = ("heartbeat_stale_trial_callback" if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
                   else "failed_trial_callback")
    try:
        with warnings.catch_warnings():  # heartbeats and the retry callback are marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=settings.heartbeat,
                                              grace_period=2 * settings.heartbeat,
                                              **{callback_kw: _retry_callback(settings.max_retry)})
    except Exception as exc:  # sqlalchemy's OperationalError, ArgumentError (bad URL), ...
        raise GatrecError(f"cannot open the Optuna storage {redact(url)}: {str(exc).splitlines()[0]}") from None


def redact(url: str) -> str:
    from gatrec.tracking.context import redact_uri

    return redact_uri(url)


def sampler(settings: SweepSettings, worker: int = 0) -> optuna.samplers.TPESampler:
    return optuna.samplers.TPESampler(seed=settings.seed + worker, n_startup_trials=settings.startup_trials)


def pruner(settings: SweepSettings) -> optuna.pruners.BasePruner:
    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials,
                                           n_warmup_steps=settings.prune_warmup)
    if settings.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, settings.prune_warmup))
    return optuna.pruners.NopPruner()


def study_identity(settings: SweepSettings, data_digest: str, space: Any, metric: str) -> dict[str, Any]:
    """What a study is a search of; a worker joining with something else is refused."""
    return {"model": settings.model, "data_digest": data_digest, "metric": metric,
            "space": {k: p.model_dump(exclude_defaults=True) for k, p in space.params.items()}}


def open_study(settings: SweepSettings, *, worker: int = 0, identity: dict[str, Any] | None = None
               ) -> optuna.Study:
    """Create or load the study; with ``identity``, record it (new study) or check it (existing one)."""
    with _quiet_optuna():
        study = optuna.create_study(study_name=settings.study, storage=storage(settings),
                                    sampler=sampler(settings, worker), pruner=pruner(settings),
                                    direction="maximize", load_if_exists=True)
    if identity is not None:
        have = study.user_attrs.get("gatrec")
        if have is None:
            study.set_user_attr("gatrec", identity)
        elif have != identity:
            diff = sorted(k for k in identity if have.get(k) != identity[k])
            raise GatrecError(f"study {settings.study!r} in {redact(settings.storage)} is a sweep of something "
                              f"else (differs in: {', '.join(diff)}); pick another --study name")
    return study


class _quiet_optuna:
    """Optuna logs every trial at INFO through its own handler; gatrec logs trials itself."""

    def __enter__(self) -> None:
        self.level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    def __exit__(self, *exc: Any) -> None:
        optuna.logging.set_verbosity(self.level)


def retried(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of failed trials that a later trial retries (they count once, through their retry)."""
    out: set[int] = set()
    for t in trials:
        out.update(t.system_attrs.get("retry_history", []))
    return out


def counted(trials: list[FrozenTrial]) -> int:
    """Trials that count towards ``n_trials``: finished, running or queued, a retried failure not twice."""
    again = retried(trials)
    return sum(1 for t in trials if t.state in (*FINISHED, TrialState.RUNNING, TrialState.WAITING)
               and not (t.state == TrialState.FAIL and t.number in again))


def _stop_when_done(n_trials: int) -> Callable[[optuna.Study, FrozenTrial], None]:
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        # Queued retries keep a worker going; the trial that just ended is no longer RUNNING.
        if counted(study.get_trials(deepcopy=False)) >= n_trials:
            study.stop()

    return callback


def run_worker(settings: SweepSettings, worker: int = 0) -> None:
    """One worker: join the study and run trials until ``n_trials`` are accounted for or time is up."""
    if worker:  # a spawned process: it starts with no logging set up
        glog.setup()
        os.environ.pop("MLFLOW_RUN_ID", None)  # the sweep's run belongs to the first process
    # Trial runs read the experiment from the environment; restored afterwards, since worker 0 may run
    # inside a caller's process (tests, a notebook) whose later MLflow calls must not inherit it.
    previous = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if settings.mlflow and settings.experiment:
        os.environ["MLFLOW_EXPERIMENT_NAME"] = settings.experiment
    try:
        _run_trials(settings, worker)
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
        else:
            os.environ["MLFLOW_EXPERIMENT_NAME"] = previous


def _run_trials(settings: SweepSettings, worker: int) -> None:
    from gatrec.data.dataset import Dataset
    from gatrec.sweep.objective import Objective
    from gatrec.sweep.spec import load_space

    space = load_space(settings.model, settings.space)
    ds = Dataset.load(settings.data)
    study = open_study(settings, worker=worker)
    objective = Objective(ds, space, Path(settings.out), overrides=settings.overrides,
                          parent_run_id=settings.parent_run_id if settings.mlflow else None,
                          experiment=settings.experiment, threads=settings.threads)
    deadline = time.monotonic() + settings.timeout if settings.timeout else None
    with _quiet_optuna():
        while True:
            _fail_stale(study)
            trials = study.get_trials(deepcopy=False)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            if any(t.state == TrialState.WAITING for t in trials) or counted(trials) < settings.n_trials:
                study.optimize(objective, timeout=left, catch=(Exception,),
                               callbacks=[_stop_when_done(settings.n_trials)])
                continue
            running = [t.number for t in trials if t.state == TrialState.RUNNING]
            if not running:
                return
            # Trials of other workers are still running: if one of them dies, its retry must still run.
            log.info("waiting for other workers' trials", worker=worker, running=running)
            time.sleep(min(settings.heartbeat, 5))


def _fail_stale(study: optuna.Study) -> None:
    """Mark trials whose worker stopped sending heartbeats FAIL (their retry is then queued)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _spawned(settings: SweepSettings, worker: int) -> None:
    try:
        run_worker(settings, worker)
    except GatrecError as exc:
        log.error("worker stopped", worker=worker, error=str(exc))
        raise SystemExit(2) from None


def run_workers(settings: SweepSettings) -> None:
    """``settings.workers`` workers: this process is one, the others are spawned processes (a fresh
    interpreter each, as a worker on another machine would be)."""
    if settings.workers > 1 and settings.storage.startswith("sqlite"):
        log.warning("several workers on a sqlite storage take turns on its lock; use PostgreSQL to scale",
                    storage=settings.storage)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_spawned, args=(settings, i), name=f"gatrec-sweep-{i}")
             for i in range(1, settings.workers)]
    for p in procs:
        p.start()
    try:
        run_worker(settings)
    finally:
        for p in procs:
            p.join()
    if failed := [p.name for p in procs if p.exitcode]:
        log.warning("workers ended with an error", workers=failed,
                    exit_codes=[p.exitcode for p in procs if p.exitcode])


# ---------------------------------------------------------------- summary

def summary(study: optuna.Study) -> dict[str, Any]:
    """Counts per state, the best trial and where its model is."""
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    out: dict[str, Any] = {"study": study.study_name, "n_trials": len(trials), "states": dict(states),
                           "retried": sorted(retried(trials))}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = max(complete, key=lambda t: t.value)
        out["best"] = {"number": best.number, "value": best.value, "params": best.params,
                       **{k: best.user_attrs.get(k) for k in ("run_dir", "mlflow_run_id", "valid_metrics",
                                                               "test_metrics", "best_epoch")}}
    return out


def write_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optimisation history, parameter importances, parallel coordinates and the per-epoch curves (which
    show the pruned trials) as PNGs (matplotlib, offline). A plot a study is too small for is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    plots = {"optimization_history": ovm.plot_optimization_history, "param_importances": ovm.plot_param_importances,
             "parallel_coordinate": ovm.plot_parallel_coordinate, "intermediate_values": ovm.plot_intermediate_values}
    for name, fn in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
                ax = fn(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            fig.savefig(folder / f"{name}.png", dpi=100)
            plt.close(fig)
            made.append(folder / f"{name}.png")
        except Exception as exc:  # e.g. importances need two complete trials with varied params
            log.warning("plot skipped", plot=name, reason=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            plt.close("all")
    return made


def log_summary(tracker: Any, study: optuna.Study, info: dict[str, Any], metric: str) -> None:
    """Best params/value, counts, the trials table and plots on the sweep's (parent) run."""
    import mlflow

    from gatrec.tracking import metric_key

    states = info["states"]
    tracker.log_metrics({"n_complete": states.get("COMPLETE", 0), "n_pruned": states.get("PRUNED", 0),
                         "n_failed": states.get("FAIL", 0)}, step=info["n_trials"])
    if best := info.get("best"):
        tracker.log_metrics({f"best_valid_{metric_key(metric)}": best["value"],
                             **{f"best_test_{metric_key(k)}": v for k, v in (best.get("test_metrics") or {}).items()
                                if k == metric}}, step=info["n_trials"])
        tracker.log_params({f"best.{k}": v for k, v in best["params"].items()})
        tracker.set_tags({"best_trial": best["number"], "best_run_id": best.get("mlflow_run_id") or "",
                          **{f"best.{k}": v for k, v in best["params"].items()}})
    mlflow.log_dict(info, "sweep/summary.json")
    with tempfile.TemporaryDirectory(prefix="gatrec-sweep-") as tmp:
        study.trials_dataframe().to_csv(Path(tmp) / "trials.csv", index=False)
        mlflow.log_artifact(str(Path(tmp) / "trials.csv"), "sweep")
        if write_plots(study, Path(tmp) / "plots"):
            mlflow.log_artifacts(str(Path(tmp) / "plots"), "plots")


def write_best(out: Path, info: dict[str, Any]) -> Path:
    path = out / "best.json"
    write_json(path, info)
    return path

