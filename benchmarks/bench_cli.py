"""How soon `vcf-agent` answers: cold CLI commands, `--server` calls, the server's start.

    python benchmarks/bench_cli.py                     # on results/ (the bundled example: snakemake --cores 2)
    python benchmarks/bench_cli.py --results /data/run1/results --repeats 7
    python benchmarks/bench_cli.py --server-only --repeats 5   # the --server calls only (a minute)

Printed, each the median of --repeats runs in fresh interpreters, as from a shell:

* bare import: `python -c "import lancedb, kuzu"`, the floor of any command that opens the stores;
* cold CLI: each command on the stores, and its ratio to the bare import (issue 13's ceilings:
  1.14 for the commands that embed no text, 1.5 for `search`; issue 14: `search` under 3 s);
* --server: the same commands asked of a running `vcf-agent serve` (target: under 0.3 s);
* the server's start: seconds until /health answers and until a first /search is answered,
  the RSS of the server at that point and once its background warm-up is done (issue 14:
  ready in under 5 s at under 500 MB before load).

The runs are interleaved (bare, every command, bare, every command, ...) so that a change in
the machine's load falls on all alike; wall and CPU seconds (user + system of the child) are
shown, with the load average before and after: on a busy machine read the CPU column.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from measure import free_port, get, tree_rss_mb, wait_until_healthy

BIN = Path(sys.executable).parent
VCF_AGENT = str(BIN / "vcf-agent")
BARE = [sys.executable, "-c", "import lancedb, kuzu"]
#: Ceilings of cold commands over the bare import (issue 13), and the absolute targets (issue 14).
RATIO_CEILING = {"search": 1.5}
DEFAULT_CEILING = 1.14
SEARCH_TARGET_S = 3.0
SERVER_TARGET_S = 0.3
READY_TARGET_S, READY_TARGET_MB = 5.0, 500


def timed(command: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of `command` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cli_json(results: str, *argv: str):
    out = subprocess.run([VCF_AGENT, *argv, "--results", results, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"vcf-agent {' '.join(argv)}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def commands(results: str) -> dict[str, list[str]]:
    """One call of each command, with ids read from the stores."""
    stats = cli_json(results, "stats")
    contig = stats["contigs"][0]
    region = f"{contig['name']}:{contig['first']}-{contig['first'] + 100_000}"
    variant = cli_json(results, "region", region, "--limit", "1")["variants"][0]["variant_id"]
    samples = [row["sample"] for row in cli_json(results, "list", "samples")[:2]]
    return {
        "variant": ["variant", variant],
        "sample": ["sample", samples[0], "--limit", "20"],
        "shared": ["shared", *samples, "--limit", "20"],
        "region": ["region", region, "--limit", "20"],
        "similar": ["similar", variant, "--limit", "10"],
        "stats": ["stats"],
        "list samples": ["list", "samples"],
        "search": ["search", "rare missense variant", "--limit", "10"],
    }


def cold_runs(results: str, calls: dict[str, list[str]], repeats: int, server: str | None) -> dict:
    """Interleaved fresh runs: the bare import, then every command (on the stores, or --server)."""
    times: dict[str, list[tuple[float, float]]] = {"bare import": []} | {name: [] for name in calls}
    where = ["--server", server] if server else ["--results", results]
    for _ in range(repeats):
        if not server:
            times["bare import"].append(timed(BARE))
        for name, argv in calls.items():
            times[name].append(timed([VCF_AGENT, *argv, *where]))
    return {name: _medians(values) for name, values in times.items() if values}


def _medians(values: list[tuple[float, float]]) -> dict:
    return {"wall_s": statistics.median(v[0] for v in values), "cpu_s": statistics.median(v[1] for v in values)}


class Served:
    """`vcf-agent serve` started now; its log read for the end of the warm-up."""

    def __init__(self, results: str, options: list[str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [VCF_AGENT, "serve", "--results", results, "--port", str(self.port), "--log-level", "info"]
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [*command, *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.warmed: list[float] = []
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        for line in self.process.stdout:
            if "warmed up in" in line:
                self.warmed.append(time.perf_counter() - self.started)

    def wait_ready(self, timeout: float = 300) -> float:
        wait_until_healthy(self.process, self.base, timeout)
        return time.perf_counter() - self.started

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def server_start(results: str) -> dict:
    served = Served(results, [])
    try:
        ready = served.wait_ready()
        rss_ready = tree_rss_mb(served.process.pid)
        get(f"{served.base}/search?text=rare%20missense%20variant&limit=10", timeout=120)
        first_search = time.perf_counter() - served.started
        while not served.warmed and time.perf_counter() - served.started < 300:
            time.sleep(0.1)
        time.sleep(0.5)
        rss_warm = tree_rss_mb(served.process.pid)
    finally:
        served.stop()
    return {
        "ready_s": ready, "first_search_s": first_search, "warmed_s": served.warmed[0] if served.warmed else None,
        "rss_ready_mb": rss_ready, "rss_warm_mb": rss_warm,
    }  # fmt: skip


def server_summary(remote: dict, repeats: int) -> str:
    """The --server calls over all commands: the median of the commands' medians, and the slowest."""
    walls = sorted(times["wall_s"] for times in remote.values())
    cpus = sorted(times["cpu_s"] for times in remote.values())
    return (
        f"--server, {len(walls)} commands x {repeats}: wall p50 {statistics.median(walls):.3f} s"
        f" (slowest {walls[-1]:.3f} s), CPU (user+sys) p50 {statistics.median(cpus):.3f} s"
        f" (slowest {cpus[-1]:.3f} s); target < {SERVER_TARGET_S} s"
    )


