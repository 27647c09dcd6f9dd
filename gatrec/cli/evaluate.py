"""``gatrec eval``: re-evaluate a run's exported embeddings (no model code) on its dataset."""

from __future__ import annotations

from pathlib import Path

import click

from gatrec.cli.locations import Location
from gatrec.cli.options import experiment_option, no_mlflow_option
from gatrec.errors import DataError, GatrecError


@click.command(epilog="""\b
Examples:
  gatrec eval --run runs/lgcn
  gatrec eval --run runs/lgcn --split valid --out valid_metrics.json
  gatrec eval --run runs/lgcn --data /elsewhere/prepared --mask-valid
  gatrec eval --run runs/lgcn --run-id "$(cat runs/lgcn/mlflow_run_id)"   # into the training run""")
@click.option("--run", "run", required=True, type=Location(exists=True, file_okay=False, path_type=Path),
              help="Run folder written by `gatrec train` (or its model/ export folder).")
@click.option("--split", type=click.Choice(["test", "valid"]), default="test", show_default=True)
@click.option("--mask-valid/--no-mask-valid", default=None,
              help="At test time also mask the validation items [the run's mask_valid_at_test].")
@click.option("--data", type=Location(exists=True, file_okay=False, path_type=Path),
              help="Prepared dataset folder [the one recorded in the run]; must have the same digest.")
@click.option("--k", "ks", type=click.IntRange(min=1), multiple=True, help="Cut-offs (repeatable) [the run's ks].")
@click.option("--out", type=Location(dir_okay=False, path_type=Path), help="Also write the metrics as JSON.")
@no_mlflow_option("record the evaluation in MLflow")
@click.option("--run-id", metavar="RUN_ID",
              help="Log the metrics (as eval_<split>_<metric>) into this MLflow run, e.g. the training run "
                   "(its mlflow_run_id in metrics.json) [a new run named 'eval'].")
@experiment_option("MLflow experiment of the new run")
def command(run: Path, split: str, mask_valid: bool | None, data: Path | None, ks: tuple[int, ...],
            out: Path | None, no_mlflow: bool, run_id: str | None, experiment: str | None) -> None:
    """Full-ranking metrics of a trained run, from its exported embeddings.

    Fails (exit 2) if the dataset's digest differs from the one the run was trained on.
    """
    import torch

    from gatrec.data.dataset import Dataset
    from gatrec.evaluate.ranking import evaluate_dataset
    from gatrec.evaluate.report import format_table
    from gatrec.fsutil import write_json
    from gatrec.train.export import RunFolder

    folder = RunFolder.at(run)
    export = folder.export()
    run_dir = folder.path
    cfg = folder.config()
    data_path = data or Path(export.meta["data_path"])
    if not data_path.is_dir():
        raise GatrecError(f"the run's dataset {data_path} is gone; pass --data with the prepared folder")
    ds = Dataset.load(data_path)
    if ds.digest != export.meta["data_digest"]:
        raise GatrecError(f"{data_path} has data digest {ds.digest[:12]}…, but the run was trained on "
                          f"{export.meta['data_digest'][:12]}… (another split or dataset)")
    if (ds.n_users, ds.n_items) != (export.meta["n_users"], export.meta["n_items"]):
        raise DataError(f"{ds.n_users} users × {ds.n_items} items, but the export has "
                        f"{export.meta['n_users']} × {export.meta['n_items']}", file=data_path / "manifest.json")
    mask = bool(cfg.get("mask_valid_at_test", False)) if mask_valid is None else mask_valid
    cut = list(ks) or cfg.get("ks") or [10, 20, 50]
    bias = torch.from_numpy(export.item_bias) if export.item_bias is not None else None
    from gatrec import threads

    threads.configure()  # this process's share of the CPUs it may use
    from gatrec import models

    kind = export.meta.get("model")
    stable = kind in models.names() and models.get(kind).stable_ties  # as training evaluated it
    metrics = evaluate_dataset(torch.from_numpy(export.user_emb), torch.from_numpy(export.item_emb), ds, split,
                               item_bias=bias, mask_valid=mask, ks=cut, stable_ties=stable)
    click.echo(format_table({split: metrics}, ks=sorted(set(cut))))
    report = {"split": split, "mask_valid": mask, "run": str(run_dir), "metrics": metrics,
              "data": {"path": str(data_path), "digest": ds.digest}}
    if out is not None:
        write_json(out, report)
    from gatrec.tracking.steps import eval_tags, step_run

    params = {"run": str(run), "split": split, "mask_valid": mask, "ks": cut, "data": str(data_path)}
    with step_run("eval", enabled=not no_mlflow, experiment=experiment, params=params,
                  tags=eval_tags(run_dir, export.meta), run_id=run_id) as step:
        step.evaluated(split, metrics, ds, report)
