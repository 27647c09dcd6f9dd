"""Ranking quality of every model under one protocol: mean ± std over seeds of test metrics at the best-valid epoch.

Each (dataset, variant, seed) is one ``gatrec.train.loop.train`` run with the same early-stopping rule (valid
NDCG@20, ``eval_every`` 1, patience 20). Datasets are prepared once (mmrec split, seed 0) into
``bench/.cache/data``; run folders go to ``bench/.cache/runs`` and resume if killed. Results are merged into
``bench/results/quality.json`` under the key ``dataset/variant/seed``, so the benchmark runs in pieces and
skips keys already done (``--redo`` reruns them). Variants and their hyper-parameters come from
``--configs`` (default ``bench/quality_configs.yaml``); the config of every run is recorded.

Example::

    .venv/bin/python bench/bench_quality.py --datasets amazon-office-2014 --models pop,mf,lightgcn --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, machine, require_shared  # noqa: E402

CACHE = REPO / "bench" / ".cache"
DEFAULT_CONFIGS = REPO / "bench" / "quality_configs.yaml"
RESULT = RESULTS / "quality.json"
SUMMARY_METRICS = ("test_recall@20", "test_ndcg@20", "valid_ndcg@20", "best_epoch", "epochs_run",
                   "seconds_per_epoch", "train_seconds_per_epoch", "wall_seconds")


def prepared(name: str) -> Path:
    """The mmrec/seed-0 prepared copy of shared dataset ``name`` (prepared once, then reused)."""
    from gatrec.data.prepare import prepare_dataset

    out = CACHE / "data" / name
    if not (out / "manifest.json").is_file():
        print(f"preparing {name} -> {out}", flush=True)
        prepare_dataset(require_shared(name), out, split="mmrec", seed=0)
    return out


def ensure_features(data: Path, needs: str | None) -> None:
    """Run ``gatrec embed`` once on ``data`` when a variant needs item features (image weights: random)."""
    if not needs or (data / "features" / "features.json").is_file():
        return
    # A content-keyed cache shared by every dataset: a rerun after a prepare change re-embeds nothing.
    cmd = [sys.executable, "-m", "gatrec", "embed", "--data", str(data), "--image-weights", "none",
           "--cache-dir", str(CACHE / "embed-cache")]
    print("embedding:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise read-merge-write of quality.json between concurrent bench processes."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / ".quality.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_results() -> dict[str, Any]:
    if RESULT.is_file():
        return json.loads(RESULT.read_text())
    return {"benchmark": "quality", "runs": {}}


def _write(payload: dict[str, Any]) -> None:
    tmp = RESULT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    os.replace(tmp, RESULT)


def summarise(runs: dict[str, Any]) -> list[dict[str, Any]]:
    """Mean and std over seeds per (dataset, variant)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs.values():
        groups.setdefault((r["dataset"], r["variant"]), []).append(r)
    rows = []
    for (ds, var), rs in sorted(groups.items()):
        row: dict[str, Any] = {"dataset": ds, "variant": var, "model": rs[0]["model"],
                               "seeds": sorted(r["seed"] for r in rs)}
        for m in SUMMARY_METRICS:
            vals = [r[m] for r in rs if r.get(m) is not None]
            if vals:
                row[m] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
        rows.append(row)
    return rows


def _is_protocol(protocol: dict[str, Any]) -> bool:
    return protocol["configs_file"] == str(DEFAULT_CONFIGS.relative_to(REPO))


def refresh_protocol(protocol: dict[str, Any]) -> None:
    """Record the protocol's variants as the configs file has them now, so variants moved into it from the
    exploration file are reported as protocol rows without rerunning them (each run keeps its own config)."""
    with _locked():
        payload = load_results()
        if payload.get("runs") and payload.get("protocol", {}).get("variants") != protocol["variants"]:
            payload["protocol"] = protocol
            _write(payload)


def record(key: str, entry: dict[str, Any], protocol: dict[str, Any]) -> None:
    """Merge one run into quality.json; the protocol (variants and all) only when it is the default configs
    file, so exploration runs (``--configs bench/quality_explore.yaml``) are recorded beside it, apart."""
    with _locked():
        payload = load_results()
        here = machine()
        payload["runs"][key] = {**entry, "configs_file": protocol["configs_file"], "machine": here}
        if _is_protocol(protocol):
            # The header's machine is the protocol runs' one: exploration runs elsewhere keep theirs per run.
            payload["protocol"] = protocol
            payload["machine"] = here
        payload["summary"] = summarise(payload["runs"])
        _write(payload)


