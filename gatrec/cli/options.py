"""Click options shared by the subcommands: MLflow switches and the registry's options.

A pydantic ValidationError of command-line values becomes one line through
:func:`gatrec.errors.invalid_options` (files: :func:`gatrec.errors.invalid_file`); those live in
``gatrec.errors`` because the layers below the CLI validate their files with them too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def no_mlflow_option(what: str = "log to MLflow") -> Callable:
    """``--no-mlflow`` (env GATREC_NO_MLFLOW=1); ``what`` says what it switches off."""
    return click.option("--no-mlflow", is_flag=True, envvar="GATREC_NO_MLFLOW",
                        help=f"Do not {what} [env GATREC_NO_MLFLOW=1].")


def experiment_option(what: str = "MLflow experiment") -> Callable:
    return click.option("--experiment", help=f"{what} [$MLFLOW_EXPERIMENT_NAME or 'gatrec'].")


def mlflow_options(what: str = "log to MLflow") -> Callable:
    """``--no-mlflow`` and ``--experiment``."""
    def apply(func: Callable) -> Callable:
        return no_mlflow_option(what)(experiment_option()(func))
    return apply


def force_option(what: str) -> Callable:
    """``--force``: write into --out although it is not ``what`` (see ``fsutil.guard_output``). A bare
    ``--force`` means true; ``--force false`` is the MLproject form (entry-point parameter ``force``)."""
    return click.option("--force", type=click.BOOL, is_flag=False, flag_value=True, default=False,
                        show_default=True, metavar="[BOOL]",
                        help=f"Write into --out even if it is not {what} (refused otherwise, nothing touched).")


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

    from gatrec.tracking.connection import check_reachable

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    check_reachable(hint="the registry lives on the tracking server")
    return mlflow.MlflowClient()


def registry_options(func: Callable) -> Callable:
    return tracking_uri_option(name_option(func))
