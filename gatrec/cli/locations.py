"""``Location``: a click path parameter that also takes ``gs://`` URIs.

A gs:// value is mirrored into a local copy before the command runs (``$GATREC_GS_CACHE/BUCKET/NAME``,
default ``~/.cache/gatrec/gs``; only changed objects are downloaded), the command gets that local path,
and once the command has succeeded what it added, changed or removed is uploaded back
(gatrec/cloud/storage.py; atomic per object). A failed command uploads nothing (the next pull resets the
copy). The copy's path is stable, so what one step records (a run's dataset folder) is found by the next
step on the same machine. Local values behave exactly as ``click.Path``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click


def cache_root() -> Path:
    return Path(os.environ.get("GATREC_GS_CACHE") or Path.home() / ".cache" / "gatrec" / "gs")


class Location(click.Path):
    """``click.Path`` arguments, plus gs:// URIs."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.startswith("gs://"):
            value = self._mirror(value, param, ctx)
        return super().convert(value, param, ctx)

    def _mirror(self, uri: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from gatrec.cloud import storage
        from gatrec.errors import GatrecError

        try:
            loc = storage.GsUri.parse(uri)
            local = cache_root() / loc.bucket / (loc.name or "_bucket")
            kind = storage.pull(uri, local)
        except GatrecError as exc:
            self.fail(str(exc), param, ctx)
        if kind == "missing" and self.exists:
            self.fail(f"{uri}: no such object or folder in Cloud Storage", param, ctx)
        if (kind == "file" and not self.file_okay) or (kind == "folder" and not self.dir_okay):
            self.fail(f"{uri}: is a {kind}", param, ctx)
        if ctx is not None:
            ctx.with_resource(_sync_back(uri, local, storage.checksums(local)))
        return str(local)


@contextlib.contextmanager
def _sync_back(uri: str, local: Path, known: dict[str, str]) -> Iterator[None]:
    """Upload the local copy's changes when the command succeeds (an exception skips this)."""
    from gatrec.cloud import storage

    yield
    if local.exists():
        storage.push(local, uri, known=known)
