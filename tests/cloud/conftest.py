"""Fixtures for the cloud tests: a recording HTTP server on 127.0.0.1 that answers as Vertex AI, Cloud Run
and Google's OAuth token endpoint do, application-default credentials whose token endpoint is that server,
and a Cloud Storage emulator (gcp-storage-emulator) in its own process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.servers import free_port, stop_group, wait_http

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TOKEN = "ya29.test-access-token"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


Handler = Callable[[Recorded, "Recorder"], tuple[int, Any]]


@dataclass
class Recorder:
    """Answers requests from a route table (method, path regex -> handler) and records every one."""

    routes: list[tuple[str, re.Pattern, Handler]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    url: str = ""

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.insert(0, (method, re.compile(pattern + "$"), handler))

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        rx = re.compile(pattern + "$")
        return [r for r in self.requests if r.method == method and rx.match(r.path)]

    def answer(self, rec: Recorded) -> tuple[int, Any]:
        for method, rx, handler in self.routes:
            if method == rec.method and rx.match(rec.path):
                return handler(rec, self)
        return 404, {"error": {"code": 404, "message": f"no route for {rec.method} {rec.path}",
                               "status": "NOT_FOUND"}}


def _make_handler(rec: Recorder) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            url = urlparse(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype and raw:
                body: Any = json.loads(raw)
            elif "x-www-form-urlencoded" in ctype:
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            else:
                body = raw.decode(errors="replace")
            call = Recorded(self.command, url.path, parse_qs(url.query),
                            {k.lower(): v for k, v in self.headers.items()}, body)
            rec.requests.append(call)
            status, payload = rec.answer(call)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return H


def _token(rec: Recorded, r: Recorder) -> tuple[int, Any]:
    """Google's token endpoint: an access token, and for a JWT asking for a target audience an ID token
    (signed with the key the request's assertion names; the client does not verify it)."""
    from google.auth import crypt, jwt

    reply: dict[str, Any] = {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}
    assertion = rec.body.get("assertion") if isinstance(rec.body, dict) else None
    if assertion:
        claims = jwt.decode(assertion, verify=False)
        if "target_audience" in claims and "sa_key" in r.state:
            now = int(time.time())
            reply["id_token"] = jwt.encode(crypt.RSASigner.from_string(r.state["sa_key"], "k1"), {
                "iss": "https://accounts.google.com", "aud": claims["target_audience"], "sub": claims["iss"],
                "email": claims["iss"], "iat": now, "exp": now + 3600}).decode()
    return 200, reply


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    rec.route("POST", "/token", _token)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(rec))
    rec.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield rec
    httpd.shutdown()
    httpd.server_close()


SA_EMAIL = "gatrec-ci@proj-test.iam.gserviceaccount.com"


@pytest.fixture(scope="session")
def sa_key() -> str:
    """A fresh RSA key in PEM, standing in for a service-account key (made here, never a real one)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def signed_by(headers: dict[str, str], sa_key: str) -> str:
    """The service account whose key signed the request's bearer JWT (verified), e.g. SA_EMAIL."""
    from cryptography.hazmat.primitives import serialization
    from google.auth import jwt

    public = serialization.load_pem_private_key(sa_key.encode(), None).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    scheme, _, token = headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    claims = jwt.decode(token, certs=public.decode(), verify=True)
    return claims["iss"]


@pytest.fixture
def adc(recorder: Recorder, sa_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Application-default credentials: a service-account file whose token endpoint is the recorder."""
    path = tmp_path / "adc.json"
    recorder.state["sa_key"] = sa_key
    path.write_text(json.dumps({"type": "service_account", "project_id": "proj-test", "private_key_id": "k1",
                                "private_key": sa_key, "client_email": SA_EMAIL, "client_id": "1",
                                "token_uri": f"{recorder.url}/token"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    for var in ("GATREC_GCP_PROJECT", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "GATREC_GCP_REGION",
                "GATREC_TRAIN_IMAGE", "GATREC_TRAIN_SA", "GATREC_SERVE_SA", "GATREC_STAGING_BUCKET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GATREC_VERTEX_ENDPOINT", recorder.url)
    monkeypatch.setenv("GATREC_RUN_ENDPOINT", recorder.url)
    return path


@pytest.fixture
def no_adc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials anywhere google.auth looks (file, gcloud config, metadata server)."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # google.auth would otherwise probe 169.254.169.254
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")


@dataclass
class Emulator:
    host: str
    root: Path


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """gcp-storage-emulator on 127.0.0.1 (file-backed), one per test session."""
    root = tmp_path_factory.mktemp("gcs")
    port = free_port()
    log = root / "emulator.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(VENV_BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                env={**os.environ, "STORAGE_BASE": str(root), "STORAGE_DIR": "data"})
    host = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{host}/storage/v1/b", 60, proc, log)
        yield Emulator(host, root)
    finally:
        stop_group(proc)


@pytest.fixture
def bucket(gcs_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the emulator; the storage client of this process is pointed at it."""
    import uuid

    from gatrec.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.host)
    name = f"b-{uuid.uuid4().hex[:10]}"
    storage.client().create_bucket(name)
    return name


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def gatrec(capsys: pytest.CaptureFixture) -> Callable[..., Result]:
    """Run ``gatrec ARGS`` in this process (so the fixtures' environment applies); exit code and output."""
    from gatrec.cli import main

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run
