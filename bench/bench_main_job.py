"""The main job (`make main` = scripts/main.sh) timed end to end, with each step's wall seconds.

Runs `bash scripts/main.sh WORK` as a newcomer does (synthetic data, sqlite MLflow store, no network) in a
fresh work folder and a fresh MLflow store (a temporary sqlite file via MLFLOW_TRACKING_URI), then reruns it
(every step reused). Per-step timings are those the pipeline records (its run's pipeline.json); CPU seconds
are the children's user+system time, which the load of other jobs inflates far less than wall time. The
GAT's test NDCG@20 is compared with the popularity ranking on the same split (the registry's baseline).
Goal: ≤ 180 s on 2 cores.

    .venv/bin/python bench/bench_main_job.py [--no-rerun]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine, write_result  # noqa: E402

GOAL_S = 180


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _main_job(work: Path, env: dict[str, str], log: Path) -> dict[str, float]:
    load, cpu0, t0 = os.getloadavg()[0], _children_cpu(), time.perf_counter()
    with log.open("a") as fh:
        proc = subprocess.run(["bash", str(REPO / "scripts/main.sh"), str(work)], env=env, stdout=fh,
                              stderr=subprocess.STDOUT, timeout=3600)
    if proc.returncode:
        raise SystemExit(f"main job failed ({proc.returncode}); see {log}:\n{log.read_text()[-3000:]}")
    return {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(_children_cpu() - cpu0, 1),
            "loadavg_1m_start": load, "loadavg_1m_end": os.getloadavg()[0]}


def _pipeline_record(uri: str) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    # `mlflow run` puts the pipeline's own run in the default experiment, its steps in "gatrec"
    exps = [e.experiment_id for e in client.search_experiments()]
    run = client.search_runs(exps, "tags.`mlflow.project.entryPoint` = 'pipeline'", max_results=1,
                             order_by=["attributes.start_time DESC"])[0]
    return json.loads(Path(client.download_artifacts(run.info.run_id, "pipeline.json")).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-rerun", action="store_true", help="skip the second (all steps reused) run")
    args = ap.parse_args()
    info = machine()
    tmp = Path(tempfile.mkdtemp(prefix="bench-main-"))
    log = Path(tempfile.gettempdir()) / "gatrec-bench-main_job.log"  # the job's output, kept for a look
    log.unlink(missing_ok=True)
    try:
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        from mlflow import MlflowClient

        # main.sh runs from the repository: keep this store's artefacts out of its ./mlruns
        MlflowClient(uri).create_experiment("gatrec", artifact_location=str(tmp / "mlruns"))
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        for k in ("GATREC_THREADS", "GATREC_NO_MLFLOW", "GATREC_PIPELINE_ARGS"):
            env.pop(k, None)
        work = tmp / "work"
        first = _main_job(work, env, log)
        record = _pipeline_record(uri)
        print(f"first run: {first}", file=sys.stderr, flush=True)
        rerun = None if args.no_rerun else _main_job(work, env, log)
        if rerun is not None:
            rerun["timings"] = _pipeline_record(uri)["timings"]

        sys.path.insert(0, str(REPO))
        from gatrec.data.dataset import Dataset
        from gatrec.registry.baseline import popularity_metrics
        from gatrec.train.export import RunFolder

        run_dir = Path(json.loads((work / ".gatrec-steps/train.json").read_text())["output"])
        metrics = RunFolder(run_dir).metrics()
        data = Dataset.load(Path(metrics["data"]["path"]))
        pop = popularity_metrics(data, ["ndcg@20", "recall@20"])
        sizes = json.loads((work / "raw/synth.json").read_text())
        features = json.loads((work / "data/features/features.json").read_text())
        result = {
            "benchmark": "make main (scripts/main.sh), fresh work folder and MLflow store",
            "goal_s": GOAL_S, "first_run": first, "goal_met": first["wall_s"] <= GOAL_S,
            "timings": record["timings"], "rerun": rerun,
            "data": {"users": data.n_users, "items": data.n_items, "train": int(len(data.train)),
                     "synth_config": sizes.get("config", sizes)},
            "embed": {k: {kk: v.get(kk) for kk in ("encoded", "encode_seconds", "items_per_s")}
                      for k, v in features["arrays"].items() if k in ("text", "image")},
            "train": {"model": metrics["model"], "epochs_run": metrics["epochs_run"],
                      "best_epoch": metrics["best_epoch"], "s_per_epoch": metrics["seconds_per_epoch"]},
            "quality": {"gat_test_ndcg@20": metrics["test"].get("ndcg@20"),
                        "pop_test_ndcg@20": pop["test"]["ndcg@20"],
                        "gat_test_recall@20": metrics["test"].get("recall@20"),
                        "pop_test_recall@20": pop["test"]["recall@20"]},
            "promotion": record.get("promotion"),
            "machine": info | {"loadavg_1m_at_start": first["loadavg_1m_start"],
                               "loadavg_1m_at_end": os.getloadavg()[0]},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_result("main_job", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()


def report(d: dict) -> list[str]:
    """The BENCHMARKS.md section (bench/report.py)."""
    from report import machine_line

    first, t, q = d["first_run"], d["timings"], d["quality"]
    lines = [
        "## Main job (`make main`, issue 17)",
        "",
        "What: `bash scripts/main.sh` (what `make main` runs after the install) in a fresh work folder and a "
        f"fresh MLflow store, on the embedded defaults: synthetic data ({d['data']['users']} users, "
        f"{d['data']['items']} items, {d['data']['train']} train interactions), text (MiniLM) and image "
        "(random-weight CLIP ViT-B-32) embedding, kNN graph, GAT training with early stopping, eval, registry, "
        f"promotion gate and Bento. How: `bench/bench_main_job.py`; wall seconds per step as the pipeline "
        f"records them. Goal: ≤ {d['goal_s']} s on 2 cores.",
        "",
        machine_line(d.get("machine")),
        "",
        "| step | wall s |",
        "|---|---|",
        *[f"| {k} | {v:.1f} |" for k, v in t.items()],
        "",
        f"Whole job: {first['wall_s']:.0f} s wall (goal met: {'**yes**' if d['goal_met'] else '**no**'}), "
        f"{first['cpu_s']:.0f} CPU-seconds in its processes, load average (1 min) {first['loadavg_1m_start']:.1f} "
        f"at start, {first['loadavg_1m_end']:.1f} at end.",
    ]
    if d.get("rerun"):
        r = d["rerun"]
        lines.append(f"Rerun with nothing changed (every step reused): {r['wall_s']:.0f} s wall, "
                     f"{r['cpu_s']:.0f} CPU-seconds.")
    emb = d.get("embed", {})
    if emb:
        lines.append("Embedding throughput in the job: " + "; ".join(
            f"{k} {v['encoded']} items at {v['items_per_s']} items/s" for k, v in emb.items() if v.get("encoded")) + ".")
    tr = d["train"]
    lines += [
        f"GAT: {tr['epochs_run']} epochs (best {tr['best_epoch']}), {tr['s_per_epoch']:.2f} s/epoch. Test "
        f"NDCG@20 {q['gat_test_ndcg@20']:.4f} vs popularity {q['pop_test_ndcg@20']:.4f} "
        f"({q['gat_test_ndcg@20'] / q['pop_test_ndcg@20']:.2f}×); Recall@20 {q['gat_test_recall@20']:.4f} vs "
        f"{q['pop_test_recall@20']:.4f}. Promotion: {d.get('promotion')}.",
        "",
    ]
    return lines
