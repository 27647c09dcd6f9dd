"""Click options shared by the registry subcommands (register, promote, rollback, gate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

tracking_uri_option = click.option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI", metavar="URI",
    help="MLflow tracking server or store (default: $MLFLOW_TRACKING_URI, else MLflow's default).")
name_option = click.option(
    "--name", envvar="GATREC_MODEL_NAME", default="gatrec", show_default=True,
    help="Registered model name (env GATREC_MODEL_NAME).")
policy_option = click.option(
    "--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
    help="Promotion policy YAML (default: the packaged default_policy.yaml).")


def client_for(tracking_uri: str | None) -> Any:
    """An MlflowClient for ``tracking_uri`` that the fluent API (log_model) also uses."""
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    return mlflow.MlflowClient()


def registry_options(func: Callable) -> Callable:
    return tracking_uri_option(name_option(func))
