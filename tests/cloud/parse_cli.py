"""``python parse_cli.py SUBCOMMAND ARGS…``: parse a gatrec command line (option names, types, choices) the
way ``gatrec`` would, without running it; gs:// values are taken as given (no bucket is reached)."""

from __future__ import annotations

import sys

import click

from gatrec.cli import cli
from gatrec.cli.locations import Location


def _as_given(self, value, param, ctx):
    if isinstance(value, str) and value.startswith("gs://"):
        return value
    return click.Path.convert(self, value, param, ctx)


def main(args: list[str]) -> None:
    Location.convert = _as_given
    cmd: click.Command = cli
    ctx = cli.make_context("gatrec", [], resilient_parsing=True)
    names = []
    while isinstance(cmd, click.Group):
        names.append(args.pop(0))
        cmd = cmd.get_command(ctx, names[-1])
        if cmd is None:
            raise SystemExit(f"gatrec {' '.join(names)}: no such command")
    with cmd.make_context(" ".join(names), list(args)):
        pass
    print(f"parsed gatrec {' '.join(names)}")


if __name__ == "__main__":
    main(sys.argv[1:])
