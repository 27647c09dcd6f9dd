"""``gatrec cloud deploy`` and ``push``: the Cloud Run v2 service sent through google-cloud-run's REST
transport to a recording server on 127.0.0.1 (port, probes, service account, no public invoker unless
asked), and the requests / commands --dry-run prints."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import SA_EMAIL, Recorded, Recorder, signed_by
from google.cloud import run_v2

SERVICES = r"/v2/projects/proj-test/locations/us-central1/services"
SERVICE = SERVICES + "/gatrec"
IMAGE = "us-central1-docker.pkg.dev/proj-test/gatrec/gatrec_service:v7"
URL = "https://gatrec-abc123-uc.a.run.app"


def cloud_run(recorder: Recorder, *, exists: bool = False, bindings: list[dict] | None = None) -> None:
    """Cloud Run's services API: create/patch finish at once (done operation); an IAM policy per service."""
    recorder.state["policy"] = {"etag": "BwY=", "bindings": bindings or []}
    if exists:
        recorder.state["service"] = {"name": SERVICE.removeprefix("/v2/"), "uri": URL}

    def done(rec: Recorded, r: Recorder) -> tuple[int, Any]:
        svc = {**rec.body, "name": SERVICE.removeprefix("/v2/"), "uri": URL,
               "latestReadyRevision": SERVICE.removeprefix("/v2/") + "/revisions/gatrec-00001-abc",
               "@type": "type.googleapis.com/google.cloud.run.v2.Service"}
        r.state["service"] = svc
        return 200, {"name": "projects/proj-test/locations/us-central1/operations/op-1", "done": True,
                     "response": svc}

    def get(rec: Recorded, r: Recorder) -> tuple[int, Any]:
        if "service" not in r.state:
            return 404, {"error": {"code": 404, "message": "Resource 'gatrec' was not found", "status": "NOT_FOUND"}}
        return 200, r.state["service"]

    def set_policy(rec: Recorded, r: Recorder) -> tuple[int, Any]:
        r.state["policy"] = rec.body["policy"]
        return 200, rec.body["policy"]

    recorder.route("GET", SERVICE, get)
    recorder.route("POST", SERVICES, done)
    recorder.route("PATCH", SERVICE, done)
    recorder.route("GET", SERVICE + ":getIamPolicy", lambda rec, r: (200, r.state["policy"]))
    recorder.route("POST", SERVICE + ":setIamPolicy", set_policy)


def deploy_args(*extra: str) -> list[str]:
    return ["cloud", "deploy", "--image", IMAGE, "--service", "gatrec", "--project", "proj-test", *extra]


def test_deploy_creates_a_private_service_with_probes(recorder, adc, sa_key, gatrec) -> None:
    cloud_run(recorder)
    res = gatrec(*deploy_args("--min-instances", "1", "--max-instances", "5", "--concurrency", "16",
                              "--cpu", "4", "--memory", "8Gi"))
    assert res.code == 0, res.err
    (call,) = recorder.calls("POST", SERVICES)
    assert call.query["serviceId"] == ["gatrec"]
    assert signed_by(call.headers, sa_key) == SA_EMAIL
    svc = run_v2.Service.from_json(json.dumps(call.body))
    (c,) = svc.template.containers
    assert c.image == IMAGE
    assert [p.container_port for p in c.ports] == [3000]
    assert (c.startup_probe.http_get.path, c.startup_probe.http_get.port) == ("/readyz", 3000)
    assert (c.liveness_probe.http_get.path, c.liveness_probe.http_get.port) == ("/livez", 3000)
    assert dict(c.resources.limits) == {"cpu": "4", "memory": "8Gi"}
    assert svc.template.service_account == "gatrec-serve@proj-test.iam.gserviceaccount.com"
    assert (svc.template.scaling.min_instance_count, svc.template.scaling.max_instance_count) == (1, 5)
    assert svc.template.max_instance_request_concurrency == 16
    assert not svc.invoker_iam_disabled
    assert not recorder.calls("POST", SERVICE + ":setIamPolicy")  # private: no invoker added
    assert f"url {URL}" in res.out and "identity token" in res.out
    assert "warning" not in res.err


