"""Running one workflow step with a log file that always ends in its one-line cause.

Every rule script ends with `run_job(snakemake, main)`: whatever fails, the job's
log (and so Snakemake's error output, which shows it) ends with one
'ERROR <cause>' line and the script exits with status 1. Our own errors
(VcfAgentError) are that line; anything else is logged with its traceback first
(for a bug report), then its type and first line.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from vcf_agent.errors import TooLittleMemory, VcfAgentError
from vcf_agent.runtime import setup_process

T = TypeVar("T")

log = logging.getLogger("vcf_agent")


def setup_logging(log_file: Path | str | None = None, level: int = logging.INFO) -> None:
    """Log to `log_file` (the rule's log) and to stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=level, handlers=handlers, force=True, format="%(asctime)s %(levelname)s %(message)s")


def run_logged(log_file: Path | str | None, step: Callable[..., T], *args, **kwargs) -> T:
    """Run `step`; any failure becomes 'ERROR <one line>', last in the log, and exit status 1."""
    setup_logging(log_file)
    try:
        return step(*args, **kwargs)
    except VcfAgentError as error:
        log.error("%s", error)
    except Exception as error:  # every failure must reach the log, not only ours
        # INFO, not ERROR: the one ERROR line of a failed job is its cause, below.
        log.info("unexpected failure, traceback:\n%s", traceback.format_exc().rstrip())
        log.error("%s (unexpected: a bug in vcf-agent or its tools; the traceback is above)", one_line(error))
    raise SystemExit(1)


def run_job(smk: Any, main: Callable[[Any], T]) -> T:
    """The entry point of a rule script: `main(snakemake)` under `run_logged`, with the job's log.

    The process is set up first (vcf_agent.runtime.setup_process, with the job's threads). A job
    short of memory says which job it is, what it was given and how to give it more.
    """
    setup_process(threads=getattr(smk, "threads", None))

    def step() -> T:
        try:
            return main(smk)
        except TooLittleMemory as error:
            raise VcfAgentError(f"{job_label(smk)}: {error}; {_more_memory(smk.rule, error.needed_mb)}") from error
        except Exception as error:
            if not _out_of_memory(error):
                raise
            given = getattr(smk.resources, "mem_mb", None)
            raise VcfAgentError(
                f"{job_label(smk)}: out of memory with mem_mb={given} ({one_line(error)});"
                f" {_more_memory(smk.rule, None)}"
            ) from error

    return run_logged(smk.log[0] if smk.log else None, step)


def job_label(smk: Any) -> str:
    """'convert_shard (vcf=giab, shard=00001)': the job as Snakemake's own messages name it."""
    wildcards = ", ".join(f"{name}={value}" for name, value in smk.wildcards.items())
    return f"job {smk.rule}" + (f" ({wildcards})" if wildcards else "")


def _more_memory(rule: str, needed_mb: int | None) -> str:
    at_least = f" to at least {needed_mb}" if needed_mb else ""
    return (
        f"give it more with the config key resources.{rule}.mem_mb, and raise the run's budget"
        f" (--resources mem_mb=...){at_least}: Snakemake shrinks a job's mem_mb to fit that budget"
    )


def _out_of_memory(error: BaseException) -> bool:
    """Python's MemoryError, or DuckDB's OutOfMemoryException (checked without importing DuckDB)."""
    if isinstance(error, MemoryError):
        return True
    duckdb = sys.modules.get("duckdb")
    return duckdb is not None and isinstance(error, duckdb.OutOfMemoryException)


def one_line(error: BaseException) -> str:
    """'<Type>: <first line of the message>'."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0].strip()}" if lines else type(error).__name__
