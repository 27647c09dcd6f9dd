"""The ``gatrec`` command line. Each subcommand lives in ``gatrec/cli/<name>.py`` as ``command`` and is
imported only when used, so ``gatrec --help`` stays fast (torch and mlflow load slowly)."""

from __future__ import annotations

import importlib
import sys

import click

from gatrec import __version__, log
from gatrec.errors import GatrecError

# Exit codes (README "Exit codes"): 1 a step or service failed (an MLflow error, a gate rejection with
# --fail-on-reject); 2 the user's input: a bad option or missing prerequisite (click's usage errors) or bad
# data (a DataError naming file, line and field).
EXIT_FAILED, EXIT_USAGE = 1, 2

# name -> one-line help; the module gatrec.cli.<module> defines `command`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("synth", "Generate a synthetic Amazon-like dataset (plain folder format)."),
    "fetch": ("fetch", "Download official Amazon review dumps (for users who are online)."),
    "prepare": ("prepare", "Ingest, clean (dedupe, k-core) and split interaction data."),
    "embed": ("embed", "Compute item text/image embeddings and the item-item kNN graph."),
    "train": ("train", "Train a recommender (pop, mf, lightgcn, gat) with early stopping."),
    "eval": ("evaluate", "Re-evaluate a trained run with full-ranking metrics."),
    "register": ("register", "Register a trained run as a model version."),
    "promote": ("promote", "Gate a model version and promote it to champion."),
    "rollback": ("rollback", "Restore the previous champion from the audit trail."),
    "gate": ("gate", "Guard promotions made in the MLflow UI (webhook receiver / watcher)."),
    "sweep": ("sweep", "Hyper-parameter sweep with Optuna."),
    "pipeline": ("pipeline", "Run prepare → embed → train → eval → register → promote."),
    "bento": ("bento", "Package the champion as a BentoML Bento and build its container image."),
    "cloud": ("cloud", "Run on Google Cloud: Vertex AI jobs, image push, Cloud Run deploy."),
}


class LazyGroup(click.Group):
    """Lists every SUBCOMMANDS entry without importing it; a listed command whose module does not import
    fails loudly when used (and in tests/cli), never silently disappears."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        mod, short = SUBCOMMANDS[name]
        cmd = importlib.import_module(f"gatrec.cli.{mod}").command
        cmd.short_help = cmd.short_help or short
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The one-line helps from SUBCOMMANDS: ``gatrec --help`` imports no subcommand (torch, mlflow)."""
        with formatter.section("Commands"):
            formatter.write_dl(list(zip(SUBCOMMANDS, (short for _, short in SUBCOMMANDS.values()), strict=True)))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="gatrec")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def cli(verbose: bool) -> None:
    """gatrec — graph-attention recommender with an MLflow lifecycle.

    \b
    Typical flow:
      gatrec synth --out data/raw
      gatrec prepare --input data/raw --out data/prepared
      gatrec train --data data/prepared --model lightgcn --out runs/lgcn
      gatrec eval --run runs/lgcn
    """
    log.setup(verbose)


def main(argv: list[str] | None = None) -> None:
    from gatrec.tracking.connection import bound_http_requests

    bound_http_requests()  # before any MLflow request: a dead server is reported in seconds
    try:
        cli.main(args=argv, prog_name="gatrec", standalone_mode=False)
    except GatrecError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # MLflow's own errors (registry, store): a message, not a traceback
        if not type(exc).__module__.startswith("mlflow."):
            raise
        click.echo(f"error: MLflow: {getattr(exc, 'message', None) or exc}", err=True)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
