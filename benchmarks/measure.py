"""What the benchmarks share: running a command (or the workflow, or `vcf-agent serve`) and measuring it.

Peak RSS is the largest sum, over samples every 20 ms, of the resident memory of
the process and all its descendants (bcftools children included) -- what a
scheduler enforcing mem_mb would see.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Measured:
    seconds: float
    peak_rss_mb: float
    stdout: str


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += member.memory_info().rss
    return total


def tree_rss_mb(pid: int) -> float:
    """Resident memory of process `pid` and its descendants (a server and its workers), in MiB."""
    return tree_rss(psutil.Process(pid)) / 2**20


def run_measured(command: list[str], interval: float = 0.02) -> Measured:
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    watched = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            peak = max(peak, tree_rss(watched))
        except psutil.NoSuchProcess:
            break
        time.sleep(interval)
    stdout = child.stdout.read()
    if child.wait() != 0:
        raise SystemExit(f"benchmark stage failed: {' '.join(command)}")
    return Measured(time.perf_counter() - start, peak / 2**20, stdout)


def run_workflow(workdir: Path, config: dict, *targets: str, cores: int = 2) -> float:
    """Seconds the checkout's workflow takes in `workdir` on `config` (its output in workdir/snakemake.out)."""
    sys.path.insert(0, str(ROOT / "tests"))  # the tests' own way of running the workflow
    from helpers import workflow_command

    command = workflow_command(workdir, config, *targets, cores=cores)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.setdefault("VCF_AGENT_MODELS", str(ROOT / "benchmarks" / "out" / "models"))  # one ONNX export for all runs
    started = time.perf_counter()
    with (workdir / "snakemake.out").open("w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"the workflow failed ({result.returncode}); see {workdir / 'snakemake.out'}")
    return seconds


# ---------------------------------------------------------------- a server


def fresh_workdir(workdir: Path, marker: str) -> None:
    """An empty `workdir`, marked as a benchmark's (`marker`): one not so marked is refused, not wiped."""
    if workdir.exists():
        if not (workdir / marker).exists() and any(workdir.iterdir()):
            raise SystemExit(f"{workdir}: not empty and not made by this benchmark; name another --workdir")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / marker).touch()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 2.0) -> int:
    """The HTTP status of a GET of `url` (its body read)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        response.read()
        return response.status


def wait_until_healthy(server: subprocess.Popen, base: str, timeout: float) -> None:
    """Return once the server at `base` answers /health; exit if it stops or `timeout` seconds pass."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"vcf-agent serve exited with {server.returncode}")
        with contextlib.suppress(OSError):
            if get(f"{base}/health") == 200:
                return
        time.sleep(0.05)
    server.terminate()
    raise SystemExit(f"vcf-agent serve did not answer within {timeout:g} s")
