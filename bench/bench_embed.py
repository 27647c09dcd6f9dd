"""Text-embedding throughput: `gatrec embed`'s text path vs sentence-transformers `model.encode` directly.

Same texts (amazon-office-2014 items, built exactly as `gatrec embed` builds them), same model, same batch
size, model already loaded for both. "ours" is the whole `run_embed` (read items, build + hash texts,
encode, write the cache, mean-fill, PCA fusion, write arrays) with a fresh cache; "ours_cached" reruns it
on a warm cache. Runs alternate so a busy machine slows both sides alike. Goal: ours/direct ≥ 0.9.

    .venv/bin/python bench/bench_embed.py [--items ../shared/data/amazon-office-2014/items.jsonl] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import machine  # noqa: E402

from gatrec.features.pipeline import EmbedConfig, run_embed  # noqa: E402
from gatrec.features.text import TextConfig, TextEncoder, item_texts  # noqa: E402


def prepared_folder(items_jsonl: Path, root: Path, limit: int | None) -> Path:
    rows = [json.loads(line) for line in items_jsonl.read_text().splitlines() if line.strip()][:limit]
    df = pd.DataFrame(rows)
    df["categories"] = df["categories"].map(lambda c: " > ".join(c) if isinstance(c, list) else (c or ""))
    for col in ("title", "description", "brand"):
        df[col] = df[col].fillna("").astype(str)
    df.insert(0, "item", np.arange(len(df), dtype=np.int32))
    root.mkdir(parents=True, exist_ok=True)
    df.to_parquet(root / "items.parquet", index=False)
    (root / "manifest.json").write_text(json.dumps({"n_items": len(df), "digest": "bench",
                                                    "source": {"path": str(items_jsonl.parent)}}))
    return root


def window_cost(model, texts: list[str], window: int, batch_size: int, sample: int) -> dict:
    """What reading ``window`` word pieces instead of the model's own window costs and saves: cosine of
    each text's vector to its full-window vector, and items/s of both, on the ``sample`` longest texts."""
    full = model.max_seq_length
    pieces = [len(ids) for ids in model.tokenizer(texts, add_special_tokens=True)["input_ids"]]
    longest = [texts[i] for i in np.argsort(pieces)[::-1][:sample]]
    out = {"model_window": full, "window": window, "texts_longer_than_window": int(sum(p > window for p in pieces)),
           "texts": len(texts), "sample": len(longest)}
    vecs, cpu = {}, {}
    for w in (full, window):
        model.max_seq_length = w
        t0 = time.process_time()
        with torch.inference_mode():
            vecs[w] = model.encode(longest, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        cpu[w] = time.process_time() - t0
    model.max_seq_length = full
    cos = (vecs[full] * vecs[window]).sum(axis=1)
    out.update(cosine_mean=round(float(cos.mean()), 4), cosine_p5=round(float(np.percentile(cos, 5)), 4),
               cosine_min=round(float(cos.min()), 4),
               cpu_ms_per_item={str(w): round(1000 * c / len(longest), 1) for w, c in cpu.items()})
    print(f"window {window} vs {full}: {out}", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=Path, default=REPO.parent / "shared/data/amazon-office-2014/items.jsonl")
    ap.add_argument("--limit", type=int, default=None, help="first N items only (quick runs)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--window-sample", type=int, default=400,
                    help="texts (the longest first) on which the word-piece window's cost is measured")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/embed_text.json")
    args = ap.parse_args()
    info = {**machine(), "loadavg_1m_at_start": os.getloadavg()[0]}
    work = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    try:
        data = prepared_folder(args.items, work / "prepared", args.limit)
        cfg_text = TextConfig(batch_size=args.batch_size)
        texts = item_texts(pd.read_parquet(data / "items.parquet"), cfg_text.fields, cfg_text.max_chars)
        n = len(texts)
        encoder = TextEncoder(cfg_text)
        model = encoder.model  # loaded once; run_embed reuses the same process-wide instance
        model.encode(texts[:64], batch_size=args.batch_size)  # warm-up
        window = window_cost(model, texts, cfg_text.max_seq_length, args.batch_size, args.window_sample)
        model.max_seq_length = cfg_text.max_seq_length  # the peer reads as many word pieces as ours
        direct, ours, ours_cached = [], [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True)
            direct.append(time.perf_counter() - t0)
            cfg = EmbedConfig(data=data, modalities=["text"], text=cfg_text, knn=None, cache_dir=work / f"cache{r}")
            t0 = time.perf_counter()
            run_embed(cfg)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            manifest = run_embed(cfg)
            ours_cached.append(time.perf_counter() - t0)
            assert manifest["arrays"]["text"]["encoded"] == 0
            print(f"repeat {r}: direct {n / direct[-1]:.1f} items/s, ours {n / ours[-1]:.1f} items/s, "
                  f"ours cached rerun {ours_cached[-1]:.2f} s", file=sys.stderr)
        best = {k: min(v) for k, v in (("direct", direct), ("ours", ours), ("ours_cached", ours_cached))}
        result = {
            "benchmark": "text embedding throughput, gatrec embed vs SentenceTransformer.encode",
            "dataset": str(args.items), "items": n, "unique_texts": len(set(texts)), "model": cfg_text.model,
            "batch_size": args.batch_size, "max_chars": cfg_text.max_chars, "repeats": args.repeats,
            "seconds": {"direct": direct, "ours": ours, "ours_cached_rerun": ours_cached},
            "items_per_s": {"direct": round(n / best["direct"], 2), "ours": round(n / best["ours"], 2),
                            "ours_cached_rerun": round(n / best["ours_cached"], 1)},
            "ratio_ours_over_direct": round(best["direct"] / best["ours"], 3), "goal_ratio": 0.9,
            "max_seq_length": cfg_text.max_seq_length, "window": window,
            "machine": info | {"loadavg_1m_at_end": os.getloadavg()[0]},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
