"""The Bento's container as a Cloud Run service (google.cloud.run_v2), and its image pushed with buildah.

The service listens on BentoML's port 3000, is started once ``/readyz`` answers and restarted when
``/livez`` stops answering, runs as its own service account, and is private: only principals holding
``roles/run.invoker`` may call it. ``allow_unauthenticated`` adds ``allUsers`` as an invoker; leaving it out
on a later deploy takes a public binding away again.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from gatrec.cloud.jobs import base_url
from gatrec.cloud.settings import CloudError, CloudSettings, api_errors

PORT = 3000  # BentoML's HTTP port
INVOKER = "roles/run.invoker"
PUBLIC = "allUsers"


class ServiceSpec(BaseModel):
    """How the Bento runs on Cloud Run."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(default="gatrec", pattern=r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$")
    """Cloud Run service name (lower-case letters, digits, hyphens)."""
    image: str
    """Container image URI (Artifact Registry)."""
    min_instances: int = Field(default=0, ge=0)
    """Instances kept warm (0 lets the service scale to zero)."""
    max_instances: int = Field(default=3, ge=1)
    """Upper bound on instances."""
    concurrency: int = Field(default=32, ge=1, le=1000)
    """Requests one instance serves at once."""
    cpu: str = "2"
    """vCPUs per instance."""
    memory: str = "4Gi"
    """Memory per instance."""
    allow_unauthenticated: bool = False
    """Let anyone call the service (grants allUsers the invoker role)."""


def image_for_bento(tag: str, settings: CloudSettings, *, strict: bool = True) -> str:
    """Where ``gatrec cloud push`` puts the Bento ``NAME:VERSION``'s image (``latest`` resolved in the local
    Bento store; with ``strict=False``, as for a dry run, an unresolvable ``latest`` stays as it is)."""
    name, _, version = tag.partition(":")
    if not name:
        raise CloudError(f"--bento {tag!r}: expected NAME[:VERSION]")
    if version in ("", "latest"):
        try:
            import bentoml

            name, version = str(bentoml.get(tag).tag).split(":")
        except Exception as exc:  # bentoml's NotFound and friends: tell the user what to build
            if strict:
                raise CloudError(f"--bento {tag}: no such Bento in the local store ({exc}); run "
                                 "`gatrec bento build` first, or name the version") from None
            version = "latest"
    return settings.image_for(name, version)


def build_service(spec: ServiceSpec, settings: CloudSettings):
    from google.cloud import run_v2

    probe = {"timeout_seconds": 5, "period_seconds": 10}
    container = run_v2.Container(
        image=spec.image,
        ports=[run_v2.ContainerPort(name="http1", container_port=PORT)],
        resources=run_v2.ResourceRequirements(limits={"cpu": spec.cpu, "memory": spec.memory},
                                              startup_cpu_boost=True),
        # The model loads before /readyz answers: allow it up to 5 min (30 x 10 s) to start.
        startup_probe=run_v2.Probe(http_get=run_v2.HTTPGetAction(path="/readyz", port=PORT),
                                   failure_threshold=30, **probe),
        liveness_probe=run_v2.Probe(http_get=run_v2.HTTPGetAction(path="/livez", port=PORT),
                                    failure_threshold=3, **probe),
    )
    template = run_v2.RevisionTemplate(
        containers=[container], service_account=settings.serve_sa,
        scaling=run_v2.RevisionScaling(min_instance_count=spec.min_instances,
                                       max_instance_count=spec.max_instances),
        max_instance_request_concurrency=spec.concurrency)
    return run_v2.Service(template=template, ingress=run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL,
                          invoker_iam_disabled=False, labels={"app": "gatrec"})


def service_name(spec: ServiceSpec, settings: CloudSettings) -> str:
    return f"{settings.parent}/services/{spec.service}"


def request_text(spec: ServiceSpec, settings: CloudSettings, service) -> str:
    """The requests ``deploy`` sends, as ``--dry-run`` prints them (create shown; an existing service is
    patched with the same body)."""
    from google.cloud import run_v2

    body = run_v2.Service.to_json(service, use_integers_for_enums=False, always_print_fields_with_no_presence=False)
    api = base_url(settings.run_api)
    lines = [f"POST {api}/v2/{settings.parent}/services?serviceId={spec.service}", body]
    if spec.allow_unauthenticated:
        lines.append(f"POST {api}/v2/{service_name(spec, settings)}:setIamPolicy  "
                     f"(add {PUBLIC} to {INVOKER})")
    return "\n".join(lines)


def client(settings: CloudSettings, credentials):
    from google.cloud import run_v2

    return run_v2.ServicesClient(transport="rest", credentials=credentials,
                                 client_options={"api_endpoint": settings.run_api})


def deploy(api, spec: ServiceSpec, settings: CloudSettings, *, timeout: float = 900,
           warn: Callable[[str], None] = print):
    """Create or update the service, then make its invoker policy match ``allow_unauthenticated``."""
    from google.api_core.exceptions import NotFound

    name = service_name(spec, settings)
    service = build_service(spec, settings)
    with api_errors(f"reading Cloud Run service {name}"):
        try:
            api.get_service(name=name, timeout=60)
            exists = True
        except NotFound:
            exists = False
    with api_errors(f"{'updating' if exists else 'creating'} Cloud Run service {name}"):
        if exists:
            service.name = name
            op = api.update_service(service=service, timeout=60)
        else:
            op = api.create_service(parent=settings.parent, service=service, service_id=spec.service,
                                    timeout=60)
        deployed = op.result(timeout=timeout)
    _set_invokers(api, name, spec.allow_unauthenticated, warn)
    return deployed


def _set_invokers(api, name: str, public: bool, warn: Callable[[str], None]) -> None:
    from google.iam.v1 import iam_policy_pb2

    with api_errors(f"reading the IAM policy of {name}"):
        policy = api.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=name), timeout=60)
    invokers = next((b for b in policy.bindings if b.role == INVOKER), None)
    is_public = invokers is not None and PUBLIC in invokers.members
    if public == is_public:
        return
    if public:
        warn(f"warning: {name} is now public: anyone on the internet can call it (--allow-unauthenticated)")
        if invokers is None:
            invokers = policy.bindings.add(role=INVOKER)
        invokers.members.append(PUBLIC)
    else:
        warn(f"warning: {name} was public; removing {PUBLIC} from its invokers (private by default)")
        invokers.members.remove(PUBLIC)
        if not invokers.members:
            policy.bindings.remove(invokers)
    with api_errors(f"setting the IAM policy of {name}"):
        api.set_iam_policy(request=iam_policy_pb2.SetIamPolicyRequest(resource=name, policy=policy), timeout=60)


# ---------------------------------------------------------------------------------------------- push

def push_commands(local: str, remote: str) -> list[list[str]]:
    """buildah commands that tag the local image and push it (the login reads a token on stdin)."""
    registry = remote.split("/", 1)[0]
    return [["buildah", "login", "--username", "oauth2accesstoken", "--password-stdin", registry],
            ["buildah", "tag", local, remote],
            ["buildah", "push", remote, f"docker://{remote}"]]


def push(local: str, remote: str, token: str, *, timeout: float = 3600) -> None:
    if shutil.which("buildah") is None:
        raise CloudError("buildah is not installed: install it (apt-get install buildah) to push images")
    for cmd in push_commands(local, remote):
        stdin = token if cmd[1] == "login" else None
        proc = subprocess.run(cmd, input=stdin, text=True, capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise CloudError(f"`{' '.join(cmd)}` failed: {msg[-1] if msg else f'exit {proc.returncode}'}")
