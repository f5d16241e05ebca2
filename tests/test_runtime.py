"""Process setup (vcf_agent.runtime): one function sets the environment, the allocator and the
threads; importing the package changes nothing; work runs in a spawned child when asked."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from vcf_agent.errors import TooLittleMemory, VcfAgentError
from vcf_agent.runtime import DEFAULT_ENVIRONMENT, FORCED_ENVIRONMENT, run_in_child

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Every variable that setup_process sets, or that a module once set when imported.
SET_BY_SETUP = {*FORCED_ENVIRONMENT, *DEFAULT_ENVIRONMENT, "LANCE_CPU_THREADS", "MALLOC_ARENA_MAX",
                "LANCE_DEFAULT_BATCH_SIZE", "LANCE_IO_THREADS"}  # fmt: skip


def python(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SET_BY_SETUP}
    clean["PYTHONPATH"] = os.path.join(ROOT, "src")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
    )


IMPORT_EVERY_MODULE = """
import importlib, json, os, pkgutil, sys, vcf_agent
before = dict(os.environ)
names = [m.name for m in pkgutil.walk_packages(vcf_agent.__path__, "vcf_agent.")]
for name in names:
    importlib.import_module(name)
after = dict(os.environ)
changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
# these read their variable once, when imported: they must wait for setup_process
early = [name for name in ("lancedb", "huggingface_hub", "tokenizers", "transformers") if name in sys.modules]
print(json.dumps({"modules": len(names), "changed": changed, "imported_early": early}))
"""


def test_importing_every_module_leaves_the_environment_unchanged():
    # ... and imports nothing that reads its settings at import: a rule script imports the package
    # first and calls setup_process (logs.run_job) afterwards; LANCEDB_LOG set after `import
    # lancedb` would be ignored.
    import json

    done = python(IMPORT_EVERY_MODULE)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["modules"] >= 30  # the walk found the package, not an empty folder
    assert report["changed"] == []
    assert report["imported_early"] == []


def test_setup_process_sets_what_the_tools_read_and_keeps_the_users_choices():
    done = python(
        """
        import json, os
        from vcf_agent.runtime import setup_process
        setup_process(threads=3)
        print(json.dumps({k: os.environ.get(k) for k in
              ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "LANCEDB_LOG",
               "LANCE_CPU_THREADS", "MALLOC_ARENA_MAX")}))
        """,
        env={"HF_HUB_OFFLINE": "0", "LANCEDB_LOG": "debug"},
    )
    assert done.returncode == 0, done.stderr
    import json

    assert json.loads(done.stdout) == {
        "HF_HUB_OFFLINE": "1",  # forced: nothing is ever downloaded
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "LANCEDB_LOG": "debug",  # the user's choice wins
        "LANCE_CPU_THREADS": "3",
        "MALLOC_ARENA_MAX": "2",
    }


ARENA_PROBE = """
import ctypes, re, sys, tempfile, threading
from vcf_agent.runtime import limit_malloc_arenas

libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p

def arenas():  # glibc's own report: one <heap> element per arena
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/malloc_info.xml"
        stream = ctypes.c_void_p(libc.fopen(path.encode(), b"w"))
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        return len(re.findall(r'<heap nr="', open(path).read()))

before = arenas()
if sys.argv[1] == "limit":
    limit_malloc_arenas(2)
held, ready = [], threading.Barrier(9)
def allocate():  # blocks below the mmap threshold come from the thread's arena
    held.append([bytearray(64 * 1024) for _ in range(20)])
    ready.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
ready.wait()
print(before, arenas())
"""


def test_allocator_arenas_are_capped_for_threads_started_later():
    def arenas(mode: str) -> tuple[int, int]:
        run = python(ARENA_PROBE, mode)
        assert run.returncode == 0, run.stderr
        before, after = map(int, run.stdout.split())
        return before, after

    before, after = arenas("default")
    assert after >= before + 7  # glibc's default: a new arena for nearly every new thread
    before, after = arenas("limit")
    assert after <= max(before, 2)


# ---------------------------------------------------------------- run_in_child


def child_facts(value: int) -> dict:
    return {"pid": os.getpid(), "double": 2 * value, "threads": os.environ.get("LANCE_CPU_THREADS")}


def fail_with(error: BaseException) -> None:
    raise error


def short_of_memory() -> None:
    raise TooLittleMemory(100, 700, "a reason")


def unpicklable_error() -> None:
    class Local(Exception):  # defined in the child only: cannot be sent back as it is
        pass

    raise Local("a cause the child found")


def die() -> None:
    os._exit(9)  # as the kernel's OOM killer would end it: no exception, no result


def test_run_in_child_returns_what_a_spawned_child_computed(monkeypatch):
    monkeypatch.delenv("LANCE_CPU_THREADS", raising=False)
    facts = run_in_child(child_facts, 21, threads=3)
    assert facts["double"] == 42 and facts["pid"] != os.getpid()
    assert facts["threads"] == "3"  # the child was set up with the job's threads
    assert "LANCE_CPU_THREADS" not in os.environ  # and this process left as it was


def test_run_in_child_raises_the_childs_errors_here():
    with pytest.raises(VcfAgentError, match=r"^bad shard$"):
        run_in_child(fail_with, VcfAgentError("bad shard"))
    with pytest.raises(
        TooLittleMemory, match="mem_mb=100 is too little: a reason, so it needs at least 700 MB"
    ) as caught:
        run_in_child(short_of_memory)  # logs.run_job's advice needs the type and its numbers
    assert caught.value.needed_mb == 700
    with pytest.raises(RuntimeError, match=r"^a cause the child found$"):
        run_in_child(unpicklable_error)
    with pytest.raises(VcfAgentError, match="child process running die died before it finished"):
        run_in_child(die)


def test_a_child_does_not_run_the_main_script_again(tmp_path):
    # A rule script's last line runs the whole job: a spawned child must not execute it again.
    script = tmp_path / "rule_script.py"
    script.write_text(
        "import os\nfrom vcf_agent.runtime import run_in_child\n"
        "print('main script ran', flush=True)\n"
        "print(run_in_child(os.getpid) != os.getpid(), flush=True)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["main script ran", "True"]
