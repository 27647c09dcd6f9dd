"""Electronics size on a GPU: one training epoch of the GAT and of LightGCN, and one full evaluation each.

Synthetic interactions at the size of Amazon Electronics 5-core (192,403 users × 63,001 items, 1,689,188
interactions; ``gatrec.data.synth.ELECTRONICS``), drawn here in a few vectorised numpy steps (the `synth`
command writes texts too and takes minutes at this size): every user has at least 5 items, item popularity
is a power law, and 70 % of a user's items come from the user's taste cluster (64 clusters). One item per
user with at least 3 is held out as the validation set. Models, each timed on the same data and sampler:
LightGCN d64 / 3 layers (the speed bench's), LightGCN at the GAT's width and depth (d128, 2 layers), the GAT
at its defaults, and the GAT with content attention (``attention_keys=interactions``). Per model: the
seconds of one full training epoch (after 3 warm-up steps; batch 8192, the training loop's Adam), the peak
GPU memory, and one full-ranking evaluation over every validation user (``evaluate_embeddings``).

Prepared to run in one short call on a lent GPU; ``--scale`` shrinks every size for a check on CPU::

    .venv/bin/python bench/gpu_electronics.py                                # GPU, full size
    .venv/bin/python bench/gpu_electronics.py --device cpu --scale 0.01      # the CPU check

A GPU run writes ``bench/results/gpu_electronics.json``; a CPU run ``bench/.cache/gpu_electronics_cpu.json``
(it checks the script, it is not a result).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, write_result  # noqa: E402

BATCH = 8192
CLUSTERS = 64
IN_CLUSTER = 0.7


def synthetic(scale: float, seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(train, valid) binary user × item matrices at ``scale`` × Electronics size."""
    from gatrec.data.synth import ELECTRONICS

    rng = np.random.default_rng(seed)
    n_users = max(CLUSTERS, round(ELECTRONICS["users"] * scale))
    n_items = max(CLUSTERS * 4, round(ELECTRONICS["items"] * scale))
    target = round(ELECTRONICS["interactions"] * scale)
    # 5 + a geometric tail, scaled so the total matches (5-core: nobody has fewer than 5)
    extra = rng.geometric(1.0 / max(1.0, target / n_users - 4), n_users) - 1
    counts = 5 + extra
    users = np.repeat(np.arange(n_users), counts)
    user_cluster = rng.integers(0, CLUSTERS, n_users)[users]
    item_cluster = np.arange(n_items) % CLUSTERS
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    rng.shuffle(popularity)
    # inverse-CDF draws, globally and within each cluster
    order = np.argsort(item_cluster, kind="stable")
    cdf_all = np.cumsum(popularity) / popularity.sum()
    pop_sorted = popularity[order]
    starts = np.searchsorted(item_cluster[order], np.arange(CLUSTERS + 1))
    cum = np.cumsum(pop_sorted)
    lo = np.concatenate([[0.0], cum])[starts[:-1]]
    hi = cum[starts[1:] - 1]
    u = rng.random(len(users))
    in_c = rng.random(len(users)) < IN_CLUSTER
    c = user_cluster
    pos = np.searchsorted(cum, lo[c] + u * (hi[c] - lo[c]))
    items = np.where(in_c, order[np.minimum(pos, n_items - 1)], np.searchsorted(cdf_all, u).clip(max=n_items - 1))
    m = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    # leave one out: a random item of every user with at least 3
    valid_rows, valid_cols = [], []
    per_user = np.diff(m.indptr)
    held = np.flatnonzero(per_user >= 3)
    pick = m.indptr[held] + (rng.random(len(held)) * per_user[held]).astype(np.int64)
    valid_rows, valid_cols = held, m.indices[pick]
    keep = np.ones(m.nnz, dtype=bool)
    keep[pick] = False
    coo = m.tocoo()
    train = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=m.shape)
    valid = sp.csr_matrix((np.ones(len(held), dtype=np.float32), (valid_rows, valid_cols)), shape=m.shape)
    return train, valid


