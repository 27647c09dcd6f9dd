"""Gate champion changes made outside gatrec (MLflow UI, raw client calls).

The audit trail knows the champion the gate last approved. When the ``champion`` alias or the
``Production`` stage points elsewhere, someone moved it by hand: the new version is judged
against the approved champion exactly like a CLI promotion; it stays if it passes, otherwise
alias and stage go back and the version is tagged with the reasons. Used by the webhook
receiver (alias events) and the watcher (alias and stage, by polling).
"""

from __future__ import annotations

from mlflow import MlflowClient

from gatrec.registry import audit
from gatrec.registry.lock import PromotionLock
from gatrec.registry.policy import Policy
from gatrec.registry.promote import Outcome, alias_holder, gate_and_apply, production_versions


def _alias(client: MlflowClient, name: str, policy: Policy, actor: str) -> Outcome | None:
    moved, approved = alias_holder(client, name), audit.trail_champion(client, name)
    if moved is None or moved == approved:
        return None
    return gate_and_apply(client, name, moved, approved, policy, actor=actor,
                          action_pass="alias moved by hand; stage aligned",
                          action_fail="alias moved by hand; alias and stage reverted", revert=True)


def _stage(client: MlflowClient, name: str, policy: Policy, actor: str) -> Outcome | None:
    approved = audit.trail_champion(client, name)
    moved = [v for v in production_versions(client, name) if v != approved]
    if not moved:
        return None
    # Several hand transitions since the last look: judge the newest, the rest get archived
    # when the outcome (either way) re-establishes a single Production version.
    return gate_and_apply(client, name, moved[-1], approved, policy, actor=actor,
                          action_pass="stage moved by hand; alias aligned",
                          action_fail="stage moved by hand; stage reverted", revert=True)


def reconcile_alias(client: MlflowClient, name: str, policy: Policy, *, actor: str) -> Outcome | None:
    """Gate a hand-moved ``champion`` alias; None if it already matches the audit trail."""
    with PromotionLock(client, name, actor=actor):
        return _alias(client, name, policy, actor)


def reconcile(client: MlflowClient, name: str, policy: Policy, *, actor: str) -> list[Outcome]:
    """Gate both a hand-moved alias and a hand-made transition to Production."""
    with PromotionLock(client, name, actor=actor):
        return [o for o in (_alias(client, name, policy, actor), _stage(client, name, policy, actor)) if o]
