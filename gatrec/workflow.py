"""The end-to-end pipeline: (synth →) prepare → embed → train → eval → register → promote → bento.

MLflow's ``examples/multistep_workflow`` pattern: each step is an MLproject entry point run by
``mlflow.projects.run`` in a child run of the pipeline's run, and a step whose inputs are unchanged is not
run again: its earlier FINISHED run (found by a key over the step's parameters, the keys of the steps it
reads from, the content of raw input files and the code version) is reused, as long as its output is still
on disk and complete: a step that finished writes a completion record last (``WORK/.gatrec-steps/<step>.json``,
atomically: its key, run and the size and mtime of every file of its output), and a step is reused only
when that record has the step's key and every recorded file is still there, unchanged (a killed or
damaged step's output is made again). Steps pass artefacts on by path (the prepared folder, the run folder).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gatrec import __version__
from gatrec import log as glog
from gatrec.errors import GatrecError
from gatrec.fsutil import write_json

log = glog.get(__name__)

PROJECT_DIR = Path(__file__).resolve().parents[1]
STEP_TAG, KEY_TAG, OUT_TAG = "gatrec.step", "gatrec.step_key", "gatrec.output"
RECORDS = ".gatrec-steps"


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    work: Path = Field(Path("work"), description="folder for raw data, prepared data and runs")
    input: Path | None = Field(None, description="raw data; None = generate the synthetic default")
    format: str = "auto"
    split: str = "mmrec"
    seed: int = 0
    # The first-run size: `make main` shows every step, real, in ≤ 3 minutes on 2 cores (BENCHMARKS.md);
    # image embedding (~0.12 CPU-s per item) and the GAT's epochs are what it costs.
    synth_users: int = Field(1000, ge=10)
    synth_items: int = Field(400, ge=10)
    synth_interactions: int = Field(20000, ge=100)
    image_weights: str = Field("none", description="open_clip weights for embed; 'none' = random (offline)")
    model: str = "gat"
    features: str = Field("fused", description="GAT item features: none, text, image, fused")
    epochs: int = Field(40, ge=1, description="at most; the synthetic default is well above popularity by then")
    model_name: str = "gatrec"
    policy: Path | None = None
    experiment: str = "gatrec"
    force: list[str] = Field(default_factory=list, description="steps to rerun even when cached")


def code_version() -> str:
    """Digest of the code a step runs (the gatrec package and MLproject), so that editing docs or
    benchmarks does not invalidate cached steps but any change to the package does."""
    h = hashlib.sha256(__version__.encode())
    package = Path(__file__).resolve().parent
    for f in sorted(package.rglob("*.py")) + sorted(package.rglob("*.yaml")) + [PROJECT_DIR / "MLproject"]:
        if f.is_file():
            h.update(str(f.relative_to(PROJECT_DIR)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def content_digest(path: Path) -> str:
    """sha256 over the relative names and bytes of every non-hidden file below ``path``."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()
                                                 and not any(part.startswith(".") for part in p.relative_to(path).parts))
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def output_files(path: Path) -> dict[str, list[int]]:
    """``{relative name: [bytes, mtime_ns]}`` of every non-hidden file of ``path`` (a file or a folder)."""
    if path.is_file():
        st = path.stat()
        return {"": [st.st_size, st.st_mtime_ns]}
    out = {}
    for f in sorted(path.rglob("*")) if path.is_dir() else []:
        rel = f.relative_to(path)
        if f.is_file() and not any(part.startswith(".") for part in rel.parts):
            st = f.stat()
            out[str(rel)] = [st.st_size, st.st_mtime_ns]
    return out


@dataclass
class Step:
    name: str                     # the MLproject entry point
    params: dict[str, Any]        # its parameters (all paths absolute)
    output: Path                  # what it leaves on disk for later steps
    after: list[Step] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)  # raw files whose content keys the step

    def key(self, code: str) -> str:
        blob = {"step": self.name, "params": {k: str(v) for k, v in sorted(self.params.items())},
                "after": [s.key(code) for s in self.after], "code": code,
                "inputs": [content_digest(p) for p in self.inputs]}
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