def run_one(data: Path, dataset: str, variant: str, spec: dict[str, Any], seed: int, threads: int,
            defaults: dict[str, Any]) -> dict[str, Any]:
    """Train one (dataset, variant, seed); ``defaults`` already holds the dataset's protocol overrides."""
    from gatrec.train.config import TrainConfig
    from gatrec.train.loop import train

    values = {**defaults, **{k: v for k, v in spec.items() if k not in ("datasets", "features_needed")},
              "seed": seed, "device": "cpu"}
    config = TrainConfig.build(values)
    out = CACHE / "runs" / dataset / variant / f"seed{seed}"
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    m = train(data, config, out, resume=True, overwrite=False, threads=threads)
    wall = time.perf_counter() - t0
    hist = m["history"]
    fman = data / "features" / "features.json"
    # Which feature arrays existed (office has no images: `embed` skips them and "fused" is PCA of text alone).
    arrays = sorted(json.loads(fman.read_text())["arrays"]) if fman.is_file() else []
    return {
        "dataset": dataset, "variant": variant, "model": config.model, "seed": seed,
        "test_recall@20": m["test"].get("recall@20"), "test_ndcg@20": m["test"].get("ndcg@20"),
        "valid_recall@20": m["valid"].get("recall@20"), "valid_ndcg@20": m["valid"].get("ndcg@20"),
        "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"],
        "seconds_per_epoch": m["seconds_per_epoch"],
        "train_seconds_per_epoch": (statistics.fmean(h["train_seconds"] for h in hist) if hist else None),
        "wall_seconds": wall, "threads": threads, "loadavg_1m_start": load0, "loadavg_1m_end": os.getloadavg()[0],
        "config": config.model_dump(mode="json"), "data_digest": m["data"]["digest"],
        "n_users": m["data"]["n_users"], "n_items": m["data"]["n_items"], "feature_arrays": arrays,
    }


def select(variants: dict[str, Any], patterns: list[str]) -> list[str]:
    """Variant names matching any of ``patterns`` (exact names or globs such as ``gat-*``), in file order."""
    return [v for v in variants if any(fnmatch.fnmatchcase(v, p) for p in patterns)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="amazon-office-2014,amazon-beauty-2014")
    ap.add_argument("--models", default="pop,mf,lightgcn", help="variant names or globs from --configs")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--configs", type=Path, default=DEFAULT_CONFIGS)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run (1 is fastest on a busy box)")
    ap.add_argument("--redo", action="store_true", help="rerun keys already in quality.json")
    args = ap.parse_args(argv)

    spec = yaml.safe_load(args.configs.read_text())
    defaults, variants = spec.get("defaults", {}), spec["variants"]
    per_dataset = spec.get("dataset_overrides", {})
    names = select(variants, args.models.split(","))
    if not names:
        raise SystemExit(f"no variant in {args.configs} matches {args.models!r}; have {', '.join(variants)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    cfg_file = args.configs.resolve()
    protocol = {"split": "mmrec (seed 0)", "defaults": defaults, "dataset_overrides": per_dataset,
                "configs_file": str(cfg_file.relative_to(REPO) if cfg_file.is_relative_to(REPO) else cfg_file),
                "variants": variants}
    import gatrec.models

    if _is_protocol(protocol):
        refresh_protocol(protocol)
    for dataset in args.datasets.split(","):
        data = None
        for variant in names:
            vspec = variants[variant]
            if "datasets" in vspec and dataset not in vspec["datasets"]:
                continue
            if vspec["model"] not in gatrec.models.names():
                print(f"skip {variant}: model {vspec['model']!r} is not in the registry yet", flush=True)
                continue
            for seed in seeds:
                key = f"{dataset}/{variant}/{seed}"
                if not args.redo and key in load_results()["runs"]:
                    print(f"done already: {key}", flush=True)
                    continue
                data = data or prepared(dataset)
                ensure_features(data, vspec.get("features_needed"))
                print(f"run {key} (load {os.getloadavg()[0]:.1f})", flush=True)
                entry = run_one(data, dataset, variant, vspec, seed, args.threads,
                                {**defaults, **per_dataset.get(dataset, {})})
                if needs := vspec.get("features_needed"):  # which embedding the run read (re-embedding moves it)
                    arrays = json.loads((data / "features" / "features.json").read_text())["arrays"]
                    entry["features_sha256"] = arrays[needs]["sha256"]
                record(key, entry, protocol)
                print(f"  {key}: test ndcg@20 {entry['test_ndcg@20']:.4f} recall@20 {entry['test_recall@20']:.4f}"
                      f" best epoch {entry['best_epoch']}/{entry['epochs_run']}"
                      f" {entry['wall_seconds']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
