"""The real workflow on a real SLURM: the bundled example through `--workflow-profile profiles/slurm`.

One run on a one-node cluster (tests/slurm/cluster.py) covers both things SLURM users rely on:
every job is submitted with the threads, memory and time its rule declared (checked in SLURM's
accounting database against the declarations Snakemake logged), and a job that goes over its memory
is killed by SLURM and retried with more. For the latter the run gives the embedding jobs 150 MB at
the first attempt, which the Snakemake running inside the job (~160 MB) exceeds for seconds before
the job's script even starts, so that SLURM, not the job, stops it whatever the embedding runtime
(the onnx one loads in a second, too quickly to be caught over its memory before it measures itself
and stops); each retry asks for 150 MB more, until one is enough (600-750 MB: the model on the onnx
runtime, ~170 MB, that Snakemake, and HEADROOM_MB), hence the run's --retries 4. The run cuts the
example into two shards, not the default four, so that fewer jobs wait on the cluster; its results
must equal those of the local run of the same example (the session's `example_run`) row for row.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from helpers import ROOT, SNAKEMAKE, query
from slurm.cluster import SlurmCluster, slurm_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

PROFILE = ROOT / "profiles" / "slurm"
LOCAL_RULES = {"all", "summarize_inputs", "summarize_run", "plot_resources"}
EMBED_FIRST_MB = 150
#: Attempts after the first: enough for EMBED_FIRST_MB x 5 = 750 MB (see the module docstring).
EMBED_RETRIES = 4
SHARD_RECORDS = 4000  # the example's 5,791 records in two shards (one per contig)
# A hung executor plugin ignores SIGTERM, so the run is killed outright after this long.
RUN_TIMEOUT_S = 540
JOB_FIELDS = ("JobIDRaw", "Comment", "State", "ReqMem", "TimelimitRaw", "AllocCPUS")
DATA_TABLES = ("variants", "genotypes", "annotations")


@dataclass(frozen=True)
class Submission:
    """A job as Snakemake declared and submitted it (from its log)."""

    rule: str
    jobid: str
    slurm_id: str
    threads: int
    mem_mb: int
    runtime: int


@dataclass
class SlurmRun:
    cluster: SlurmCluster
    workdir: Path
    run_id: str
    log: str


def submissions(log: str) -> list[Submission]:
    """Every sbatch submission in a Snakemake log, with the declaration printed just before it."""
    declared: dict[str, dict[str, str]] = {}
    block: dict[str, str] = {}
    found = []
    for line in log.splitlines():
        if match := re.match(r"^(?:rule|checkpoint) (\w+):$", line):
            block = {"rule": match[1], "threads": "1"}
        elif block and (match := re.match(r"^\s+(jobid|threads|resources): (.*)$", line)):
            block[match[1]] = match[2]
            if match[1] == "resources":
                declared[block["jobid"]] = block
        elif match := re.match(r"^Job (\d+) has been submitted with SLURM jobid (\d+)", line):
            job = declared[match[1]]
            resources = dict(item.split("=", 1) for item in job["resources"].split(", "))
            threads, mem_mb, runtime = int(job["threads"]), int(resources["mem_mb"]), int(resources["runtime"])
            found.append(Submission(job["rule"], match[1], match[2], threads, mem_mb, runtime))
    return found


def megabytes(req_mem: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT])", req_mem)
    assert match, f"unexpected ReqMem {req_mem!r}"
    return round(float(match[1]) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[match[2]])


def comment_rule(comment: str) -> str:
    """The rule in the plugin's job comment, e.g. rule_embed_shard_wildcards_example_00001."""
    return re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", comment)[1]


