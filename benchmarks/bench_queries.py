"""Query latencies on a 1,000,000-variant store, then 500 concurrent HTTP clients for 60 s.

    python benchmarks/bench_queries.py                      # build (or reuse) the store, measure all
    python benchmarks/bench_queries.py --clients 100 --seconds 20 --work /tmp/qb

The store is the real 2,504-sample 1000 Genomes chr22 cohort repeated at shifted
positions (benchmarks/scaled_data.py: 1,000,000 variants with the model's real
vectors, 10,000,000 carrier genotypes in the first copies) loaded by the
package's own loaders (vcf_agent.stores.lance, vcf_agent.stores.kuzu); both are
kept in --work and reused.

Single user (vcf_agent.query in this process, after one warm-up call each):
p50 and p90 of `similar` top-10 with a 1 Mb region filter, `search` top-10 with
a new text each time (the embedding included) and with a repeated text (served
from the query-embedding cache), `variant` with all its carriers, `sample` on
the 2,504-sample cohort (zygosity counts and the first 100 variants), `region`
and `shared`.

Many users: `vcf-agent serve` in its own process and, in this one, `--clients`
asyncio clients (one connection each) that send a mix of requests
back-to-back on loopback for `--seconds`. Printed: requests, errors (any
status but 200, any transport error), requests/s, p50/p99 latency per kind and
overall, and the server's resident memory averaged over the first and the
last 10 s. The mix is written as CLI commands and turned into requests by the
CLI's own --server client (vcf_agent.interfaces.client), so its parameter names
are the server's, whatever they are.

Workers (`--compare-workers`, issue 15): `vcf-agent serve --workers 1` and
`--workers 2` side by side in one run, in alternating rounds (1, 2, 1, 2, ...),
each after its background warm-up, `--clients` clients (64) for `--seconds`:
requests/s of each, their ratio (medians over the rounds), and the RSS of the
server's processes idle after the warm-up, so the RSS the second worker adds.

    python benchmarks/bench_queries.py --store /tmp/qs/results --compare-workers --clients 64 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]

from measure import free_port, tree_rss_mb, wait_until_healthy  # noqa: E402 (benchmarks/ is on sys.path now)

#: Extra `vcf-agent serve` options (--serve-options).
SERVE_OPTIONS: list[str] = []
TARGETS_MS = {
    # issue 15's p50 targets on the full-size store, one user
    "similar (1 Mb region)": 50,
    "search, new text": 50,
    "variant + carriers": 20,
    "sample (2,504 cohort)": 50,
    "region 1 Mb (first 100)": 150,
    "shared (2 samples)": 100,
}
WORDS = (
    "rare", "common", "deletion", "insertion", "missense", "synonymous", "frameshift", "intron",
    "passed filters", "very rare", "structural", "duplication", "single-nucleotide", "high impact",
    "low-frequency", "splice region", "upstream", "in a gene", "major allele", "complex indel",
)  # fmt: skip


# ---------------------------------------------------------------- the store


def build_store(
    work: Path, variants: int, genotypes: int, partition_edges: int | None = None, shard_records: int = 100_000
) -> Path:
    """The scaled shards, loaded by the package's loaders into work/store (reused when complete)."""
    from scaled_data import build_scaled_shards

    from vcf_agent.stores.kuzu import DEFAULT_PARTITION_EDGES, load_kuzu
    from vcf_agent.stores.lance import load_lancedb

    # source "base": the shards' `source` column (from the base cohort) then names their folder too
    shards = build_scaled_shards(
        work / "scaled", variants=variants, genotypes=genotypes, source="base", shard_records=shard_records
    )
    store = work / "store"
    done = store / "bench-store.json"
    edges = partition_edges or DEFAULT_PARTITION_EDGES
    wanted = {"variants": shards.n_variants, "genotypes": shards.n_genotypes, "partition_edges": edges}
    if done.exists() and json.loads(done.read_text()) == wanted:
        return store
    store.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_lancedb(shards.variants, shards.embeddings, store / "lancedb", store / "lancedb.json", threads=2, mem_mb=2048)
    print(f"LanceDB loaded in {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    load_kuzu(
        shards.variants, shards.genotypes, shards.annotations, store / "kuzu", store / "kuzu.json",
        samples={shards.source: shards.samples}, threads=2, mem_mb=4096, partition_edges=edges,
    )  # fmt: skip
    print(f"Kuzu loaded in {time.perf_counter() - started:.0f} s", flush=True)
    done.write_text(json.dumps(wanted))
    return store


