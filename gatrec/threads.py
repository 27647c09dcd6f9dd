"""How many threads torch and BLAS may use: the CPUs this process may really run on, shared fairly.

torch sizes its pool from the host's cores. That oversubscribes a container whose CPU quota is smaller
(Cloud Run, ``docker --cpus``), and two trainings on one machine each take every core: their OpenMP
threads then wait on each other at every barrier (the synthetic GAT: 0.59 s/epoch alone, 2.51 s each for
two copies at once, 0.24x where a fair share is 0.5x). So:

- the CPUs a process may use are its affinity mask capped by its cgroup CPU quota (v2 ``cpu.max``, v1
  ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), rounded up;
- the gatrec processes on one machine share them: each holds a lock file in a shared folder while it runs,
  and ``rebalance`` (called once per epoch) sets this process's threads to its share of the CPUs;
- ``GATREC_THREADS=N`` fixes the count (no sharing), as does an explicit ``--threads``.

On a machine already busy with other work, one thread is faster still: OpenMP threads that wait for each
other at every barrier lose more than they gain (amazon-beauty LightGCN epoch at load 8 on 2 cores: 65 s
with 2 threads, 10 s with 1). So when the 1-minute load average, less this process's own threads, exceeds
the CPUs available by one or more, a process takes one thread until the load falls. (The margin absorbs the
average's lag: an earlier step that just ended still counts for a while. The instantaneous runnable count
of /proc/loadavg is no better: it reads 9-10 on an idle 2-core VM here.)
"""

from __future__ import annotations

import fcntl
import math
import os
import tempfile
import time
from pathlib import Path

from gatrec import log as glog

log = glog.get(__name__)

ENV_THREADS = "GATREC_THREADS"
ENV_SHARE_DIR = "GATREC_THREADS_DIR"
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
REBALANCE_EVERY_S = 1.0  # counting peers costs a few syscalls per lock file; at most once a second


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ancestors(root: Path, rel: str) -> list[Path]:
    """``root/rel`` and each folder above it up to ``root`` (a quota set on a parent caps its children)."""
    parts = [p for p in rel.split("/") if p]
    return [root.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _quota_v2(folder: Path) -> float | None:
    text = _read(folder / "cpu.max")
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max":
        return None
    try:
        return int(quota) / int(period or 100_000)
    except ValueError:
        return None


def _quota_v1(folder: Path) -> float | None:
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    try:
        q, p = int(quota or "-1"), int(period or "0")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """CPUs this process's cgroup may use per period (e.g. 1.5), or None when no quota is set.

    Reads the process's cgroup paths from ``proc_cgroup`` and looks for the quota in that folder and its
    parents, under the v2 unified hierarchy and the v1 ``cpu`` controller; the smallest quota found wins.
    Inside a container the process's own cgroup is often mounted as the root, so the root is checked too.
    """
    limits: list[float] = []
    for line in (_read(proc_cgroup) or "").splitlines():
        hid, _, rest = line.partition(":")
        controllers, _, rel = rest.partition(":")
        if hid == "0" and controllers == "":
            bases, read = [root, root / "unified"], _quota_v2
        elif "cpu" in controllers.split(","):
            bases, read = [root / controllers, root / "cpu", root / "cpu,cpuacct"], _quota_v1
        else:
            continue
        for base in dict.fromkeys(bases):
            if base.is_dir():
                limits += [q for folder in _ancestors(base, rel) if (q := read(folder)) is not None]
    return min(limits) if limits else None


def available_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """CPUs this process may run on: its affinity mask, capped by the cgroup quota rounded up (≥ 1)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_limit(root, proc_cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota - 1e-9)))
    return max(1, cpus)


def _env_threads() -> int | None:
    raw = os.environ.get(ENV_THREADS, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        from gatrec.errors import GatrecError

        raise GatrecError(f"{ENV_THREADS}={raw!r}: expected a whole number ≥ 1")
    return n


def share_dir() -> Path:
    """Folder of the lock files by which gatrec processes on this machine count each other."""
    env = os.environ.get(ENV_SHARE_DIR)
    return Path(env) if env else Path(tempfile.gettempdir()) / f"gatrec-cpu-share-{os.getuid()}"


class _Share:
    """This process's lock file in the share folder, held (flock) for as long as the process lives."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.path: Path | None = None
        self.fixed: int | None = None  # an explicit thread count: no sharing
        self.ceiling: int | None = None  # torch's count before the first configure: never raised above it
        self.last = 0.0

    def join(self) -> None:
        if self.fd is not None and self.path is not None and self.path.exists():
            return
        folder = share_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{os.getpid()}.lock"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def peers(self) -> int:
        """Live gatrec processes sharing the CPUs, this one included; files of dead ones are removed."""
        live = 0
        for f in share_dir().glob("*.lock"):
            if f == self.path:
                live += 1
                continue
            try:
                fd = os.open(f, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                live += 1  # held: its process is running
            else:
                f.unlink(missing_ok=True)  # nobody holds it: the process died without cleaning up
            finally:
                os.close(fd)
        return max(live, 1)


_share = _Share()


def fair_share(cpus: int, peers: int, others_load: float = 0.0) -> int:
    """Threads for one of ``peers`` processes sharing ``cpus`` CPUs (each gets at least one); one when the
    load of other work (``others_load``, runnable threads) overfills the CPUs."""
    if others_load >= cpus + 1:  # a margin: the 1-minute average lags behind work that just ended
        return 1
    return max(1, cpus // max(1, peers))


def _others_load(own_threads: int) -> float:
    """The 1-minute load average less what this process's threads add to it (0 where unknown)."""
    try:
        return max(0.0, os.getloadavg()[0] - own_threads)
    except OSError:
        return 0.0


def _apply(n: int) -> None:
    import torch

    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n, user_api="blas")  # numpy's BLAS (PCA, kNN) too
    except ImportError:  # threadpoolctl comes with scikit-learn; without it only torch is sized
        pass


def configure(threads: int | None = None) -> int:
    """Size torch/BLAS threads for this process and return the count.

    ``threads`` (or ``GATREC_THREADS``) fixes it; otherwise this process joins the machine's share and gets
    ``available_cpus() // live gatrec processes`` threads (one on a machine already full), re-evaluated by
    ``rebalance``.
    """
    import torch

    if _share.ceiling is None:  # a caller (a test, a notebook) that lowered it first keeps its limit
        _share.ceiling = torch.get_num_threads()
    fixed = threads if threads is not None else _env_threads()
    if fixed is not None:
        _share.fixed = max(1, fixed)
        _apply(_share.fixed)
        return _share.fixed
    _share.fixed = None
    running = _share.fd is not None  # since the first call this process's own threads count in the load
    try:
        _share.join()
        peers = _share.peers()
    except OSError as exc:  # an unwritable temp folder: fall back to this process alone
        log.debug("thread_share_unavailable", error=str(exc))
        peers = 1
    _share.last = time.monotonic()
    others = _others_load(torch.get_num_threads() if running else 0)
    n = min(fair_share(available_cpus(), peers, others), _share.ceiling)
    _apply(n)
    return n


def rebalance() -> int:
    """Re-size to the current share (cheap; call it between epochs). Returns the thread count."""
    import torch

    if _share.fixed is not None:
        return _share.fixed
    if _share.fd is None:
        return configure()
    if time.monotonic() - _share.last < REBALANCE_EVERY_S:
        return torch.get_num_threads()
    before = torch.get_num_threads()
    n = configure()
    if n != before:
        log.info("threads_rebalanced", threads=n, was=before)
    return n
