"""Fast checks of the pure parts: policy file, gate rules, audit replay, webhook signatures, baseline."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gatrec.errors import DataError
from gatrec.evaluate.ranking import evaluate_embeddings
from gatrec.registry.audit import AuditRecord, champion_stack
from gatrec.registry.gate import VersionFacts, evaluate, metric_tag
from gatrec.registry.policy import Policy, load_policy
from gatrec.registry.webhook import verify_signature


def facts(version: str, ndcg: float, recall: float, *, digest: str = "d1", split: str = "user-temporal",
          pop: tuple[float, float] = (0.1, 0.2)) -> VersionFacts:
    tags = {metric_tag("valid", "ndcg@20"): str(ndcg), metric_tag("valid", "recall@20"): str(recall),
            metric_tag("valid", "ndcg@20", "baseline.pop"): str(pop[0]),
            metric_tag("valid", "recall@20", "baseline.pop"): str(pop[1]),
            "data_digest": digest, "split_protocol": split, "validation_status": "pending"}
    return VersionFacts.from_tags(version, tags)


def test_default_policy_is_packaged_and_valid() -> None:
    policy = load_policy()
    assert policy == Policy()
    assert policy.split == "valid" and policy.primary_metric == "ndcg@20"
    assert policy.metrics == ["ndcg@20", "recall@20"]


def test_policy_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("split: valid\nmin_lift: 0.0\nguard_metrics:\n  recall@20: 1.5\n")
    with pytest.raises(DataError) as err:
        load_policy(bad)
    assert err.value.file == str(bad) and err.value.line == 3 and err.value.field == "guard_metrics"
    bad.write_text("split: valid\nsplti: test\n")
    with pytest.raises(DataError) as err:
        load_policy(bad)
    assert err.value.line == 2 and err.value.field == "splti"
    bad.write_text("split: [unclosed\n")
    with pytest.raises(DataError, match="invalid YAML"):
        load_policy(bad)
    with pytest.raises(DataError, match="not found"):
        load_policy(tmp_path / "missing.yaml")


def test_better_candidate_passes_and_worse_is_rejected_with_reasons() -> None:
    policy = Policy()
    champion = facts("1", 0.30, 0.40)
    assert evaluate(facts("2", 0.31, 0.40), champion, policy).passed
    tie = evaluate(facts("2", 0.30, 0.40), champion, policy)
    assert not tie.passed and "ndcg@20" in tie.reasons[0]
    small = evaluate(facts("2", 0.302, 0.40), champion, policy)  # < 1% lift
    assert not small.passed
    guard = evaluate(facts("2", 0.40, 0.39), champion, policy)  # recall down 2.5% > 2% tolerance
    assert not guard.passed and len(guard.reasons) == 1 and "recall@20" in guard.reasons[0]
    assert evaluate(facts("2", 0.40, 0.393), champion, policy).passed  # recall down 1.75%: tolerated
    lenient = Policy(min_lift=0.0)
    assert evaluate(facts("2", 0.3001, 0.40), champion, lenient).passed
    assert not evaluate(facts("2", 0.30, 0.40), champion, lenient).passed  # must be strictly better


def test_data_digest_and_split_must_match_the_champion() -> None:
    champion = facts("1", 0.30, 0.40)
    other = evaluate(facts("2", 0.50, 0.60, digest="d2", split="loo"), champion, Policy())
    assert not other.passed and len(other.reasons) == 2
    assert evaluate(facts("2", 0.50, 0.60, digest="d2"), champion, Policy(require_same_data=False)).passed


def test_first_champion_must_beat_the_popularity_baseline() -> None:
    assert evaluate(facts("1", 0.15, 0.25, pop=(0.1, 0.2)), None, Policy()).passed
    lost = evaluate(facts("1", 0.09, 0.25, pop=(0.1, 0.2)), None, Policy())
    assert not lost.passed and lost.reference == "popularity baseline"
    bare = VersionFacts.from_tags("1", {metric_tag("valid", "ndcg@20"): "0.5", metric_tag("valid", "recall@20"): "0.5"})
    missing = evaluate(bare, None, Policy())
    assert not missing.passed and all("popularity baseline has no" in r for r in missing.reasons)


def test_required_metrics_must_be_present() -> None:
    cand = VersionFacts.from_tags("2", {metric_tag("valid", "ndcg@20"): "0.9", "data_digest": "d1",
                                        "split_protocol": "user-temporal"})
    out = evaluate(cand, facts("1", 0.3, 0.4), Policy())
    assert not out.passed and out.reasons == ["candidate v2 has no valid recall@20"]
    assert not evaluate(facts("2", 0.5, 0.5), facts("1", 0.3, 0.4), Policy(split="test")).passed


def _rec(decision: str, candidate: str, champion: str) -> AuditRecord:
    return AuditRecord("m", decision, candidate, None, champion, "cli")


def test_champion_stack_replays_promotions_and_rollbacks() -> None:
    trail = [_rec("passed", "1", "1"), _rec("rejected", "2", "1"), _rec("passed", "3", "3"),
             _rec("passed", "4", "4")]
    assert champion_stack(trail) == ["1", "3", "4"]
    trail.append(_rec("rollback", "3", "3"))
    assert champion_stack(trail) == ["1", "3"]
    trail.append(_rec("rollback", "1", "1"))
    assert champion_stack(trail) == ["1"]


def _sign(secret: str, delivery: str, ts: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{delivery}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_webhook_signature_verification() -> None:
    body, ts = b'{"entity": "model_version_alias"}', "1700000000"
    good = _sign("s3cret", "d-1", ts, body)
    ok = dict(max_skew_s=300, now=1700000100)
    assert verify_signature("s3cret", "d-1", ts, body, good, **ok) is None
    assert verify_signature("s3cret", "d-1", ts, body, "v1,AAAA " + good, **ok) is None  # key rotation
    assert verify_signature("other", "d-1", ts, body, good, **ok) == "bad signature"
    assert verify_signature("s3cret", "d-2", ts, body, good, **ok) == "bad signature"
    assert verify_signature("s3cret", "d-1", ts, body + b" ", good, **ok) == "bad signature"
    assert verify_signature("s3cret", "d-1", ts, body, good, max_skew_s=300, now=1700000400) == "stale timestamp"
    assert verify_signature("s3cret", "d-1", ts, body, "", **ok) == "missing signature headers"


@pytest.mark.parametrize("shared", [False, True], ids=["per-user-scores", "one-score-vector"])
def test_ranking_metrics_match_a_direct_computation(shared: bool) -> None:
    rng = np.random.default_rng(1)
    n_users, n_items = 30, 25
    train = sp.random(n_users, n_items, density=0.2, format="csr", random_state=1)
    train.data[:] = 1
    truth = sp.random(n_users, n_items, density=0.08, format="csr", random_state=2)
    truth = (truth - truth.multiply(train)).tocsr()
    truth.eliminate_zeros()
    truth.data[:] = 1
    scores = rng.normal(size=(n_users, n_items))
    if shared:  # popularity-style: everyone gets the same scores
        scores = np.tile(rng.normal(size=n_items), (n_users, 1))
    # the baseline's path: per-user scores as user rows against identity items, or one shared item bias
    users = torch.zeros(n_users, 1) if shared else torch.from_numpy(scores).float()
    items = torch.zeros(n_items, 1) if shared else torch.eye(n_items)
    bias = torch.from_numpy(scores[0]).float() if shared else None
    every = evaluate_embeddings(users, items, train, truth, item_bias=bias, ks=[5], stable_ties=True)
    got = {k: every[k] for k in ["ndcg@5", "recall@5", "hit@5", "precision@5", "mrr@5"]}
    expect = {k: [] for k in got}
    for u in range(n_users):
        held = set(truth[u].indices)
        if not held:
            continue
        s = scores[u].copy()
        s[train[u].indices] = -np.inf
        top = list(np.argsort(-s)[:5])
        rel = [1.0 if i in held else 0.0 for i in top]
        dcg = sum(r / math.log2(n + 2) for n, r in enumerate(rel))
        idcg = sum(1 / math.log2(n + 2) for n in range(min(len(held), 5)))
        expect["ndcg@5"].append(dcg / idcg)
        expect["recall@5"].append(sum(rel) / len(held))
        expect["hit@5"].append(float(any(rel)))
        expect["precision@5"].append(sum(rel) / 5)
        expect["mrr@5"].append(next((1 / (n + 1) for n, r in enumerate(rel) if r), 0.0))
    for k, vals in expect.items():
        assert got[k] == pytest.approx(np.mean(vals)), k
