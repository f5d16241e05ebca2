"""The SLURM harness: a real one-node cluster (tests/slurm/cluster.py) runs the toy workflow
(tests/slurm/toy) through `snakemake --workflow-profile profiles/slurm`.

The evidence is SLURM's own accounting database (sacct via slurmdbd): every job the plugin submitted
is recorded there with the memory, time limit and CPUs SLURM granted and the state it ended in, kept
after the job is gone and independent of Snakemake's logs. The expected numbers are the ones the toy
Snakefile declares.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import ROOT, SNAKEMAKE
from slurm import cluster as harness
from slurm.cluster import SlurmCluster, slurm_cluster

pytestmark = pytest.mark.slurm

TOY = ROOT / "tests" / "slurm" / "toy" / "Snakefile"
PROFILE = ROOT / "profiles" / "slurm"
# Declared in the toy Snakefile: rule -> (threads, mem_mb, runtime in minutes).
DECLARED = {"first": (1, 300, 3), "second": (1, 350, 4), "joined": (2, 400, 5)}
HUNGRY_MEM_MB = {1: 500, 2: 1000}  # rule hungry: mem_mb = 500 * attempt
JOB_FIELDS = ("JobIDRaw", "Comment", "State", "ReqMem", "TimelimitRaw", "AllocCPUS")
# A hung plugin ignores SIGTERM, so every run is killed outright after this long.
RUN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    with slurm_cluster() as running:
        yield running


def run_toy(cluster: SlurmCluster, workdir: Path, *targets: str) -> str:
    """Run the toy workflow on the cluster; return the plugin's run ID (the SLURM job name)."""
    command = [
        "timeout", "-s", "KILL", str(RUN_TIMEOUT_S),
        str(SNAKEMAKE), "--snakefile", str(TOY), "--directory", str(workdir),
        "--workflow-profile", str(PROFILE),
        # Only for speed on this idle cluster: first status check 2 s after submission.
        "--slurm-init-seconds-before-status-checks", "2",
        *targets,
    ]  # fmt: skip
    result = subprocess.run(command, env=cluster.env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"snakemake failed ({result.returncode}):\n{result.stderr[-6000:]}"
    match = re.search(r"SLURM run ID: (\S+)", result.stderr)
    assert match, f"no SLURM run ID in the snakemake output:\n{result.stderr[-3000:]}"
    return match.group(1)


def megabytes(req_mem: str) -> int:
    """sacct's ReqMem (e.g. '300M', '1G') in MB."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT])", req_mem)
    assert match, f"unexpected ReqMem {req_mem!r}"
    factor = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[match.group(2)]
    return round(float(match.group(1)) * factor)


def jobs_by_rule(cluster: SlurmCluster, run_id: str) -> dict[str, list[dict[str, str]]]:
    """The run's jobs from the accounting database, grouped by rule (the plugin's rule_<name> comment)."""
    grouped: dict[str, list[dict[str, str]]] = {}
    for job in sorted(cluster.sacct(*JOB_FIELDS, name=run_id), key=lambda job: int(job["JobIDRaw"])):
        grouped.setdefault(job["Comment"].removeprefix("rule_"), []).append(job)
    return grouped


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


def test_every_rule_runs_as_a_slurm_job_with_its_declared_resources(cluster: SlurmCluster, tmp_path: Path) -> None:
    run_id = run_toy(cluster, tmp_path)

    jobs = jobs_by_rule(cluster, run_id)
    assert sorted(jobs) == sorted(DECLARED), "the localrule `all` must not be a job; every other rule must"
    for rule, (threads, mem_mb, runtime) in DECLARED.items():
        [job] = jobs[rule]
        granted = (int(job["AllocCPUS"]), megabytes(job["ReqMem"]), int(job["TimelimitRaw"]))
        assert job["State"] == "COMPLETED", job
        assert granted == (threads, mem_mb, runtime), f"{rule}: SLURM granted {granted}, declared {job}"
    assert (tmp_path / "joined.txt").read_text() == "first\nsecond\n"


def test_job_over_its_memory_is_killed_and_retried_with_more(cluster: SlurmCluster, tmp_path: Path) -> None:
    run_id = run_toy(cluster, tmp_path, "hungry.txt")

    first, second = jobs_by_rule(cluster, run_id)["hungry"]
    assert (first["State"], megabytes(first["ReqMem"])) == ("FAILED", HUNGRY_MEM_MB[1]), first
    assert (second["State"], megabytes(second["ReqMem"])) == ("COMPLETED", HUNGRY_MEM_MB[2]), second
    # SLURM measured the killed step above its limit, killed it (signal 9) and logged why.
    steps = cluster.sacct("JobID", "State", "ExitCode", "MaxRSS", job=first["JobIDRaw"])
    killed = [step for step in steps if step["ExitCode"] == "0:9"]
    assert killed, steps
    assert all(int(step["MaxRSS"].removesuffix("K")) // 1024 > HUNGRY_MEM_MB[1] for step in killed), killed
    limit_bytes = HUNGRY_MEM_MB[1] << 20
    kill_line = rf"StepId={first['JobIDRaw']}\.\d+ exceeded memory limit \(\d+ > {limit_bytes}\), being killed"
    assert re.search(kill_line, cluster.log("slurmd").read_text()), "no memory kill in slurmd.log"
    # The retry is the attempt that wrote the output, and it saw the larger memory.
    assert (tmp_path / "hungry.txt").read_text().strip() == str(HUNGRY_MEM_MB[2])
