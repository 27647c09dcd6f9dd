"""Vertex AI custom jobs built from the MLproject entry points.

A job's container (``docker/train.Dockerfile``, the repository at its working folder) runs
``mlflow run . -e ENTRY --env-manager local -P key=value …``: the same command a user runs locally, so an
entry point behaves the same on a laptop and on an L4. The tracking server's URI (and how to authenticate
to it) travels in the environment. A sweep on N replicas is N workers of one Optuna study whose storage
is the shared PostgreSQL database: Vertex's first pool is the single chief, the second holds the other N-1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gatrec.cloud.settings import CloudError, CloudSettings, api_errors

ENTRIES = ("prepare", "embed", "train", "eval", "sweep", "pipeline")
MLPROJECT = Path(__file__).resolve().parents[2] / "MLproject"
# MLflow request-auth plugin (gatrec/cloud/auth.py) that signs tracking calls with a Google ID token.
GOOGLE_AUTH = "gatrec-google-id-token"
TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
            "JOB_STATE_PARTIALLY_SUCCEEDED"}
# Tracking stores a container on Vertex can reach: not the submitting machine's files.
REMOTE_STORES = ("http", "https", "postgresql", "mysql", "databricks")


class JobSpec(BaseModel):
    """What to run on Vertex and on which machines."""

    model_config = ConfigDict(extra="forbid")

    entry: Literal["prepare", "embed", "train", "eval", "sweep", "pipeline"]
    """MLproject entry point the container runs."""
    params: dict[str, str] = Field(default_factory=dict)
    """``-P key=value`` parameters of the entry point."""
    machine_type: str = "g2-standard-8"
    """Compute Engine machine type of every replica (g2 machines carry L4 GPUs)."""
    accelerator: str = "NVIDIA_L4"
    """Accelerator type, as Vertex names it; NONE for a CPU-only job."""
    accelerator_count: int = Field(default=1, ge=0)
    """Accelerators per replica."""
    replicas: int = Field(default=1, ge=1)
    """Machines; more than one only for sweeps (each one a worker of the same study)."""
    tracking_uri: str
    """MLflow tracking server the job logs to."""
    experiment: str | None = None
    """MLflow experiment name, passed as MLFLOW_EXPERIMENT_NAME."""
    display_name: str | None = None
    """Vertex display name [gatrec-ENTRY-TIMESTAMP]."""
    network: str | None = None
    """VPC network the replicas join (to reach Cloud SQL's private IP), projects/NUMBER/global/networks/NAME."""
    env: dict[str, str] = Field(default_factory=dict)
    """Further environment variables of the container (e.g. PGPASSWORD for the Optuna storage)."""

    @model_validator(mode="after")
    def _check(self) -> JobSpec:
        scheme = urlparse(self.tracking_uri).scheme
        if scheme not in REMOTE_STORES:
            raise ValueError(f"tracking URI {self.tracking_uri!r}: a Vertex job cannot reach a local store; "
                             "pass the tracking server's URL (--tracking-uri https://…)")
        if self.replicas > 1 and self.entry != "sweep":
            raise ValueError(f"--replicas {self.replicas}: only the sweep entry runs on several machines")
        if self.replicas > 1:
            storage = self.params.get("storage", "")
            if not storage.startswith(("postgresql", "mysql")):
                raise ValueError(f"--replicas {self.replicas}: the workers share one study, so pass "
                                 "-P storage=postgresql://… (got "
                                 + (f"{storage!r})" if storage else "no storage)"))
            if not self.params.get("study"):
                raise ValueError(f"--replicas {self.replicas}: name the shared study with -P study=NAME")
        if self.accelerator != "NONE" and self.accelerator_count == 0:
            raise ValueError("--accelerator-count 0 with an accelerator: pass --accelerator NONE for a CPU job")
        return self


@cache
def entry_parameters() -> dict[str, dict[str, Any]]:
    """Entry point -> its MLproject parameters (the repository's MLproject, which the image carries)."""
    if not MLPROJECT.exists():
        return {}
    return {name: dict(spec.get("parameters") or {})
            for name, spec in yaml.safe_load(MLPROJECT.read_text())["entry_points"].items()}


def parse_params(values: tuple[str, ...] | list[str], entry: str) -> dict[str, str]:
    """``key=value`` strings -> a dict, refusing keys the entry point does not declare."""
    known = entry_parameters().get(entry)
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CloudError(f"-P {item!r}: expected KEY=VALUE")
        if known is not None and key not in known:
            raise CloudError(f"-P {key}: entry point {entry!r} has no such parameter "
                             f"(it takes: {', '.join(sorted(known)) or 'none'})")
        out[key] = value
    return out


def mlflow_command(entry: str, params: Mapping[str, str]) -> list[str]:
    """The command line the container runs."""
    cmd = ["mlflow", "run", ".", "-e", entry, "--env-manager", "local"]
    for key, value in params.items():
        cmd += ["-P", f"{key}={value}"]
    return cmd


def job_env(spec: JobSpec) -> dict[str, str]:
    env = {"MLFLOW_TRACKING_URI": spec.tracking_uri}
    host = urlparse(spec.tracking_uri).hostname or ""
    if host.endswith(".run.app"):  # an IAM-protected Cloud Run MLflow: each call carries an ID token
        env["MLFLOW_TRACKING_AUTH"] = GOOGLE_AUTH
    if spec.experiment:
        env["MLFLOW_EXPERIMENT_NAME"] = spec.experiment
    return {**env, **spec.env}


def build_job(spec: JobSpec, settings: CloudSettings, *, now: float | None = None):
    """The ``CustomJob`` message for ``spec`` (google.cloud.aiplatform_v1)."""
    from google.cloud import aiplatform_v1 as v1

    if spec.accelerator != "NONE" and spec.accelerator not in v1.AcceleratorType.__members__:
        raise CloudError(f"--accelerator {spec.accelerator}: not a Vertex accelerator type "
                         f"(e.g. NVIDIA_L4, NVIDIA_TESLA_T4, NONE)")
    cmd = mlflow_command(spec.entry, spec.params)
    machine = v1.MachineSpec(machine_type=spec.machine_type)
    if spec.accelerator != "NONE":
        machine.accelerator_type = v1.AcceleratorType[spec.accelerator]
        machine.accelerator_count = spec.accelerator_count
    container = v1.ContainerSpec(image_uri=settings.train_image_uri, command=cmd[:1], args=cmd[1:],
                                 env=[v1.EnvVar(name=k, value=v) for k, v in job_env(spec).items()])
    # Vertex's first pool is the chief and holds exactly one replica; the other workers form the second.
    pools = [v1.WorkerPoolSpec(machine_spec=machine, replica_count=1, container_spec=container)]
    if spec.replicas > 1:
        pools.append(v1.WorkerPoolSpec(machine_spec=machine, replica_count=spec.replicas - 1,
                                       container_spec=container))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    name = spec.display_name or f"gatrec-{spec.entry}-{stamp}"
    job_spec = v1.CustomJobSpec(worker_pool_specs=pools, service_account=settings.train_sa,
                                base_output_directory=v1.GcsDestination(
                                    output_uri_prefix=f"{settings.staging.rstrip('/')}/vertex/{name}"))
    if spec.network:
        job_spec.network = spec.network
    return v1.CustomJob(display_name=name, job_spec=job_spec, labels={"gatrec-entry": spec.entry})


def request_text(settings: CloudSettings, job) -> str:
    """The HTTP request ``submit`` sends, as ``--dry-run`` prints it."""
    from google.cloud import aiplatform_v1 as v1

    body = v1.CustomJob.to_json(job, use_integers_for_enums=False, always_print_fields_with_no_presence=False)
    return f"POST {base_url(settings.vertex_api)}/v1/{settings.parent}/customJobs\n{body}"


def base_url(endpoint: str) -> str:
    """An API endpoint as the client libraries address it (https unless a scheme is given)."""
    return endpoint if "://" in endpoint else f"https://{endpoint}"


def client(settings: CloudSettings, credentials):
    """A Vertex job-service client over REST (what the recording tests also speak)."""
    from google.cloud import aiplatform_v1 as v1

    return v1.JobServiceClient(transport="rest", credentials=credentials,
                               client_options={"api_endpoint": settings.vertex_api})


def submit(api, settings: CloudSettings, job, timeout: float = 60):
    with api_errors("creating the Vertex custom job"):
        return api.create_custom_job(parent=settings.parent, custom_job=job, timeout=timeout)


def state_name(job) -> str:
    from google.cloud import aiplatform_v1 as v1

    return v1.JobState(job.state).name


def wait(api, name: str, *, poll: float = 30.0, timeout: float | None = None,
         on_change: Callable[[Any], None] = lambda job: None):
    """Follow a job until it ends; raise CloudError unless it succeeded."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = None
    while True:
        with api_errors(f"reading job {name}"):
            job = api.get_custom_job(name=name, timeout=60)
        state = state_name(job)
        if state != seen:
            on_change(job)
            seen = state
        if state in TERMINAL:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise CloudError(f"job {name} still {state} after {timeout:.0f} s (it keeps running)")
        time.sleep(poll)
    if state != "JOB_STATE_SUCCEEDED":
        detail = job.error.message if job.error and job.error.message else "no error message"
        raise CloudError(f"job {name} ended {state}: {detail}; logs: {logs_url(name)}")
    return job


def _parts(name: str) -> dict[str, str]:
    bits = name.split("/")  # projects/P/locations/R/customJobs/ID
    return dict(zip(bits[::2], bits[1::2], strict=False))


def console_url(name: str) -> str:
    p = _parts(name)
    return (f"https://console.cloud.google.com/vertex-ai/locations/{p['locations']}/training/"
            f"{p['customJobs']}/cpu?project={p['projects']}")


def logs_url(name: str) -> str:
    p = _parts(name)
    return ("https://console.cloud.google.com/logs/query;query=resource.type%3D%22ml_job%22%20"
            f"resource.labels.job_id%3D%22{p['customJobs']}%22?project={p['projects']}")
