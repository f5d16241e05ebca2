"""The SLURM harness (tests/slurm/cluster.py): a real one-node cluster starts, runs a job, and stops
without leaving a daemon or a job process behind, also when starting fails half-way. The workflow
itself on this cluster is tested in tests/test_slurm_workflow.py.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from slurm import cluster as harness
from slurm.cluster import SlurmCluster, slurm_cluster

pytestmark = pytest.mark.slurm


def wait_until_running(cluster: SlurmCluster, job_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while cluster.run("squeue", "--noheader", "--format=%T", "--jobs", job_id).stdout.strip() != "RUNNING":
        assert time.monotonic() < deadline, f"job {job_id} not running after {timeout} s"
        time.sleep(0.5)


def test_cluster_starts_and_stops_without_leftovers() -> None:
    with slurm_cluster() as running:
        nodes = running.run("sinfo", "--noheader", "--Node", "--format=%N %T %c %m").stdout.split()
        # A job still running at the end must not outlive the cluster either.
        job_id = running.run(
            "sbatch", "--parsable", "--mem=10", f"--chdir={running.root}", "--output=/dev/null", "--wrap=sleep 300"
        ).stdout.strip()
        wait_until_running(running, job_id)
        pids = [process.pid for process in running.processes.values()]
        job_processes = set(harness.leftover_pids(running.conf)) - set(pids)
        assert job_processes, "the running job's processes should carry this cluster's SLURM_CONF"
    assert nodes == [running.node, "idle", "2", str(running.real_memory_mb)]
    assert sorted(running.processes) == sorted(harness.DAEMONS)
    assert not [pid for pid in pids if harness.is_alive(pid)]
    assert not harness.leftover_pids(running.conf)
    assert not [pid for pid in job_processes if harness.is_alive(pid)]
    assert not running.root.exists()


def test_failed_start_stops_what_it_started(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(cluster: SlurmCluster, timeout: float) -> None:
        raise harness.SlurmHarnessError("slurmd refused on purpose")

    monkeypatch.setattr(harness, "start_slurmd", refuse)
    root = Path(tempfile.mkdtemp(prefix="slurm-fail-"))
    try:
        with pytest.raises(harness.SlurmHarnessError, match="refused on purpose"):
            harness.start(root)
        assert not harness.leftover_pids(root / "etc" / "slurm.conf")
        assert not list((root / "pids").iterdir())
        assert harness.stop(root) == []  # idempotent
    finally:
        harness.stop(root)
        shutil.rmtree(root, ignore_errors=True)
