"""How far a trained GAT's attention is from uniform: the peer is the uniform-attention control, whose weights
are 1/deg by construction.

For each run folder of ``bench_quality.py`` (``bench/.cache/runs/DATASET/VARIANT/seedN``, the last
checkpoint), every attention layer's coefficients are computed by the layer's own PyG ``edge_updater`` (the
softmax over each node's neighbours) from the same inputs the model feeds it, and summarised over the nodes
with more than one neighbour: the total-variation distance of a node's attention from uniform
(``0.5 * sum_j |alpha_ij - 1/deg_i|``; 0 = uniform, 1 = all weight elsewhere) and the ratio of its largest to
its smallest neighbour weight (for DGCF-style intent routing, ``conv: intents``: each edge's shares among
the intents against 1/K). Results go to ``bench/results/attention.json``.

Example::

    .venv/bin/python bench/bench_attention.py --dataset amazon-office-2014 \\
        --variants gat-text-bpr,gat-text-knnatt,gat-text-uiatt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, machine  # noqa: E402

RUNS = REPO / "bench" / ".cache" / "runs"
RESULT = RESULTS / "attention.json"


def coefficients(conv: Any, x: torch.Tensor, graph: Any, degree: torch.Tensor) -> torch.Tensor:
    """The layer's attention coefficients per edge (mean over heads), as ``attend`` feeds the layer."""
    from gatrec.models.sparse_attention import coefficients as layer_coefficients

    return layer_coefficients(conv, x, graph, inv_sqrt=degree.clamp(min=1).rsqrt()).mean(dim=1)


def spread(alpha: torch.Tensor, dst: torch.Tensor, n: int) -> dict[str, float]:
    deg = torch.bincount(dst, minlength=n).float()
    tv = torch.zeros(n).index_add_(0, dst, (alpha - 1 / deg[dst]).abs()) / 2
    top = torch.zeros(n).index_reduce_(0, dst, alpha, "amax", include_self=False)
    low = torch.full((n,), float("inf")).index_reduce_(0, dst, alpha, "amin", include_self=False)
    several = deg > 1
    ratio, tv = (top / low)[several], tv[several]
    return {"nodes": int(several.sum()), "tv_mean": float(tv.mean()), "tv_p95": float(tv.quantile(0.95)),
            "ratio_median": float(ratio.median()), "ratio_p95": float(ratio.quantile(0.95))}


def spread_shares(share: torch.Tensor) -> dict[str, float]:
    """The same summary for intent routing (``share`` (E, K)): per edge, its shares against 1/K each."""
    k = share.shape[1]
    tv, ratio = (share - 1 / k).abs().sum(1) / 2, share.max(1).values / share.min(1).values
    return {"nodes": int(share.shape[0]), "tv_mean": float(tv.mean()), "tv_p95": float(tv.quantile(0.95)),
            "ratio_median": float(ratio.median()), "ratio_p95": float(ratio.quantile(0.95))}


def measure(run: Path) -> dict[str, dict[str, float]]:
    """Per learned attention layer of the run's last checkpoint: its spread from uniform."""
    from gatrec.models import get
    from gatrec.models.base import TrainGraph
    from gatrec.models.intent_attention import intent_layer, routes
    from gatrec.models.sparse_attention import attend
    from gatrec.train import checkpoint
    from gatrec.train.config import TrainConfig
    from gatrec.train.export import RunFolder
    from gatrec.train.inputs import DatasetInputs

    folder = RunFolder.at(run)
    hp = TrainConfig.model_validate(folder.config()).model_hparams()
    if hp.attention_keys != "embeddings" or (hp.negative_slope != 1.0 and hp.conv != "intents"):
        raise SystemExit(f"{run}: only the default attention form (linear logits over the embeddings) is measured")
    ds = folder.dataset()
    model = get("gat").build(ds, hp, TrainGraph.from_dataset(ds), DatasetInputs(ds))
    model.load_state_dict(checkpoint.load(folder.checkpoint_file)["model"])
    model.eval()
    out = {}
    learned = lambda conv: hasattr(conv, "parametrizations")  # noqa: E731  (frozen layers stay uniform)
    with torch.no_grad():
        x = model.ego()
        for depth in range(1, hp.n_layers + 1) if model.intents else ():  # DGCF-style: shares per edge
            share = routes(x, model.ui_graph, hp.intents, hp.intent_temperature)
            out[f"user-item layer {depth}, intent shares per edge"] = spread_shares(share)
            x = intent_layer(x, model.ui_graph, hp.intents, hp.intent_temperature)
        for depth, conv in enumerate(model.convs, 1):
            if learned(conv):
                alpha = coefficients(conv, x, model.ui_graph, model.degree)
                out[f"user-item layer {depth}"] = spread(alpha, model.ui_graph.edge_index[1], model.ui_graph.n)
            x = attend(conv, x, model.ui_graph, model.edge_attr, model.degree)
        if model.knn_conv is not None and learned(model.knn_conv):
            g = model.knn_graph
            alpha = coefficients(model.knn_conv, model.embedding[model.n_users:], g, model.knn_degree)
            out["item-item layer"] = spread(alpha, g.edge_index[1], g.n)
    return out


def report(d: dict[str, Any]) -> list[str]:
    lines = ["## How far the learned attention is from uniform (issue 14)", "",
             "What: at the end of training (last checkpoint of each `bench_quality.py` run), each learned attention "
             "layer's coefficients from the layer's own `edge_updater`, over the nodes with more than one "
             "neighbour: the total-variation distance of a node's attention from uniform (0 = uniform, the "
             "control's by construction) and its largest / smallest neighbour weight; for DGCF-style intent "
             "routing, each edge's shares among the intents against 1/K. Mean over seeds. How: "
             "`bench/bench_attention.py`.", "",
             "| dataset | variant | seeds | layer | TV from uniform, mean | TV, p95 | max / min weight, median "
             "| max / min, p95 |", "|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    seeds: dict[tuple[str, str], list[str]] = {}
    for key, layers in sorted(d["runs"].items()):
        dataset, variant, seed = key.split("/")
        seeds.setdefault((dataset, variant), []).append(seed)
        for layer, stats in layers.items():
            groups.setdefault((dataset, variant, layer), []).append(stats)
    for (dataset, variant, layer), rows in groups.items():
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
        lines.append(f"| {dataset} | {variant} | {','.join(seeds[dataset, variant])} | {layer} | "
                     f"{mean['tv_mean']:.4f} | {mean['tv_p95']:.4f} | {mean['ratio_median']:.3f} | "
                     f"{mean['ratio_p95']:.3f} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="amazon-office-2014")
    ap.add_argument("--variants", default="gat-text-bpr,gat-text-knnatt,gat-text-uiatt")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    payload = json.loads(RESULT.read_text()) if RESULT.exists() else {"benchmark": "attention", "runs": {}}
    for variant in args.variants.split(","):
        for seed in args.seeds.split(","):
            run = RUNS / args.dataset / variant / f"seed{seed}"
            if not (run / "checkpoints" / "last.pt").is_file():
                raise SystemExit(f"{run} is missing: run bench/bench_quality.py for {variant} seed {seed} first")
            payload["runs"][f"{args.dataset}/{variant}/{seed}"] = measure(run)
            print(variant, seed, json.dumps(payload["runs"][f"{args.dataset}/{variant}/{seed}"]))
    payload["machine"] = machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = RESULT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(RESULT)
    print("\n".join(report(payload)))


if __name__ == "__main__":
    main()
