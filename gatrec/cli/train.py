"""``gatrec train``: train one model on a prepared dataset, with early stopping, resume and MLflow logging."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from gatrec import models
from gatrec.cli.locations import Location
from gatrec.cli.options import force_option, mlflow_options
from gatrec.train.config import TrainConfig


def _parse_params(values: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--param")
        params[key.strip()] = yaml.safe_load(raw)  # "3" -> 3, "1e-4" -> 1e-4, "true" -> True
    return params


# What --features / --loss mean for a model without that hyper-parameter: what it does anyway.
_IMPLIED = {"features": "none", "loss": "bpr"}


def _model_choices(model: str, **choices: str | None) -> dict[str, str]:
    """The --features/--loss values as model parameters; refuse values a model cannot honour."""
    fields = models.get(model).Config.model_fields
    out: dict[str, str] = {}
    for key, value in choices.items():
        if value is None:
            continue
        if key in fields:
            out[key] = value
        elif value != _IMPLIED[key]:
            raise click.UsageError(f"--{key} {value}: model {model!r} has no {key} choice "
                                   f"(only --{key} {_IMPLIED[key]} applies to it)")
    return out


def _default(field: str) -> str:
    """``[value]`` of a TrainConfig setting as training uses it: the config's default and, where models
    override it (``train_defaults``), theirs."""
    base = TrainConfig.model_fields[field].default
    own: dict[str, list[str]] = {}
    for name in models.names():
        value = models.get(name).train_defaults.get(field, base)
        if value != base:
            own.setdefault(f"{value:g}" if isinstance(value, float) else str(value), []).append(name)
    return "[" + "; ".join([str(base) + (" (others)" if own else "")]
                           + [f"{', '.join(names)}: {v}" for v, names in own.items()]) + "]"


def _help(field: str, text: str | None = None) -> str:
    """An option's help from the TrainConfig field's description, with its real default."""
    info = TrainConfig.model_fields[field]
    return f"{text or (info.description or '').split(';')[0]} {_default(field)}".strip()


def model_parameters(name: str) -> list[tuple[str, str]]:
    """(``-p key=default``, description) of every hyper-parameter of model ``name``."""
    rows = []
    for key, info in models.get(name).Config.model_fields.items():
        default = info.get_default(call_default_factory=True)
        rows.append((f"-p {key}={'null' if default is None else str(default).lower() if isinstance(default, bool) else default}",
                     info.description or ""))
    return rows


class _TrainCommand(click.Command):
    """``--help`` after ``--model NAME`` also lists that model's parameters (generated from its config)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        for i, arg in enumerate(args):
            if arg == "--model" and i + 1 < len(args):
                ctx.meta["help_model"] = args[i + 1]
            elif arg.startswith("--model="):
                ctx.meta["help_model"] = arg.partition("=")[2]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        name = ctx.meta.get("help_model")
        with formatter.section("Model parameters" + (f" of {name}" if name in models.names() else "")):
            if name in models.names():
                formatter.write_dl(model_parameters(name))
            else:
                formatter.write_text(f"gatrec train --model NAME --help lists them (NAME: "
                                     f"{', '.join(models.names())}).")


@click.command(cls=_TrainCommand, epilog="""\b
Examples:
  gatrec train --data data/prepared --model lightgcn --out runs/lgcn
  gatrec train --data data/prepared --model mf --epochs 50 --lr 0.005 --no-mlflow --out runs/mf
  gatrec train --data data/prepared --config configs/lightgcn.yaml -p n_layers=2 --out runs/lgcn2
  gatrec train --data data/prepared --model lightgcn --out runs/lgcn --register --model-name gatrec

Running it again with the same --out and settings resumes from the last epoch's checkpoint.""")
@click.option("--data", "data", required=True, type=Location(exists=True, file_okay=False, path_type=Path),
              help="Prepared dataset folder (from `gatrec prepare`).")
@click.option("--model", type=click.Choice(models.names()), default=None,
              help="Model to train (required unless the --config file names one).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML file of training settings; the flags below override it.")
@click.option("--epochs", type=int, help=_help("epochs", "Maximum epochs"))
@click.option("--seed", type=int, help=_help("seed", "Random seed"))
@click.option("--lr", type=float, help=_help("lr"))
@click.option("--batch-size", type=int, help=_help("batch_size"))
@click.option("--patience", type=int, help=_help("patience", "Early-stopping patience in epochs"))
@click.option("--metric", help=_help("metric", "Validation metric for early stopping"))
@click.option("--device", help=_help("device", "auto (cuda when available), cpu, cuda, cuda:N"))
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads for torch [all CPUs available]; on a busy machine 1 is often fastest.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Model hyper-parameter, e.g. -p n_layers=2 -p dim=128 (repeatable).")
@click.option("--features", type=click.Choice(["none", "text", "image", "fused"]),
              help="Item features for models that use them (gat) [the model's default]; run `gatrec embed` first. "
                   "'none' is accepted by every model.")
