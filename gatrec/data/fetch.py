"""Download the official Amazon review dumps (McAuley lab) for users who are online.

Each file streams into ``<name>.part`` with a byte progress bar, resumes with an HTTP ``Range`` request after
an interruption (and restarts from 0 when the server ignores ``Range``), is checked against the announced
size and, when one is known, a checksum (``--sha256 FILE=HEX`` or a ``<url>.sha256`` / ``<url>.md5`` beside
it), and only then renamed to its final name. A final file that already exists is therefore complete and is
skipped. Connection errors, 429 and 5xx are retried with exponential backoff; the count of consecutive
failures without progress is bounded.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Literal, NamedTuple

import requests
import urllib3
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm import tqdm

from gatrec import __version__
from gatrec import log as _log
from gatrec.errors import GatrecError
from gatrec.fsutil import file_digest

log = _log.get(__name__)


class DumpSource(NamedTuple):
    base_url: str
    reviews: str  # path below base_url; {cat} is the category
    meta: str
    examples: str  # category names in this release's spelling, for the 404 hint


# Official hosting (from the lab's pages: jmcauley.ucsd.edu/data/amazon/, nijianmo.github.io/amazon/,
# amazon-reviews-2023.github.io). The 2023 files are mirrored under
# https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/ (pass it as --base-url).
SOURCES: dict[str, DumpSource] = {
    "amazon-2014": DumpSource("https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/",
                              "reviews_{cat}_5.json.gz", "meta_{cat}.json.gz",
                              "Electronics, Beauty, Office_Products, Cell_Phones_and_Accessories"),
    "amazon-2018": DumpSource("https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/",
                              "categoryFilesSmall/{cat}_5.json.gz", "metaFiles2/meta_{cat}.json.gz",
                              "Electronics, All_Beauty, Office_Products, Cell_Phones_and_Accessories"),
    "amazon-2023": DumpSource("https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/raw/",
                              "review_categories/{cat}.jsonl.gz", "meta_categories/meta_{cat}.jsonl.gz",
                              "Electronics, All_Beauty, Office_Products, Cell_Phones_and_Accessories"),
}
HEX = {"sha256": 64, "md5": 32}


class FetchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Literal["amazon-2014", "amazon-2018", "amazon-2023"]
    category: str = Field("Electronics", pattern=r"^[A-Za-z0-9_]+$")
    out: Path
    base_url: str | None = Field(None, pattern=r"^https?://", description="mirror or test server")
    reviews_only: bool = False
    sha256: dict[str, str] = Field(default_factory=dict, description="file name -> expected sha256")
    retries: int = Field(5, ge=0, le=100, description="consecutive failed attempts allowed per file")
    backoff_s: float = Field(1.0, ge=0, description="first retry delay; doubles per failure, max 60 s")
    connect_timeout_s: float = Field(15.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    chunk_bytes: int = Field(1 << 20, ge=1024)

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: dict[str, str]) -> dict[str, str]:
        for name, digest in value.items():
            if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                raise ValueError(f"sha256 for {name!r} must be 64 hex digits, got {digest!r}")
        return {k: v.lower() for k, v in value.items()}


def dump_urls(config: FetchConfig) -> list[tuple[str, str]]:
    """(file name, URL) of every file the config asks for."""
    src = SOURCES[config.source]
    base = (config.base_url or src.base_url).rstrip("/")
    paths = [src.reviews] if config.reviews_only else [src.reviews, src.meta]
    rels = [p.format(cat=config.category) for p in paths]
    return [(rel.rsplit("/", 1)[-1], f"{base}/{rel}") for rel in rels]


def fetch(config: FetchConfig) -> list[Path]:
    """Download the release's files for one category into ``config.out``; returns the final paths."""
    src = SOURCES[config.source]
    hint = (f"check the category name {config.category!r} (case and underscores matter; "
            f"{config.source} uses names like {src.examples})")
    with requests.Session() as session:
        session.headers["User-Agent"] = f"gatrec/{__version__}"
        return [download(url, Path(config.out) / name, sha256=config.sha256.get(name), session=session,
                         config=config, not_found_hint=hint)
                for name, url in dump_urls(config)]


class _Retry(Exception):
    """A transient failure: try again after a backoff."""