# ---------------------------------------------------------------- one user


#: Untimed calls of each operation first: the first use of an index, the model, a prepared
#: statement, and the graph partitions its random arguments reach (opened on first use, ~20-40 ms
#: each, and kept open by a server: 28 on the full-size store), as a server that has run a while.
WARM_UP_CALLS = 10


def timed(call, repeats: int, warm_up: int = WARM_UP_CALLS) -> list[float]:
    for _ in range(warm_up):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def single_user(store: Path, repeats: int, seed: int, open_partitions: int | None) -> dict[str, list[float]]:
    from vcf_agent.query import Filters, Region, Stores

    rng = random.Random(seed)
    options = {} if open_partitions is None else {"open_partitions": open_partitions}
    with Stores.open(store, **options) as stores:
        stats = stores.stats()
        contig = stats.contigs[0]
        carried = [r["id"] for r in stores.graph.query(_GENOTYPED, {"n": 2000})]
        samples = [r["id"] for r in stores.graph.shared("MATCH (s:Sample) RETURN s.id AS id")]
        print(f"store: {stats.variants:,} variants, {stats.genotypes:,} genotypes, {stats.samples:,} samples")

        def pick_variant() -> str:
            return rng.choice(carried)

        def region_around(variant_id: str) -> Region:
            pos = int(variant_id.split(":")[1])
            start = max(contig.first, pos - 500_000)
            return Region(contig.name, start, start + 1_000_000)

        def similar():
            vid = pick_variant()
            hits = stores.similar(vid, Filters(region=region_around(vid)), limit=10)
            assert len(hits) == 10

        def new_text() -> str:
            return " ".join(rng.sample(WORDS, 4)) + f" {rng.randrange(10**6)}"

        return {
            "similar (1 Mb region)": timed(similar, repeats),
            "search, new text": timed(lambda: stores.search(new_text(), limit=10), repeats),
            "search, repeated text": timed(lambda: stores.search("rare missense variant", limit=10), repeats),
            "search top 3,000, carriers of each": timed(
                lambda: stores.search("rare missense variant", limit=3000), max(1, repeats // 10), warm_up=1
            ),
            "variant + carriers": timed(lambda: stores.variant(pick_variant()), repeats),
            "sample (2,504 cohort)": timed(lambda: stores.sample(rng.choice(samples), limit=100), repeats),
            "region 1 Mb (first 100)": timed(lambda: stores.region(region_around(pick_variant())), repeats),
            "shared (2 samples)": timed(lambda: stores.shared(rng.sample(samples, 2), limit=100), repeats),
        }


_GENOTYPED = "MATCH (s:Sample)-[:CARRIES]->(v:Variant) WITH DISTINCT v.variant_id AS id RETURN id LIMIT $n"


# ---------------------------------------------------------------- many users


def start_server(store: Path, port: int, options: tuple[str, ...] = ()) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("vcf-agent")), "serve", "--results", str(store), "--port", str(port)]
    command += [*SERVE_OPTIONS, *options]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_until_healthy(server, f"http://127.0.0.1:{port}", timeout=60)
    return server


