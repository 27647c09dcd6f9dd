"""Thread sizing: cgroup quotas read from a fake cgroup tree, the env override, fair shares between processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gatrec import threads
from gatrec.errors import GatrecError

REAL_OTHERS_LOAD = threads._others_load


def _tree(tmp_path: Path, proc_lines: list[str], files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text + "\n")
    root.mkdir(exist_ok=True)
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text("\n".join(proc_lines) + "\n")
    return root, proc


def _affinity() -> int:
    return len(os.sched_getaffinity(0))


def test_v2_quota_of_the_process_cgroup(tmp_path):
    root, proc = _tree(tmp_path, ["0::/jobs/worker"], {"jobs/worker/cpu.max": "150000 100000",
                                                     "jobs/cpu.max": "max 100000"})
    assert threads.cgroup_cpu_limit(root, proc) == pytest.approx(1.5)
    assert threads.available_cpus(root, proc) == min(_affinity(), 2)


def test_v2_parent_quota_caps_the_child(tmp_path):
    root, proc = _tree(tmp_path, ["0::/jobs/worker"], {"jobs/worker/cpu.max": "400000 100000",
                                                     "jobs/cpu.max": "50000 100000"})
    assert threads.cgroup_cpu_limit(root, proc) == pytest.approx(0.5)
    assert threads.available_cpus(root, proc) == 1


def test_v2_without_quota(tmp_path):
    root, proc = _tree(tmp_path, ["0::/a"], {"a/cpu.max": "max 100000"})
    assert threads.cgroup_cpu_limit(root, proc) is None
    assert threads.available_cpus(root, proc) == _affinity()


def test_v2_container_sees_its_cgroup_as_the_root(tmp_path):
    # Inside a container /proc/self/cgroup names the host path, but the mount shows only its own folder.
    root, proc = _tree(tmp_path, ["0::/system.slice/docker-1234.scope"], {"cpu.max": "100000 100000"})
    assert threads.cgroup_cpu_limit(root, proc) == pytest.approx(1.0)
    assert threads.available_cpus(root, proc) == 1


@pytest.mark.parametrize("controllers", ["cpu", "cpu,cpuacct"])
def test_v1_cfs_quota(tmp_path, controllers):
    root, proc = _tree(tmp_path, ["4:memory:/x", f"3:{controllers}:/x"],
                       {f"{controllers}/x/cpu.cfs_quota_us": "250000",
                        f"{controllers}/x/cpu.cfs_period_us": "100000"})
    assert threads.cgroup_cpu_limit(root, proc) == pytest.approx(2.5)
    assert threads.available_cpus(root, proc) == min(_affinity(), 3)


def test_v1_unlimited_and_unreadable(tmp_path):
    root, proc = _tree(tmp_path, ["3:cpu:/x"], {"cpu/x/cpu.cfs_quota_us": "-1", "cpu/x/cpu.cfs_period_us": "100000"})
    assert threads.cgroup_cpu_limit(root, proc) is None
    root, proc = _tree(tmp_path / "bad", ["3:cpu:/x"], {"cpu/x/cpu.cfs_quota_us": "lots"})
    assert threads.cgroup_cpu_limit(root, proc) is None
    assert threads.cgroup_cpu_limit(tmp_path / "missing", tmp_path / "missing.txt") is None


def test_fair_share():
    assert [threads.fair_share(2, n) for n in (1, 2, 3)] == [2, 1, 1]
    assert [threads.fair_share(16, n) for n in (1, 3, 4, 20)] == [16, 5, 4, 1]
    assert threads.fair_share(16, 1, others_load=16.9) == 16 // 1
    assert threads.fair_share(16, 1, others_load=17.0) == 1  # the machine is overfull already


def test_a_machine_busy_with_other_work_gets_one_thread(fresh_share, monkeypatch):
    torch.set_num_threads(threads.available_cpus())
    load = {"now": float(threads.available_cpus() + 1)}
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load["now"], 0.0, 0.0))
    monkeypatch.setattr(threads, "_others_load", REAL_OTHERS_LOAD)
    assert threads.configure() == 1
    load["now"] = 0.5
    threads._share.last = 0.0
    assert threads.rebalance() == threads.available_cpus()
    # Its own threads count in the load average while it runs: that alone does not push it down to one.
    load["now"] = float(threads.available_cpus()) + 0.5
    threads._share.last = 0.0
    assert threads.rebalance() == threads.available_cpus()


@pytest.fixture
def fresh_share(tmp_path, monkeypatch):
    """A private share folder and a fresh process state; torch's thread count restored afterwards."""
    before = torch.get_num_threads()
    monkeypatch.setenv(threads.ENV_SHARE_DIR, str(tmp_path / "share"))
    monkeypatch.delenv(threads.ENV_THREADS, raising=False)
    monkeypatch.setattr(threads, "_share", threads._Share())
    monkeypatch.setattr(threads, "_others_load", lambda own: 0.0)  # an idle machine (the load test sets its own)
    yield tmp_path / "share"
    torch.set_num_threads(before)


def test_env_override_fixes_the_count(fresh_share, monkeypatch):
    monkeypatch.setenv(threads.ENV_THREADS, "1")
    assert threads.configure() == 1
    assert torch.get_num_threads() == 1
    assert threads.rebalance() == 1
    assert not fresh_share.exists()  # a fixed count does not join the share
    monkeypatch.setenv(threads.ENV_THREADS, "two")
    with pytest.raises(GatrecError, match="GATREC_THREADS='two'"):
        threads.configure()
    assert threads.configure(threads=1) == 1  # an explicit argument wins over the environment


def test_never_raised_above_a_lower_count_set_first(fresh_share):
    torch.set_num_threads(1)
    assert threads.configure() == 1


_PEER = """
import sys, time
from gatrec import threads
print(threads.configure(), flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to see a share")
def test_concurrent_processes_split_the_cpus(fresh_share):
    torch.set_num_threads(threads.available_cpus())
    cpus = threads.available_cpus()
    assert threads.configure() == cpus  # alone
    peer = subprocess.Popen([sys.executable, "-c", _PEER], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, threads.ENV_SHARE_DIR: str(fresh_share)})
    try:
        assert int(peer.stdout.readline()) <= threads.fair_share(cpus, 2)  # the peer sees this process
        threads._share.last = 0.0
        assert threads.rebalance() == threads.fair_share(cpus, 2)
        assert torch.get_num_threads() == threads.fair_share(cpus, 2)
    finally:
        peer.send_signal(signal.SIGKILL)
        peer.wait(timeout=30)
    # A killed peer leaves its lock file; nobody holds it, so it no longer counts and is removed.
    assert (fresh_share / f"{peer.pid}.lock").exists()
    time.sleep(0.05)
    threads._share.last = 0.0
    assert threads.rebalance() == cpus
    assert not (fresh_share / f"{peer.pid}.lock").exists()
