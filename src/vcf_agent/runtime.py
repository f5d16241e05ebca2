"""Process-wide settings, made in one place: `setup_process`, called once by every entry point.

The entry points are the CLI (`vcf-agent`), the HTTP server and its workers, every rule script
(through `vcf_agent.logs.run_job`), the benchmarks and the test session. No library module
changes the environment or the allocator when it is imported (tests/test_runtime.py checks
that importing every module leaves os.environ as it was): a program that imports the package
keeps its own settings unless it asks for ours.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from vcf_agent.errors import VcfAgentError

T = TypeVar("T")

#: Set whatever the environment says: models are local files, nothing is ever downloaded.
FORCED_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
#: Set unless the user set them.
DEFAULT_ENVIRONMENT = {
    # tokenizers' own thread pool would be forked into DuckDB's and Lance's children
    "TOKENIZERS_PARALLELISM": "false",
    # Lance logs every k-means warning (thousands for repetitive data) unless told otherwise
    "LANCEDB_LOG": "error",
}
#: glibc malloc arenas (its default is 8 per core, one per busy thread): each keeps what its
#: threads freed, so with thread pools (Lance's, DuckDB's, the server's) they fragment memory.
#: Building the ANN index of 1,000,000 rows peaked at 822-932 MiB with the default and 780-811
#: MiB with two; the server's RSS crept up under load (6.4 % against 4.6 % in 30 s, 500 clients).
ALLOCATOR_ARENAS = 2
M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h


def setup_process(threads: int | None = None, *, arenas: int = ALLOCATOR_ARENAS) -> None:
    """Environment, allocator and threads of this process and of the children it starts.

    `threads`: the job's thread budget, handed to Lance's worker pool (LANCE_CPU_THREADS,
    unless set); None leaves Lance its default (one per core). Call it before lancedb,
    huggingface_hub or tokenizers are used: some read their variable once.
    """
    os.environ.update(FORCED_ENVIRONMENT)
    for name, value in DEFAULT_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if threads:
        os.environ.setdefault("LANCE_CPU_THREADS", str(max(1, int(threads))))
    # children (a process pool's workers, bcftools) start with it; this process caps it now
    os.environ.setdefault("MALLOC_ARENA_MAX", str(arenas))
    limit_malloc_arenas(int(os.environ["MALLOC_ARENA_MAX"]))


def limit_malloc_arenas(arenas: int) -> None:
    """Cap glibc's malloc arenas in this running process, as MALLOC_ARENA_MAX does at start.

    Threads started later share the arenas; those made already stay. No-op without glibc.
    """
    with contextlib.suppress(OSError, AttributeError, TypeError):
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # the C library Python runs on
        if mallopt is not None:
            mallopt(M_ARENA_MAX, int(arenas))


def release_free_memory() -> None:
    """Hand the memory glibc's malloc keeps of what was freed back to the system (malloc_trim).

    A closed Kuzu database's memory stays with the allocator (8 partitions scanned whole: 308
    MiB resident open, 248 MiB closed, 39 MiB after this). No-op without glibc.
    """
    with contextlib.suppress(OSError, AttributeError, TypeError):
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
        if trim is not None:
            trim(0)


# ---------------------------------------------------------------- child processes


def run_in_child(function: Callable[..., T], /, *args: Any, threads: int | None = None, **kwargs: Any) -> T:
    """`function(*args, **kwargs)` in a new Python process: its result, or its exception raised here.

    For a step whose memory must be gone before the next one starts (allocators keep what was
    freed): the child is spawned (a fresh interpreter, not a fork of this one's threads and
    memory), set up with `setup_process(threads)`, and ends when the call returns. `function`,
    its arguments and its result travel by pickle: a module-level function or a bound method of
    a dataclass, paths, numbers, dataclasses. The child does not run this program's main script.
    A child that dies (killed for memory, say) raises VcfAgentError.
    """
    context = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(1, mp_context=context, initializer=setup_process, initargs=(threads,)) as pool,
        _main_script_hidden(),
    ):
        future = pool.submit(_call_in_child, function, args, kwargs)
    try:
        return future.result()
    except BrokenProcessPool:
        name = getattr(function, "__qualname__", repr(function))
        raise VcfAgentError(f"the child process running {name} died before it finished (killed for memory?)") from None


def _call_in_child(function: Callable[..., T], args: tuple, kwargs: dict) -> T:
    """The child's side: an exception that cannot be sent back as it is comes back as its message."""
    try:
        return function(*args, **kwargs)
    except Exception as error:
        try:
            pickle.loads(pickle.dumps(error))
        except Exception:
            kind = VcfAgentError if isinstance(error, VcfAgentError) else RuntimeError
            raise kind(str(error) or type(error).__name__) from None
        raise


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Without this, a spawned child first runs this program's main script again (a rule script,
    whose last line runs the whole job): multiprocessing finds it by __main__'s file or spec."""
    main = sys.modules["__main__"]
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(saved)