# The models whose config has a ``features`` choice (item features from the embed step). Named, not looked up
# in the model registry, so that planning does not import torch_geometric (seconds on 2 cores); a test
# checks the list against the models' configs.
FEATURE_MODELS = frozenset({"gat"})


def plan(cfg: PipelineConfig) -> list[Step]:
    work = cfg.work.resolve()
    features = cfg.features if cfg.model in FEATURE_MODELS else "none"
    if features != cfg.features:  # e.g. --model pop with the default --features fused
        log.info("features ignored: this model uses no item features (no embed step)", model=cfg.model,
                 features=cfg.features)
    steps: list[Step] = []
    if cfg.input is None:
        raw = Step("synth", {"out": work / "raw", "users": cfg.synth_users, "items": cfg.synth_items,
                             "interactions": cfg.synth_interactions, "seed": cfg.seed}, work / "raw")
        steps.append(raw)
        data_in, inputs, after = raw.output, [], [raw]
    else:
        data_in, inputs, after = cfg.input.resolve(), [cfg.input.resolve()], []
    data = work / "data"
    prepare = Step("prepare", {"input": data_in, "out": data, "format": cfg.format, "split": cfg.split,
                               "seed": cfg.seed}, data, after, inputs)
    steps.append(prepare)
    train_after = [prepare]
    if features != "none":
        embed = Step("embed", {"data": data, "image_weights": cfg.image_weights}, data / "features", [prepare])
        steps.append(embed)
        train_after.append(embed)
    run_dir = work / "runs" / (f"{cfg.model}-{features}" if cfg.model in FEATURE_MODELS else cfg.model)
    train = Step("train", {"data": data, "model": cfg.model, "features": features, "epochs": cfg.epochs,
                           "seed": cfg.seed, "out": run_dir}, run_dir, train_after)
    steps.append(train)
    steps.append(Step("eval", {"run": run_dir, "split": "test"}, run_dir / "eval_test.json", [train]))
    return steps


def bento_step(cfg: PipelineConfig, champion: str | int | None) -> Step | None:
    """The Bento of the champion's registry version (cached while the champion stays the same); none
    while the model has no champion."""
    if champion in (None, ""):
        log.warning("no champion: no Bento built", name=cfg.model_name)
        return None
    from gatrec.serve.config import ServeConfig

    out = cfg.work.resolve() / "bento.json"
    return Step("bento", {"model_uri": f"models:/{cfg.model_name}/{champion}", "name": cfg.model_name,
                          "approx_above": ServeConfig.model_fields["approx_above"].default, "out": out}, out,
                # outside the package, so not in the code version: a changed service rebuilds the Bento
                inputs=[PROJECT_DIR / "service.py", PROJECT_DIR / "bentofile.yaml"])


