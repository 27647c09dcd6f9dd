"""kNN graph build time at 63k items (synthetic 128-d features): torch and faiss backends vs a reference.

The reference is the plainest correct brute force: blockwise dense `X_b @ X.T` + `topk` (a dense 63k × 63k
float matrix would need 16 GB, so it is cut in row blocks too), giving the directed top-k lists only. Our
`knn_graph` also symmetrises. Recall = share of the reference's directed (i, j) pairs present in our graph.

    .venv/bin/python bench/bench_knn.py [--items 63000] [--dim 128] [--k 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import machine  # noqa: E402

from gatrec.graph.knn import knn_graph  # noqa: E402


def reference(x: torch.Tensor, k: int, block: int = 2048) -> torch.Tensor:
    """Directed top-k neighbour ids [n, k] by blockwise dense matmul + topk (self excluded)."""
    xn = torch.nn.functional.normalize(x, dim=1)
    out = []
    for s in range(0, len(xn), block):
        sims = xn[s:s + block] @ xn.T
        rows = torch.arange(sims.shape[0])
        sims[rows, rows + s] = -torch.inf
        out.append(sims.topk(k, dim=1).indices)
    return torch.cat(out)


def recall(edge_index: torch.Tensor, ref: torch.Tensor, n: int) -> float:
    ours = set((edge_index[0] * n + edge_index[1]).tolist())
    want = (torch.arange(n).repeat_interleave(ref.shape[1]) * n + ref.reshape(-1)).tolist()
    return sum(e in ours for e in want) / len(want)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=63_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/knn.json")
    args = ap.parse_args()
    info = {**machine(), "loadavg_1m_at_start": os.getloadavg()[0]}
    x = torch.randn(args.items, args.dim, generator=torch.Generator().manual_seed(0))
    timings, results = {}, {}
    for backend in ("faiss", "torch"):  # warm up imports (faiss, torch_geometric) outside the timings
        knn_graph(x[:100].numpy(), 5, backend)
    t0 = time.perf_counter()
    with torch.inference_mode():
        ref = reference(x, args.k)
    timings["reference_blockwise_matmul_topk"] = time.perf_counter() - t0
    print(f"reference: {timings['reference_blockwise_matmul_topk']:.1f} s", file=sys.stderr)
    for backend in ("faiss", "torch"):
        t0 = time.perf_counter()
        edge_index, _ = knn_graph(x.numpy(), args.k, backend)
        timings[f"knn_graph_{backend}"] = time.perf_counter() - t0
        results[backend] = {"edges": int(edge_index.shape[1]), "recall_vs_reference": round(recall(edge_index, ref,
                            args.items), 5)}
        print(f"{backend}: {timings[f'knn_graph_{backend}']:.1f} s {results[backend]}", file=sys.stderr)
    result = {
        "benchmark": "item-item cosine kNN graph build", "items": args.items, "dim": args.dim, "k": args.k,
        "features": "synthetic standard normal, seed 0",
        "seconds": {k: round(v, 2) for k, v in timings.items()}, "backends": results,
        "auto_backend_at_this_size": "faiss" if args.items > 20_000 else "torch",
        "machine": info | {"loadavg_1m_at_end": os.getloadavg()[0]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
