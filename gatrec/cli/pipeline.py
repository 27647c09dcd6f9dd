"""``gatrec pipeline``: every step end to end, reusing steps whose inputs are unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import click

STEPS = ("synth", "prepare", "embed", "train", "eval", "register", "bento")


@click.command(epilog="""\b
Examples:
  gatrec pipeline                                   # synthetic default, sqlite MLflow store in ./mlflow.db
  gatrec pipeline --input ../shared/data/amazon-office-2014 --work work/office --features text
  mlflow run . -e pipeline --env-manager local -P model=lightgcn
  gatrec pipeline --force train                     # retrain even though nothing changed
""")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("work"), show_default=True,
              help="Folder for raw data, the prepared dataset and runs.")
@click.option("--input", "input_", type=click.Path(exists=True, path_type=Path),
              help="Raw data (any format `gatrec prepare` reads) [default: generate the synthetic dataset].")
@click.option("--format", "fmt", default="auto", show_default=True, help="Input format, as for prepare.")
@click.option("--split", default="mmrec", show_default=True, help="Split protocol, as for prepare.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--synth-users", type=click.IntRange(min=10), default=1000, show_default=True,
              help="Synthetic dataset size (without --input).")
@click.option("--synth-items", type=click.IntRange(min=10), default=400, show_default=True)
@click.option("--synth-interactions", type=click.IntRange(min=100), default=20000, show_default=True)
@click.option("--model", default="gat", show_default=True, help="Model to train (pop, mf, lightgcn, gat).")
@click.option("--features", default="fused", show_default=True, help="GAT item features: none, text, image, fused.")
@click.option("--epochs", type=click.IntRange(min=1), default=40, show_default=True,
              help="Most epochs to train (early stopping may end sooner); 40 suits the synthetic default, "
                   "real data (--input) usually needs more (the train step's own default: 300).")
@click.option("--image-weights", default="none", show_default=True,
              help="open_clip weights for embed: a file, a pretrained tag (online), or none (random, offline).")
@click.option("--model-name", default="gatrec", show_default=True, help="Registered model name.")
@click.option("--policy", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Promotion policy YAML [the packaged default].")
@click.option("--experiment", default="gatrec", show_default=True, help="MLflow experiment of the step runs.")
@click.option("--fail-on-reject", is_flag=True, help="Exit with status 1 when the gate rejects the new version.")
@click.option("--force", multiple=True, type=click.Choice(STEPS), help="Rerun this step even if cached (repeatable).")
def command(work: Path, input_: Path | None, fmt: str, split: str, seed: int, synth_users: int, synth_items: int,
            synth_interactions: int, model: str, features: str,
            epochs: int, image_weights: str, model_name: str, policy: Path | None, experiment: str,
            fail_on_reject: bool, force: tuple[str, ...]) -> None:
    """Run prepare → embed → train → eval → register → promote → bento, each as an MLflow child run.

    A step whose parameters, upstream steps, raw input content and code version are unchanged is not
    run again: its earlier run's output is reused. The promotion gate decides whether the new version
    becomes the champion (a rejection is reported; with --fail-on-reject it also exits with status 1).
    """
    from gatrec.evaluate.report import format_table
    from gatrec.train.export import RunFolder
    from gatrec.workflow import Pipeline, PipelineConfig

    cfg = PipelineConfig(work=work, input=input_, format=fmt, split=split, seed=seed, synth_users=synth_users,
                         synth_items=synth_items, synth_interactions=synth_interactions, model=model,
                         features=features, epochs=epochs, image_weights=image_weights, model_name=model_name,
                         policy=policy, experiment=experiment, force=list(force))
    result = Pipeline(cfg).run()
    metrics = RunFolder(Path(result["run_dir"])).metrics()
    click.echo(format_table({"valid": metrics["valid"], "test": metrics["test"]}))
    click.echo(f"\nmodel version {result['version']}: {result['promotion']}; champion is "
               f"v{result['champion']} of '{model_name}'")
    for reason in result.get("reasons", []):
        click.echo(f"  - {reason}")
    reused = set(result.get("reused", []))
    click.echo("\nstep timings (wall seconds):")
    for name, seconds in result.get("timings", {}).items():
        click.echo(f"  {name:<17}{seconds:8.1f}{'  (reused)' if name in reused else ''}")
    click.echo("\nNext: `mlflow ui` (or `mlflow server`) in this folder shows the runs and the registry;\n"
               f"      load the champion with mlflow.pyfunc.load_model('models:/{model_name}@champion').")
    if result.get("bento"):
        bento = json.loads((work / "bento.json").read_text())
        click.echo(f"Serve the champion:  bentoml serve {bento['bento']} --port 3000   (Bento built from bentofile.yaml)")
    if result["promotion"] == "rejected" and fail_on_reject:
        raise SystemExit(1)
