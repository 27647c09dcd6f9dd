"""Image URL download (concurrent, retried, bounded, cached on disk by URL hash) and the quick check that
pretrained image weights can be had at all before an embed run starts."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from gatrec import log as glog
from gatrec.errors import GatrecError
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


_TRUE = ("1", "true", "yes", "on")


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hugging Face hub (``$HF_ENDPOINT``) cannot be reached now, or None when a TCP connection to it
    opens within ``timeout`` seconds (name lookup included)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
        return "HF_HUB_OFFLINE is set"
    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)

    def connect() -> None:
        socket.create_connection((host, port), timeout=timeout).close()

    # getaddrinfo ignores socket timeouts; a thread bounds the whole attempt.
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(connect).result(timeout=timeout + 0.5)
        return None
    except FutureTimeout:
        return f"no answer from {host}:{port} within {timeout:.0f} s"
    except OSError as exc:
        return f"cannot reach {host}:{port} ({exc.strerror or exc})"
    finally:
        pool.shutdown(wait=False)


def _hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def check_pretrained_weights(tag: str, *, model: str = "", timeout: float = 3.0) -> None:
    """Fail in seconds when the open_clip pretrained ``tag`` would have to be downloaded and cannot be.

    A local file, ``none`` or a reachable hub pass. Offline, a tag already in the Hugging Face cache passes
    too (the hub is then put in offline mode so loading does not retry the network); anything else raises.
    """
    if tag.lower() == "none" or Path(tag).expanduser().exists():
        return
    reason = hub_unreachable(timeout)
    if reason is None:
        return
    cache = _hub_cache()
    cached = cache.is_dir() and any(tag.lower() in p.name.lower() for p in cache.glob("models--*"))
    if cached:
        os.environ["HF_HUB_OFFLINE"] = "1"
        log.info("hub_offline_using_cache", tag=tag, reason=reason, cache=str(cache))
        return
    what = f"open_clip {model} weights" if model else "open_clip weights"
    raise GatrecError(f"--image-weights {tag}: {what} must be downloaded from the Hugging "
                      f"Face hub, which is unreachable ({reason}) and they are not in {cache}; pass "
                      "--image-weights PATH (a local checkpoint) or --image-weights none (random init)")