def request_mix(store: Path, seed: int) -> list[tuple[str, list[str]]]:
    """(kind, CLI argv) requests to draw from, built from the store's own ids."""
    from vcf_agent.query import Stores

    rng = random.Random(seed)
    with Stores.open(store) as stores:
        # up to 500 of every partition's variants (the query runs in each one), so that the
        # variants asked for lie all over the store, as users' do
        carried = [r["id"] for r in stores.graph.query(_GENOTYPED, {"n": 500})]
        samples = [r["id"] for r in stores.graph.query("MATCH (s:Sample) RETURN s.id AS id LIMIT 500")]
        chrom = stores.stats().contigs[0].name
    mix = []
    for vid in rng.sample(carried, min(200, len(carried))):
        pos = int(vid.split(":")[1])
        region = f"{chrom}:{max(1, pos - 500_000)}-{pos + 500_000}"
        mix.append(("variant", ["variant", vid, "--carriers", "20"]))
        mix.append(("similar", ["similar", vid, "--region", region, "--limit", "10"]))
        mix.append(("region", ["region", f"{chrom}:{pos}-{pos + 20_000}", "--limit", "20"]))
    for sample in samples[:200]:
        mix.append(("sample", ["sample", sample, "--limit", "20"]))
    for text in ("rare missense variant", "common deletion", "insertion in a gene", "structural variant"):
        mix.append(("search", ["search", text, "--limit", "10"]))
    mix.append(("stats", ["stats"]))
    rng.shuffle(mix)
    return mix


def as_requests(mix: list[tuple[str, list[str]]], port: int) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(kind, path, query) of each command, as `vcf-agent COMMAND --server` would ask it."""
    from urllib.request import urlopen

    from vcf_agent.interfaces.cli import build_parser
    from vcf_agent.interfaces.client import request_for

    parser = build_parser()
    with urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=60) as response:
        schema = json.loads(response.read())
    return [(kind, *request_for(parser.parse_args(argv), parser, schema)) for kind, argv in mix]


class Connection:
    """A minimal HTTP/1.1 keep-alive client on one socket.

    httpx spent 11 ms of CPU per request with hundreds of connections (its pool is
    searched linearly), more than the server itself: on two shared cores the load
    generator must cost next to nothing. The server always answers with a
    Content-Length (JSON responses), which is all this client reads.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, params) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        target = f"{path}?{urlencode(params)}" if params else path
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


async def clients(port: int, mix, count: int, seconds: float, seed: int) -> tuple[dict, int, list[str], float]:
    """`count` clients, each on its own connection, sending requests back-to-back until `seconds` pass."""
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    async def client(number: int) -> None:
        rng = random.Random(seed + number)
        connection = Connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                kind, path, params = rng.choice(mix)
                started = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(connection.get(path, params), timeout=120)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as error:
                    errors.append(f"{kind} {type(error).__name__} {error}")
                    await connection.close()
                    connection = Connection("127.0.0.1", port)
                    continue
                if status != 200:
                    errors.append(f"{kind} {status} {body[:200]!r}")
                    continue
                latencies[kind].append((time.perf_counter() - started) * 1000)
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(count)))
    return latencies, sum(map(len, latencies.values())), errors, time.perf_counter() - started


def watch_memory(pid: int, samples: list[tuple[float, float]], stop) -> None:
    while not stop.is_set():
        samples.append((time.perf_counter(), tree_rss_mb(pid)))
        stop.wait(1.0)


def many_users(store: Path, count: int, seconds: float, seed: int) -> dict:
    import threading

    port = free_port()
    server = start_server(store, port)
    mix = as_requests(request_mix(store, seed), port)
    memory: list[tuple[float, float]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch_memory, args=(server.pid, memory, stop), daemon=True)
    try:
        watcher.start()
        latencies, done, errors, elapsed = asyncio.run(clients(port, mix, count, seconds, seed))
    finally:
        stop.set()
        watcher.join()
        server.terminate()
        server.wait(timeout=60)
    begin, end = memory[0][0], memory[-1][0]
    first = [rss for t, rss in memory if t - begin <= 10]
    last = [rss for t, rss in memory if end - t <= 10]
    return {
        "clients": count, "seconds": round(elapsed, 1), "requests": done, "errors": len(errors),
        "error_examples": errors[:5], "requests_per_s": round(done / elapsed, 1),
        "latency_ms": {kind: _quantiles(values) for kind, values in sorted(latencies.items())},
        "all_ms": _quantiles([v for values in latencies.values() for v in values]),
        "rss_first_10s_mb": round(statistics.mean(first), 1), "rss_last_10s_mb": round(statistics.mean(last), 1),
        "rss_timeline_mb": [round(rss) for _, rss in memory],
    }  # fmt: skip


