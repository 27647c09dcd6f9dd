"""``gatrec gate watch``: poll the registry for champion changes the webhook cannot see.

MLflow sends no webhook for stage transitions, and a receiver may have been down when an alias
moved; polling closes both gaps with the same gate (see reconcile.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict, Field

import gatrec.log
from gatrec.registry.policy import Policy
from gatrec.registry.promote import Outcome
from gatrec.registry.reconcile import reconcile

log = gatrec.log.get(__name__)


class WatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[str] = Field(min_length=1)
    interval_s: float = Field(5.0, gt=0)


def watch_once(client: MlflowClient, config: WatchConfig, policy: Policy) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for name in config.names:
        try:
            client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                continue  # nothing registered yet
            raise
        outcomes += reconcile(client, name, policy, actor="watcher")
    return outcomes


def watch(client: MlflowClient, config: WatchConfig, policy: Policy, *,
          report: Callable[[Outcome], None] = lambda o: None) -> None:
    """Poll until interrupted; a failing round is logged and retried at the next interval."""
    log.info("watching", names=",".join(config.names), interval_s=config.interval_s)
    while True:
        try:
            for outcome in watch_once(client, config, policy):
                report(outcome)
        except Exception as exc:  # a flaky server must not end the watcher
            log.error("watch round failed", error=str(exc))
        time.sleep(config.interval_s)
