"""Two trainings at once on one machine: each one's speed as a share of its speed alone.

The same synthetic GAT (`gatrec synth` defaults, `--features none`) is trained for a few epochs alone, then
twice at the same time, as separate `gatrec train` processes. "shared" is gatrec's default thread sizing
(`gatrec.threads`: the CPUs the process may use, split between the gatrec processes running); the peer,
"all cores each", is what torch does by itself (`GATREC_THREADS` = every CPU in both processes). Speed =
median seconds per epoch over epochs 2.. (epoch 1 warms up). Goal: concurrent ≥ 0.4× solo speed each (a
fair share of 2 cores is 0.5×). The processes use a private share folder, so other gatrec jobs on the
machine are not counted (their load is recorded beside the result).

    .venv/bin/python bench/bench_concurrency.py [--epochs 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine, write_result  # noqa: E402

GATREC = [sys.executable, "-m", "gatrec"]


def _train_cmd(data: Path, out: Path, epochs: int) -> list[str]:
    return [*GATREC, "train", "--data", str(data), "--model", "gat", "--features", "none", "--epochs",
            str(epochs), "--patience", str(epochs), "--out", str(out), "--overwrite", "--no-mlflow"]


def _epoch_seconds(run: Path) -> dict[str, float]:
    history = json.loads((run / "metrics.json").read_text())["history"][1:]
    return {"s_per_epoch": statistics.median(h["seconds"] for h in history),
            "train_s_per_epoch": statistics.median(h["train_seconds"] for h in history)}


def _trainings(n: int, data: Path, root: Path, epochs: int, env: dict[str, str]) -> list[dict[str, float]]:
    """``n`` trainings started together; each one's median seconds per epoch."""
    outs = [root / f"run{i}" for i in range(n)]
    procs = [subprocess.Popen(_train_cmd(data, out, epochs), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for out in outs]
    for p in procs:
        _, err = p.communicate(timeout=1800)
        if p.returncode:
            raise SystemExit(f"training failed ({p.returncode}):\n{err[-3000:]}")
    return [_epoch_seconds(out) for out in outs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2, help="solo/concurrent pairs per mode, interleaved")
    args = ap.parse_args()
    info = machine() | {"loadavg_1m_at_start": os.getloadavg()[0]}
    cpus = len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="bench-concurrency-"))
    try:
        base = {**os.environ, "GATREC_NO_MLFLOW": "1", "PYTHONPATH": str(REPO),
                "GATREC_THREADS_DIR": str(work / "share")}
        base.pop("GATREC_THREADS", None)
        subprocess.run([*GATREC, "synth", "--out", str(work / "raw")], env=base, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([*GATREC, "prepare", "--input", str(work / "raw"), "--out", str(work / "data")],
                       env=base, check=True, stdout=subprocess.DEVNULL)
        modes = {"shared": base, "all_cores_each": {**base, "GATREC_THREADS": str(cpus)}}
        raw: dict[str, dict[str, list]] = {m: {"solo": [], "concurrent": []} for m in modes}
        for r in range(args.rounds):
            for mode, env in modes.items():
                t0 = time.perf_counter()
                raw[mode]["solo"] += _trainings(1, work / "data", work / mode, args.epochs, env)
                raw[mode]["concurrent"] += _trainings(2, work / "data", work / mode, args.epochs, env)
                print(f"round {r} {mode}: {time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f}",
                      file=sys.stderr, flush=True)
        result_modes = {}
        for mode, runs in raw.items():
            solo = statistics.median(x["s_per_epoch"] for x in runs["solo"])
            conc = [x["s_per_epoch"] for x in runs["concurrent"]]
            worst = max(conc)
            result_modes[mode] = {
                "solo_s_per_epoch": round(solo, 3),
                "concurrent_s_per_epoch": [round(x, 3) for x in conc],
                "concurrent_speed_over_solo_worst": round(solo / worst, 3),
                "concurrent_speed_over_solo_median": round(solo / statistics.median(conc), 3),
                "runs": runs}
        # The conservative reference: the fastest solo run of either mode (a solo run in `shared` mode can
        # take one thread while the lagging load average still counts the previous step).
        fastest_solo = min(x["s_per_epoch"] for runs in raw.values() for x in runs["solo"])
        vs_fastest = fastest_solo / max(result_modes["shared"]["concurrent_s_per_epoch"])
        result = {
            "benchmark": "two concurrent trainings vs one alone (synthetic GAT, features none)",
            "epochs": args.epochs, "rounds": args.rounds, "cpus_available": cpus, "goal_speed_ratio": 0.4,
            "modes": result_modes,
            "fastest_solo_s_per_epoch": round(fastest_solo, 3),
            "shared_concurrent_speed_over_fastest_solo_worst": round(vs_fastest, 3),
            "goal_met": min(result_modes["shared"]["concurrent_speed_over_solo_worst"], vs_fastest) >= 0.4,
            "machine": info | {"loadavg_1m_at_end": os.getloadavg()[0]},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = write_result("concurrency", result)
    print(json.dumps({k: v for k, v in result.items() if k != "modes"} | {
        m: {k: v for k, v in d.items() if k != "runs"} for m, d in result["modes"].items()}, indent=2))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()


def report(d: dict) -> list[str]:
    """The BENCHMARKS.md section (bench/report.py)."""
    from report import machine_line

    lines = [
        "## Two trainings at once (issue 17)",
        "",
        f"What: the synthetic GAT (`gatrec synth` defaults, features none), {d['epochs']} epochs, trained alone "
        f"and as two `gatrec train` processes at once on {d['cpus_available']} CPUs, {d['rounds']} interleaved "
        "rounds; median s/epoch over epochs 2.. (validation included). `shared`: gatrec's thread sizing "
        "(`gatrec/threads.py`: the CPUs a process may use, split between running gatrec processes). Peer: "
        "`all cores each` (GATREC_THREADS = every CPU, what torch does by itself). Goal: each concurrent "
        f"training ≥ {d['goal_speed_ratio']}× its solo speed (`bench/bench_concurrency.py`).",
        "",
        machine_line(d.get("machine")),
        "",
        "| threads | solo s/epoch | concurrent s/epoch (each) | speed vs solo (slower one) | goal met |",
        "|---|---|---|---|---|",
    ]
    for mode, m in d["modes"].items():
        ratio = m["concurrent_speed_over_solo_worst"]
        lines.append(f"| {mode.replace('_', ' ')} | {m['solo_s_per_epoch']:.2f} | "
                     f"{', '.join(f'{x:.2f}' for x in m['concurrent_s_per_epoch'])} | {ratio:.2f} | "
                     f"{'**yes**' if ratio >= d['goal_speed_ratio'] else '**no**'} |")
    best_solo = d.get("fastest_solo_s_per_epoch") or min(m["solo_s_per_epoch"] for m in d["modes"].values())
    slowest = max(d["modes"]["shared"]["concurrent_s_per_epoch"])
    lines += ["", f"Against the fastest single solo run of either mode ({best_solo:.2f} s/epoch), the slower shared "
              f"concurrent training runs at {best_solo / slowest:.2f}× (goal met: "
              f"{'**yes**' if d['goal_met'] else '**no**'}). A solo run in `shared` mode takes one thread while the 1-minute "
              "load average (which lags) still shows earlier work, so its solo time can be the 1-thread one."]
    return [*lines, ""]
