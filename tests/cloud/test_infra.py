"""infra/ (Terraform) checked without a Terraform binary: its structure through python-hcl2 (every regional
resource in var.region, no public invoker unless asked, secrets generated and kept in Secret Manager, never
plain variables; names shared with gatrec/cloud/settings.py), and checkov's policies (each skip justified
inline). Each structural check is also run on a broken snippet, so it is known to catch what it names."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import hcl2
import pytest
from conftest import REPO
from hcl2 import SerializationOptions

from gatrec.cloud import deploy, settings

INFRA = REPO / "infra"
OPTS = SerializationOptions(strip_string_quotes=True, with_comments=False, explicit_blocks=False)
# Resource types that live in a region: each must name one, and it must be var.region.
REGIONAL = {"google_storage_bucket", "google_artifact_registry_repository", "google_sql_database_instance",
            "google_cloud_run_v2_service", "google_kms_key_ring", "google_compute_subnetwork"}
PUBLIC = ("allUsers", "allAuthenticatedUsers")
PROJECT_ROLES = {"roles/logging.logWriter", "roles/cloudsql.client"}  # the only grants on the whole project


def load(text: str | None = None) -> dict[str, Any]:
    if text is not None:
        return hcl2.loads(text, serialization_options=OPTS)
    merged: dict[str, list] = {}
    for path in sorted(INFRA.glob("*.tf")):
        for key, value in hcl2.load(path.open(), serialization_options=OPTS).items():
            merged.setdefault(key, []).extend(value)
    return merged


def resources(tf: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for block in tf.get("resource", []):
        for rtype, named in block.items():
            for name, body in named.items():
                yield rtype, name, body


def walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v, key)
    else:
        yield key, value


def region_problems(tf: dict[str, Any]) -> list[str]:
    problems = []
    for rtype, name, body in resources(tf):
        places = [v for k, v in walk(body) if k in ("location", "region")]
        if rtype in REGIONAL and not places:
            problems.append(f"{rtype}.{name}: no location")
        for v in places:
            # var.region itself, or the location of a resource that is checked here too
            if not re.fullmatch(r"\$\{(var\.region|google_[a-z0-9_]+\.[a-z0-9_]+\.location)\}", str(v)):
                problems.append(f"{rtype}.{name}: location {v!r} is not var.region")
    return problems


def public_problems(tf: dict[str, Any]) -> list[str]:
    problems = []
    for rtype, name, body in resources(tf):
        if any(str(v) in PUBLIC for _, v in walk(body)) and \
                "var.allow_unauthenticated_bento" not in str(body.get("count", "")):
            problems.append(f"{rtype}.{name}: grants a public principal unconditionally")
    return problems


def secret_problems(tf: dict[str, Any]) -> list[str]:
    problems = []
    for block in tf.get("variable", []):
        for name in block:
            if re.search(r"password|secret|token|credential|private_key", name):
                problems.append(f"variable {name}: secrets are generated and stored in Secret Manager")
    for rtype, name, body in resources(tf):
        for field in ("secret_data", "password"):
            if field in body and not re.fullmatch(r"\$\{random_password\.[a-z_]+\.result\}", str(body[field])):
                problems.append(f"{rtype}.{name}.{field} is not a generated random_password")
    return problems


def test_every_file_parses_and_is_documented() -> None:
    tf = load()
    variables = {n: b for block in tf["variable"] for n, b in block.items()}
    outputs = {n: b for block in tf["output"] for n, b in block.items()}
    assert {"project_id", "region", "allow_unauthenticated_bento", "github_owner", "github_repo"} <= set(variables)
    for name, body in {**variables, **outputs}.items():
        assert len(str(body.get("description", ""))) > 20, f"{name} has no description"
    for name, body in variables.items():
        assert "type" in body, f"variable {name} has no type"


def test_every_regional_resource_is_in_var_region() -> None:
    assert region_problems(load()) == []
    bad = load('resource "google_storage_bucket" "b" {\n  name = "x"\n  location = "US"\n}\n'
               'resource "google_cloud_run_v2_service" "s" {\n  name = "s"\n}\n')
    assert region_problems(bad) == ["google_storage_bucket.b: location 'US' is not var.region",
                                    "google_cloud_run_v2_service.s: no location"]


def test_no_public_invoker_unless_asked() -> None:
    tf = load()
    assert public_problems(tf) == []
    public = [(t, n) for t, n, b in resources(tf) if any(str(v) in PUBLIC for _, v in walk(b))]
    assert public == [("google_cloud_run_v2_service_iam_member", "bento_public")]
    bad = load('resource "google_cloud_run_v2_service_iam_member" "p" {\n  name = "mlflow"\n'
               '  location = var.region\n  role = "roles/run.invoker"\n  member = "allUsers"\n}\n')
    assert public_problems(bad) == ["google_cloud_run_v2_service_iam_member.p: grants a public principal "
                                    "unconditionally"]


def test_secrets_are_generated_never_variables() -> None:
    tf = load()
    assert secret_problems(tf) == []
    secrets = {b["secret_id"] for t, _, b in resources(tf) if t == "google_secret_manager_secret"}
    assert secrets == {"${local.prefix}-${each.value}"}
    bad = load('variable "db_password" {\n  type = string\n}\n'
               'resource "google_sql_user" "u" {\n  name = "u"\n  instance = "i"\n  password = var.db_password\n}\n')
    assert secret_problems(bad) == ["variable db_password: secrets are generated and stored in Secret Manager",
                                    "google_sql_user.u.password is not a generated random_password"]


def test_least_privilege_and_names_shared_with_the_cli() -> None:
    tf = load()
    by_type: dict[str, dict[str, dict]] = {}
    for rtype, name, body in resources(tf):
        by_type.setdefault(rtype, {})[name] = body
    roles = {b["role"] for b in by_type["google_project_iam_member"].values()}
    assert roles <= PROJECT_ROLES, roles - PROJECT_ROLES  # nothing like owner/editor on the project
    assert not any(re.search(r"roles/(owner|editor)", str(b)) for _, _, b in resources(tf))
    accounts = {n: b["account_id"] for n, b in by_type["google_service_account"].items()}
    assert accounts["train"] == "${local.prefix}-train" and settings.TRAIN_SA == "gatrec-train"
    assert accounts["serve"] == "${local.prefix}-serve" and settings.SERVE_SA == "gatrec-serve"
    assert by_type["google_artifact_registry_repository"]["images"]["repository_id"] == "${local.prefix}"
    assert settings.REPOSITORY == "gatrec"
    staging = settings.CloudSettings(project="P").staging
    assert staging == "gs://P-gatrec-artifacts" and '"${var.project_id}-gatrec-artifacts"' in \
        json.dumps(tf["locals"])
    # Workload Identity: only the named repository's workflows, no service-account keys anywhere.
    provider = by_type["google_iam_workload_identity_pool_provider"]["github"]
    assert "repo:${var.github_owner}/${var.github_repo}:ref:refs/heads/main" in provider["attribute_condition"]
    assert "google_service_account_key" not in by_type
    # The Bento service as `gatrec cloud deploy` builds it.
    ((template,),) = [by_type["google_cloud_run_v2_service"]["bento"]["template"]]  # blocks parse as lists
    (container,) = template["containers"]
    assert container["ports"][0]["container_port"] == deploy.PORT
    assert container["startup_probe"][0]["http_get"][0]["path"] == "/readyz"
    assert container["liveness_probe"][0]["http_get"][0]["path"] == "/livez"

@pytest.fixture(scope="module")
def checkov() -> str:
    proc = subprocess.run(["bash", str(REPO / "scripts" / "ensure_checkov.sh")], capture_output=True, text=True,
                          timeout=1200)
    if proc.returncode != 0:
        pytest.skip(f"checkov could not be installed into .venv-tools: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip().splitlines()[-1]


def test_checkov_passes_with_every_skip_justified(checkov: str) -> None:
    proc = subprocess.run([checkov, "-d", str(INFRA), "--framework", "terraform", "--output", "json",
                           "--compact", "--skip-download"], capture_output=True, text=True,
                          timeout=600)
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [(c["check_id"], c["resource"], c.get("severity"), c["check_name"])
              for r in reports for c in r["results"]["failed_checks"]]
    assert failed == [], "\n".join(map(str, failed))
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    for c in skipped:  # `#checkov:skip=ID:reason` inline, with a reason
        assert len((c.get("check_result", {}).get("suppress_comment") or "").strip()) > 15, c["check_id"]
    assert sum(r["summary"]["passed"] for r in reports) > 50