def wait_until_idle(pid: int, timeout: float = 300) -> None:
    """Until the server's processes have used under 5 % of a core for 2 s (its background warm-up done)."""
    deadline, quiet = time.monotonic() + timeout, 0
    last = server_cpu_s(pid)
    while time.monotonic() < deadline and quiet < 4:
        time.sleep(0.5)
        now = server_cpu_s(pid)
        quiet = quiet + 1 if now - last < 0.025 else 0
        last = now


def server_cpu_s(pid: int) -> float:
    process = psutil.Process(pid)
    total = 0.0
    for member in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = member.cpu_times()
            total += times.user + times.system
    return total


def compare_workers(store: Path, count: int, seconds: float, seed: int, rounds: int) -> dict:
    """--workers 1 and 2 in alternating rounds: requests/s at `count` clients, idle RSS of each."""
    commands = request_mix(store, seed)
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(rounds):
        for workers in (1, 2):
            port = free_port()
            server = start_server(store, port, ("--workers", str(workers)))
            try:
                wait_until_idle(server.pid)
                idle = tree_rss_mb(server.pid)
                load = os.getloadavg()[0]
                requests = as_requests(commands, port)
                server_cpu, client_cpu = server_cpu_s(server.pid), time.process_time()
                _, done, errors, elapsed = asyncio.run(clients(port, requests, count, seconds, seed))
                server_cpu, client_cpu = server_cpu_s(server.pid) - server_cpu, time.process_time() - client_cpu
                after = tree_rss_mb(server.pid)
            finally:
                server.terminate()
                server.wait(timeout=60)
            # the cores each side kept busy: on two cores the load generator takes its share from the workers
            run = {"requests_per_s": done / elapsed, "errors": len(errors), "idle_rss_mb": idle,
                   "rss_after_mb": after, "load_1min": load, "server_cores": server_cpu / elapsed,
                   "client_cores": client_cpu / elapsed,
                   "server_cpu_ms_per_request": 1000 * server_cpu / done}  # fmt: skip
            runs[workers].append(run)
            print(f"  --workers {workers}: {run['requests_per_s']:.1f} requests/s, {len(errors)} errors,"
                  f" idle RSS {idle:.0f} MB, after {after:.0f} MB, load {load:.1f}; cores busy: server"
                  f" {run['server_cores']:.2f}, clients {run['client_cores']:.2f};"
                  f" {run['server_cpu_ms_per_request']:.1f} ms of server CPU a request", flush=True)  # fmt: skip
    median = {w: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for w, rs in runs.items()}
    return {
        "clients": count, "seconds": seconds, "rounds": rounds, "runs": runs, "median": median,
        "ratio": median[2]["requests_per_s"] / median[1]["requests_per_s"],
        "extra_worker_rss_mb": median[2]["idle_rss_mb"] - median[1]["idle_rss_mb"],
    }  # fmt: skip


def report_workers(compared: dict) -> None:
    one, two = compared["median"][1], compared["median"][2]
    print(
        f"\n{compared['clients']} clients, {compared['seconds']:.0f} s x {compared['rounds']} rounds, on"
        f" {os.cpu_count()} cores: --workers 1 {one['requests_per_s']:.1f} requests/s, --workers 2"
        f" {two['requests_per_s']:.1f} requests/s: {compared['ratio']:.2f}x (target >= 1.8x)\n"
        f"cores busy with one worker: server {one['server_cores']:.2f}, clients {one['client_cores']:.2f}; with"
        f" two: server {two['server_cores']:.2f}, clients {two['client_cores']:.2f} (server CPU a request"
        f" {one['server_cpu_ms_per_request']:.1f} / {two['server_cpu_ms_per_request']:.1f} ms)\n"
        f"idle RSS {one['idle_rss_mb']:.0f} MB with one worker, {two['idle_rss_mb']:.0f} MB with two (their"
        f" supervisor included): the second worker adds {compared['extra_worker_rss_mb']:.0f} MB;"
        f" load average during the runs {one['load_1min']:.1f} / {two['load_1min']:.1f}"
    )


