"""``gatrec prepare``: ingest, clean and split interaction data into a prepared dataset folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gatrec.cli.locations import Location
from gatrec.cli.options import force_option, mlflow_options
from gatrec.data.dataset import MANIFEST

FORMAT_CHOICES = ("auto", "folder", "amazon-2014", "amazon-2018", "amazon-2023", "movielens")
SPLIT_CHOICES = ("mmrec", "user-temporal", "leave-one-out")


@click.command(name="prepare")
@click.option("--input", "input_path", required=True, type=Location(path_type=Path),
              help="Raw data: a plain folder, an Amazon dump folder/file, or a MovieLens folder.")
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True,
              help="Input format; auto detects it from the file names.")
@click.option("--split", "split_protocol", type=click.Choice(SPLIT_CHOICES), default="mmrec", show_default=True,
              help="Split protocol.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the mmrec shuffle.")
@click.option("--kcore", type=click.IntRange(min=0), default=5, show_default=True,
              help="Iterative k-core on users and items (0 disables).")
@click.option("--min-rating", type=float, default=None, help="Keep only interactions with rating >= this.")
@click.option("--category", default=None, help="Amazon category, when the folder holds several dumps.")
@click.option("--out", required=True, type=Location(path_type=Path),
              help="Output folder, replaced on success if it is a prepared dataset (else refused).")
@force_option("a prepared dataset folder")
@mlflow_options("record the step as an MLflow run")
def command(input_path: Path, fmt: str, split_protocol: str, seed: int, kcore: int, min_rating: float | None,
            category: str | None, out: Path, force: bool, no_mlflow: bool, experiment: str | None) -> None:
    """Ingest, clean (dedupe, rating threshold, k-core) and split interaction data.

    Writes train/valid/test/users/items parquet files and manifest.json to --out.

    \b
    Example:
      gatrec prepare --input ../shared/data/amazon-office-2014 --split mmrec --seed 0 --out data/office
      gatrec prepare --input dumps/ --format amazon-2014 --category Electronics --out data/elec
    """
    from gatrec.data.prepare import (  # pandas/pyarrow load only when the command runs
        OUTPUT_KIND,
        prepare_dataset,
    )
    from gatrec.fsutil import guard_output
    from gatrec.tracking.steps import step_run

    guard_output(out, OUTPUT_KIND, force=force)  # before an MLflow run is opened for nothing

    params = {"input": str(input_path), "format": fmt, "split": split_protocol, "seed": seed, "kcore": kcore,
              "min_rating": min_rating, "category": category, "out": str(out)}
    with step_run("prepare", enabled=not no_mlflow, experiment=experiment, params=params) as step:
        path = prepare_dataset(input_path, out, fmt=fmt, split=split_protocol, seed=seed, kcore=kcore,
                               min_rating=min_rating, category=category, force=force)
        step.prepared(path)
    click.echo(summary(json.loads((path / MANIFEST).read_text())))


def summary(m: dict) -> str:
    n_u, n_i, n = m["n_users"], m["n_items"], m["n_interactions"]
    c, cl = m["counts"], m["cleaning"]
    lines = [
        f"prepared {m['source']['format']} data → {m['split']['protocol']} split (seed {m['split']['seed']})",
        f"  users {n_u:,}   items {n_i:,}   interactions {n:,}   density {n / max(n_u * n_i, 1):.4%}",
        f"  train {c['train']:,}   valid {c['valid']:,}   test {c['test']:,}",
        f"  removed: duplicates {cl['dropped_duplicates']:,}, by rating {cl['dropped_by_rating']:,}, "
        f"by {cl['kcore']}-core {cl['dropped_by_kcore']:,}",
        f"  digest {m['digest'][:16]}…",
    ]
    return "\n".join(lines)
