"""A whole sweep: validate the space, open the study, the sweep's MLflow run, the workers, the summary and,
optionally, registering and gating the best trial's model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gatrec import log as glog
from gatrec.errors import GatrecError
from gatrec.sweep import study as st
from gatrec.sweep.spec import load_space

log = glog.get(__name__)


def run_sweep(settings: st.SweepSettings, *, register_best: bool = False, model_name: str | None = None,
              policy_path: str | None = None) -> dict[str, Any]:
    """Run (or resume, or join) the sweep; returns the summary written to ``OUT/best.json``.

    With ``register_best`` the best trial's MLflow run is registered as a ``candidate`` version and gated
    (``summary["gate"]`` holds the decision).
    """
    from gatrec.data.dataset import Dataset
    from gatrec.train.config import TrainConfig

    if register_best and not settings.mlflow:
        raise GatrecError("--register-best registers the best trial's MLflow run: drop --no-mlflow")
    space = load_space(settings.model, settings.space)  # a bad space fails before anything is opened
    space.config({}, settings.overrides)
    ds = Dataset.load(settings.data)
    metric = TrainConfig.build(space.settings({}, settings.overrides)).metric
    Path(settings.out).mkdir(parents=True, exist_ok=True)
    study = st.open_study(settings, identity=st.study_identity(settings, ds.digest, space, metric))
    if not study.trials:
        # The untuned settings go first: every sweep shows how far it got from the defaults.
        study.enqueue_trial(space.defaults(), skip_if_exists=True)
    if not settings.mlflow:
        st.run_workers(settings)
        return _finish(settings, study, metric)

    from gatrec.tracking.context import data_tags
    from gatrec.tracking.mlflow_log import MlflowTracker, tracking_errors

    parent = _parent_run(study)
    tags = {"optuna.study": settings.study, "optuna.storage": st.redact(settings.storage), "model": settings.model,
            "sweep": "parent", **data_tags(ds.manifest, ds.path)}
    with tracking_errors(), MlflowTracker(settings.experiment, run_name=f"sweep-{settings.study}", tags=tags,
                                          run_id=parent) as tracker:
        recorded = study.user_attrs.get(st.PARENT_RUN_ATTR)
        if recorded is None:  # workers joining later (other machines) nest their trials under this run
            study.set_user_attr(st.PARENT_RUN_ATTR, tracker.run_id)
        elif recorded != tracker.run_id:
            log.info("this sweep's trials go under a new parent run", previous=recorded, run_id=tracker.run_id)
        # How many trials and workers a run asks for may change when it resumes: tags, not params.
        tracker.set_tags({"n_trials": settings.n_trials, "workers": settings.workers})
        tracker.log_params({"model": settings.model, "study": settings.study, "pruner": settings.pruner,
                            "prune_warmup": settings.prune_warmup, "startup_trials": settings.startup_trials,
                            "seed": settings.seed, "metric": metric,
                            **{f"space.{k}": p.model_dump_json(exclude_defaults=True) for k, p in space.params.items()},
                            **{f"fixed.{k}": v for k, v in {**space.fixed, **settings.overrides}.items()}})
        # Trials go into the parent's experiment (inside `mlflow run` that is the one it chose).
        import mlflow

        exp = mlflow.get_experiment(mlflow.get_run(tracker.run_id).info.experiment_id).name
        run = settings.model_copy(update={"parent_run_id": tracker.run_id, "experiment": exp})
        st.run_workers(run)
        study = st.open_study(settings)
        info = st.summary(study)
        st.log_summary(tracker, study, info, metric)
        if register_best and info.get("best"):
            info["gate"] = _register_and_gate(info["best"], model_name, policy_path)
            tracker.set_tags({"gate_decision": "passed" if info["gate"]["passed"] else "rejected",
                              "registered_version": info["gate"]["version"]})
        return _finish(settings, study, metric, info)


def _parent_run(study: Any) -> str | None:
    """The parent run recorded in the study, if this tracking store has it (a resumed or joined sweep)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    run_id = study.user_attrs.get(st.PARENT_RUN_ATTR)
    if not run_id or os.environ.get("MLFLOW_RUN_ID"):  # inside `mlflow run`: its run is the parent
        return None
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException:
        return None
    return None if run.info.lifecycle_stage == "deleted" else run_id


def _register_and_gate(best: dict[str, Any], model_name: str | None, policy_path: str | None) -> dict[str, Any]:
    from gatrec.registry.policy import load_policy
    from gatrec.registry.promote import promote
    from gatrec.registry.register import register_run

    # The trial's folder where this machine has it (it logs into the trial's run), else the trial's run.
    run_dir = best.get("run_dir")
    source = run_dir if run_dir and Path(run_dir, "metrics.json").is_file() else best.get("mlflow_run_id")
    mv = register_run(source, model_name)
    outcome = promote(mv.version, mv.name, load_policy(policy_path), actor="cli")
    log.info("best trial gated", version=mv.version, passed=outcome.passed, reasons="; ".join(outcome.reasons) or None)
    return {"name": mv.name, "version": str(mv.version), "passed": outcome.passed, "reasons": outcome.reasons,
            "message": outcome.message()}


def _finish(settings: st.SweepSettings, study: Any, metric: str, info: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    info = info or st.summary(study)
    info["metric"] = metric
    st.write_best(Path(settings.out), info)
    if "best" not in info:
        raise GatrecError(f"no trial of study {settings.study!r} completed (states: {info['states']}); "
                          "see the log of the failed trials")
    return info
