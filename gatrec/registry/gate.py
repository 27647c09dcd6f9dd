"""The promotion decision: compare a candidate version with the champion (or the popularity baseline).

Pure logic over the tags that ``gatrec register`` writes on every model version, so the same
rules apply whoever asks (CLI, webhook, watcher) and can be tested without a server.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from gatrec.registry.policy import Policy
from gatrec.tracking import metric_key, metric_name

METRIC_PREFIX = "metric"
BASELINE_PREFIX = "baseline.pop"


def metric_tag(split: str, metric: str, prefix: str = METRIC_PREFIX) -> str:
    return f"{prefix}.{split}.{metric_key(metric)}"


def _parse(tags: Mapping[str, str], prefix: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, value in tags.items():
        if not key.startswith(prefix + "."):
            continue
        split, _, name = key[len(prefix) + 1:].partition(".")
        if "." in name or not name:  # a longer prefix (e.g. baseline.pop.* under baseline.*)
            continue
        try:
            out.setdefault(split, {})[metric_name(name)] = float(value)
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class VersionFacts:
    """What the gate knows about one model version (read from its registry tags)."""

    version: str
    metrics: dict[str, dict[str, float]]
    baseline: dict[str, dict[str, float]]
    data_digest: str | None = None
    split_protocol: str | None = None

    @classmethod
    def from_tags(cls, version: str | int, tags: Mapping[str, str]) -> VersionFacts:
        return cls(version=str(version), metrics=_parse(tags, METRIC_PREFIX),
                   baseline=_parse(tags, BASELINE_PREFIX), data_digest=tags.get("data_digest"),
                   split_protocol=tags.get("split_protocol"))


@dataclass
class Decision:
    passed: bool
    reasons: list[str]
    reference: str
    candidate_metrics: dict[str, float] = field(default_factory=dict)
    reference_metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        verdict = "passed" if self.passed else "rejected"
        return f"{verdict} against {self.reference}" + ("" if self.passed else ": " + "; ".join(self.reasons))


def _present(values: Mapping[str, float], name: str) -> bool:
    return name in values and math.isfinite(values[name])


def evaluate(candidate: VersionFacts, champion: VersionFacts | None, policy: Policy) -> Decision:
    """Apply ``policy``: candidate vs champion, or vs its own popularity baseline if no champion."""
    split, reasons = policy.split, []
    cand = candidate.metrics.get(split, {})
    if champion is not None:
        reference = f"champion v{champion.version}"
        ref = champion.metrics.get(split, {})
        if policy.require_same_data:
            if candidate.data_digest != champion.data_digest:
                reasons.append(f"data digest {candidate.data_digest} differs from the champion's "
                               f"{champion.data_digest}: metrics are not comparable (a model of another "
                               "dataset goes under its own registered name: --name)")
            if candidate.split_protocol != champion.split_protocol:
                reasons.append(f"split protocol {candidate.split_protocol!r} differs from the "
                               f"champion's {champion.split_protocol!r}")
    else:
        reference = "popularity baseline"
        ref = candidate.baseline.get(split, {})
    for name in policy.metrics:
        if not _present(cand, name):
            reasons.append(f"candidate v{candidate.version} has no {split} {name}")
        elif not _present(ref, name):
            reasons.append(f"{reference} has no {split} {name} to compare with")
    decision = Decision(passed=False, reasons=reasons, reference=reference,
                        candidate_metrics={k: cand[k] for k in policy.metrics if k in cand},
                        reference_metrics={k: ref[k] for k in policy.metrics if k in ref})
    if reasons:
        return decision

    # Strictly better than the reference, and by at least min_lift (relative).
    name, value, base = policy.primary_metric, cand[policy.primary_metric], ref[policy.primary_metric]
    needed = base * (1.0 + policy.min_lift)
    if not (value > base and value >= needed):
        reasons.append(f"{split} {name} {value:.4f} does not beat {reference} {base:.4f} "
                       f"by the required {policy.min_lift:.1%} (needs >= {needed:.4f})")
    for name, tol in policy.guard_metrics.items():
        value, base = cand[name], ref[name]
        floor = base * (1.0 - tol)
        if value < floor:
            reasons.append(f"{split} {name} {value:.4f} is below {reference} {base:.4f} "
                           f"minus the {tol:.1%} tolerance ({floor:.4f})")
    decision.passed = not reasons
    return decision
