"""``gatrec register``: log a trained run as a pyfunc model version aliased ``candidate``."""

from __future__ import annotations

import click

from gatrec.cli.locations import Location
from gatrec.cli.options import client_for, registry_options


@click.command(help="""Register a trained run as a new version of the registered model.

Logs the exported embeddings as a pickle-free MLflow pyfunc into the training run (or a new run),
creates a version tagged with its metrics, data digest, split protocol, popularity baseline and
validation_status=pending, and points the alias `candidate` at it.

\b
Example:
  gatrec register --run runs/lgcn --name gatrec
  gatrec promote --version candidate
""")
@click.option("--run", "run", required=True, metavar="RUNDIR|RUN_ID", type=Location(path_type=str),
              help="A `gatrec train` output folder (local or gs://), or the MLflow run id of a training run.")
@registry_options
def command(run: str, name: str, tracking_uri: str | None) -> None:
    from gatrec.registry.register import register_run

    mv = register_run(run, name, client=client_for(tracking_uri))
    click.echo(f"registered {mv.name} v{mv.version} (alias candidate, validation_status=pending)")
