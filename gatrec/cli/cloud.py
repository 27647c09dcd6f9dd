"""``gatrec cloud``: run entry points on Vertex AI, push images, deploy the Bento to Cloud Run.

Every command takes ``--dry-run``, which prints the exact request (or commands) it would send and needs
no credentials.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click


def cloud_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--project/--region/--dry-run, shared by every cloud command (settings.py reads the environment)."""

    @click.option("--project", help="GCP project [$GOOGLE_CLOUD_PROJECT or the credentials' project].")
    @click.option("--region", help="Region [$GATREC_GCP_REGION or us-central1].")
    @click.option("--dry-run", is_flag=True, help="Print the request instead of sending it.")
    @functools.wraps(func)
    def wrapper(*args: Any, project: str | None, region: str | None, **kwargs: Any) -> Any:
        return func(*args, overrides={"project": project, "region": region}, **kwargs)

    return wrapper


def _connect(overrides: dict[str, Any], dry_run: bool, make_client: Callable[..., Any]):
    """Settings, and a client unless this is a dry run (which needs neither credentials nor network)."""
    from gatrec.cloud.settings import CloudSettings, credentials

    settings = CloudSettings.load(overrides)
    if dry_run:
        settings.require_project()
        return settings, None
    creds, settings = credentials(settings)
    return settings, make_client(settings, creds)


@click.group(name="cloud")
def command() -> None:
    """Run gatrec on Google Cloud: Vertex AI jobs, Artifact Registry images, the Bento on Cloud Run.

    \b
    Examples:
      gatrec cloud submit --entry train -P data=gs://B/data -P model=gat -P out=gs://B/runs/gat --wait
      gatrec cloud push --bento gatrec:latest
      gatrec cloud deploy --bento gatrec:latest --service gatrec
    """


@command.command(name="submit")
@click.option("--entry", required=True, type=click.Choice(["prepare", "embed", "train", "eval", "sweep", "pipeline"]),
              help="MLproject entry point the job runs.")
@click.option("-P", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Entry-point parameter, as for `mlflow run -P` (repeatable).")
@click.option("--image", help="Training image [REGION-docker.pkg.dev/PROJECT/gatrec/train:latest].")
@click.option("--machine-type", default="g2-standard-8", show_default=True, help="Machine type per replica.")
@click.option("--accelerator", default="NVIDIA_L4", show_default=True,
              help="Accelerator type (Vertex's name), or NONE.")
@click.option("--accelerator-count", type=click.IntRange(min=0), default=1, show_default=True,
              help="Accelerators per replica.")
@click.option("--replicas", type=click.IntRange(min=1), default=1, show_default=True,
              help="Machines; for --entry sweep, each one a worker of the same Optuna study.")
@click.option("--service-account", help="Service account the job runs as [gatrec-train@PROJECT…].")
@click.option("--staging-bucket", help="gs:// bucket for Vertex's outputs [gs://PROJECT-gatrec-artifacts].")
@click.option("--network", help="VPC network to join (Cloud SQL's private IP), projects/N/global/networks/NAME.")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
              help="MLflow tracking server the job logs to [$MLFLOW_TRACKING_URI].")
@click.option("--experiment", envvar="MLFLOW_EXPERIMENT_NAME", help="MLflow experiment [$MLFLOW_EXPERIMENT_NAME].")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE",
              help="Extra environment variable of the job's container (repeatable), e.g. PGPASSWORD=….")
@click.option("--display-name", help="Vertex display name [gatrec-ENTRY-TIMESTAMP].")
@click.option("--wait", "wait_", is_flag=True, help="Follow the job until it ends (non-zero exit unless it succeeds).")
@click.option("--poll", type=click.FloatRange(min=0.01), default=30.0, show_default=True,
              help="Seconds between state checks with --wait.")
@cloud_options
def submit(entry: str, params: tuple[str, ...], image: str | None, machine_type: str, accelerator: str,
           accelerator_count: int, replicas: int, service_account: str | None, staging_bucket: str | None,
           network: str | None, tracking_uri: str | None, experiment: str | None, env: tuple[str, ...],
           display_name: str | None, wait_: bool, poll: float, overrides: dict[str, Any], dry_run: bool) -> None:
    """Run an entry point as a Vertex AI custom job: `mlflow run . -e ENTRY --env-manager local -P …`."""
    from gatrec.cloud import jobs
    from gatrec.cloud.settings import CloudError

    if not tracking_uri:
        raise CloudError("no tracking server: pass --tracking-uri https://… or set MLFLOW_TRACKING_URI "
                         "(the job logs its runs there)")
    try:
        spec = jobs.JobSpec(entry=entry, params=jobs.parse_params(params, entry), machine_type=machine_type,
                            accelerator=accelerator.upper(), accelerator_count=accelerator_count,
                            replicas=replicas, tracking_uri=tracking_uri, experiment=experiment,
                            display_name=display_name, network=network, env=_pairs(env, "--env"))
    except ValueError as exc:
        raise CloudError(_first_error(exc)) from None
    overrides |= {"train_image": image, "train_service_account": service_account,
                  "staging_bucket": staging_bucket}
    settings, api = _connect(overrides, dry_run, jobs.client)
    job = jobs.build_job(spec, settings)
    if dry_run:
        click.echo(jobs.request_text(settings, job))
        return
    created = jobs.submit(api, settings, job)
    click.echo(f"submitted {created.name} ({jobs.state_name(created)})")
    click.echo(f"  console {jobs.console_url(created.name)}")
    click.echo(f"  logs    {jobs.logs_url(created.name)}")
    if wait_:
        done = jobs.wait(api, created.name, poll=poll,
                         on_change=lambda j: click.echo(f"  state   {jobs.state_name(j)}"))
        click.echo(f"job {done.name} succeeded")


