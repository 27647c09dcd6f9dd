"""Cloud Storage: the one module that knows gs:// URIs (google-cloud-storage).

Steps keep taking local paths. At the CLI's edges (``gatrec/cli/locations.py``) a ``gs://`` argument is
mirrored into a local working copy before the step runs (``pull``), and what the step added or changed
is uploaded once it has succeeded (``push``). Uploads are atomic per object: the bytes go to a temporary
object under ``.gatrec-tmp/`` (resumable, in chunks, so a large file streams and a dropped connection
resumes) and become visible under their name only by a server-side copy of the complete object; a failed
upload deletes its temporary object, and infra/ expires any left by a killed process. A folder is
published file by file after all its files are uploaded, manifest-like files (``*.json``) last, so a
reader that waits for the manifest never sees a folder without its data.

``STORAGE_EMULATOR_HOST`` (e.g. gcp-storage-emulator on 127.0.0.1) is honoured by the client library.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import google_crc32c

from gatrec import log
from gatrec.cloud.settings import CloudError

SCHEME = "gs://"
TMP_PREFIX = ".gatrec-tmp/"  # infra/ deletes objects under it after a day
CHUNK = 8 << 20  # resumable-upload chunk (a multiple of 256 KiB)
_log = log.get("gatrec.storage")


def is_gs(value: str | os.PathLike | None) -> bool:
    return isinstance(value, str) and value.startswith(SCHEME)


@dataclass(frozen=True)
class GsUri:
    bucket: str
    name: str  # object name or folder prefix, without leading or trailing '/'

    @classmethod
    def parse(cls, uri: str) -> GsUri:
        if not is_gs(uri):
            raise CloudError(f"{uri!r}: not a gs:// URI")
        bucket, _, name = uri[len(SCHEME):].partition("/")
        if not bucket:
            raise CloudError(f"{uri!r}: no bucket name")
        return cls(bucket, name.strip("/"))

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.name}"

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1] or self.bucket


_CLIENT: Any = None


def client():
    """One storage client per process (anonymous on the emulator, application-default credentials else)."""
    global _CLIENT
    from google.cloud import storage

    if _CLIENT is None or getattr(_CLIENT, "_gatrec_emulator", None) != os.environ.get("STORAGE_EMULATOR_HOST"):
        try:
            _CLIENT = storage.Client()
        except Exception as exc:  # DefaultCredentialsError, or no project
            raise CloudError(f"Cloud Storage: no usable credentials ({exc}); run "
                             "`gcloud auth application-default login`") from None
        _CLIENT._gatrec_emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    return _CLIENT


@contextlib.contextmanager
def _errors(action: str) -> Iterator[None]:
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    try:
        yield
    except gexc.NotFound as exc:
        raise CloudError(f"{action}: not found ({exc.message})") from None
    except gexc.GoogleAPICallError as exc:
        raise CloudError(f"{action}: {exc.code} {exc.message}") from None
    except (aexc.GoogleAuthError, ConnectionError) as exc:
        raise CloudError(f"{action}: {exc}") from None


def _crc32c(path: Path) -> str:
    h = google_crc32c.Checksum()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return base64.b64encode(h.digest()).decode()


# ------------------------------------------------------------------------------------------------- read

def listing(uri: str) -> tuple[str, dict[str, Any]]:
    """What ``uri`` names: ("file", {"": blob}), ("folder", {relative path: blob}) or ("missing", {})."""
    loc = GsUri.parse(uri)
    bucket = client().bucket(loc.bucket)
    with _errors(f"listing {uri}"):
        if loc.name:
            blob = bucket.get_blob(loc.name)
            if blob is not None:
                return "file", {"": blob}
        prefix = f"{loc.name}/" if loc.name else ""
        blobs = {b.name[len(prefix):]: b for b in client().list_blobs(loc.bucket, prefix=prefix)
                 if not b.name.endswith("/")}
    return ("folder", blobs) if blobs else ("missing", {})


def pull(uri: str, dest: Path) -> str:
    """Make ``dest`` a copy of ``uri`` (an object or a folder); returns what it is ("file"/"folder"/"missing").

    ``dest`` may hold an earlier copy: files whose CRC32C matches are kept, others downloaded (streamed
    to a temp file beside their target, renamed once complete and checked), local files the bucket does
    not have are removed."""
    import shutil

    kind, blobs = listing(uri)
    if kind != "folder" and dest.is_dir():
        shutil.rmtree(dest)
    if kind == "folder" and dest.is_file():
        dest.unlink()
    fetched = 0
    for rel, blob in blobs.items():
        target = dest / rel if rel else dest
        if target.is_file() and blob.crc32c and _crc32c(target) == blob.crc32c:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")  # unique: workers share a copy
        with _errors(f"downloading {SCHEME}{blob.bucket.name}/{blob.name}"):
            blob.download_to_filename(str(tmp), checksum="crc32c")
        os.replace(tmp, target)
        fetched += 1
    if kind == "folder":
        for path in sorted(dest.rglob("*"), reverse=True):
            if path.is_file() and not _IN_FLIGHT.match(path.name) and path.relative_to(dest).as_posix() not in blobs:
                path.unlink(missing_ok=True)
            elif path.is_dir() and not any(path.iterdir()):
                with contextlib.suppress(OSError):  # another process may be filling it
                    path.rmdir()
    elif kind == "missing" and dest.is_file():
        dest.unlink()
    _log.info("pulled", uri=uri, kind=kind, objects=len(blobs), downloaded=fetched)
    return kind


# ------------------------------------------------------------------------------------------------ write

def upload_file(source: Path | IO[bytes], uri: str, *, chunk_size: int = CHUNK) -> None:
    """Write one object atomically: resumable upload to a temp object, server-side copy, delete the temp."""
    dest = GsUri.parse(uri)
    tmp = _upload_tmp(source, dest, chunk_size=chunk_size)
    try:
        _publish(tmp, dest.name)
    finally:
        _delete_quietly(tmp)


def _upload_tmp(source: Path | IO[bytes], dest: GsUri, *, chunk_size: int):
    bucket = client().bucket(dest.bucket)
    tmp = bucket.blob(f"{TMP_PREFIX}{uuid.uuid4().hex}/{dest.name}", chunk_size=chunk_size)
    try:
        with _errors(f"uploading to {dest}"):
            if isinstance(source, Path):
                tmp.upload_from_filename(str(source), checksum="crc32c")
            else:
                tmp.upload_from_file(source, checksum="crc32c")
    except BaseException:
        _delete_quietly(tmp)  # a finished temp object (e.g. a checksum mismatch); a broken session left none
        raise
    return tmp


def _publish(tmp, name: str) -> None:
    """Copy a complete temp object to its name (rewrite: any size, in the service)."""
    dest = tmp.bucket.blob(name)
    with _errors(f"publishing {SCHEME}{tmp.bucket.name}/{name}"):
        token, _, _ = dest.rewrite(tmp)
        while token is not None:
            token, _, _ = dest.rewrite(tmp, token=token)


def _delete_quietly(blob) -> None:
    from google.api_core import exceptions as gexc

    with contextlib.suppress(gexc.NotFound, gexc.GoogleAPICallError, OSError):
        blob.delete()


def push(local: Path, uri: str, *, known: dict[str, str] | None = None, chunk_size: int = CHUNK) -> int:
    """Upload ``local`` (a file or a folder) to ``uri``; skip files whose CRC32C ``known`` already has.

    A folder's files are all uploaded before any is published, ``*.json`` (manifests, metrics) published
    last. Returns the number of objects written."""
    known = known or {}
    dest = GsUri.parse(uri)
    files = _files(local)
    changed = {rel: p for rel, p in files.items() if known.get(rel) != _crc32c(p)}
    staged: dict[str, Any] = {}
    try:
        for rel, path in changed.items():
            name = f"{dest.name}/{rel}".strip("/") if rel else dest.name
            staged[rel] = _upload_tmp(path, GsUri(dest.bucket, name), chunk_size=chunk_size)
        for rel in sorted(staged, key=lambda r: (r.endswith(".json"), r)):
            _publish(staged[rel], f"{dest.name}/{rel}".strip("/") if rel else dest.name)
    finally:
        for blob in staged.values():
            _delete_quietly(blob)
    # Files the step removed (e.g. a run restarted with --overwrite) go from the bucket too.
    gone = [rel for rel in known if rel and rel not in files]
    bucket = client().bucket(dest.bucket)
    for rel in gone:
        _delete_quietly(bucket.blob(f"{dest.name}/{rel}".strip("/")))
    _log.info("pushed", uri=uri, objects=len(changed), unchanged=len(files) - len(changed), removed=len(gone))
    return len(changed)


# Temp names of atomic writes in flight (gatrec/fsutil.py's .NAME.tmp-… / .NAME.old-…, pull's .NAME.….part).
_IN_FLIGHT = re.compile(r"^\..+\.(tmp|old)-|^\..+\.part$")


def _files(local: Path) -> dict[str, Path]:
    """The files ``push`` uploads, by relative path (hidden ones too, e.g. the output marker), not temp files."""
    if local.is_file():
        return {"": local}
    if not local.exists():
        return {}
    return {p.relative_to(local).as_posix(): p for p in sorted(local.rglob("*"))
            if p.is_file() and not any(_IN_FLIGHT.match(part) for part in p.relative_to(local).parts)}


def checksums(local: Path) -> dict[str, str]:
    """CRC32C of every file under ``local`` (or of the file), keyed as ``push`` keys them."""
    return {rel: _crc32c(p) for rel, p in _files(local).items()}