def test_allow_unauthenticated_grants_all_users_and_warns(recorder, adc, gatrec) -> None:
    cloud_run(recorder, bindings=[{"role": "roles/run.invoker", "members": ["serviceAccount:" + SA_EMAIL]}])
    res = gatrec(*deploy_args("--allow-unauthenticated"))
    assert res.code == 0, res.err
    (call,) = recorder.calls("POST", SERVICE + ":setIamPolicy")
    (binding,) = call.body["policy"]["bindings"]
    assert binding["role"] == "roles/run.invoker"
    assert binding["members"] == ["serviceAccount:" + SA_EMAIL, "allUsers"]
    assert call.body["policy"]["etag"] == "BwY="  # read-modify-write of the same policy
    assert "is now public" in res.err


def test_redeploy_updates_and_takes_a_public_invoker_away(recorder, adc, gatrec) -> None:
    cloud_run(recorder, exists=True, bindings=[{"role": "roles/run.invoker", "members": ["allUsers"]}])
    res = gatrec(*deploy_args())
    assert res.code == 0, res.err
    assert not recorder.calls("POST", SERVICES)
    (patch,) = recorder.calls("PATCH", SERVICE)
    assert run_v2.Service.from_json(json.dumps(patch.body)).template.containers[0].image == IMAGE
    (call,) = recorder.calls("POST", SERVICE + ":setIamPolicy")
    assert call.body["policy"].get("bindings", []) == []
    assert "removing allUsers" in res.err


def test_dry_run_prints_the_service_it_would_create(recorder, adc, gatrec) -> None:
    cloud_run(recorder)
    dry = gatrec(*deploy_args("--dry-run"))
    assert dry.code == 0, dry.err
    assert not recorder.requests
    first, _, body = dry.out.partition("\n")
    assert first == f"POST {recorder.url}{SERVICES}?serviceId=gatrec"
    assert gatrec(*deploy_args()).code == 0
    (call,) = recorder.calls("POST", SERVICES)
    assert run_v2.Service.from_json(body) == run_v2.Service.from_json(json.dumps(call.body))


def test_dry_run_of_a_public_service_names_the_policy_change(no_adc, gatrec) -> None:
    res = gatrec(*deploy_args("--allow-unauthenticated", "--dry-run"))
    assert res.code == 0, res.err
    assert res.out.rstrip().endswith(":setIamPolicy  (add allUsers to roles/run.invoker)")
    assert "public" in res.err


def test_deploy_by_bento_tag_uses_the_pushed_image(no_adc, gatrec) -> None:
    res = gatrec("cloud", "deploy", "--bento", "gatrec_service:v7", "--project", "proj-test", "--dry-run")
    assert res.code == 0, res.err
    assert f'"image": "{IMAGE}"' in res.out


@pytest.mark.parametrize(("args", "message"), [
    (["--service", "Bad_Name"], "service"),
    (["--min-instances", "4", "--max-instances", "2"], "--min-instances 4 is above --max-instances 2"),
])
def test_bad_service_settings_are_named(args, message, no_adc, gatrec) -> None:
    res = gatrec(*deploy_args(*args, "--dry-run"))
    assert res.code == 2 and message in res.err and "Traceback" not in res.err


def test_deploy_needs_exactly_one_image(no_adc, gatrec) -> None:
    res = gatrec("cloud", "deploy", "--project", "p", "--dry-run")
    assert res.code == 2 and "exactly one of --bento TAG and --image URI" in res.err


def test_push_dry_run_prints_the_buildah_commands(no_adc, gatrec) -> None:
    res = gatrec("cloud", "push", "--bento", "gatrec_service:v7", "--project", "proj-test", "--dry-run")
    assert res.code == 0, res.err
    assert res.out.splitlines() == [
        "buildah login --username oauth2accesstoken --password-stdin us-central1-docker.pkg.dev"
        "  < access token of the application-default credentials",
        f"buildah tag gatrec_service:v7 {IMAGE}",
        f"buildah push {IMAGE} docker://{IMAGE}"]
    train = gatrec("cloud", "push", "--image", "localhost/gatrec-train:cpu", "--to", "train:cpu",
                   "--project", "proj-test", "--dry-run")
    assert "buildah tag localhost/gatrec-train:cpu us-central1-docker.pkg.dev/proj-test/gatrec/train:cpu" in train.out
