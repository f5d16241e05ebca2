"""The CLI without delay, and through a server, on the bundled example (the example_run fixture).

Commands that embed no text load no model runtime; `--server URL` (or $VCF_AGENT_SERVER)
answers every command with the same tables, JSON and errors as the stores themselves, from a
real `vcf-agent serve`, importing no store library; /docs loads only from the server;
`serve --workers 2` runs two processes that each hold the stores and answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from test_readme import shell_lines
from test_server import free_port

from vcf_agent.interfaces.cli import main, render_region, render_variant
from vcf_agent.interfaces.plain import Printer

from helpers import bcftools_lines

VCF_AGENT = Path(sys.executable).with_name("vcf-agent")
#: Modules of the embedding runtimes: only a command that embeds text may import them.
MODEL_RUNTIMES = ("torch", "sentence_transformers", "transformers", "onnxruntime", "tokenizers")
#: What opening the stores imports: the --server client imports none of it.
STORE_LIBRARIES = ("lancedb", "kuzu", "pyarrow", "duckdb", "pandas", "numpy", "vcf_agent.query.stores")
#: What the --server path cuts as well: the models (pydantic, the HTTP app), the process settings
#: (multiprocessing), urllib's HTTP stack; with --json, rich too.
LIGHT_PATH_CUTS = (
    "pydantic", "pydantic_core", "fastapi", "starlette", "uvicorn", "vcf_agent.interfaces.operations",
    "vcf_agent.query", "vcf_agent.runtime", "multiprocessing", "concurrent.futures", "urllib.request",
    "http.client", "ssl", "email", "typing",
)  # fmt: skip
#: Ours that the --server path imports.
LIGHT_PATH_MODULES = {
    "vcf_agent", "vcf_agent.errors", "vcf_agent.interfaces", "vcf_agent.interfaces.cli",
    "vcf_agent.interfaces.command_line", "vcf_agent.interfaces.client", "vcf_agent.interfaces.plain",
}  # fmt: skip
#: The generated REST client that `import lancedb` no longer runs (interfaces.startup.defer_rest_client).
REST_CLIENT = "lance_namespace_urllib3_client.api"
#: Runs a CLI command in a fresh interpreter, then writes the modules it imported to argv[1].
MODULES_AFTER = """
import contextlib, io, json, sys
from vcf_agent.interfaces.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[2:])
open(sys.argv[1], "w").write(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def example(example_run) -> dict:
    """The example's results folder and names to ask about, read from its VCF by bcftools."""
    workdir, _ = example_run
    vcf = workdir / "resources" / "example" / "example.vcf.gz"
    samples = bcftools_lines("query", "-l", vcf)
    carried = bcftools_lines("query", "-i", 'GT="alt" && TYPE="snp" && N_ALT=1', "-f", "%CHROM:%POS:%REF:%ALT\\n", vcf)
    missense = bcftools_lines("query", "-i", 'INFO/ANN~"missense_variant"', "-f", "%CHROM\\t%INFO/ANN\\n", vcf)
    chrom, annotation = missense[0].split("\t")
    return {
        "results": str(workdir / "results"),
        "variant": carried[0],
        "other": carried[len(carried) // 2],
        "samples": samples[:3],
        "gene": annotation.split("|")[3],
        "chrom": chrom,
    }


@contextlib.contextmanager
def serving(results: str, *options: str) -> Iterator[tuple[str, psutil.Popen]]:
    """A real `vcf-agent serve` over `results` on a free port: (base URL, process)."""
    port = free_port()
    command = [str(VCF_AGENT), "serve", "--results", results, "--port", str(port), "--threads", "4", *options]
    process = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"vcf-agent serve exited: {process.stdout.read()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("vcf-agent serve did not answer /health within 180 s")
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def served(example) -> Iterator[str]:
    with serving(example["results"]) as (base, _):
        yield base


def commands(example: dict) -> list[list[str]]:
    """Every command, with and without options (filters, limits, the positional forms)."""
    vid, other, (s1, s2, s3), gene, chrom = (example[k] for k in ("variant", "other", "samples", "gene", "chrom"))
    return [
        ["stats"],
        ["list", "samples"], ["list", "genes"], ["list", "contigs"], ["list", "files"],
        ["variant", vid], ["variant", other, "--carriers", "2"],
        ["similar", vid, "--limit", "3"], ["similar", other, "--af-max", "0.5", "--postfilter", "--carriers", "1"],
        ["search", "rare missense variant", "--limit", "3"],
        ["search", "deletion", "--gene", gene, "--carried-by", s1, "--limit", "4"],
        ["sample", s1, "--limit", "5"], ["sample", s2, "--variant-class", "snv", "--region", f"{chrom}:1-200000"],
        ["shared", s1, s2, "--limit", "5"], ["shared", s1, s2, s3, "--consequence", "missense_variant"],
        ["region", f"{chrom}:1-20000", "--limit", "5"],
        ["region", chrom, "--consequence", "missense_variant", "--filter", "PASS", "--af-min", "0.01"],
        ["ask", f"who carries {vid}?"], ["ask", f"how many variants does {s1} carry?"],
    ]  # fmt: skip


def run_main(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def without_timing(text: str, argv: list[str]) -> object:
    """The --json answer, less the seconds an `ask` took (the one value that differs run to run)."""
    answer = json.loads(text)
    if argv[0] == "ask":
        answer.pop("seconds")
    return answer


def test_every_command_prints_the_same_through_a_server(capsys, example, served):
    for argv in commands(example):
        local = run_main(capsys, [*argv, "--results", example["results"]])
        remote = run_main(capsys, [*argv, "--server", served])
        assert local[0] == 0, (argv, local[2])
        assert remote == local, argv
        local = run_main(capsys, [*argv, "--results", example["results"], "--json"])
        remote = run_main(capsys, [*argv, "--server", served, "--json"])
        assert remote[0] == local[0] == 0, (argv, remote[2])
        assert without_timing(remote[1], argv) == without_timing(local[1], argv), argv


def test_errors_are_the_same_one_line_through_a_server(capsys, example, served):
    unknown = [
        ["variant", f"{example['chrom']}:1:A:C"], ["sample", "nobody"], ["region", "chrNone:1-10"],
        ["shared", example["samples"][0], "nobody"], ["similar", example["variant"], "--carried-by", "x"],
    ]  # fmt: skip
    for argv in unknown:
        local = run_main(capsys, [*argv, "--results", example["results"]])
        remote = run_main(capsys, [*argv, "--server", served])
        assert local[0] == 1 and len(local[2].strip().splitlines()) == 1, (argv, local)
        assert remote == local, argv


def test_the_server_variable_is_used_and_an_unreachable_server_is_one_line(capsys, example, served, monkeypatch):
    monkeypatch.setenv("VCF_AGENT_SERVER", served)
    assert run_main(capsys, ["stats", "--results", "/nowhere"]) == run_main(
        capsys, ["stats", "--results", example["results"], "--server", served]
    )
    code, out, err = run_main(capsys, ["stats", "--server", f"http://127.0.0.1:{free_port()}"])
    assert code == 1 and out == ""
    assert re.fullmatch(r"vcf-agent stats: cannot reach the server at http://127\.0\.0\.1:\d+: .+\n", err), err


def test_an_option_the_server_lacks_is_refused_not_dropped(capsys, served):
    argv = ["ask", "how many samples?", "--llm", "http://127.0.0.1:9/v1", "--server", served]
    code, out, err = run_main(capsys, argv)
    assert code == 1 and out == ""
    assert err == "vcf-agent ask: --llm is not available through the server (its /ask does not take it)\n"


def modules_after(argv: list[str], tmp_path: Path) -> set[str]:
    out = tmp_path / "modules.json"
    subprocess.run([sys.executable, "-c", MODULES_AFTER, str(out), *argv], check=True, timeout=300)
    found = json.loads(out.read_text())
    assert found["code"] == 0, argv
    return set(found["modules"])


def imported(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in modules]


@pytest.mark.parametrize("kind", ["variant", "similar", "sample", "shared", "region", "stats", "list"])
def test_commands_that_embed_no_text_load_no_model_runtime(example, kind, tmp_path):
    argv = next(argv for argv in commands(example) if argv[0] == kind)
    modules = modules_after([*argv, "--results", example["results"]], tmp_path)
    assert imported(modules, MODEL_RUNTIMES) == []
    assert "lancedb" in modules and REST_CLIENT not in modules


def test_search_loads_the_light_runtime_only(example, tmp_path):
    modules = modules_after(["search", "rare deletion", "--results", example["results"]], tmp_path)
    assert "onnxruntime" in modules and imported(modules, ("torch", "sentence_transformers", "transformers")) == []


def imported_by_the_console_script(argv: list[str], **environment: str) -> set[str]:
    """The modules `python -X importtime vcf-agent ARGV` imports (its exit status 0)."""
    command = [sys.executable, "-X", "importtime", str(VCF_AGENT), *argv]
    env = {**os.environ, **environment}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert result.returncode == 0, (argv, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")][1:]  # less its header
    return {line.rsplit("|", 1)[1].strip() for line in lines}


@pytest.mark.parametrize("kind", ["stats", "list", "variant", "similar", "search", "sample", "shared", "region", "ask"])
def test_the_server_client_imports_no_store_library_no_model_no_pydantic_and_no_rich(example, served, kind):
    """`--server` (or $VCF_AGENT_SERVER) into a pipe: the standard library only (interfaces.plain
    draws the tables where rich would draw them so, as here)."""
    argv = next(argv for argv in commands(example) if argv[0] == kind)
    cut = STORE_LIBRARIES + MODEL_RUNTIMES + LIGHT_PATH_CUTS
    for modules in (
        imported_by_the_console_script([*argv, "--server", served]),
        imported_by_the_console_script([*argv, "--json"], VCF_AGENT_SERVER=served),
    ):
        assert "vcf_agent.interfaces.client" in modules
        assert imported(modules, cut) == []
        assert not [name for name in modules if name.split(".")[0] in ("rich", "pydantic", "vcf_agent") and
                    name not in LIGHT_PATH_MODULES], modules  # fmt: skip


def test_every_readme_command_prints_the_same_from_a_fresh_client_as_from_the_stores(capsys, example, served):
    """The README's `vcf-agent` lines (the bundled example's names), each run as a user does with
    --server (the console script, a fresh interpreter) and on the stores: the same output."""
    lines = [words[1:] for words in shell_lines("vcf-agent") if words[1] != "serve"]  # serve: the server itself
    assert {words[0] for words in lines} >= {"stats", "list", "search", "similar", "variant", "sample", "shared"}
    env = {**os.environ, "COLUMNS": "100"}
    for argv in lines:
        remote = subprocess.run(
            [VCF_AGENT, *argv, "--server", served], capture_output=True, text=True, timeout=120, env=env
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("COLUMNS", "100")  # --help is as wide as a terminal
            try:
                local = run_main(capsys, [*argv, "--results", example["results"]])
            except SystemExit as stop:  # --help
                local = (stop.code, *capsys.readouterr())
        assert local[0] == 0 and local[1], (argv, local[2])
        assert remote.returncode == local[0] and remote.stderr == local[2], (argv, remote.stderr)
        if "--json" in argv:
            assert without_timing(remote.stdout, argv) == without_timing(local[1], argv), argv
        else:
            assert remote.stdout == local[1], argv


def test_tables_print_values_as_they_are(capsys):
    """No rich markup or emoji code is read in a value: chr1:100:A:G is not chr1💯A:G, [b] stays."""
    row = {"variant_id": "chr1:100:A:G", "gene": "[b]X[/b]", "consequence": ":1234:", "variant_class": "snv"}
    render_region(
        {"total": 1, "region": "chr1:1-1234", "filters": {}, "variants": [{**row, "af": 0.5, "filter": "PASS"}]}
    )
    out = capsys.readouterr().out
    assert "│ chr1:100:A:G │ [b]X[/b] │ :1234:" in out and "💯" not in out and "🔢" not in out
    counts = dict.fromkeys(("carriers", "het", "hom_alt", "hemizygous", "partial", "phased"), 0)
    record = {
        **row, "source": "a.vcf", "chrom": "chr1", "pos": 100, "end": 100, "ref": "A", "alt": "G", "id": "[rs1]",
        "qual": None, "filter": "PASS", "impact": None, "text": "note [red]x[/red] :100:", "files": ["a.vcf"],
        "counts": counts, "info": {}, "annotations": [], "carriers": [], "carriers_truncated": False,
    }  # fmt: skip
    render_variant(record)
    out = capsys.readouterr().out
    assert "note [red]x[/red] :100:" in out and "[rs1]" in out and "chr1:100-100" in out


def printed(job, *, plain: bool) -> tuple[str, int]:
    """What `job(printer)` writes to stdout (a pipe here), with interfaces.plain or with rich only,
    and how many times the printer fell back to rich."""
    buffer, uses = io.StringIO(), []
    printer = Printer()
    printer.plain = plain
    rich = printer.rich
    printer.rich = lambda: uses.append(1) or rich()
    with contextlib.redirect_stdout(buffer):
        job(printer)
    return buffer.getvalue(), len(uses)


def made_up_tables(count: int) -> list:
    """Tables at the edges of interfaces.plain's rules: empty cells, spaces at both ends, numeric
    columns, no header, no rows, long titles, widths either side of the line's 240."""
    random.seed(13)
    jobs = []
    for _ in range(count):
        columns = tuple(random.choice(["pos", "AF", "gene", "variant", "", "a b"]) for _ in range(random.randint(1, 8)))
        sizes = (0, 1, 3, 10, 30, 60, 100, 117, 118, 119)
        rows = [
            ["".join(random.choice("ab XY09-_:,.;[]()/|*+=") for _ in range(random.choice(sizes))) for _ in columns]
            for _ in range(random.randint(0, 4))
        ]
        title, header = random.choice([None, "INFO", "t" * random.randint(1, 60)]), random.random() < 0.7
        jobs.append(lambda p, t=title, c=columns, r=rows, h=header: p.table(t, c, r, show_header=h))
    for total in (239, 240, 241):  # a table as wide as the line, and one wider
        for header in (True, False):
            cells = [["w" * (total - 3 - 2 - 2 - 2 - 60), "v" * 60]]
            jobs.append(lambda p, r=cells, h=header: p.table("T", ("a", "AF"), r, show_header=h))
    lines = ["", "one", "  spaces at both ends  ", "a" * 240, "a" * 241, "x\n\ny", "tab\there", "ünïcode", "[b]x[/b]"]
    jobs += [lambda p, text=text: p.line(text, style="dim") for text in lines]
    jobs.append(lambda p: p.line("\n", ("search", "bold"), " text=rare"))
    return jobs


def test_plain_tables_and_lines_are_what_rich_prints():
    """interfaces.plain, which the --server path prints with, against rich itself (the reference)."""
    by_plain = 0
    for job in made_up_tables(600):
        plain, fallbacks = printed(job, plain=True)
        assert plain == printed(job, plain=False)[0]
        by_plain += fallbacks == 0
    assert by_plain >= 150  # a third drawn by interfaces.plain itself (the others too wide: rich folds them)


class References(HTMLParser):
    """The src and href of a page's elements."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_everything_from_the_server_itself(served, page):
    html = httpx.get(served + page, timeout=30)
    assert html.status_code == 200
    parser = References()
    parser.feed(html.text)
    scripts = re.findall(r"""(?:url|spec-url)\s*[:=]\s*['"]([^'"]+)['"]""", html.text)
    assert scripts == ["/openapi.json"], scripts
    assert len(parser.found) >= 2, parser.found  # the UI's script and its stylesheet or icon
    for reference in [*parser.found, *scripts]:
        parts = urlsplit(reference)
        assert not parts.scheme and not parts.netloc, f"{page} loads {reference} from elsewhere"
        asset = httpx.get(served + reference, timeout=30)
        assert asset.status_code == 200 and len(asset.content) > 100, reference
    assert "cdn." not in html.text and "fonts.googleapis" not in html.text


def worker_processes(server: psutil.Process) -> list[psutil.Process]:
    """uvicorn's worker processes (multiprocessing's spawn children, not its resource tracker)."""
    return [
        child
        for child in server.children()
        if "spawn_main" in " ".join(child.cmdline()) and "resource_tracker" not in " ".join(child.cmdline())
    ]


def test_two_workers_each_hold_the_stores_and_answer(example):
    """`serve --workers 2`: two processes, each with the Kuzu graph open, each busy under load,
    every answer the same as one process gives."""
    vid = example["variant"]
    with serving(example["results"]) as (single, _):
        expected = httpx.get(f"{single}/variant", params={"variant_id": vid}, timeout=60).json()
    with serving(example["results"], "--workers", "2") as (base, server):
        workers = worker_processes(server)
        assert len(workers) == 2
        for _ in range(300):  # each worker opens the stores before it accepts a connection
            holding = [w for w in workers if any(f.path.endswith(".kuzu") for f in w.open_files())]
            if len(holding) == 2:
                break
            time.sleep(0.2)
        assert len(holding) == 2, "a worker has not opened the graph"
        time.sleep(5)  # past the background warm-up
        before = [w.cpu_times() for w in workers]

        async def load() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=32)
            async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
                return await asyncio.gather(*(http.get("/variant", params={"variant_id": vid}) for _ in range(400)))

        responses = asyncio.run(load())
        after = [w.cpu_times() for w in workers]
        busy = [sum(end[:2]) - sum(start[:2]) for start, end in zip(before, after, strict=True)]
    assert [r.status_code for r in responses] == [200] * len(responses)
    assert all(r.json() == expected for r in responses)
    assert min(busy) > 0.05, f"CPU seconds per worker under load: {busy}"


def test_workers_that_cannot_open_the_stores_stop_the_server_with_one_line(tmp_path):
    (tmp_path / "results").mkdir()
    result = subprocess.run(
        [VCF_AGENT, "serve", "--workers", "2", "--results", str(tmp_path / "results"), "--port", str(free_port())],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    missing = f"{tmp_path}/results/lancedb: no store here; build it with `snakemake results/lancedb.json`"
    assert result.stderr.strip().splitlines()[-1] == f"vcf-agent serve: {missing}"
