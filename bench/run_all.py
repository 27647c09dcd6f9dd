"""Run every benchmark in order, then regenerate BENCHMARKS.md (what ``make bench`` calls).

Quality runs resume: keys already in ``bench/results/quality.json`` are skipped, so an interrupted
``make bench`` picks up where it stopped. GAT variants are skipped while ``gat`` is not in the model registry.

Example::

    .venv/bin/python bench/run_all.py                 # everything
    .venv/bin/python bench/run_all.py --only quality,report
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PY = sys.executable

STEPS: dict[str, list[list[str]]] = {
    "quality": [
        ["bench_quality.py", "--datasets", "amazon-office-2014,amazon-beauty-2014", "--models", "pop,mf,lightgcn",
         "--seeds", "0,1,2"],
        ["bench_quality.py", "--datasets", "amazon-office-2014", "--models", "gat-*", "--seeds", "0,1,2"],
        ["bench_quality.py", "--datasets", "amazon-beauty-2014", "--models", "gat-none-bpr", "--seeds", "0,1,2"],
        ["bench_attention.py", "--variants", "gat-text-bpr,gat-text-bpr-uniform"],
    ],
    "speed": [["bench_speed.py"]],
    "embed": [["bench_embed.py"]],
    "knn": [["bench_knn.py"]],
    "report": [["report.py"]],
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(STEPS), help=f"comma-separated steps of {', '.join(STEPS)}")
    args = ap.parse_args(argv)
    failed = []
    for step in args.only.split(","):
        for cmd in STEPS[step]:
            script = BENCH / cmd[0]
            if not script.is_file():
                print(f"[run_all] skip {cmd[0]}: absent", flush=True)
                continue
            t0 = time.perf_counter()
            print(f"[run_all] {' '.join(cmd)}", flush=True)
            rc = subprocess.run([PY, str(script), *cmd[1:]]).returncode
            print(f"[run_all] {cmd[0]} exited {rc} after {time.perf_counter() - t0:.0f}s", flush=True)
            if rc != 0:
                failed.append(" ".join(cmd))
    if failed:
        raise SystemExit("failed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
