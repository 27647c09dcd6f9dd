"""Champion changes: gated promotion, rollback, and the registry moves both share.

The champion is held in two places that must agree: the alias ``champion`` (what
``models:/gatrec@champion`` loads) and the legacy stage ``Production`` (still shown and settable
in the UI). Every change happens under the PromotionLock and ends with an audit record.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import gatrec.log
from gatrec.errors import GatrecError
from gatrec.registry import audit
from gatrec.registry.audit import AuditRecord
from gatrec.registry.gate import Decision, VersionFacts, evaluate, metric_tag
from gatrec.registry.lock import PromotionLock
from gatrec.registry.names import CHAMPION_ALIAS, model_name
from gatrec.registry.policy import Policy, load_policy

log = gatrec.log.get(__name__)

PRODUCTION, ARCHIVED = "Production", "Archived"


@dataclass
class Outcome:
    name: str
    version: str
    passed: bool
    reasons: list[str]
    previous: str | None  # champion before
    champion: str | None  # champion after
    record: AuditRecord | None = None  # None when nothing had to change

    def message(self) -> str:
        if self.record is None:
            return f"{self.name} v{self.version} is already the champion"
        if self.record.decision == "rollback":
            return f"{self.name}: champion rolled back from v{self.previous} to v{self.champion}"
        if self.passed:
            return f"{self.name} v{self.version} promoted to champion (previous: {_v(self.previous)})"
        return (f"{self.name} v{self.version} rejected; champion stays {_v(self.champion)}:\n"
                + "\n".join(f"  - {r}" for r in self.reasons))


def _v(version: str | None) -> str:
    return f"v{version}" if version else "none"


def facts(client: MlflowClient, name: str, version: str) -> VersionFacts:
    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise GatrecError(f"registered model {name!r} has no version {version}: {exc.message}") from None
    return VersionFacts.from_tags(mv.version, mv.tags)


def alias_holder(client: MlflowClient, name: str, alias: str = CHAMPION_ALIAS) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def production_versions(client: MlflowClient, name: str) -> list[str]:
    escaped = name.replace("'", "\\'")
    return sorted((str(mv.version) for mv in client.search_model_versions(f"name = '{escaped}'")
                   if mv.current_stage == PRODUCTION), key=int)


def _stage(client: MlflowClient, name: str, version: str, stage: str, archive: bool) -> None:
    with warnings.catch_warnings():  # stages are deprecated in MLflow 3 but still shown in the UI
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(name, version, stage, archive_existing_versions=archive)


def set_champion(client: MlflowClient, name: str, version: str | None, *, demote: str | None = None) -> None:
    """Point alias and Production stage at ``version`` (others archived); ``None`` clears both."""
    if version is None:
        if alias_holder(client, name) is not None:
            client.delete_registered_model_alias(name, CHAMPION_ALIAS)
        if demote and demote in production_versions(client, name):
            _stage(client, name, demote, ARCHIVED, archive=False)
        return
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    _stage(client, name, version, PRODUCTION, archive=True)


STATUS_TAG, REASONS_TAG, CHAMPION_REASON_TAG = "validation_status", "rejection_reasons", "champion_reason"


def _tag_champion(client: MlflowClient, name: str, version: str, status: str, why: str) -> None:
    """The champion's tags say why it is champion; reasons from an earlier rejection no longer apply."""
    client.set_model_version_tag(name, version, STATUS_TAG, status)
    client.set_model_version_tag(name, version, CHAMPION_REASON_TAG, why[:4900])
    with contextlib.suppress(MlflowException):  # absent unless it was rejected before
        client.delete_model_version_tag(name, version, REASONS_TAG)


def mark(client: MlflowClient, name: str, version: str, decision: Decision) -> None:
    if decision.passed:
        _tag_champion(client, name, version, "passed", f"passed the promotion gate against {decision.reference}")
    else:
        client.set_model_version_tag(name, version, STATUS_TAG, "rejected")
        client.set_model_version_tag(name, version, REASONS_TAG, "; ".join(decision.reasons)[:4900])


