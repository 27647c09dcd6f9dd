"""MLflow request auth for a tracking server behind Cloud Run IAM: each call carries a Google ID token.

Registered as the MLflow request-auth provider ``gatrec-google-id-token`` (pyproject entry point
``mlflow.request_auth_provider``); ``MLFLOW_TRACKING_AUTH=gatrec-google-id-token`` selects it, which
``gatrec cloud submit`` sets for ``*.run.app`` tracking URIs. The token's audience is the server's URL;
it comes from the application-default credentials (a Vertex job's service account via the metadata
server, a key file, or gcloud) and is refreshed shortly before it expires.
"""

from __future__ import annotations

import os
import threading
import time
from urllib.parse import urlparse

import requests

NAME = "gatrec-google-id-token"


class GoogleIdTokenAuth(requests.auth.AuthBase):
    def __init__(self, audience: str):
        self.audience = audience
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.time() > self._expires - 300:
                import google.auth.transport.requests
                from google.auth import jwt
                from google.oauth2 import id_token

                self._token = id_token.fetch_id_token(google.auth.transport.requests.Request(), self.audience)
                self._expires = float(jwt.decode(self._token, verify=False).get("exp", time.time() + 600))
            return self._token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request


def audience(tracking_uri: str) -> str:
    u = urlparse(tracking_uri)
    return f"{u.scheme}://{u.netloc}"


class GoogleIdTokenProvider:
    """MLflow's RequestAuthProvider interface (get_name / get_auth)."""

    _auth: GoogleIdTokenAuth | None = None

    def get_name(self) -> str:
        return NAME

    def get_auth(self) -> GoogleIdTokenAuth:
        aud = audience(os.environ.get("MLFLOW_TRACKING_URI", ""))
        if self._auth is None or self._auth.audience != aud:
            self._auth = GoogleIdTokenAuth(aud)
        return self._auth