@pytest.fixture(scope="module")
def slurm_run(example_run, tmp_path_factory) -> Iterator[SlurmRun]:
    _, local_config = example_run
    config = yaml.safe_load(local_config.read_text())
    config["resources"] = {"embed_shard": {"mem_mb": EMBED_FIRST_MB}}
    config["shard"] = {"records": SHARD_RECORDS}
    workdir = tmp_path_factory.mktemp("slurm-example")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with slurm_cluster() as cluster:
        command = [
            "timeout", "-s", "KILL", str(RUN_TIMEOUT_S),
            str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(workdir / "config.yaml"), "--workflow-profile", str(PROFILE),
            # Only for speed on this idle one-node cluster: first status check 2 s after submission,
            # then every 2 s (not 10), since every step of the example's chain waits for one.
            "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
            "--retries", str(EMBED_RETRIES),
        ]  # fmt: skip
        result = subprocess.run(command, env=cluster.env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"snakemake on SLURM failed ({result.returncode}):\n{result.stderr[-6000:]}"
        run_id = re.search(r"SLURM run ID: (\S+)", result.stderr)[1]
        yield SlurmRun(cluster, workdir, run_id, result.stderr)


def test_every_job_ran_in_slurm_with_the_resources_its_rule_declared(slurm_run):
    declared = {job.slurm_id: job for job in submissions(slurm_run.log)}
    accounted = {job["JobIDRaw"]: job for job in slurm_run.cluster.sacct(*JOB_FIELDS, name=slurm_run.run_id)}
    assert sorted(accounted) == sorted(declared), "SLURM's accounting and Snakemake's submissions differ"
    for slurm_id, job in declared.items():
        record = accounted[slurm_id]
        assert comment_rule(record["Comment"]) == job.rule
        granted = (int(record["AllocCPUS"]), megabytes(record["ReqMem"]), int(record["TimelimitRaw"]))
        assert granted == (job.threads, job.mem_mb, job.runtime), f"{job.rule}: SLURM granted {granted}, {job}"

    completed = [job.rule for job in declared.values() if accounted[job.slurm_id]["State"] == "COMPLETED"]
    shards = len(list((slurm_run.workdir / "results" / "parquet" / "variants" / "example").glob("*.parquet")))
    rules = set(subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(slurm_run.workdir),
         "--configfile", str(slurm_run.workdir / "config.yaml"), "--list-rules"],
        capture_output=True, text=True, check=True,
    ).stdout.split())  # fmt: skip
    assert set(completed) == rules - LOCAL_RULES, "every rule but the local ones must have run as a SLURM job"
    # Only the embedding jobs were given too little on purpose: every other job fits its first attempt
    # (its own tool and the Snakemake running it inside the job).
    attempts = Counter((job.rule, job.jobid) for job in declared.values() if job.rule != "embed_shard")
    assert [rule for (rule, _), n in attempts.items() if n > 1] == []
    assert completed.count("convert_shard") == completed.count("embed_shard") == shards > 1


def test_an_embedding_job_over_its_memory_was_killed_by_slurm_and_retried_with_more(slurm_run):
    attempts: dict[str, list[Submission]] = {}
    for job in submissions(slurm_run.log):
        if job.rule == "embed_shard":
            attempts.setdefault(job.jobid, []).append(job)
    assert attempts, "no embedding job was submitted"
    slurmd_log = slurm_run.cluster.log("slurmd").read_text()
    for jobs in attempts.values():
        first, *retries = jobs
        assert first.mem_mb == EMBED_FIRST_MB and retries, f"not retried: {jobs}"
        steps = slurm_run.cluster.sacct("JobID", "State", "ExitCode", "MaxRSS", job=first.slurm_id)
        assert steps[0]["State"] in {"FAILED", "OUT_OF_MEMORY"}, steps
        assert any(step["ExitCode"] == "0:9" for step in steps), f"job {first.slurm_id} was not killed: {steps}"
        limit = EMBED_FIRST_MB << 20
        assert re.search(rf"StepId={first.slurm_id}\.(?:\d+|batch) exceeded memory limit \(\d+ > {limit}\)", slurmd_log)
        assert [job.mem_mb for job in jobs] == [EMBED_FIRST_MB * attempt for attempt in range(1, len(jobs) + 1)]
        states = [slurm_run.cluster.sacct("State", job=job.slurm_id)[0]["State"] for job in jobs]
        assert states[-1] == "COMPLETED" and "COMPLETED" not in states[:-1], list(zip(jobs, states, strict=True))


def rows(path: Path, order: str) -> list[tuple]:
    return query(f"SELECT * FROM read_parquet('{path}/*.parquet', union_by_name=true) ORDER BY {order}")


def without_sharding(summary: dict) -> dict:
    """A run summary less what depends on how the records were cut into shards."""
    for counts in (*summary["sources"].values(), summary["totals"]):
        counts.pop("shards")
        for key in ("distinct_texts_per_shard", "newly_embedded", "cache_hit_share"):
            counts.get("embedding", {}).pop(key, None)
    return summary


def embeddings(results: Path) -> pa.Table:
    """Every shard's vectors, in shard order (the records' order whatever the shard size)."""
    return pa.concat_tables(pq.read_table(p) for p in sorted((results / "embeddings" / "example").glob("*.parquet")))


def test_results_equal_those_of_the_local_run(slurm_run, example_run):
    local, cluster = example_run[0] / "results", slurm_run.workdir / "results"
    summaries = (json.loads((run / "summary.json").read_text()) for run in (cluster, local))
    assert without_sharding(next(summaries)) == without_sharding(next(summaries))
    for table, order in zip(DATA_TABLES, ("variant_id", "sample, variant_id", "ALL"), strict=True):
        shards = Path("parquet") / table / "example"
        assert rows(cluster / shards, order) == rows(local / shards, order), table
    ours, theirs = embeddings(local), embeddings(cluster)
    assert ours.column("variant_id").equals(theirs.column("variant_id"))
    assert ours.column("text").equals(theirs.column("text"))
    # Other shards and another memory budget give other batches, hence other padding: equal to float precision.
    np.testing.assert_allclose(
        np.stack(ours.column("vector").to_numpy(zero_copy_only=False)),
        np.stack(theirs.column("vector").to_numpy(zero_copy_only=False)),
        atol=1e-5,
    )
