"""``gatrec cloud submit``: the Vertex AI custom job, sent through google-cloud-aiplatform's REST transport
to a recording server on 127.0.0.1, and the same request printed by --dry-run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import SA_EMAIL, Recorded, Recorder, signed_by
from google.cloud import aiplatform_v1 as v1

JOBS = r"/v1/projects/([^/]+)/locations/([^/]+)/customJobs"
TRACKING = "https://mlflow-abc123-uc.a.run.app"


def vertex(recorder: Recorder, states: list[str], error: str = "") -> None:
    """Vertex's job service: create answers PENDING; each read moves the job to the next of ``states``."""

    def create(rec: Recorded, r: Recorder) -> tuple[int, Any]:
        job = dict(rec.body)
        project, region = rec.path.split("/")[3], rec.path.split("/")[5]
        job["name"] = f"projects/{project}/locations/{region}/customJobs/4242"
        job["state"] = "JOB_STATE_PENDING"
        r.state["job"] = job
        return 200, job

    def get(rec: Recorded, r: Recorder) -> tuple[int, Any]:
        job = dict(r.state["job"])
        job["state"] = states[min(len(r.calls("GET", JOBS + "/4242")) - 1, len(states) - 1)]
        if job["state"] == "JOB_STATE_FAILED":
            job["error"] = {"code": 3, "message": error}
        return 200, job

    recorder.route("POST", JOBS, create)
    recorder.route("GET", JOBS + "/4242", get)


def submit_args(*extra: str) -> list[str]:
    return ["cloud", "submit", "--entry", "train", "-P", "data=gs://proj-test-gatrec-data/office",
            "-P", "model=gat", "-P", "epochs=5", "--project", "proj-test", "--region", "europe-west4",
            "--tracking-uri", TRACKING, "--display-name", "gatrec-train-test", *extra]


def test_submit_sends_the_job_vertex_runs(recorder, adc, sa_key, gatrec) -> None:
    vertex(recorder, ["JOB_STATE_RUNNING"])
    res = gatrec(*submit_args("--image", "europe-west4-docker.pkg.dev/proj-test/gatrec/train:v1",
                              "--experiment", "office"))
    assert res.code == 0, res.err
    (call,) = recorder.calls("POST", JOBS)
    assert call.path == "/v1/projects/proj-test/locations/europe-west4/customJobs"
    assert signed_by(call.headers, sa_key) == SA_EMAIL  # the ADC file's key signed the call
    job = v1.CustomJob.from_json(json.dumps(call.body))
    (pool,) = job.job_spec.worker_pool_specs
    assert pool.machine_spec.machine_type == "g2-standard-8"
    assert pool.machine_spec.accelerator_type == v1.AcceleratorType.NVIDIA_L4
    assert pool.machine_spec.accelerator_count == 1
    assert pool.replica_count == 1
    c = pool.container_spec
    assert c.image_uri == "europe-west4-docker.pkg.dev/proj-test/gatrec/train:v1"
    assert [*c.command, *c.args] == ["mlflow", "run", ".", "-e", "train", "--env-manager", "local",
                                     "-P", "data=gs://proj-test-gatrec-data/office", "-P", "model=gat",
                                     "-P", "epochs=5"]
    env = {e.name: e.value for e in c.env}
    assert env == {"MLFLOW_TRACKING_URI": TRACKING, "MLFLOW_TRACKING_AUTH": "gatrec-google-id-token",
                   "MLFLOW_EXPERIMENT_NAME": "office"}
    assert job.job_spec.service_account == "gatrec-train@proj-test.iam.gserviceaccount.com"
    assert job.job_spec.base_output_directory.output_uri_prefix == \
        "gs://proj-test-gatrec-artifacts/vertex/gatrec-train-test"
    name = "projects/proj-test/locations/europe-west4/customJobs/4242"
    assert f"submitted {name} (JOB_STATE_PENDING)" in res.out
    assert "console.cloud.google.com/logs/query" in res.out and "4242" in res.out
    assert not recorder.calls("GET", JOBS + "/4242")  # without --wait it does not follow the job


def test_dry_run_prints_the_request_it_would_send(recorder, adc, gatrec) -> None:
    vertex(recorder, ["JOB_STATE_RUNNING"])
    dry = gatrec(*submit_args("--dry-run"))
    assert dry.code == 0, dry.err
    assert not recorder.requests  # no token fetched, nothing sent
    first, _, body = dry.out.partition("\n")
    assert first == f"POST {recorder.url}/v1/projects/proj-test/locations/europe-west4/customJobs"
    sent = gatrec(*submit_args())
    assert sent.code == 0, sent.err
    (call,) = recorder.calls("POST", JOBS)
    assert v1.CustomJob.from_json(body) == v1.CustomJob.from_json(json.dumps(call.body))


def test_dry_run_needs_no_credentials(no_adc, gatrec) -> None:
    res = gatrec(*submit_args("--dry-run"))
    assert res.code == 0, res.err
    assert '"machineType": "g2-standard-8"' in res.out and '"acceleratorType": "NVIDIA_L4"' in res.out