@click.option("--loss", type=click.Choice(["bpr", "bce"]),
              help="Training loss for models that offer a choice (gat) [bpr]; 'bpr' is accepted by every model.")
@click.option("--out", required=True, type=Location(file_okay=False, path_type=Path), help="Run folder.")
@click.option("--overwrite", is_flag=True, help="Discard what --out holds and start over.")
@force_option("a gatrec run folder")
@mlflow_options()
@click.option("--register", is_flag=True,
              help="After training, register the run as a new model version aliased 'candidate'.")
@click.option("--model-name", help="Registered model name for --register [$GATREC_MODEL_NAME or 'gatrec'].")
def command(data: Path, model: str | None, config_file: Path | None, epochs: int | None, seed: int | None,
            lr: float | None, batch_size: int | None, patience: int | None, metric: str | None,
            device: str | None, threads: int | None, params: tuple[str, ...], features: str | None,
            loss: str | None, out: Path, overwrite: bool, force: bool,
            no_mlflow: bool, experiment: str | None, register: bool, model_name: str | None) -> None:
    """Train a recommender and write metrics.json, config.yaml, checkpoints/ and the model/ export to --out.

    Validation is evaluated every epoch (full ranking over all items); training stops when the metric has
    not improved for --patience epochs, and the test metrics reported are those of the best epoch.
    """
    from gatrec.data.dataset import Dataset
    from gatrec.evaluate.report import format_table
    from gatrec.fsutil import guard_output, mark_output
    from gatrec.train.loop import check_run_folder, resolve_device, train

    if model is None and config_file is None:
        raise click.UsageError("pass --model (or a --config file that sets model)")
    if register and no_mlflow:
        raise click.UsageError("--register logs the model to MLflow: drop --no-mlflow")
    overrides = {"model": model, "epochs": epochs, "seed": seed, "lr": lr, "batch_size": batch_size,
                 "patience": patience, "metric": metric, "device": device,
                 "model_params": _parse_params(params) or None}
    config = TrainConfig.from_yaml(config_file, overrides)
    if chosen := _model_choices(config.model, features=features, loss=loss):
        overrides["model_params"] = {**config.model_params, **chosen}
        config = TrainConfig.from_yaml(config_file, overrides)
    resolve_device(config.device)  # a device this machine lacks: said before --out is touched
    ds = Dataset.load(data)
    guard_output(out, "run", force=force)
    check_run_folder(out, config, overwrite=overwrite)  # before an MLflow run is opened for nothing
    out.mkdir(parents=True, exist_ok=True)
    mark_output(out, "run")
    if no_mlflow:
        result = train(ds, config, out, overwrite=overwrite, threads=threads)
    else:
        from gatrec.tracking.context import training_tags
        from gatrec.tracking.mlflow_log import MlflowTracker, tracking_errors

        cfg = config.model_dump(mode="json")
        # --out remembers its MLflow run: a resumed training continues it (a fresh start gets a new one).
        with tracking_errors(), MlflowTracker(experiment, run_name=f"{config.model}-{out.name}",
                                              tags=training_tags(cfg, ds.manifest, ds.path, out),
                                              run_dir=out, resume=not overwrite) as tracker:
            tracker.log_params(cfg)
            tracker.log_dataset(ds)
            result = train(ds, config, out, overwrite=overwrite, tracker=tracker, threads=threads)
            tracker.log_result(result, out)
    click.echo(format_table({"valid": result["valid"], "test": result["test"]}, ks=config.ks))
    spe = result["seconds_per_epoch"]
    click.echo(f"best epoch {result['best_epoch']} of {result['epochs_run']}"
               + (f", {spe:.2f} s/epoch" if spe else "") + f"; run folder {out}")
    if register:
        from gatrec.registry.names import CANDIDATE_ALIAS
        from gatrec.registry.register import register_run
        from gatrec.tracking.mlflow_log import tracking_errors

        with tracking_errors("the run is trained; retry with `gatrec register --run RUNDIR`"):
            mv = register_run(out, model_name)
        click.echo(f"registered {mv.name} v{mv.version} (alias {CANDIDATE_ALIAS})")