def _pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=flag)
        out[key] = value
    return out


def _first_error(exc: ValueError) -> str:
    """A pydantic error as one line: the field and the message."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        err = errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", exc)).removeprefix("Value error, ")
        return f"{field}: {msg}" if field else msg
    return str(exc)



def _image_choice(bento: str | None, image: str | None) -> None:
    if (bento is None) == (image is None):
        raise click.UsageError("pass exactly one of --bento TAG and --image URI")


@command.command(name="deploy")
@click.option("--bento", help="Bento tag NAME[:VERSION]; its image as `gatrec cloud push` named it.")
@click.option("--image", help="Container image URI to deploy instead of a Bento's.")
@click.option("--service", default="gatrec", show_default=True, help="Cloud Run service name.")
@click.option("--min-instances", type=click.IntRange(min=0), default=0, show_default=True,
              help="Instances kept warm (0 scales to zero).")
@click.option("--max-instances", type=click.IntRange(min=1), default=3, show_default=True, help="Most instances.")
@click.option("--concurrency", type=click.IntRange(1, 1000), default=32, show_default=True,
              help="Requests per instance at once.")
@click.option("--cpu", default="2", show_default=True, help="vCPUs per instance.")
@click.option("--memory", default="4Gi", show_default=True, help="Memory per instance.")
@click.option("--service-account", help="Service account the service runs as [gatrec-serve@PROJECT…].")
@click.option("--allow-unauthenticated", is_flag=True,
              help="Make the service public (grants allUsers the invoker role; warns). Private by default.")
@cloud_options
def deploy(bento: str | None, image: str | None, service: str, min_instances: int, max_instances: int,
           concurrency: int, cpu: str, memory: str, service_account: str | None, allow_unauthenticated: bool,
           overrides: dict[str, Any], dry_run: bool) -> None:
    """Deploy the Bento's container as a Cloud Run service (port 3000, /readyz and /livez probes)."""
    from gatrec.cloud import deploy as cr
    from gatrec.cloud.settings import CloudError

    _image_choice(bento, image)
    settings, api = _connect(overrides | {"serve_service_account": service_account}, dry_run, cr.client)
    uri = image or cr.image_for_bento(bento, settings, strict=not dry_run)
    try:
        spec = cr.ServiceSpec(service=service, image=uri, min_instances=min_instances, max_instances=max_instances,
                              concurrency=concurrency, cpu=cpu, memory=memory,
                              allow_unauthenticated=allow_unauthenticated)
    except ValueError as exc:
        raise CloudError(_first_error(exc)) from None
    if spec.min_instances > spec.max_instances:
        raise click.UsageError(f"--min-instances {min_instances} is above --max-instances {max_instances}")
    if dry_run:
        if allow_unauthenticated:
            click.echo("warning: --allow-unauthenticated makes the service public", err=True)
        click.echo(cr.request_text(spec, settings, cr.build_service(spec, settings)))
        return
    deployed = cr.deploy(api, spec, settings, warn=lambda msg: click.echo(msg, err=True))
    click.echo(f"deployed {deployed.name} revision {deployed.latest_ready_revision.rsplit('/', 1)[-1]}")
    click.echo(f"  url {deployed.uri}")
    if not allow_unauthenticated:
        click.echo("  private: call it with an identity token, e.g. "
                   f"curl -H \"Authorization: Bearer $(gcloud auth print-identity-token)\" {deployed.uri}/readyz")


@command.command(name="push")
@click.option("--bento", help="Bento tag NAME[:VERSION] whose image `gatrec bento containerize` built.")
@click.option("--image", help="Local image to push instead, e.g. gatrec-train:latest.")
@click.option("--to", "target", metavar="NAME:TAG",
              help="Name in the Artifact Registry repository [the local image's name and tag].")
@cloud_options
def push(bento: str | None, image: str | None, target: str | None, overrides: dict[str, Any],
         dry_run: bool) -> None:
    """Tag a local image (buildah) and push it to the project's Artifact Registry repository."""
    from gatrec.cloud import deploy as cr
    from gatrec.cloud.settings import CloudSettings, credentials

    _image_choice(bento, image)
    settings = CloudSettings.load(overrides)
    if bento is not None:
        remote = cr.image_for_bento(bento, settings, strict=not dry_run)
        local = remote.rsplit("/", 1)[-1]
    else:
        local = image
        name, _, tag = (target or image.rsplit("/", 1)[-1]).partition(":")
        remote = settings.image_for(name, tag or "latest")
    if target is not None and bento is not None:
        name, _, tag = target.partition(":")
        remote = settings.image_for(name, tag or "latest")
    if dry_run:
        for cmd in cr.push_commands(local, remote):
            suffix = "  < access token of the application-default credentials" if cmd[1] == "login" else ""
            click.echo(" ".join(cmd) + suffix)
        return
    import google.auth.transport.requests

    creds, settings = credentials(settings)
    creds.refresh(google.auth.transport.requests.Request())
    cr.push(local, remote, creds.token)
    click.echo(f"pushed {remote}")
