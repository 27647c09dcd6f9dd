"""Where gatrec's cloud side lives: project, region, buckets, images and service accounts, read once.

Every value comes from a CLI flag, else an environment variable, else a default derived from the project
and region — the same names ``infra/`` (Terraform) creates, so a project set up by ``terraform apply``
needs only ``--project``. Endpoints can be pointed elsewhere (tests aim them at servers on 127.0.0.1).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gatrec.errors import GatrecError

# Names shared with infra/ (variables.tf / main.tf): change both together.
REPOSITORY = "gatrec"
TRAIN_SA = "gatrec-train"
SERVE_SA = "gatrec-serve"

# field -> environment variables consulted in order when the flag is not given.
ENV: dict[str, tuple[str, ...]] = {
    "project": ("GATREC_GCP_PROJECT", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"),
    "region": ("GATREC_GCP_REGION", "GOOGLE_CLOUD_REGION", "CLOUDSDK_COMPUTE_REGION"),
    "staging_bucket": ("GATREC_STAGING_BUCKET",),
    "train_image": ("GATREC_TRAIN_IMAGE",),
    "train_service_account": ("GATREC_TRAIN_SA",),
    "serve_service_account": ("GATREC_SERVE_SA",),
    "vertex_endpoint": ("GATREC_VERTEX_ENDPOINT",),
    "run_endpoint": ("GATREC_RUN_ENDPOINT",),
}


class CloudError(GatrecError):
    """A cloud call could not be made or failed: names what is missing or what the service said."""


class CloudSettings(BaseModel):
    """The Google Cloud coordinates of one gatrec deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str | None = None
    """GCP project id; every resource name is built from it."""
    region: str = "us-central1"
    """Region of the Vertex jobs, the Cloud Run services and the Artifact Registry repository."""
    staging_bucket: str | None = None
    """gs:// bucket for Vertex staging files [gs://PROJECT-gatrec-artifacts]."""
    train_image: str | None = None
    """Training image URI [REGION-docker.pkg.dev/PROJECT/gatrec/train:latest]."""
    train_service_account: str | None = None
    """Service account the Vertex jobs run as [gatrec-train@PROJECT.iam.gserviceaccount.com]."""
    serve_service_account: str | None = None
    """Service account the Cloud Run service runs as [gatrec-serve@PROJECT.iam.gserviceaccount.com]."""
    vertex_endpoint: str | None = Field(default=None, repr=False)
    """Vertex AI API endpoint [REGION-aiplatform.googleapis.com]; http://127.0.0.1:PORT in tests."""
    run_endpoint: str | None = Field(default=None, repr=False)
    """Cloud Run Admin API endpoint [run.googleapis.com]."""

    @field_validator("staging_bucket")
    @classmethod
    def _gs_bucket(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("gs://"):
            raise ValueError(f"staging bucket must be a gs:// URI, got {value!r}")
        return value

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> CloudSettings:
        """Flags (``overrides``, None = not given) over environment variables over defaults."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field, names in ENV.items():
            found = next((environ[n] for n in names if environ.get(n)), None)
            if found is not None:
                values[field] = found
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        try:
            return cls(**values)
        except ValueError as exc:
            raise CloudError(str(exc)) from None

    # ------------------------------------------------------------------ derived names

    def require_project(self) -> str:
        if not self.project:
            raise CloudError("no GCP project: pass --project or set GOOGLE_CLOUD_PROJECT")
        return self.project

    @property
    def parent(self) -> str:
        return f"projects/{self.require_project()}/locations/{self.region}"

    @property
    def registry(self) -> str:
        """The Artifact Registry repository images are pushed to."""
        return f"{self.region}-docker.pkg.dev/{self.require_project()}/{REPOSITORY}"

    def image_for(self, name: str, tag: str = "latest") -> str:
        return f"{self.registry}/{name}:{tag}"

    @property
    def train_image_uri(self) -> str:
        return self.train_image or self.image_for("train")

    @property
    def staging(self) -> str:
        return self.staging_bucket or f"gs://{self.require_project()}-gatrec-artifacts"

    def _sa(self, explicit: str | None, name: str) -> str:
        return explicit or f"{name}@{self.require_project()}.iam.gserviceaccount.com"

    @property
    def train_sa(self) -> str:
        return self._sa(self.train_service_account, TRAIN_SA)

    @property
    def serve_sa(self) -> str:
        return self._sa(self.serve_service_account, SERVE_SA)

    @property
    def vertex_api(self) -> str:
        return self.vertex_endpoint or f"{self.region}-aiplatform.googleapis.com"

    @property
    def run_api(self) -> str:
        return self.run_endpoint or "run.googleapis.com"


def credentials(settings: CloudSettings) -> tuple[Any, CloudSettings]:
    """Application-default credentials, and the settings with the credentials' project filled in.

    A clear :class:`CloudError` (not a traceback) when there are none or no project is known.
    """
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        creds, adc_project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except DefaultCredentialsError:
        raise CloudError(
            "no Google application-default credentials: run `gcloud auth application-default login`, "
            "or set GOOGLE_APPLICATION_CREDENTIALS to a credentials file (use --dry-run to only print "
            "the request)") from None
    if not settings.project and adc_project:
        settings = settings.model_copy(update={"project": adc_project})
    settings.require_project()
    return creds, settings


def api_errors(action: str):
    """Turn a Google API error into a one-line CloudError naming the action and the service's message."""
    import contextlib

    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except gexc.GoogleAPICallError as exc:
            raise CloudError(f"{action}: {exc.code.name if exc.code else 'error'} {exc.message}") from None
        except aexc.RefreshError as exc:
            raise CloudError(f"{action}: credentials could not be refreshed ({exc}); run "
                             "`gcloud auth application-default login`") from None
        except (aexc.TransportError, OSError) as exc:
            raise CloudError(f"{action}: cannot reach the service ({exc})") from None

    return guard()