def report_server_only(remote: dict, load: tuple[float, float]) -> None:
    print(f"load average (1 min) {load[0]:.1f} before, {load[1]:.1f} after, on {os.cpu_count()} cores")
    for name, times in remote.items():
        print(f"{name:<14}  --server {times['wall_s']:.3f} s, CPU {times['cpu_s']:.3f} s")


def report(cold: dict, remote: dict, start: dict, load: tuple[float, float]) -> None:
    bare = cold["bare import"]
    print(f"load average (1 min) {load[0]:.1f} before, {load[1]:.1f} after, on {os.cpu_count()} cores")
    print(f"\n{'command':<14}{'cold s':>8}{'CPU s':>8}{'ratio':>8}{'ceiling':>9}  {'--server s':>10}{'CPU s':>8}")
    print(f"{'bare import':<14}{bare['wall_s']:>8.2f}{bare['cpu_s']:>8.2f}{1:>8.2f}{'':>9}")
    for name, times in cold.items():
        if name == "bare import":
            continue
        ceiling = RATIO_CEILING.get(name, DEFAULT_CEILING)
        ratio = times["wall_s"] / bare["wall_s"]
        served = remote.get(name, {})
        print(
            f"{name:<14}{times['wall_s']:>8.2f}{times['cpu_s']:>8.2f}{ratio:>8.2f}{ceiling:>9.2f}"
            f"  {served.get('wall_s', float('nan')):>10.3f}{served.get('cpu_s', float('nan')):>8.3f}"
        )
    print(f"(CPU ratio of search: {cold['search']['cpu_s'] / bare['cpu_s']:.2f}; search target < {SEARCH_TARGET_S} s;"
          f" --server target < {SERVER_TARGET_S} s)")  # fmt: skip
    warmed = f"{start['warmed_s']:.1f} s" if start["warmed_s"] is not None else "not seen"
    print(
        f"\nserver: /health answers at {start['ready_s']:.1f} s (target < {READY_TARGET_S} s) with"
        f" {start['rss_ready_mb']:.0f} MB RSS; first /search answered at {start['first_search_s']:.1f} s;"
        f" background warm-up done at {warmed}, then {start['rss_warm_mb']:.0f} MB (target < {READY_TARGET_MB} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", help="a results folder the workflow built (results)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--server-only", action="store_true", help="time the --server calls only")
    parser.add_argument("--out", type=Path, default=Path("/tmp/vcf-agent-bench-cli.json"))
    args = parser.parse_args()
    results = str(Path(args.results).resolve())
    calls = commands(results)
    load_before = os.getloadavg()[0]
    start = None if args.server_only else server_start(results)
    cold = {} if args.server_only else cold_runs(results, calls, args.repeats, None)
    served = Served(results, [])
    try:
        served.wait_ready()
        while not served.warmed and time.perf_counter() - served.started < 300:
            time.sleep(0.1)
        for argv in calls.values():  # the server's first answer of each kind is not a client's cost
            timed([VCF_AGENT, *argv, "--server", served.base])
        remote = cold_runs(results, calls, args.repeats, served.base)
    finally:
        served.stop()
    load = (load_before, os.getloadavg()[0])
    if args.server_only:
        report_server_only(remote, load)
    else:
        report(cold, remote, start, load)
    print(server_summary(remote, args.repeats))
    args.out.write_text(json.dumps({"cold": cold, "server": remote, "start": start, "load": load}, indent=2))
    print(f"raw numbers: {args.out}")


if __name__ == "__main__":
    main()