def decision_metrics(decision: Decision, policy: Policy) -> dict[str, float]:
    out = {metric_tag(policy.split, k, "candidate"): v for k, v in decision.candidate_metrics.items()}
    out.update({metric_tag(policy.split, k, "reference"): v for k, v in decision.reference_metrics.items()})
    return out


def gate_and_apply(client: MlflowClient, name: str, candidate: str, previous: str | None, policy: Policy,
                   *, actor: str, action_pass: str, action_fail: str, revert: bool) -> Outcome:
    """Judge ``candidate`` against ``previous``; pass -> make it champion; fail -> tag it (and revert)."""
    decision = evaluate(facts(client, name, candidate),
                        facts(client, name, previous) if previous else None, policy)
    if decision.passed:
        set_champion(client, name, candidate)
    elif revert:
        set_champion(client, name, previous, demote=candidate)
    mark(client, name, candidate, decision)
    champion = candidate if decision.passed else previous
    rec = audit.record(client, AuditRecord(
        model_name=name, decision="passed" if decision.passed else "rejected", candidate=candidate,
        previous=previous, champion=champion, actor=actor, reasons=decision.reasons,
        action=action_pass if decision.passed else action_fail, metrics=decision_metrics(decision, policy)))
    log.info("gate decision", name=name, version=candidate, decision=rec.decision, actor=actor,
             reference=decision.reference, reasons="; ".join(decision.reasons) or None)
    return Outcome(name, candidate, decision.passed, decision.reasons, previous, champion, rec)


def _resolve(client: MlflowClient, name: str, version: str | int) -> str:
    version = str(version)
    if version.isdigit():
        return version
    holder = alias_holder(client, name, version)
    if holder is None:
        raise GatrecError(f"registered model {name!r} has no version or alias {version!r}")
    return holder


def promote(version: str | int, name: str | None = None, policy: Policy | None = None, *,
            actor: str = "cli", client: MlflowClient | None = None) -> Outcome:
    """Gate ``version`` (number or alias) against the champion and promote it if it passes.

    The champion to beat is the version the ``champion`` alias serves, or the audit trail's last
    approved champion when the alias is unset; with neither, the popularity baseline.
    """
    client, name = client or MlflowClient(), model_name(name)
    policy = policy or load_policy()
    with PromotionLock(client, name, actor=actor):
        version = _resolve(client, name, version)
        previous = alias_holder(client, name) or audit.trail_champion(client, name)
        if previous == version:
            return Outcome(name, version, True, [], previous, previous)
        return gate_and_apply(client, name, version, previous, policy, actor=actor,
                              action_pass="alias+stage moved", action_fail="champion unchanged", revert=False)


def rollback(name: str | None = None, *, actor: str = "cli", client: MlflowClient | None = None) -> Outcome:
    """Make the champion before the current one (per the audit trail) champion again."""
    client, name = client or MlflowClient(), model_name(name)
    with PromotionLock(client, name, actor=actor):
        stack = audit.champion_stack(audit.history(client, name))
        if len(stack) < 2:
            raise GatrecError(f"the audit trail of {name!r} has no earlier champion to roll back to")
        current, target = stack[-1], stack[-2]
        facts(client, name, target)  # fails clearly if that version was deleted
        set_champion(client, name, target)
        _tag_champion(client, name, target, "rollback", f"restored by rollback from v{current} ({actor})")
        rec = audit.record(client, AuditRecord(
            model_name=name, decision="rollback", candidate=target, previous=current, champion=target,
            actor=actor, reasons=[f"rolled back from v{current}"], action="alias+stage moved"))
    log.info("rolled back", name=name, champion=target, previous=current)
    return Outcome(name, target, True, rec.reasons, current, target, rec)
