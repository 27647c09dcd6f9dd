"""An unreachable tracking server is reported in seconds, in one line naming the URI (real processes
against a closed port on 127.0.0.1), and MLflow's own retries are bounded by the variables gatrec sets."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gatrec.tracking.connection import HTTP_DEFAULTS, TrackingUnreachable, check_reachable


def closed_port() -> int:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gatrec(*args: str, uri: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "GATREC_NO_MLFLOW"}
    full.update({"MLFLOW_TRACKING_URI": uri, **(env or {})})
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gatrec", *args], capture_output=True, text=True, timeout=120,
                          env=full)
    return proc, time.monotonic() - t0


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_data) -> Path:
    """A real (tiny) pop run folder, trained without MLflow."""
    out = tmp_path_factory.mktemp("conn") / "run"
    proc = subprocess.run([sys.executable, "-m", "gatrec", "train", "--data", str(tiny_data), "--model", "pop",
                           "--no-mlflow", "--out", str(out)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("command", ["promote", "register", "rollback", "train"])
def test_closed_port_is_reported_fast_in_one_line(command, run_dir, tiny_data, tmp_path):
    uri = f"http://127.0.0.1:{closed_port()}"
    args = {"promote": ["promote", "--version", "4"],
            "register": ["register", "--run", str(run_dir)],
            "rollback": ["rollback"],
            "train": ["train", "--data", str(tiny_data), "--model", "pop",
                      "--out", str(tmp_path / "run")]}[command]
    proc, seconds = gatrec(*args, uri=uri)
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc)
    assert f"MLflow tracking server {uri} is unreachable" in line and "mlflow server" in line
    assert seconds < 60, seconds  # MLflow alone retries for ~250 s; the bound leaves room for a loaded machine


class _Unavailable(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


def test_retries_against_a_failing_server_are_bounded():
    """A server that accepts connections but answers 503: the probe passes, MLflow retries, and with gatrec's
    bounds the command gives up within ~30 s (MLflow's defaults take about four minutes)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        proc, seconds = gatrec("promote", "--version", "4", uri=uri)
    finally:
        server.shutdown()
    assert proc.returncode != 0
    assert "503" in proc.stderr
    assert seconds < 35, seconds


def test_user_settings_win(monkeypatch):
    from gatrec.tracking.connection import bound_http_requests

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    bound_http_requests()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "7"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"]


def test_probe_passes_local_stores_and_open_ports(tmp_path):
    check_reachable(f"sqlite:///{tmp_path / 'mlflow.db'}")
    check_reachable(str(tmp_path / "mlruns"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        check_reachable(f"http://127.0.0.1:{s.getsockname()[1]}")
    with pytest.raises(TrackingUnreachable, match="user:"):  # credentials never printed
        try:
            check_reachable(f"http://user:secret@127.0.0.1:{closed_port()}")
        except TrackingUnreachable as exc:
            assert "secret" not in str(exc)
            raise TrackingUnreachable("user:" if "***@" in str(exc) else str(exc)) from None
