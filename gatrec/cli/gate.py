"""``gatrec gate``: guard champion changes made in the MLflow UI (webhook receiver and watcher)."""

from __future__ import annotations

import click

from gatrec.cli.options import client_for, policy_option, tracking_uri_option

names_option = click.option(
    "--name", "names", multiple=True, envvar="GATREC_MODEL_NAME", default=("gatrec",), show_default=True,
    help="Registered model(s) to guard; repeat for several.")


@click.group(help="""Guard promotions made by hand (MLflow UI or raw API calls).

\b
Example (server started with a SQL backend and MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY set):
  gatrec gate serve --port 8765 --secret "$GATE_SECRET" &
  gatrec gate register-webhook --url http://gate-host:8765/ --secret "$GATE_SECRET"
  gatrec gate watch --interval 5
""")
def command() -> None:
    pass


@command.command(help="""Receive MLflow webhooks and gate every `champion` alias set by hand.

Verifies the X-MLflow-Signature HMAC (401 on a bad or stale signature). A version that fails the
policy against the previous champion (from the audit trail) is reverted: alias and stage go back
and the version is tagged with the reasons. One that passes gets stage Production and an audit record.

\b
Example:
  gatrec gate serve --host 127.0.0.1 --port 8765 --secret s3cret --name gatrec
""")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--secret", envvar="GATREC_WEBHOOK_SECRET", required=True,
              help="Shared webhook secret (env GATREC_WEBHOOK_SECRET).")
@click.option("--max-skew", default=300.0, show_default=True, type=float,
              help="Refuse deliveries whose signed timestamp is older (or newer) than this many seconds.")
@names_option
@policy_option
@tracking_uri_option
def serve(host: str, port: int, secret: str, max_skew: float, names: tuple[str, ...],
          policy_path: str | None, tracking_uri: str | None) -> None:
    import gatrec.log
    from gatrec.registry.policy import load_policy
    from gatrec.registry.webhook import GateServer, GateServerConfig

    config = GateServerConfig(host=host, port=port, secret=secret, names=list(names), max_skew_s=max_skew)
    server = GateServer(config, load_policy(policy_path), client_for(tracking_uri))
    gatrec.log.get(__name__).info("gate listening", url=f"http://{host}:{server.server_address[1]}/",
                                  names=",".join(names))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@command.command(help="""Poll the registry and gate champion changes made by hand.

Catches what webhooks cannot: stage transitions to Production (MLflow sends no event for them)
and alias moves made while no receiver was listening. Same gate, same revert, same audit trail.

\b
Example:
  gatrec gate watch --interval 5
  gatrec gate watch --once --name gatrec
""")
@click.option("--interval", default=5.0, show_default=True, type=float, help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Check once and exit (for cron or CI).")
@names_option
@policy_option
@tracking_uri_option
def watch(interval: float, once: bool, names: tuple[str, ...], policy_path: str | None,
          tracking_uri: str | None) -> None:
    from gatrec.registry.policy import load_policy
    from gatrec.registry.watch import WatchConfig, watch_once
    from gatrec.registry.watch import watch as watch_loop

    config = WatchConfig(names=list(names), interval_s=interval)
    client, policy = client_for(tracking_uri), load_policy(policy_path)
    if once:
        for outcome in watch_once(client, config, policy):
            click.echo(outcome.message())
        return
    try:
        watch_loop(client, config, policy, report=lambda o: click.echo(o.message()))
    except KeyboardInterrupt:
        pass


@command.command("register-webhook", help="""Create (or update) the MLflow webhook that calls `gatrec gate serve`.

The tracking server needs a SQL backend; for a receiver on a private address it must run with
MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true.

\b
Example:
  gatrec gate register-webhook --url http://127.0.0.1:8765/ --secret s3cret
""")
@click.option("--url", required=True, help="Where `gatrec gate serve` listens.")
@click.option("--secret", envvar="GATREC_WEBHOOK_SECRET", required=True,
              help="Shared webhook secret (env GATREC_WEBHOOK_SECRET).")
@click.option("--webhook-name", default="gatrec-gate", show_default=True)
@click.option("--test", "send_test", is_flag=True, help="Also send MLflow's test event and report the answer.")
@tracking_uri_option
def register_webhook(url: str, secret: str, webhook_name: str, send_test: bool, tracking_uri: str | None) -> None:
    from gatrec.errors import GatrecError
    from gatrec.registry.webhook import register_webhook as create

    client = client_for(tracking_uri)
    hook_id = create(client, url, secret, webhook_name)
    click.echo(f"webhook {webhook_name} ({hook_id}) -> {url}")
    if send_test:
        result = client.test_webhook(hook_id)
        if not result.success:
            raise GatrecError(f"test delivery failed: {result.error_message or result.response_status}")
        click.echo(f"test delivery: HTTP {result.response_status}")