def test_sweep_replicas_join_one_study(recorder, adc, gatrec) -> None:
    vertex(recorder, ["JOB_STATE_RUNNING"])
    storage = "postgresql://optuna@10.1.0.3:5432/optuna"
    res = gatrec("cloud", "submit", "--entry", "sweep", "-P", "study=office-gat", "-P", f"storage={storage}",
                 "--replicas", "4", "--env", "PGPASSWORD=from-secret-manager", "--project", "proj-test",
                 "--tracking-uri", TRACKING)
    assert res.code == 0, res.err
    job = v1.CustomJob.from_json(json.dumps(recorder.calls("POST", JOBS)[0].body))
    chief, workers = job.job_spec.worker_pool_specs
    assert (chief.replica_count, workers.replica_count) == (1, 3)
    assert chief.container_spec == workers.container_spec  # every machine runs the same sweep command
    args = list(chief.container_spec.args)
    assert args[:6] == ["run", ".", "-e", "sweep", "--env-manager", "local"]
    assert "study=office-gat" in args and f"storage={storage}" in args
    env = {e.name: e.value for e in chief.container_spec.env}
    assert env["PGPASSWORD"] == "from-secret-manager" and env["MLFLOW_TRACKING_URI"] == TRACKING


@pytest.mark.parametrize(("args", "message"), [
    (["--entry", "train", "--replicas", "2"], "only the sweep entry runs on several machines"),
    (["--entry", "sweep", "-P", "study=s", "--replicas", "2"], "pass -P storage=postgresql://"),
    (["--entry", "sweep", "-P", "study=s", "-P", "storage=sqlite:///optuna.db", "--replicas", "2"],
     "pass -P storage=postgresql://"),
    (["--entry", "train", "-P", "nonsense=1"], "-P nonsense: entry point 'train' has no such parameter"),
    (["--entry", "train", "-P", "novalue"], "expected KEY=VALUE"),
    (["--entry", "train", "--accelerator", "NVIDIA_K9000"], "not a Vertex accelerator type"),
])
def test_bad_job_settings_are_named(args, message, no_adc, gatrec) -> None:
    res = gatrec("cloud", "submit", *args, "--project", "p", "--tracking-uri", TRACKING, "--dry-run")
    assert res.code == 2
    assert message in res.err and "Traceback" not in res.err


def test_local_tracking_store_is_refused(no_adc, gatrec) -> None:
    res = gatrec("cloud", "submit", "--entry", "train", "--project", "p", "--tracking-uri", "sqlite:///mlflow.db",
                 "--dry-run")
    assert res.code == 2 and "a Vertex job cannot reach a local store" in res.err


def test_cpu_job_has_no_accelerator(no_adc, gatrec) -> None:
    res = gatrec(*submit_args("--accelerator", "NONE", "--machine-type", "n2-standard-8", "--dry-run"))
    assert res.code == 0, res.err
    body = json.loads(res.out.partition("\n")[2])
    assert body["jobSpec"]["workerPoolSpecs"][0]["machineSpec"] == {"machineType": "n2-standard-8"}


def test_missing_credentials_are_one_clear_line(no_adc, gatrec) -> None:
    res = gatrec(*submit_args())
    assert res.code == 2
    assert "no Google application-default credentials" in res.err
    assert "gcloud auth application-default login" in res.err and "Traceback" not in res.err


def test_missing_project_is_named(no_adc, gatrec, monkeypatch) -> None:
    for var in ("GATREC_GCP_PROJECT", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    res = gatrec("cloud", "submit", "--entry", "train", "--tracking-uri", TRACKING, "--dry-run")
    assert res.code == 2 and "no GCP project: pass --project" in res.err


def test_wait_follows_the_job_to_success(recorder, adc, gatrec) -> None:
    vertex(recorder, ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"])
    res = gatrec(*submit_args("--wait", "--poll", "0.01"))
    assert res.code == 0, res.err
    assert len(recorder.calls("GET", JOBS + "/4242")) == 4
    states = [line.split()[-1] for line in res.out.splitlines() if line.strip().startswith("state")]
    assert states == ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
    assert "succeeded" in res.out


def test_wait_reports_a_failed_job(recorder, adc, gatrec) -> None:
    vertex(recorder, ["JOB_STATE_RUNNING", "JOB_STATE_FAILED"], error="replica chief exited with code 2")
    res = gatrec(*submit_args("--wait", "--poll", "0.01"))
    assert res.code == 2
    assert "ended JOB_STATE_FAILED: replica chief exited with code 2" in res.err
    assert "logs:" in res.err


def test_service_errors_are_one_line(recorder, adc, gatrec) -> None:
    recorder.route("POST", JOBS, lambda rec, r: (403, {"error": {
        "code": 403, "message": "Permission 'aiplatform.customJobs.create' denied", "status": "PERMISSION_DENIED"}}))
    res = gatrec(*submit_args())
    assert res.code == 2
    assert "creating the Vertex custom job" in res.err and "aiplatform.customJobs.create" in res.err
    assert "Traceback" not in res.err
