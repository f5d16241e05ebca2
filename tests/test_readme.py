"""What the README promises: every `vcf-agent` command, `curl` call and Python block of it runs on the
bundled example as written (the example_run fixture's stores), and the suite stops in one line without
the shared test data.

The commands are read from the README itself, whatever their options, so that a README example a
change breaks fails here."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from helpers import ROOT

README = ROOT / "README.md"
#: Seconds `vcf-agent serve` may take to load the model and warm up before its first answer.
SERVE_START_S = 300


def code_blocks(language: str) -> list[str]:
    """The fenced code blocks of the README in `language`."""
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def shell_lines(program: str) -> list[list[str]]:
    """Each line of the README's bash blocks that runs `program`, as words, comments left out."""
    lines = []
    for block in code_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == program:
                lines.append(words)
    return lines


def console_script(name: str):
    """The function pyproject.toml names for console script `name` (the source's, not an install's)."""
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"][name]
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def run_in_process(main, words: list[str]) -> int:
    """`main` as its console script calls it, with `words` as argv: its exit status."""
    argv = sys.argv
    sys.argv = words
    try:
        status = main()
    except SystemExit as stop:
        status = stop.code
    finally:
        sys.argv = argv
    return status if isinstance(status, int) else int(status is not None)


@pytest.fixture
def in_example(example_run, tmp_path, monkeypatch) -> Path:
    """A folder whose `results` is the example's: the README's relative paths work there as written."""
    workdir, _ = example_run
    (tmp_path / "results").symlink_to(workdir / "results")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_every_vcf_agent_command_of_the_readme_runs_on_the_example(in_example, capsys):
    commands = [words for words in shell_lines("vcf-agent") if words[1] != "serve"]
    assert len(commands) >= 10, commands
    main = console_script("vcf-agent")
    for words in commands:
        status = run_in_process(main, words)
        out, err = capsys.readouterr()
        assert status == 0, f"{shlex.join(words)}: exit {status}: {err.strip()[-500:]}"
        assert out.strip(), f"{shlex.join(words)}: printed nothing"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(words: list[str], port: int):
    """The README's `vcf-agent serve` line, on `port` instead of its own, until the block ends."""
    # The venv's own script (a `make test` run has not put it on PATH); argparse: the last --port wins.
    words = [str(Path(sys.executable).with_name(words[0])), *words[1:], "--port", str(port)]
    server = subprocess.Popen(words, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + SERVE_START_S
        while True:
            assert server.poll() is None, f"{shlex.join(words)} stopped: {server.stderr.read()[-2000:]}"
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            assert time.monotonic() < deadline, f"{shlex.join(words)}: no answer in {SERVE_START_S} s"
            time.sleep(0.5)
        yield
    finally:
        server.terminate()
        server.wait(timeout=60)


@pytest.mark.slow
def test_every_curl_call_of_the_readme_is_answered_by_its_server(in_example):
    (serve,) = [words for words in shell_lines("vcf-agent") if words[1] == "serve"]
    urls = [next(word for word in words if word.startswith("http")) for words in shell_lines("curl")]
    assert len(urls) >= 3, urls
    port = free_port()
    with serving(serve, port):
        for url in urls:
            here = re.sub(r"^http://[^/]+", f"http://127.0.0.1:{port}", url)
            with urllib.request.urlopen(here, timeout=120) as response:  # an error status raises
                assert response.status == 200 and response.read().strip(), url


@pytest.mark.slow
def test_every_python_block_of_the_readme_runs_on_the_example(in_example):
    blocks = code_blocks("python")
    assert len(blocks) >= 2
    for block in blocks:
        result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{block}\n{result.stderr[-2000:]}"


def test_without_the_shared_data_the_suite_says_so_in_one_line(tmp_path):
    missing = tmp_path / "no-data-here"
    # A controller of its own: a worker's variable would make the child think it is a worker too.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "_VCF_AGENT"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**env, "VCF_TEST_DATA": str(missing)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, lines
    assert len(lines) == 1 and str(missing) in lines[0] and "VCF_TEST_DATA" in lines[0], lines
