"""``gatrec sweep``: an Optuna hyper-parameter sweep of one model, one MLflow child run per trial."""

from __future__ import annotations

from pathlib import Path

import click

from gatrec.cli.locations import Location

SWEEPABLE = ("gat", "lightgcn", "mf")


@click.command(epilog="""\b
Examples:
  gatrec sweep --data data/office --model gat --n-trials 20
  gatrec sweep --data data/office --model lightgcn --space my_space.yaml --study lgcn-office
  gatrec sweep --data data/office --model gat --storage postgresql://me@db/optuna --workers 2
  gatrec sweep --data data/office --model gat --n-trials 30 --register-best

\b
The space file: `params:` (searched; float/int with low, high, log, step; a list = categorical) and
`fixed:` (the same for every trial, e.g. epochs, eval_every); keys are training settings or the model's
parameters (gatrec/sweep/spaces/<model>.yaml are the defaults). The same command with the same --study
resumes the sweep, or joins it from another machine when --storage is a shared database.
Watch it live with `optuna-dashboard STORAGE_URL`.""")
@click.option("--data", required=True, type=Location(exists=True, file_okay=False, path_type=Path),
              help="Prepared dataset folder (from `gatrec prepare`).")
@click.option("--model", type=click.Choice(SWEEPABLE), default="gat", show_default=True, help="Model to tune.")
@click.option("--space", default="default", show_default=True, metavar="FILE.yaml|default",
              help="Search-space YAML; 'default' = the one shipped for --model.")
@click.option("--study", default="", metavar="NAME", help="Study name [MODEL-DATAFOLDER].")
@click.option("--storage", default="", metavar="URL",
              help="Optuna storage: sqlite:///FILE or postgresql://... for several workers/machines "
                   "[optuna.db beside the MLflow sqlite store, else in --out].")
@click.option("--out", default="", metavar="DIR", help="Sweep folder: trials/, best.json [sweeps/STUDY].")
@click.option("--n-trials", type=click.IntRange(min=1), default=20, show_default=True,
              help="Trials to finish (complete, pruned or failed) over all workers.")
@click.option("--timeout", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seconds after which no new trial starts (0 = no limit).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine.")
@click.option("--seed", type=int, default=0, show_default=True, help="TPE seed and the training seed of every trial.")
@click.option("--metric", default="ndcg@20", show_default=True, help="Validation metric to maximise.")
@click.option("--pruner", type=click.Choice(["median", "halving", "none"]), default="median", show_default=True,
              help="Stops unpromising trials at their evaluation epochs.")
@click.option("--prune-warmup", type=click.IntRange(min=0), default=10, show_default=True,
              help="Epochs before a trial may be pruned.")
@click.option("--startup-trials", type=click.IntRange(min=0), default=5, show_default=True,
              help="Random trials before TPE models the space; the pruner also waits for this many.")
@click.option("--heartbeat", type=click.IntRange(min=1), default=60, show_default=True,
              help="Seconds between heartbeats; a trial silent for twice as long is failed and retried.")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="Torch threads per worker (0 = the CPUs available, shared among the workers).")
@click.option("--register-best", type=bool, is_flag=False, flag_value=True, default=False, show_default=True,
              help="Register the best trial's model as candidate and run the promotion gate.")
@click.option("--model-name", default="", help="Registered model name [$GATREC_MODEL_NAME or 'gatrec'].")
@click.option("--policy", default="", metavar="FILE.yaml", help="Promotion policy [the packaged default].")
@click.option("--experiment", default="", help="MLflow experiment [$MLFLOW_EXPERIMENT_NAME or 'gatrec'].")
@click.option("--no-mlflow", is_flag=True, envvar="GATREC_NO_MLFLOW",
              help="Do not log to MLflow [env GATREC_NO_MLFLOW=1].")
def command(data: Path, model: str, space: str, study: str, storage: str, out: str, n_trials: int, timeout: int,
            workers: int, seed: int, metric: str, pruner: str, prune_warmup: int, startup_trials: int,
            heartbeat: int, threads: int, register_best: bool, model_name: str, policy: str, experiment: str, no_mlflow: bool) -> None:
    """Tune a model's hyper-parameters with Optuna (TPE, seeded) on validation --metric at the best epoch.

    Each trial is a real training run (early stopping, checkpoints) in OUT/trials/, reported to the pruner at
    every evaluation epoch. MLflow: one parent run for the sweep (best params and value, Optuna's plots) and
    a nested run per trial (params, per-epoch metrics, tag optuna.state = COMPLETE/PRUNED/FAIL).
    """
    import os

    from gatrec.sweep.run import run_sweep
    from gatrec.sweep.study import SweepSettings, default_storage, redact

    study = study or f"{model}-{data.resolve().name}"
    out_dir = Path(out or Path("sweeps") / study)
    tracking = None if no_mlflow else os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if threads == 0:
        allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, allowed // workers)
    settings = SweepSettings(
        data=str(data), model=model, space=None if space == "default" else space, study=study,
        storage=storage or default_storage(out_dir, tracking), out=str(out_dir), n_trials=n_trials,
        timeout=timeout or None, workers=workers, seed=seed, overrides={"seed": seed, "metric": metric},
        pruner=pruner, prune_warmup=prune_warmup, startup_trials=startup_trials, heartbeat=heartbeat,
        threads=threads, mlflow=not no_mlflow, experiment=experiment or None)
    info = run_sweep(settings, register_best=register_best, model_name=model_name or None,
                     policy_path=policy or None)
    best, states = info["best"], info["states"]
    click.echo(f"study {study}: {info['n_trials']} trials ({', '.join(f'{n} {s.lower()}' for s, n in states.items())})")
    click.echo(f"best trial {best['number']}: valid {info['metric']} {best['value']:.5f}"
               + (f", test {best['test_metrics'][info['metric']]:.5f}" if best.get("test_metrics") else ""))
    for key, val in best["params"].items():
        click.echo(f"  {key}: {val}")
    click.echo(f"summary {out_dir / 'best.json'}; storage {redact(settings.storage)}")
    if gate := info.get("gate"):
        click.echo(gate["message"])
