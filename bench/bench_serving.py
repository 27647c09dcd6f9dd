"""Serving benchmark: ``bentoml serve`` of the champion beside ``mlflow models serve`` of the same model.

A synthetic Electronics-size champion (63,001 items, 192,403 users, dim 64; random embeddings, ~8
training items per user, Zipf popularity) and a 500,000-item one. For each: 32 concurrent closed-loop
clients (asyncio + aiohttp, one keep-alive connection each) post ``/recommend`` (known users, k = 10)
for 30 s; p50/p95/p99 latency, requests/s and errors. Beside it, in the same run: the in-process
ceiling (the scorer called directly, one query per call and 32 per call) and the peer a user would
otherwise run, ``mlflow models serve`` of the same model folder as a pyfunc. At 500k items, also the
approximate index (FAISS IVF) in process: recall@10 against the exact top-K and its latency.

The client shares the 2 cores with the server; the load average is recorded at start and end.

Example::

    nice -n 10 .venv/bin/python bench/bench_serving.py            # both sizes, 30 s each
    .venv/bin/python bench/bench_serving.py --sizes 63001 --duration 10 --no-mlflow
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, timed, write_result  # noqa: E402

sys.path.insert(0, str(REPO))
from gatrec.serve.topk import Catalogue, Query  # noqa: E402

VENV_BIN = Path(sys.executable).parent
N_USERS, DIM = 192_403, 64


def make_folder(path: Path, n_items: int, n_users: int = N_USERS, dim: int = DIM, seed: int = 0) -> Path:
    """A registered-model folder (the layout of gatrec/serve/topk.py) with random embeddings."""
    if (path / "model.json").is_file():
        return path
    rng = np.random.default_rng(seed)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "item_embeddings.npy", (rng.standard_normal((n_items, dim), dtype=np.float32) * 0.1))
    np.save(tmp / "user_embeddings.npy", (rng.standard_normal((n_users, dim), dtype=np.float32) * 0.1))
    popularity = rng.zipf(1.3, n_items).clip(max=100_000).astype(np.float32)
    per_user = rng.poisson(8, n_users).clip(min=1)
    indptr = np.concatenate([[0], np.cumsum(per_user)]).astype(np.int64)
    p = popularity / popularity.sum()
    indices = rng.choice(n_items, size=int(indptr[-1]), p=p).astype(np.int32)
    np.savez(tmp / "seen.npz", indptr=indptr, indices=indices)
    np.save(tmp / "popularity.npy", popularity)
    (tmp / "user_ids.json").write_text(json.dumps([f"u{u}" for u in range(n_users)]))
    (tmp / "item_ids.json").write_text(json.dumps([f"i{i}" for i in range(n_items)]))
    (tmp / "model.json").write_text(json.dumps({"model": "synthetic", "dim": dim, "n_users": n_users,
                                                "n_items": n_items, "scoring": "dot"}))
    os.replace(tmp, path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(cmd: list[str], env: dict[str, str], ready_url: str, log: Path, timeout: float = 300):
    """Start a server process group, wait for ``ready_url``, yield the cold-start seconds, then stop it."""
    import requests

    started = time.monotonic()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited: {log.read_text(errors='replace')[-3000:]}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{cmd[0]} not ready in {timeout}s: {log.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(ready_url, timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield time.monotonic() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


async def _load(url: str, bodies: list[bytes], clients: int, duration: float,
                rate: float | None = None) -> dict[str, Any]:
    """Closed loop (each client sends its next request when the last is answered), or with ``rate``
    (requests/s in all) open loop: each client sends on a fixed schedule and a request's latency counts
    from its scheduled time, so a stalled server is not hidden by clients that wait (coordinated omission)."""
    import aiohttp

    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + duration
    headers = {"content-type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=10)

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        i, sent = n, 0
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            body = bodies[i % len(bodies)]
            i += clients
            t0 = time.perf_counter()
            if rate:
                t0 = start + (n / clients + sent) * clients / rate
                sent += 1
                if t0 >= deadline:
                    break
                await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    ok = resp.status == 200
                    key = str(resp.status)
            except (TimeoutError, aiohttp.ClientError) as exc:
                ok, key = False, type(exc).__name__
            if ok:
                latencies.append(time.perf_counter() - t0)
            else:
                errors[key] = errors.get(key, 0) + 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(n, session) for n in range(clients)))
        wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1e3
    pct = np.percentile(lat, [50, 95, 99]) if lat.size else [float("nan")] * 3
    return {"mode": f"open loop at {rate:.0f} requests/s" if rate else "closed loop",
            "requests": int(lat.size), "errors": sum(errors.values()), "error_kinds": errors,
            "seconds": round(wall, 1), "rps": round(lat.size / wall, 1), "p50_ms": round(float(pct[0]), 2),
            "p95_ms": round(float(pct[1]), 2), "p99_ms": round(float(pct[2]), 2),
            "mean_ms": round(float(lat.mean()), 2) if lat.size else None}


def sequential(url: str, bodies: list[bytes], duration: float) -> dict[str, Any]:
    """One client, one request at a time: the latency of a request that waits for nothing."""
    out = asyncio.run(_load(url, bodies, 1, duration))
    return {k: out[k] for k in ("requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms", "mean_ms")}


def load(url: str, bodies: list[bytes], clients: int, duration: float,
         open_fractions: tuple[float, ...] = ()) -> dict[str, Any]:
    """Closed-loop figures; then open-loop runs at each of ``open_fractions`` of the closed-loop
    throughput (``open_loop``, a list): 32 clients without think time keep 32 requests queued, so the
    closed-loop latency is 32 / throughput (Little's law), while the open-loop one is what a client sees
    below saturation. ``sequential``: one client at a time, the floor."""
    warm = asyncio.run(_load(url, bodies, clients, min(3.0, duration)))  # connections, first-call costs
    out = asyncio.run(_load(url, bodies, clients, duration))
    out["warmup_requests"] = warm["requests"]
    out["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    out["sequential"] = sequential(url, bodies, min(10.0, duration))
    if out["rps"] > 0:
        out["open_loop"] = [asyncio.run(_load(url, bodies, clients, duration / 2, rate=f * out["rps"]))
                            for f in open_fractions]
    return out


def product_paths(cat: Catalogue, batches: tuple[int, ...] = (1, 4, 8, 16, 32, 64), reps: int = 15) -> dict[str, Any]:
    """ms per call of the score product: ``gatrec.serve.topk.product`` against the plain
    ``rows @ items.T`` (a one-row query taken as two), median of ``reps``, one BLAS thread."""
    import threadpoolctl

    from gatrec.serve.topk import product

    def plain(rows: np.ndarray) -> np.ndarray:
        return (np.repeat(rows, 2, axis=0) @ cat.item_emb.T)[:1] if rows.shape[0] == 1 else rows @ cat.item_emb.T

    def median_ms(fn: Any) -> float:
        return round(timed(fn, repeat=reps)["median_s"] * 1e3, 3)

    threadpoolctl.threadpool_limits(1, user_api="blas")
    rows = cat.user_emb[:max(batches)]
    return {str(b): {"sliced_ms": median_ms(lambda b=b: product(rows[:b], cat.item_emb)),
                     "plain_ms": median_ms(lambda b=b: plain(rows[:b]))} for b in batches}


def in_process(cat: Catalogue, users: list[str], seconds: float = 5.0) -> dict[str, Any]:
    """Queries/s of the scorer itself: one query per call, and 32 per call (what batching buys), with one
    BLAS thread as in the service."""
    import threadpoolctl

    threadpoolctl.threadpool_limits(1, user_api="blas")
    out = {}
    for batch in (1, 32):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            cat.recommend([Query(user_id=users[(n + j) % len(users)]) for j in range(batch)])
            n += batch
        wall = time.perf_counter() - t0
        out[f"batch_{batch}"] = {"qps": round(n / wall, 1), "ms_per_call": round(wall / (n / batch) * 1e3, 3)}
    return out


def ann_recall(cat: Catalogue, users: list[str], k: int = 10, n_queries: int = 500,
               lists: int = 1024, nprobes: tuple[int, ...] = (16, 64, 256)) -> dict[str, Any]:
    """recall@k of the IVF index against the exact top-K, and its in-process time, at several nprobe."""
    from gatrec.serve.ann import ApproxIndex

    t0 = time.perf_counter()
    index = ApproxIndex(cat.item_emb, cat.item_bias, kind="ivf", ivf_lists=lists)
    build_s = time.perf_counter() - t0
    queries = [Query(user_id=u, k=k) for u in users[:n_queries]]
    t0 = time.perf_counter()
    exact = cat.recommend(queries)
    exact_s = time.perf_counter() - t0
    out: dict[str, Any] = {"index": f"IVF{lists},Flat", "build_s": round(build_s, 1), "queries": n_queries,
                           "exact_ms_per_query_batched": round(exact_s / n_queries * 1e3, 3), "nprobe": {}}
    cat.index = index
    try:
        for nprobe in nprobes:
            index.index.nprobe = nprobe
            t0 = time.perf_counter()
            approx = cat.recommend(queries)
            approx_s = time.perf_counter() - t0
            recall = np.mean([len(set(a.item_ids) & set(e.item_ids)) / k for a, e in zip(approx, exact, strict=True)])
            out["nprobe"][str(nprobe)] = {f"recall_at_{k}": round(float(recall), 4),
                                          "ms_per_query_batched": round(approx_s / n_queries * 1e3, 3)}
    finally:
        cat.index = None
    return out


def bento_store_model(home: Path, folder: Path, name: str) -> str:
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    code = ("import bentoml, shutil, sys, pathlib\n"
            "from bentoml.exceptions import NotFound\n"
            f"tag = {name!r}\n"
            "try:\n    bentoml.models.get(tag)\nexcept NotFound:\n"
            "    with bentoml.models.create(tag, labels={'registry_version': 'bench'}) as m:\n"
            f"        [shutil.copy2(f, pathlib.Path(m.path) / f.name) for f in pathlib.Path({str(folder)!r}).iterdir()]\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return name


def mlflow_model(folder: Path, dest: Path) -> Path:
    """The same folder as the registered pyfunc (models from code), saved locally for ``mlflow models serve``."""
    if (dest / "MLmodel").is_file():
        return dest
    code = ("import sys, pathlib, tempfile, mlflow\n"
            "from gatrec.registry import pyfunc\n"
            "from gatrec.registry.package import SIGNATURE\n"
            "tmp = pathlib.Path(tempfile.mkdtemp())\n"
            f"mlflow.pyfunc.save_model({str(dest)!r}, python_model=str(pyfunc.__file__), "
            f"artifacts={{'model': {str(folder)!r}}}, signature=SIGNATURE, code_paths=pyfunc.code_paths(tmp))\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    return dest


def bench_size(n_items: int, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    folder = make_folder(work / f"model-{n_items}", n_items)
    cat = Catalogue(folder)
    rng = np.random.default_rng(1)
    users = [f"u{u}" for u in rng.integers(0, N_USERS, 4096)]
    bodies = [json.dumps({"user_id": u, "k": 10}).encode() for u in users]
    result: dict[str, Any] = {"n_items": n_items, "n_users": N_USERS, "dim": DIM,
                              "loadavg_1m_start": round(os.getloadavg()[0], 2)}
    result["in_process"] = in_process(cat, users)
    result["product_paths"] = product_paths(cat)
    print(n_items, "in-process", result["in_process"], result["product_paths"], flush=True)
    if n_items >= args.ann_above:
        result["ann"] = ann_recall(cat, users)
        print(n_items, "ann", result["ann"], flush=True)
    del cat

    home = work / "bentoml"
    tag = bento_store_model(home, folder, f"bench{n_items}:v1")
    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    if args.workers:
        env["BENTOML_CONFIG_OPTIONS"] = f"services.gatrec.workers={args.workers}"
    cmd = [str(VENV_BIN / "bentoml"), "serve", "service:Gatrec", "--host", "127.0.0.1", "--port", str(port),
           "--arg", f"model={tag}"]
    with serving(cmd, env, f"http://127.0.0.1:{port}/readyz", work / f"bento-{n_items}.log") as cold:
        result["bentoml"] = {"cold_start_s": round(cold, 1), "workers": args.workers or os.cpu_count(),
                             **load(f"http://127.0.0.1:{port}/recommend", bodies, args.clients, args.duration,
                                    tuple(args.open_fractions))}
    print(n_items, "bentoml", result["bentoml"], flush=True)

    if not args.no_mlflow:
        model = mlflow_model(folder, work / f"mlflow-{n_items}")
        port = free_port()
        mbodies = [json.dumps({"dataframe_records": [{"user_id": u, "k": 10}]}).encode() for u in users]
        cmd = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", str(model), "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port)]
        env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        with serving(cmd, env, f"http://127.0.0.1:{port}/ping", work / f"mlflow-{n_items}.log") as cold:
            result["mlflow"] = {"cold_start_s": round(cold, 1),
                                **load(f"http://127.0.0.1:{port}/invocations", mbodies, args.clients, args.duration)}
        print(n_items, "mlflow", result["mlflow"], flush=True)
        result["rps_ratio_vs_mlflow"] = round(result["bentoml"]["rps"] / max(result["mlflow"]["rps"], 1e-9), 1)
    result["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[63_001, 500_000])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=0, help="service workers (0: the service's, one per CPU)")
    ap.add_argument("--open-fractions", type=float, nargs="*", default=[0.1, 0.25, 0.5],
                    help="also run bentoml open loop at these shares of its closed-loop requests/s")
    ap.add_argument("--ann-above", type=int, default=400_000, help="measure the approximate index from this size")
    ap.add_argument("--no-mlflow", action="store_true")
    ap.add_argument("--work", type=Path, default=REPO / "bench" / ".cache" / "serving")
    ap.add_argument("--out", default="serving")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    runs = {str(n): bench_size(n, args.work, args) for n in args.sizes}
    first = runs.get("63001")
    goals = None
    if first:
        under = [r["rps"] for r in first["bentoml"].get("open_loop") or [] if r["p99_ms"] <= 15 and not r["errors"]]
        goals = {"p99_ms_le_15": first["bentoml"]["p99_ms"] <= 15,
                 "open_loop_p99_ms_le_15": bool(under), "highest_rate_with_p99_le_15": max(under, default=None),
                 "zero_errors": first["bentoml"]["errors"] == 0,
                 "rps_ge_5x_mlflow": (first.get("rps_ratio_vs_mlflow") or 0) >= 5 if "mlflow" in first else None}
    write_result(args.out, {"clients": args.clients, "duration_s": args.duration, "endpoint": "/recommend",
                            "k": 10, "runs": runs, "goals_63k": goals})


if __name__ == "__main__":
    main()
