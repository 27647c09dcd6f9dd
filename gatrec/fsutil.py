"""Atomic file-system writes (build in a temp path beside the target, then rename) and the rule for
output folders: a command replaces only a folder that it wrote itself.

Temp names carry the writer's host and PID (``.<name>.tmp-<host>-<pid>-<random>``), so a later writer can
tell the leftovers of a killed process from the work of a live one and removes only the former.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gatrec.errors import GatrecError

OUTPUT_MARKER = ".gatrec-output.json"
# Temps in the pre-PID naming (folders ``.<name>.tmp-<random>``, files ``.<name>.<random>``, 8 random
# characters as tempfile makes them) are removed once they are this old.
_LEGACY_STALE_S = 3600.0


class OutputExistsError(GatrecError):
    """``--out`` names something that is not a gatrec output of the kind the command writes."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def this_host() -> str:
    """This machine's name as gatrec records it beside a PID (no '-', so it parses back out of temp names)."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def process_gone(host: str, pid: int) -> bool:
    """True only when ``pid`` provably no longer runs: it ran on this host and no such process exists.
    A process of another user, or one on another host, counts as alive."""
    if host != this_host() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _temp_prefix(name: str, what: str) -> str:
    return f".{name}.{what}-{this_host()}-{os.getpid()}-"


def remove_stale_temps(target: str | Path) -> list[Path]:
    """Remove what killed writers left beside ``target`` (``.<name>.tmp-*`` / ``.<name>.old-*`` of a dead
    PID on this host, or pre-PID temp folders and files older than an hour); returns what was removed."""
    target = Path(target)
    parent, name = target.parent, target.name
    if not parent.is_dir():
        return []
    ours = re.compile(rf"^\.{re.escape(name)}\.(?:tmp|old)-(?P<host>[^-]+)-(?P<pid>\d+)-[A-Za-z0-9_]*$")
    legacy_dir = re.compile(rf"^\.{re.escape(name)}\.tmp-[a-z0-9_]{{8}}$")  # atomic_dir's, before PIDs
    legacy_file = re.compile(rf"^\.{re.escape(name)}\.[a-z0-9_]{{8}}$")  # atomic_file's, before PIDs
    removed = []
    for p in parent.iterdir():
        if not p.name.startswith(f".{name}."):
            continue
        if m := ours.match(p.name):
            stale = process_gone(m["host"], int(m["pid"]))
        elif (legacy_dir.match(p.name) and p.is_dir()) or (legacy_file.match(p.name) and p.is_file()):
            try:
                stale = time.time() - p.lstat().st_mtime > _LEGACY_STALE_S
            except OSError:
                continue
        else:
            continue
        if stale:
            _remove(p)
            removed.append(p)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


# --- output folders --------------------------------------------------------------------------------------


def _json_has(path: Path, *keys: str, **values: str) -> bool:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and all(k in obj for k in keys) and all(obj.get(k) == v for k, v in values.items())


# How to recognise outputs written before the marker existed, by the manifest each kind writes.
_RECOGNISE = {
    "prepared": lambda p: _json_has(p / "manifest.json", "digest", "split", "n_users"),
    "synth": lambda p: _json_has(p / "synth.json", generator="gatrec.data.synth"),
    "features": lambda p: _json_has(p / "features.json", "arrays", "n_items"),
    "run": lambda p: any((p / f).exists() for f in ("config.yaml", "metrics.json", "mlflow_run_id",
                                                     "checkpoints/last.pt")),
}


def output_kind(path: str | Path) -> str | None:
    """The kind of gatrec output ``path`` holds (its marker, else its manifest), or None."""
    path = Path(path)
    marker = path / OUTPUT_MARKER
    if marker.is_file():
        with contextlib.suppress(OSError, ValueError):
            kind = json.loads(marker.read_text()).get("kind")
            if isinstance(kind, str):
                return kind
    return next((kind for kind, test in _RECOGNISE.items() if test(path)), None)


def mark_output(folder: str | Path, kind: str) -> None:
    """Write the marker that lets :func:`guard_output` replace ``folder`` later (call it on the temp folder)."""
    from gatrec import __version__

    write_json(Path(folder) / OUTPUT_MARKER, {"kind": kind, "created_by": f"gatrec {__version__}"})


def guard_output(path: str | Path, kind: str, *, force: bool = False, option: str = "--out") -> None:
    """Refuse to let a command replace (or write into) ``path`` unless that is safe.

    Safe: ``path`` does not exist, is an empty folder, or is a gatrec output of ``kind`` (its
    :data:`OUTPUT_MARKER`, written by :func:`mark_output` / ``atomic_dir(kind=...)``, or the manifest that
    kind writes says so). Anything else (a foreign folder, a plain file, another kind of gatrec output)
    raises :class:`OutputExistsError` naming what is there, and nothing is touched; ``force=True`` (the
    commands' ``--force``) allows it. Call it before any expensive work. Every command that replaces an
    output folder uses it: prepare, synth, embed, train, and the bento / sweep outputs.
    """
    path = Path(path)
    if force or not (path.exists() or path.is_symlink()):
        return
    if not path.is_dir():
        raise OutputExistsError(f"{option} {path} is a file, not a gatrec {kind} folder; nothing was changed "
                                f"(choose another path, or pass --force to replace it)")
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return
    found = output_kind(path)
    if found == kind:
        return
    what = (f"a gatrec {found} folder" if found else
            "a folder gatrec did not write (" + ", ".join(entries[:3]) + (", …" if len(entries) > 3 else "") + ")")
    raise OutputExistsError(f"{option} {path} holds {what}, not a gatrec {kind} folder; nothing was changed "
                            f"(choose another folder, or pass --force to replace it)")


# --- atomic writes ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_dir(target: str | Path, *, overwrite: bool = True, kind: str | None = None) -> Iterator[Path]:
    """Yield a temp folder next to ``target``; on success it replaces ``target`` in one rename.

    On any exception the temp folder is removed and ``target`` is left as it was. With ``kind`` the
    folder gets the output marker of that kind (see :func:`guard_output`). Leftovers of killed earlier
    writers beside ``target`` are removed first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target.name, "tmp"), dir=target.parent))
    try:
        yield tmp
        if kind is not None:
            mark_output(tmp, kind)
        # mkdtemp makes the folder 0700; give the result the permissions a plain mkdir would.
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists() or target.is_symlink():
            if not overwrite:
                raise FileExistsError(target)
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(target.name, "old"), dir=target.parent))
            os.replace(target, old / "x")
            os.replace(tmp, target)
            _remove(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(target: str | Path, mode: str = "w") -> Iterator[Any]:
    """Open a temp file beside ``target`` for writing; rename over ``target`` when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target.name, "tmp"), dir=target.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files 0600
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_file(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")


def file_digest(path: str | Path, algo: str = "sha256", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