def download(url: str, dest: Path, *, config: FetchConfig, sha256: str | None = None,
             session: requests.Session | None = None, not_found_hint: str = "") -> Path:
    """Fetch ``url`` to ``dest`` via ``dest.part`` (resumable); verify size and checksum; rename."""
    if dest.exists():
        if sha256 and file_digest(dest, "sha256") != sha256:
            raise GatrecError(f"{dest} exists but its sha256 differs from the expected {sha256}; "
                              "delete it to download again")
        log.info("fetch.skip", file=str(dest), reason="already complete")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if session is None:
        with requests.Session() as own:
            return download(url, dest, config=config, sha256=sha256, session=own, not_found_hint=not_found_hint)
    timeout = (config.connect_timeout_s, config.read_timeout_s)
    checksum = ("sha256", sha256) if sha256 else published_checksum(session, url, timeout)
    part = dest.with_name(dest.name + ".part")
    failures = 0
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            _stream(session, url, part, config, not_found_hint)
            break
        except (_Retry, requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError) as exc:
            progressed = part.exists() and part.stat().st_size > before
            failures = 0 if progressed else failures + 1
            if failures > config.retries:
                raise GatrecError(f"{url}: giving up after {config.retries} retries: {exc}") from None
            delay = min(60.0, config.backoff_s * 2 ** max(failures - 1, 0))
            have = part.stat().st_size if part.exists() else 0
            log.warning("fetch.retry", url=url, error=str(exc)[:200], have_bytes=have, wait_s=delay)
            time.sleep(delay)
    if checksum:
        algo, expected = checksum
        actual = file_digest(part, algo)
        if actual != expected:
            part.unlink()
            raise GatrecError(f"{url}: {algo} mismatch (expected {expected}, got {actual}); "
                              "the download was removed")
    os.replace(part, dest)
    log.info("fetch.done", file=str(dest), bytes=dest.stat().st_size, checksum=checksum[0] if checksum else None)
    return dest


def published_checksum(session: requests.Session, url: str, timeout: tuple[float, float]) -> tuple[str, str] | None:
    """A ``<url>.sha256`` or ``<url>.md5`` published beside the file, if the server has one."""
    for algo in ("sha256", "md5"):
        try:
            resp = session.get(f"{url}.{algo}", timeout=timeout)
        except requests.RequestException:
            continue
        if resp.status_code == 200 and len(resp.content) < 4096:
            match = re.match(rf"\s*([0-9a-fA-F]{{{HEX[algo]}}})\b", resp.text)
            if match:
                return algo, match.group(1).lower()
    return None


def _stream(session: requests.Session, url: str, part: Path, config: FetchConfig, hint: str) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-", "Accept-Encoding": "identity"} if have else {"Accept-Encoding": "identity"}
    timeout = (config.connect_timeout_s, config.read_timeout_s)
    with session.get(url, headers=headers, stream=True, timeout=timeout) as resp:
        if resp.status_code == 416 and have:  # nothing left to send: complete, or a stale .part
            total = _range_total(resp.headers.get("Content-Range", ""))
            if total == have:
                return
            part.unlink()
            raise _Retry(f"server rejected resuming at byte {have}; restarting")
        if resp.status_code == 404:
            raise GatrecError(f"{url}: not found (HTTP 404); {hint}" if hint else f"{url}: not found (HTTP 404)")
        if resp.status_code == 429 or resp.status_code >= 500:
            raise _Retry(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise GatrecError(f"{url}: HTTP {resp.status_code} {resp.reason}")
        if resp.status_code == 206:
            start, total = _content_range(resp.headers.get("Content-Range", ""))
            if start != have:
                part.unlink()
                raise _Retry(f"server resumed at byte {start}, not {have}; restarting")
            mode = "ab"
        else:  # 200: a fresh download, or a server that ignores Range → start again from byte 0
            if have:
                log.info("fetch.restart", url=url, reason="server ignored Range")
            start, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        with open(part, mode) as fh, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                          unit_divisor=1024, desc=part.name[:-5], disable=None) as bar:
            for chunk in resp.raw.stream(config.chunk_bytes, decode_content=False):
                fh.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        if size > total:
            part.unlink()
        raise _Retry(f"got {size} of {total} bytes")


def _content_range(value: str) -> tuple[int, int | None]:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", value.strip())
    if not match:
        raise _Retry(f"unparseable Content-Range {value!r}")
    return int(match.group(1)), (int(match.group(2)) if match.group(2) != "*" else None)


def _range_total(value: str) -> int | None:
    match = re.fullmatch(r"bytes \*/(\d+)", value.strip())
    return int(match.group(1)) if match else None
