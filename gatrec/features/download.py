"""Image URL download: concurrent, retried, bounded, cached on disk by URL hash."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from gatrec import log as glog
from gatrec.fsutil import atomic_file

log = glog.get(__name__)


def is_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def url_cache_path(cache_dir: Path, url: str) -> Path:
    return cache_dir / hashlib.sha256(url.encode("utf-8")).hexdigest()


def _session(retries: int, workers: int) -> requests.Session:
    retry = Retry(total=retries, connect=retries, read=retries, backoff_factor=0.2,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET",))
    adapter = HTTPAdapter(max_retries=retry, pool_connections=workers, pool_maxsize=workers)
    s = requests.Session()
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def _fetch(session: requests.Session, url: str, dest: Path, timeout: float, max_bytes: int) -> Path | None:
    if dest.is_file():
        return dest
    try:
        with session.get(url, timeout=timeout, stream=True) as r:
            r.raise_for_status()
            data = bytearray()
            for chunk in r.iter_content(1 << 16):
                data += chunk
                if len(data) > max_bytes:
                    raise ValueError(f"larger than {max_bytes} bytes")
        with atomic_file(dest, "wb") as fh:
            fh.write(bytes(data))
        return dest
    except (requests.RequestException, ValueError, OSError) as exc:
        log.debug("image_download_failed", url=url, error=str(exc))
        return None


def download_all(urls: Sequence[str], cache_dir: Path, *, workers: int = 16, retries: int = 3,
                 timeout: float = 20.0, max_bytes: int = 20 << 20) -> dict[str, Path | None]:
    """Fetch each distinct URL once (already-cached files are not fetched again); None = failed."""
    unique = list(dict.fromkeys(urls))
    if not unique:
        return {}
    cache_dir.mkdir(parents=True, exist_ok=True)
    session = _session(retries, workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_fetch, session, u, url_cache_path(cache_dir, u), timeout, max_bytes)
                   for u in unique]
        paths = [f.result() for f in tqdm(futures, desc="download images", unit="img", disable=None)]
    failed = sum(p is None for p in paths)
    log.info("images_downloaded", urls=len(unique), failed=failed)
    return dict(zip(unique, paths, strict=True))