class Pipeline:
    def __init__(self, cfg: PipelineConfig):
        import mlflow

        self.cfg, self.mlflow = cfg, mlflow
        # The MLproject commands say `python`: make it this interpreter, even when the venv is not activated.
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        # Every step must log into its child run: the step cache and registration read those runs.
        os.environ.pop("GATREC_NO_MLFLOW", None)
        self.client = mlflow.MlflowClient()
        self.code = code_version()
        self.reused: set[str] = set()  # steps whose earlier output was reused in this run

    def _experiment_id(self) -> str:
        from gatrec.tracking.mlflow_log import get_or_create_experiment

        return get_or_create_experiment(self.client, self.cfg.experiment)

    def _record(self, step: Step) -> Path:
        return self.cfg.work.resolve() / RECORDS / f"{step.name}.json"

    def _complete(self, step: Step, key: str) -> bool:
        """The step's completion record has this key and its output files are all there, unchanged."""
        try:
            record = json.loads(self._record(step).read_text())
        except (OSError, ValueError):
            return False
        if record.get("key") != key or not step.output.exists():
            return False
        now = output_files(step.output)
        if missing := [name for name, stat in record["files"].items() if now.get(name) != stat]:
            log.warning("step output incomplete or changed; running the step again", step=step.name,
                        output=str(step.output), first=str(step.output / missing[0]))
            return False
        return True

    def _cached(self, step: Step, key: str) -> str | None:
        """Run id of an earlier FINISHED run of this step with the same key whose output is complete."""
        if step.name in self.cfg.force or not self._complete(step, key):
            return None
        runs = self.client.search_runs([self._experiment_id()],
                                       f"tags.`{KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
                                       max_results=1, order_by=["attributes.start_time DESC"])
        return runs[0].info.run_id if runs else None

    def run_step(self, step: Step, parent_id: str) -> str:
        key = step.key(self.code)
        if cached := self._cached(step, key):
            log.info("step reused", step=step.name, run_id=cached, output=str(step.output))
            self.reused.add(step.name)
            return cached
        child = self.client.create_run(self._experiment_id(), run_name=step.name, tags={
            "mlflow.parentRunId": parent_id, STEP_TAG: step.name, KEY_TAG: key, OUT_TAG: str(step.output),
            "gatrec.code_version": self.code})
        log.info("step started", step=step.name, run_id=child.info.run_id)
        self._record(step).unlink(missing_ok=True)  # until it finishes, the output is not complete
        from mlflow.exceptions import ExecutionException

        try:
            self.mlflow.projects.run(
                str(PROJECT_DIR), entry_point=step.name, parameters={k: str(v) for k, v in step.params.items()},
                env_manager="local", run_id=child.info.run_id, synchronous=True)
        except ExecutionException as exc:
            raise GatrecError(f"pipeline step {step.name!r} failed (MLflow run {child.info.run_id}); "
                              f"its log is above") from exc
        write_json(self._record(step), {"step": step.name, "key": key, "run_id": child.info.run_id,
                                        "output": str(step.output), "files": output_files(step.output)})
        return child.info.run_id

    def run(self) -> dict[str, Any]:
        from gatrec.registry.register import register_run

        mlflow = self.mlflow
        active = mlflow.active_run() or mlflow.start_run(run_id=os.environ.get("MLFLOW_RUN_ID"),
                                                        experiment_id=self._experiment_id(), run_name="pipeline")
        with active:
            mlflow.log_params(self.cfg.model_dump(mode="json"))
            mlflow.set_tag("gatrec.code_version", self.code)
            results: dict[str, Any] = {}
            timings: dict[str, float] = {}  # wall seconds per step (a reused step: the time to find it)
            start = time.perf_counter()

            def timed(name: str, fn: Any, *args: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return fn(*args)
                finally:
                    timings[name] = round(time.perf_counter() - t0, 2)

            steps = plan(self.cfg)
            for step in steps:
                results[step.name] = timed(step.name, self.run_step, step, active.info.run_id)
            run_dir = steps[-1].params["run"]
            results.update(timed("register+promote", self._register_and_promote, run_dir, register_run))
            if bento := bento_step(self.cfg, results.get("champion")):
                results["bento"] = timed("bento", self.run_step, bento, active.info.run_id)
            timings["total"] = round(time.perf_counter() - start, 2)
            results.update(timings=timings, reused=sorted(self.reused))
            mlflow.log_metrics({f"seconds_{k.replace('+', '_')}": v for k, v in timings.items()})
            mlflow.log_dict(results, "pipeline.json")
        return {"run_dir": str(run_dir), **results}

    def _register_and_promote(self, run_dir: Path, register_run: Any) -> dict[str, Any]:
        from gatrec.registry.policy import load_policy
        from gatrec.registry.promote import alias_holder, promote
        from gatrec.train.export import RunFolder

        train_run = RunFolder(run_dir).mlflow_run_id()
        name = self.cfg.model_name
        existing = (self.client.search_model_versions(f"name = '{name}' and run_id = '{train_run}'")
                    if train_run else [])
        if existing and "register" not in self.cfg.force:
            version = max(existing, key=lambda mv: int(mv.version))
            log.info("step reused", step="register", version=version.version)
            self.reused.add("register")
        else:
            version = register_run(run_dir, name=name, client=self.client)
        outcome = promote(int(version.version), name=name, policy=load_policy(self.cfg.policy),
                          actor="pipeline", client=self.client)
        return {"version": version.version, "promotion": "passed" if outcome.passed else "rejected",
                "reasons": list(outcome.reasons), "champion": alias_holder(self.client, name)}
