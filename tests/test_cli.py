"""`vcf-agent` on stores the real workflow built: JSON and tables, help, one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vcf_agent.interfaces.cli import EXAMPLES, main

from helpers import split_records

pytestmark = pytest.mark.slow  # the query_stores workflow run

VCF_AGENT = Path(sys.executable).with_name("vcf-agent")
COMMANDS = ("search", "similar", "variant", "sample", "shared", "region", "stats", "serve")


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def results(query_stores) -> str:
    return str(query_stores.results)


def ask(capsys, results: str, *argv: str):
    code, out, err = run_main(capsys, *argv, "--results", results, "--json")
    assert code == 0, err
    return json.loads(out)


def test_the_console_script_is_installed_and_lists_every_command():
    result = subprocess.run([VCF_AGENT, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(capsys, command):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"vcf-agent {command}" in text and "--results" in text
    assert EXAMPLES[command] in text


def test_stats_json_counts(capsys, results, query_stores, bcftools):
    stats = ask(capsys, results, "stats")
    assert stats["variants"] == sum(split_records(p) for p in query_stores.inputs.values())
    assert stats["samples"] == len({s for name in query_stores.inputs for s in bcftools.samples(name)})
    assert stats["files"] == sorted(query_stores.inputs)


def test_variant_json_lists_the_bcftools_carriers(capsys, results, bcftools):
    record = ask(capsys, results, "variant", "22:16051453:A:G")
    assert {c["sample"]: c["gt"] for c in record["carriers"]} == bcftools.genotypes("kg", "22:16051453:A:G")
    limited = ask(capsys, results, "variant", "22:16051453:A:G", "--carriers", "2")
    assert len(limited["carriers"]) == 2 and limited["carriers_truncated"]
    assert limited["counts"] == record["counts"]


def test_sample_json_counts_and_limit(capsys, results, bcftools):
    result = ask(capsys, results, "sample", "HG00096", "--limit", "5")
    het = bcftools.split("kg", "%POS\n", view=("-s", "HG00096"), include='GT="het"')
    assert result["counts"]["het"] == len(het) and len(result["variants"]) == 5 and result["truncated"]


def test_shared_and_region_json(capsys, results, bcftools):
    shared = ask(capsys, results, "shared", "HG00096", "HG00097", "--region", "22:16050000-16100000")
    lines = bcftools.split(
        "kg", "[%GT\t]\n", view=("-s", "HG00096,HG00097", "-r", "22:16050000-16100000", "--regions-overlap", "1")
    )
    both = sum(all(set(re.split(r"[/|]", gt)) - {"0", "."} for gt in line.split("\t")[:2]) for line in lines)
    assert shared["total"] == both
    region = ask(capsys, results, "region", "22:16050000-16060000", "--variant-class", "snv", "--limit", "3")
    assert len(region["variants"]) == 3 and all(v["variant_class"] == "snv" for v in region["variants"])


def test_search_and_similar_json_respect_filters(capsys, results):
    hits = ask(capsys, results, "search", "deletion in a gene", "--region", "1", "--limit", "4")
    assert len(hits) == 4 and all(h["chrom"] == "1" for h in hits)
    similar = ask(capsys, results, "similar", "22:16051453:A:G", "--af-max", "0.01", "--limit", "3")
    assert len(similar) == 3 and all(h["af"] <= 0.01 for h in similar)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("variant", "22:16051453:A:G"), ["22:16051453:A:G", "carriers", "hom-alt"]),
        (("sample", "HG00096", "--limit", "3"), ["sample HG00096", "het", "raise --limit"]),
        (("region", "22:16050000-16060000", "--limit", "2"), ["365 variants in 22:16050000-16060000"]),
        (("shared", "HG00096", "HG00097", "--limit", "2"), ["variants carried by all of HG00096, HG00097"]),
        (("stats",), ["variants (LanceDB)", "genotypes (CARRIES)", "chrX"]),
        (("similar", "22:16051453:A:G", "--limit", "2"), ["similarity", "first carriers"]),
    ],
)
def test_tables_for_people(capsys, results, argv, expected):
    code, out, err = run_main(capsys, *argv, "--results", results)
    assert code == 0, err
    for text in expected:
        assert text in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("sample", "nobody"), "unknown sample 'nobody'"),
        (("variant", "22:1:A:G"), "unknown variant '22:1:A:G'"),
        (("region", "22:9-3"), "the end is before the start"),
        (("region", "chr99:1-5"), "unknown contig 'chr99'"),
        (("search", "x", "--af-min", "3"), "af_min 3.0: must be at most 1"),
        (("shared", "HG00096"), "samples: must be at least 2 values"),
        (("sample", "HG00096", "--limit", "0"), "limit"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(capsys, results, argv, message):
    code, out, err = run_main(capsys, *argv, "--results", results)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and message in err and err.startswith(f"vcf-agent {argv[0]}: ")


def test_a_missing_store_is_one_line_from_the_console_script(tmp_path):
    result = subprocess.run(
        [VCF_AGENT, "stats", "--results", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no store here" in result.stderr