def _quantiles(values: list[float]) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50": round(ordered[len(ordered) // 2], 1),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
    }


# ---------------------------------------------------------------- report


def report(single: dict[str, list[float]], many: dict | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    table = Table(title="one user (vcf_agent.query, 1,000,000 variants)", title_justify="left")
    for name in ("operation", "p50 ms", "p90 ms", "target p50", "met"):
        table.add_column(name, justify="left" if name == "operation" else "right")
    for name, times in single.items():
        ordered = sorted(times)
        p50, p90 = statistics.median(ordered), ordered[int(len(ordered) * 0.9)]
        target = TARGETS_MS.get(name)
        met = "-" if target is None else ("yes" if p50 < target else "NO")
        table.add_row(name, f"{p50:.1f}", f"{p90:.1f}", f"< {target}" if target else "", met)
    console.print(table)
    if many is None:
        return
    table = Table(
        title=f"{many['clients']} concurrent clients, {many['seconds']} s on loopback (vcf-agent serve)",
        title_justify="left",
    )
    for name in ("requests", "n", "p50 ms", "p99 ms"):
        table.add_column(name, justify="left" if name == "requests" else "right")
    for kind, q in many["latency_ms"].items():
        table.add_row(kind, f"{q['n']:,}", str(q.get("p50")), str(q.get("p99")))
    table.add_row("all", f"{many['all_ms']['n']:,}", str(many["all_ms"].get("p50")), str(many["all_ms"].get("p99")))
    console.print(table)
    growth = (many["rss_last_10s_mb"] / many["rss_first_10s_mb"] - 1) * 100
    console.print(
        f"{many['requests']:,} requests, {many['errors']} errors, {many['requests_per_s']:,} requests/s;"
        f" server RSS {many['rss_first_10s_mb']:.0f} MB (first 10 s) -> {many['rss_last_10s_mb']:.0f} MB"
        f" (last 10 s): {growth:+.1f}% (target < 5%)"
    )
    for example in many["error_examples"]:
        console.print(f"  error: {example}")


def main() -> None:
    from vcf_agent.runtime import setup_process

    setup_process()  # the environment and allocator of every entry point
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vcf-agent-bench-queries"))
    parser.add_argument("--store", type=Path, help="an existing results folder to measure instead of building one")
    parser.add_argument("--variants", type=int, default=1_000_000)
    parser.add_argument("--genotypes", type=int, default=10_000_000)
    parser.add_argument("--partition-edges", type=int, help="kuzu.partition_edges of the store built")
    parser.add_argument("--shard-records", type=int, default=100_000, help="records per scaled shard")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--no-server", action="store_true", help="only the single-user latencies")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--serve-options", default="", help="extra `vcf-agent serve` options, e.g. '--threads 16'")
    parser.add_argument(
        "--open-partitions", type=int, help="graph partitions kept open, one user's and the server's (their default)"
    )
    parser.add_argument("--compare-workers", action="store_true", help="only --workers 1 against --workers 2")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of --compare-workers (2)")
    args = parser.parse_args()
    SERVE_OPTIONS.extend(args.serve_options.split())
    if args.open_partitions is not None:
        SERVE_OPTIONS.extend(["--open-partitions", str(args.open_partitions)])
    store = args.store or build_store(
        args.work, args.variants, args.genotypes, args.partition_edges, args.shard_records
    )
    if args.compare_workers:
        compared = compare_workers(store, args.clients, args.seconds, args.seed, args.rounds)
        report_workers(compared)
        out = Path(args.work) / "bench_workers.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(compared, indent=2))
        print(f"raw numbers: {out}")
        return
    single = single_user(store, args.repeats, args.seed, args.open_partitions)
    many = None if args.no_server else many_users(store, args.clients, args.seconds, args.seed)
    report(single, many)
    results = {"store": str(store), "single_user_ms": single, "many_users": many}
    out = (args.work if args.store is None else Path(args.work)) / "bench_queries.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"raw numbers: {out}")


if __name__ == "__main__":
    main()
