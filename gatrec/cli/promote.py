"""``gatrec promote``: gate a model version and make it champion if it passes."""

from __future__ import annotations

import click

from gatrec.cli.options import client_for, policy_option, registry_options


@click.command(help="""Gate a model version against the champion and promote it if it passes.

Rules come from the policy YAML (same data digest and split as the champion, primary metric lift,
guard-metric tolerances; with no champion yet the version must beat the popularity baseline).
Pass: alias `champion` and stage Production move to the version. Fail: it is tagged
validation_status=rejected with rejection_reasons, the champion is unchanged, and the command
exits with status 1. Every decision is recorded in the `gatrec-promotions` experiment.

\b
Example:
  gatrec promote --version 3 --name gatrec --policy policy.yaml
  gatrec promote --version candidate
""")
@click.option("--version", "version", required=True, metavar="N|ALIAS", help="Version number or alias.")
@policy_option
@registry_options
def command(version: str, policy_path: str | None, name: str, tracking_uri: str | None) -> None:
    from gatrec.registry.policy import load_policy
    from gatrec.registry.promote import promote

    policy = load_policy(policy_path)
    outcome = promote(version, name, policy, actor="cli", client=client_for(tracking_uri))
    click.echo(outcome.message())
    if not outcome.passed:
        raise SystemExit(1)
