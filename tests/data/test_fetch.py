"""`gatrec fetch` against a real HTTP server on 127.0.0.1 that supports Range requests (and misbehaves on cue)."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

from gatrec.data.fetch import FetchConfig, dump_urls, fetch
from gatrec.errors import GatrecError

pytestmark = pytest.mark.timeout(60)

R2014 = "reviews_Electronics_5.json.gz"
M2014 = "meta_Electronics.json.gz"


class DumpServer:
    """Serves ``files`` (URL path -> bytes); records every request. ``faults[path]`` is a queue of
    misbehaviours for the next GETs of that path: "drop" (send half the body, then hang up) or "503"."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.faults, self.ignore_range = dict(files), {}, set()
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def gets(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                path = urlparse(self.path).path.lstrip("/")
                with server.lock:
                    queue = server.faults.get(path) or []
                    fault = queue.pop(0) if queue else None
                    entry = {"path": path, "range": self.headers.get("Range"), "status": None, "sent": 0}
                    server.requests.append(entry)
                body = server.files.get(path)
                if fault == "503" or body is None:
                    entry["status"] = 503 if fault == "503" else 404
                    self.send_error(entry["status"])
                    return
                start, status = 0, 200
                wanted = entry["range"] if path not in server.ignore_range else None
                if wanted:
                    start, status = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1)), 206
                    if start >= len(body):
                        entry["status"] = 416
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                payload = body[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                if fault == "drop":
                    payload = payload[: len(payload) // 2]
                # Recorded before writing: the client may finish reading (and the test assert) before this
                # thread runs another line after the write.
                entry["status"], entry["sent"] = status, len(payload)
                self.wfile.write(payload)
                self.wfile.flush()
                self.close_connection = True  # HTTP/1.0: closing short of Content-Length = a dropped transfer

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _gz_lines(lines: list[str]) -> bytes:
    return gzip.compress("".join(line + "\n" for line in lines).encode(), mtime=0)


def _dumps_2014() -> dict[str, bytes]:
    """Tiny files in the 2014 formats: JSON reviews, Python-literal metadata. Large enough for many chunks."""
    reviews = [json.dumps({"reviewerID": f"A{u}", "asin": f"B{(u * 7 + k) % 40:03d}", "overall": float(1 + k % 5),
                           "unixReviewTime": 1_300_000_000 + 86_400 * k, "reviewText": f"review {u} {k} " * 8})
               for u in range(60) for k in range(6)]
    meta = [repr({"asin": f"B{i:03d}", "title": f"Thing {i}", "brand": "Acme", "categories": [["Electronics"]]})
            for i in range(40)]
    return {R2014: _gz_lines(reviews), M2014: _gz_lines(meta)}


@pytest.fixture
def server():
    srv = DumpServer(_dumps_2014())
    yield srv
    srv.close()


def _config(server: DumpServer, out: Path, **kw) -> FetchConfig:
    return FetchConfig(**{"source": "amazon-2014", "category": "Electronics", "out": out, "base_url": server.url,
                          "backoff_s": 0.01, "connect_timeout_s": 5, "read_timeout_s": 5, "chunk_bytes": 1024, **kw})


def test_default_urls_follow_each_release_layout():
    def urls(source, cat, **kw):
        return [u for _, u in dump_urls(FetchConfig(source=source, category=cat, out=Path("x"), **kw))]

    assert urls("amazon-2014", "Electronics") == [
        "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/reviews_Electronics_5.json.gz",
        "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/meta_Electronics.json.gz"]
    assert urls("amazon-2018", "Electronics") == [
        "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/categoryFilesSmall/Electronics_5.json.gz",
        "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/metaFiles2/meta_Electronics.json.gz"]
    assert urls("amazon-2023", "All_Beauty", reviews_only=True) == [
        "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/raw/review_categories/All_Beauty.jsonl.gz"]
    assert urls("amazon-2023", "All_Beauty", base_url="http://mirror/x/")[1] == \
        "http://mirror/x/meta_categories/meta_All_Beauty.jsonl.gz"
    with pytest.raises(ValueError):
        FetchConfig(source="amazon-2014", category="../etc", out=Path("x"))


def test_download_verifies_and_the_reader_accepts_the_files(server, tmp_path):
    from gatrec.data.readers import read_raw

    paths = fetch(_config(server, tmp_path / "dl"))
    assert [p.name for p in paths] == [R2014, M2014]
    for p in paths:
        assert p.read_bytes() == server.files[p.name]
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == sorted([R2014, M2014])  # no .part left
    raw = read_raw(tmp_path / "dl")
    assert raw.format == "amazon-2014" and len(raw.interactions) == 360 and raw.items is not None


def test_complete_files_are_skipped(server, tmp_path):
    fetch(_config(server, tmp_path))
    seen = len(server.requests)
    fetch(_config(server, tmp_path))
    assert len(server.requests) == seen


def test_resume_sends_only_the_rest(server, tmp_path):
    body = server.files[R2014]
    cut = len(body) // 3
    (tmp_path / f"{R2014}.part").write_bytes(body[:cut])
    fetch(_config(server, tmp_path, reviews_only=True))
    assert (tmp_path / R2014).read_bytes() == body
    (get,) = server.gets(R2014)
    assert get["range"] == f"bytes={cut}-" and get["status"] == 206 and get["sent"] == len(body) - cut


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    body = server.files[R2014]
    server.ignore_range.add(R2014)
    (tmp_path / f"{R2014}.part").write_bytes(b"stale bytes that must not survive")
    fetch(_config(server, tmp_path, reviews_only=True))
    assert (tmp_path / R2014).read_bytes() == body
    assert [g["status"] for g in server.gets(R2014)] == [200]


def test_complete_part_is_finished_without_a_body(server, tmp_path):
    body = server.files[R2014]
    (tmp_path / f"{R2014}.part").write_bytes(body)
    fetch(_config(server, tmp_path, reviews_only=True))
    assert (tmp_path / R2014).read_bytes() == body
    assert [g["status"] for g in server.gets(R2014)] == [416]


def test_checksum_mismatch_leaves_no_file(server, tmp_path):
    with pytest.raises(GatrecError, match="sha256 mismatch"):
        fetch(_config(server, tmp_path, reviews_only=True, sha256={R2014: "0" * 64}))
    assert list(tmp_path.iterdir()) == []
    good = hashlib.sha256(server.files[R2014]).hexdigest()
    fetch(_config(server, tmp_path, reviews_only=True, sha256={R2014: good.upper()}))
    assert (tmp_path / R2014).is_file()


def test_checksum_published_beside_the_file_is_used(server, tmp_path):
    server.files[f"{R2014}.md5"] = f"{'f' * 32}  {R2014}\n".encode()  # wrong: must be detected
    with pytest.raises(GatrecError, match="md5 mismatch"):
        fetch(_config(server, tmp_path, reviews_only=True))
    assert not (tmp_path / R2014).exists() and not (tmp_path / f"{R2014}.part").exists()
    server.files[f"{R2014}.sha256"] = hashlib.sha256(server.files[R2014]).hexdigest().encode()
    fetch(_config(server, tmp_path, reviews_only=True))  # sha256 is preferred and correct
    assert (tmp_path / R2014).read_bytes() == server.files[R2014]


def test_404_names_the_url_and_the_category(server, tmp_path):
    with pytest.raises(GatrecError) as exc:
        fetch(_config(server, tmp_path, category="Electronix"))
    msg = str(exc.value)
    assert f"{server.url}/reviews_Electronix_5.json.gz" in msg and "404" in msg and "category name 'Electronix'" in msg
    assert len(server.gets("reviews_Electronix_5.json.gz")) == 1  # not retried
    assert list(tmp_path.iterdir()) == []


def test_dropped_connection_is_retried_and_resumed(server, tmp_path):
    body = server.files[R2014]
    server.faults[R2014] = ["drop"]
    fetch(_config(server, tmp_path, reviews_only=True))
    assert (tmp_path / R2014).read_bytes() == body
    first, second = server.gets(R2014)
    assert first["sent"] == len(body) // 2 and second["range"] == f"bytes={len(body) // 2}-"
    assert second["sent"] == len(body) - len(body) // 2


def test_5xx_is_retried_and_the_retries_are_bounded(server, tmp_path):
    server.faults[R2014] = ["503", "503"]
    fetch(_config(server, tmp_path / "ok", reviews_only=True))
    assert [g["status"] for g in server.gets(R2014)] == [503, 503, 200]
    server.faults[R2014] = ["503"] * 10
    with pytest.raises(GatrecError, match="giving up after 2 retries"):
        fetch(_config(server, tmp_path / "fail", reviews_only=True, retries=2))
    assert len(server.gets(R2014)) == 3 + 3


def test_cli(server, tmp_path):
    def gatrec(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gatrec", "fetch", *args], capture_output=True, text=True,
                              timeout=60)

    good = hashlib.sha256(server.files[R2014]).hexdigest()
    proc = gatrec("amazon-2014", "--category", "Electronics", "--out", str(tmp_path), "--base-url", server.url,
                  "--reviews-only", "--sha256", f"{R2014}={good}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / R2014)
    proc = gatrec("amazon-2014", "--out", str(tmp_path), "--sha256", "no-equals-sign")
    assert proc.returncode == 2 and "FILE=HEX" in proc.stderr
    proc = gatrec("amazon-2014", "--category", "Nope", "--out", str(tmp_path / "x"), "--base-url", server.url,
                  "--retries", "0")
    assert proc.returncode == 2 and "404" in proc.stderr and "Traceback" not in proc.stderr
