"""``gatrec rollback``: restore the previous champion recorded in the audit trail."""

from __future__ import annotations

import click

from gatrec.cli.options import client_for, registry_options


@click.command(help="""Restore the previous champion (alias and Production stage) from the audit trail.

The champion before the current one is read from the `gatrec-promotions` experiment; the
rollback itself is recorded there too, so repeated rollbacks walk further back.

\b
Example:
  gatrec rollback --name gatrec
""")
@registry_options
def command(name: str, tracking_uri: str | None) -> None:
    from gatrec.registry.promote import rollback

    click.echo(rollback(name, actor="cli", client=client_for(tracking_uri)).message())
