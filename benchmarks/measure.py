"""Run a command and measure it: wall time and peak RSS of its whole process tree.

Peak RSS is the largest sum, over samples every 20 ms, of the resident memory of
the process and all its descendants (bcftools children included) -- what a
scheduler enforcing mem_mb would see.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass

import psutil


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
