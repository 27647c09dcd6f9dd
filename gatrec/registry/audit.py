"""The audit trail: every gate decision is a finished run in the ``gatrec-promotions`` experiment.

The trail is also the memory of the gate: the champion it last approved (to revert a move made
in the UI) and the champion before it (for ``gatrec rollback``) are read back from it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.entities import Metric, RunStatus

from gatrec.tracking import metric_key
from gatrec.tracking.mlflow_log import get_or_create_experiment

AUDIT_EXPERIMENT = "gatrec-promotions"
DECISIONS = ("passed", "rejected", "rollback")
ACTORS = ("cli", "pipeline", "webhook", "watcher")


def experiment_name() -> str:
    return os.environ.get("GATREC_AUDIT_EXPERIMENT", AUDIT_EXPERIMENT)


@dataclass
class AuditRecord:
    model_name: str
    decision: str  # passed | rejected | rollback
    candidate: str | None  # the version the decision is about
    previous: str | None  # champion before the decision
    champion: str | None  # champion after the decision
    actor: str  # cli | pipeline | webhook | watcher
    reasons: list[str] = field(default_factory=list)
    action: str = ""  # what was changed, e.g. "alias+stage moved", "alias reverted"
    metrics: dict[str, float] = field(default_factory=dict)
    timestamp_ns: int = 0
    run_id: str | None = None

    @property
    def timestamp(self) -> str:
        return datetime.fromtimestamp(self.timestamp_ns / 1e9, UTC).isoformat()


def _experiment_id(client: MlflowClient) -> str:
    return get_or_create_experiment(client, experiment_name(), {"gatrec.purpose": "promotion audit trail"})


def record(client: MlflowClient, rec: AuditRecord) -> AuditRecord:
    """Append ``rec`` to the trail (a finished run carrying tags and metrics)."""
    if rec.decision not in DECISIONS or rec.actor not in ACTORS:
        raise ValueError(f"bad audit record: decision={rec.decision!r} actor={rec.actor!r}")
    rec.timestamp_ns = rec.timestamp_ns or time.time_ns()
    tags = {
        "model_name": rec.model_name, "decision": rec.decision, "actor": rec.actor,
        "candidate_version": rec.candidate or "", "previous_version": rec.previous or "",
        "champion_version": rec.champion or "", "reasons": json.dumps(rec.reasons),
        "action": rec.action, "timestamp": rec.timestamp, "timestamp_ns": str(rec.timestamp_ns),
        "mlflow.runName": f"{rec.decision}-{rec.model_name}-v{rec.candidate}",
    }
    ms = rec.timestamp_ns // 1_000_000
    run = client.create_run(_experiment_id(client), start_time=ms, tags=tags)
    if rec.metrics:
        client.log_batch(run.info.run_id, metrics=[Metric(metric_key(k), float(v), ms, 0)
                                                   for k, v in rec.metrics.items()])
    client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FINISHED), end_time=ms)
    rec.run_id = run.info.run_id
    return rec


def history(client: MlflowClient, model_name: str) -> list[AuditRecord]:
    """All decisions about ``model_name``, oldest first."""
    exp = client.get_experiment_by_name(experiment_name())
    if exp is None:
        return []
    escaped = model_name.replace("'", "\\'")
    out, token = [], None
    while True:
        page = client.search_runs([exp.experiment_id], filter_string=f"tags.model_name = '{escaped}'",
                                  max_results=1000, page_token=token)
        for run in page:
            t = run.data.tags
            out.append(AuditRecord(
                model_name=t["model_name"], decision=t.get("decision", ""),
                candidate=t.get("candidate_version") or None, previous=t.get("previous_version") or None,
                champion=t.get("champion_version") or None, actor=t.get("actor", ""),
                reasons=json.loads(t.get("reasons") or "[]"), action=t.get("action", ""),
                metrics=dict(run.data.metrics), timestamp_ns=int(t.get("timestamp_ns") or 0),
                run_id=run.info.run_id))
        token = page.token
        if not token:
            break
    return sorted(out, key=lambda r: r.timestamp_ns)


def champion_stack(records: list[AuditRecord]) -> list[str]:
    """Champions in the order they took over; a rollback pops the one it replaced."""
    stack: list[str] = []
    for rec in records:
        if rec.decision == "passed" and rec.champion:
            stack.append(rec.champion)
        elif rec.decision == "rollback" and rec.champion:
            if len(stack) >= 2 and stack[-2] == rec.champion:
                stack.pop()
            else:  # a rollback recorded against a trail we cannot replay: trust its outcome
                stack.append(rec.champion)
    return stack


def trail_champion(client: MlflowClient, model_name: str) -> str | None:
    """The champion the gate last approved (None before the first promotion)."""
    stack = champion_stack(history(client, model_name))
    return stack[-1] if stack else None

