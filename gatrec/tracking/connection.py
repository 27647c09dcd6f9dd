"""How gatrec talks to an MLflow tracking server: bounded retries and timeouts, and a fast reachability
probe, so that an unreachable server is reported in seconds with what to check (MLflow's own defaults
retry for about four minutes and end in a traceback).

The bounds are MLflow's environment variables, set here only where the user has not set them; a user who
wants MLflow's patient defaults (e.g. behind a rate limit) sets them explicitly.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from gatrec.errors import GatrecError

# ~10 s of retries at most for a request that keeps failing (urllib3 backoff 1, 2, 4 s), 30 s per request.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
PROBE_TIMEOUT_S = float(os.environ.get("GATREC_TRACKING_PROBE_TIMEOUT", "5"))


class TrackingUnreachable(GatrecError):
    """The tracking server at an http(s) URI does not accept connections."""


def bound_http_requests() -> None:
    """Set MLflow's HTTP retry/timeout variables to gatrec's bounds unless the user set them."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password or parts.username:
        host = parts.hostname or ""
        return parts._replace(netloc=f"***@{host}" + (f":{parts.port}" if parts.port else "")).geturl()
    return uri


def check_reachable(uri: str | None = None, *, timeout: float = PROBE_TIMEOUT_S,
                    hint: str = "use --no-mlflow to run without it") -> None:
    """Raise TrackingUnreachable when ``uri`` (default: the current tracking URI) is an http(s) server that
    does not accept a TCP connection within ``timeout`` seconds. Local stores (sqlite, file) pass."""
    if uri is None:
        import mlflow

        uri = mlflow.get_tracking_uri()
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    host, port = parts.hostname or "localhost", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise TrackingUnreachable(
            f"MLflow tracking server {_redact(uri)} is unreachable ({reason}); check that `mlflow server` is "
            f"running there and that MLFLOW_TRACKING_URI / --tracking-uri is right ({hint})") from None