def models(train: sp.csr_matrix, graph: Any, device: torch.device) -> dict[str, Callable[[], Any]]:
    """Builders of the timed models (built one at a time, so each one's peak memory is its own)."""
    from gatrec.models.content_attention import content_keys
    from gatrec.models.gat import GAT, GATConfig
    from gatrec.models.lightgcn import LightGCN, LightGCNConfig

    nu, ni = train.shape

    def gat_content() -> GAT:
        cfg = GATConfig(attention_keys="interactions", attention_on="both")
        keys = content_keys("interactions", train, min(cfg.content_dim, cfg.dim))
        return GAT(nu, ni, cfg, graph, content=keys)

    width = GATConfig()
    return {
        "lightgcn_d64_l3": lambda: LightGCN(nu, ni, LightGCNConfig(dim=64, n_layers=3), graph),
        "lightgcn_gat_size": lambda: LightGCN(nu, ni, LightGCNConfig(dim=width.dim, n_layers=width.n_layers), graph),
        "gat": lambda: GAT(nu, ni, GATConfig(), graph),  # attention off: the default
        "gat_learned_attention": lambda: GAT(nu, ni, GATConfig(attention_on="both"), graph),
        "gat_content_keys": gat_content,
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(build: Callable[[], Any], train: sp.csr_matrix, valid: sp.csr_matrix,
               device: torch.device) -> dict[str, Any]:
    from gatrec.evaluate.ranking import evaluate_embeddings
    from gatrec.train.loop import adam
    from gatrec.train.sampler import BPRSampler

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = build().to(device)
    sync(device)
    res: dict[str, Any] = {"build_s": time.perf_counter() - t0}
    coo = train.tocoo()
    sampler = BPRSampler(coo.row, coo.col, train.shape[1], BATCH, seed=0)
    opt = adam(model.parameters(), 5e-3)

    def step(users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> None:
        loss, _ = model.loss(users.to(device), pos.to(device), neg.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    for n, batch in enumerate(sampler.epoch(0)):  # warm-up: kernels, allocator, cuSPARSE handles
        step(*batch)
        if n == 2:
            break
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for batch in sampler.epoch(1):
        step(*batch)
    sync(device)
    res.update(epoch_s=time.perf_counter() - t0, epoch_cpu_s=time.process_time() - c0,
               batches_per_epoch=len(sampler))
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        user_emb, item_emb = model.embeddings()
        metrics = evaluate_embeddings(user_emb, item_emb, train, valid)
    sync(device)
    res.update(evaluate_s=time.perf_counter() - t0, valid_ndcg_at_20_after_1_epoch=metrics["ndcg@20"])
    if device.type == "cuda":
        res["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the Electronics size (CPU check: 0.01)")
    ap.add_argument("--models", default="", help="comma-separated subset of the model names (default: all)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --device cpu --scale 0.01 for the CPU check")
    if args.threads:
        torch.set_num_threads(args.threads)
    from gatrec.models.base import TrainGraph

    t0 = time.perf_counter()
    train, valid = synthetic(args.scale)
    graph = TrainGraph.from_matrix(train, device)
    payload: dict[str, Any] = {
        "what": "one training epoch and one full evaluation per model, synthetic Electronics-size data",
        "device": str(device), "scale": args.scale, "n_users": train.shape[0], "n_items": train.shape[1],
        "n_train": int(train.nnz), "n_valid": int(valid.nnz), "batch_size": BATCH,
        "data_s": time.perf_counter() - t0, "loadavg_1m_start": os.getloadavg()[0], "models": {},
    }
    builders = models(train, graph, device)
    wanted = [m for m in args.models.split(",") if m] or list(builders)
    for name in wanted:
        print(f"[gpu_electronics] {name}", file=sys.stderr, flush=True)
        try:
            payload["models"][name] = time_model(builders[name], train, valid, device)
        except Exception as exc:  # noqa: BLE001 - record why one model failed, time the others
            payload["models"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps({name: payload["models"][name]}, default=float), flush=True)
    timed = payload["models"]
    for gat in ("gat", "gat_content_keys"):
        if "epoch_s" in timed.get(gat, {}) and "epoch_s" in timed.get("lightgcn_gat_size", {}):
            payload[f"ratio_{gat}_over_lightgcn_same_width"] = timed[gat]["epoch_s"] / timed["lightgcn_gat_size"]["epoch_s"]
    payload["loadavg_1m_end"] = os.getloadavg()[0]
    if device.type == "cuda":
        write_result("gpu_electronics", payload)
    else:
        out = REPO / "bench" / ".cache" / "gpu_electronics_cpu.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2, default=float) + "\n")
        print(f"wrote {out} (a CPU check of the script, not a result)")


if __name__ == "__main__":
    main()
