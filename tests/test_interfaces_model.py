"""One definition of each fact: the CLI and HTTP made from one model per operation, one vocabulary.

The CLI parser and the FastAPI app are built here from the same parameters models
(vcf_agent.interfaces.operations) and compared name by name; a filter field added to the
model reaches both. The variant classes the ingest SQL assigns to real records are the
vocabulary's, and every place that lists them (schema docs, README, CLI, HTTP, planner)
takes them from vcf_agent.vocabulary.
"""

from __future__ import annotations

import argparse
import runpy
import subprocess

import pytest
from fastapi import FastAPI
from pydantic import Field

from vcf_agent import vocabulary
from vcf_agent.ask.planner import CLASS_WORDS, FILTERED
from vcf_agent.ask.planner import OPERATIONS as PLANNER_OPERATIONS
from vcf_agent.ingest.parquet import _VARIANT_CLASS_SQL
from vcf_agent.interfaces.cli import build_parser, light_parser, parameters_of
from vcf_agent.interfaces.command_line import COMMANDS
from vcf_agent.interfaces.operations import (
    COMMAND_LINE_FILE,
    OPERATIONS,
    command_line,
    is_cli_only,
    parameters,
    write_command_line,
)
from vcf_agent.interfaces.server import add_operation_routes, openapi_document
from vcf_agent.query import BadQuery, Counts, Filters, zygosity
from vcf_agent.schema import VARIANT_COLUMNS

from helpers import ROOT, data_file, query

#: Options every command has that are about the command line itself (where, how to print).
CLI_OWN = {"help", "results", "json", "model", "parameters", "command", "server"}


def cli_names(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """Per command: the names its arguments fill (positional or --option), less the CLI's own."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names = {}
    for name in OPERATIONS:
        sub = commands.choices[name]
        model = sub.get_default("parameters")
        cli_only = {n for n, f in model.model_fields.items() if is_cli_only(f)}
        names[name] = {a.dest for a in sub._actions} - CLI_OWN - cli_only
    return names


def http_names(document: dict) -> dict[str, set[str]]:
    paths = {name: "/list/{what}" if name == "list" else f"/{name}" for name in OPERATIONS}
    return {
        name: {p["name"] for p in document["paths"][path]["get"].get("parameters", [])} for name, path in paths.items()
    }


def test_cli_and_http_take_the_same_parameters_per_operation():
    cli, http = cli_names(build_parser()), http_names(openapi_document())
    assert cli == http
    assert {"sample", "limit", "variant_class", "af_min", "carried_by"} <= http["sample"]
    assert {"text", "postfilter", "carriers"} <= http["search"] and "prefilter" not in http["search"]
    assert "region" in http["region"] and "id" not in http["sample"]


def parser_facts(parser: argparse.ArgumentParser) -> dict[str, object]:
    """Everything argparse does with a command line, per command: help texts, each argument's
    settings, groups and defaults (less the parameters model only build_parser attaches)."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    facts: dict[str, object] = {"": parser.format_help()}
    for name, sub in commands.choices.items():
        facts[name] = (
            sub.format_help(),
            [
                (type(a).__name__, a.option_strings, a.dest, a.nargs, a.const, a.default, a.type, a.choices, a.required,
                 a.help, a.metavar)
                for a in sub._actions
            ],
            [(group.title, [a.dest for a in group._group_actions]) for group in sub._action_groups],
            {key: value for key, value in sub._defaults.items() if key != "parameters"},
        )  # fmt: skip
    return facts


def test_the_server_paths_parser_is_the_models_own(tmp_path):
    """`--server` parses with command_line.py (no pydantic): a copy of the model, which must be
    what the model gives now, as the generator writes it, and make the very parser the model makes."""
    stale = "command_line.py differs from the model: run `python -m vcf_agent.interfaces.operations`"
    assert command_line() == COMMANDS, stale
    write_command_line(tmp_path / "command_line.py")
    assert (tmp_path / "command_line.py").read_text() == COMMAND_LINE_FILE.read_text(), stale
    assert runpy.run_path(str(tmp_path / "command_line.py"))["COMMANDS"] == COMMANDS
    light, full = parser_facts(light_parser()), parser_facts(build_parser())
    assert light.keys() == full.keys() == {"", *OPERATIONS, "serve"}
    for name in full:
        assert light[name] == full[name], name
    # what is compared is what matters: an option's type and choices, a positional's nargs
    region = dict((a[2], a) for a in full["region"][1])
    assert region["af_min"][6] is float and region["limit"][6] is int and region["region"][1] == []
    assert full["list"][1][-1][7] == ("samples", "genes", "contigs", "files")
    assert dict((a[2], a) for a in full["shared"][1])["samples"][3] == "+"


class MoreFilters(Filters):
    rsid: str | None = Field(None, pattern=r"^rs\d{1,12}$", description="the variant's rsID (VCF ID column)")


def test_a_field_added_to_the_filter_model_is_an_option_and_a_query_parameter_of_both():
    cli = cli_names(build_parser(filters=MoreFilters))
    app = FastAPI()
    add_operation_routes(app, MoreFilters)
    http = http_names(app.openapi())
    assert cli == http
    for name, operation in OPERATIONS.items():
        assert ("rsid" in cli[name]) == operation.filtered, name
    described = [p for p in app.openapi()["paths"]["/sample"]["get"]["parameters"] if p["name"] == "rsid"]
    assert described[0]["description"] == "the variant's rsID (VCF ID column)"
    args = build_parser(filters=MoreFilters).parse_args(["sample", "HG00096", "--rsid", "rs6054257", "--af-max", "0.1"])
    filters = parameters_of(args).filters()
    assert isinstance(filters, MoreFilters) and (filters.rsid, filters.af_max) == ("rs6054257", 0.1)
    with pytest.raises(BadQuery, match="rsid"):
        parameters_of(build_parser(filters=MoreFilters).parse_args(["sample", "HG00096", "--rsid", "x; DROP"]))


def test_the_planner_names_the_arguments_as_the_cli_and_http_do():
    """ask's calls (shown to users, and the LLM's tools) use the operations' parameter names."""
    for name, arguments in PLANNER_OPERATIONS.items():
        assert set(arguments) <= set(parameters(name).model_fields), name
        if name in FILTERED:
            assert set(Filters.model_fields) <= set(parameters(name).model_fields) | set(arguments)


def test_the_cli_help_and_the_openapi_document_say_the_same_of_each_filter(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["region", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    document = openapi_document()
    for parameter in document["paths"]["/region"]["get"]["parameters"]:
        if parameter["name"] in Filters.model_fields and parameter["name"] != "region":  # region: REGION
            assert f"--{parameter['name'].replace('_', '-')}" in help_text
            assert parameter["description"] in help_text
    gene = next(p for p in document["paths"]["/search"]["get"]["parameters"] if p["name"] == "gene")
    assert gene["schema"]["anyOf"][0]["pattern"] == Filters.model_fields["gene"].metadata[0].pattern


def test_the_result_models_are_the_http_response_models():
    document = openapi_document()
    schemas = document["components"]["schemas"]
    for name, model in (("variant", "VariantRecord"), ("sample", "SampleResult"), ("region", "RegionResult")):
        response = document["paths"][f"/{name}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert response == {"$ref": f"#/components/schemas/{model}"}
    assert schemas["SampleResult"]["properties"]["variants"]["items"] == {"$ref": "#/components/schemas/SampleRow"}
    assert set(schemas["Counts"]["properties"]) >= set(vocabulary.ZYGOSITIES)


# ---------------------------------------------------------------- vocabulary

#: Real files whose split records hold SNVs, MNPs, indels, symbolic alleles and gVCF <NON_REF> blocks.
CLASS_FILES = (
    "cohorts/1kg_phase3_chr22_16-16.5Mb_2504samples.vcf.gz",
    "edge/cyvcf2/test.mnp.vcf",
    "edge/hail/HG00187.hg38.g.vcf.gz",
    "edge/bio2zarr/chr_m_indels.vcf.gz",
    "invalid/vcf-validator/v4.1/passed/complexfile_passed_000.vcf",
)


@pytest.fixture(scope="module")
def alleles(tmp_path_factory) -> tuple:
    """REF/ALT of every split record of CLASS_FILES (bcftools), and bcftools' own count of SNVs
    (its TYPE="snp" trims shared bases, so CA>CT is one too: one REF base keeps them apart)."""
    table = tmp_path_factory.mktemp("classes") / "alleles.tsv"
    snps = 0
    with table.open("w") as out:
        for name in CLASS_FILES:
            norm = subprocess.run(
                ["bcftools", "norm", "-m", "-any", "-Ou", str(data_file(name))], capture_output=True, check=True
            ).stdout
            lines = subprocess.run(
                ["bcftools", "query", "-f", r"%REF\t%ALT\n"], input=norm, capture_output=True, check=True
            ).stdout
            out.write(lines.decode())
            snps += int(
                subprocess.run(
                    ["bcftools", "view", "-H", "-i", 'TYPE="snp" && strlen(REF)=1', "-"],
                    input=norm,
                    capture_output=True,
                ).stdout.count(b"\n")
            )
    return table, snps


def test_the_ingest_sql_assigns_only_vocabulary_classes_to_real_records(alleles):
    table, snps = alleles
    rows = query(
        f"SELECT {_VARIANT_CLASS_SQL} AS variant_class, count(*) FROM read_csv(?, delim='\t', header=false,"
        " columns={'ref': 'VARCHAR', 'alt': 'VARCHAR'}, quote='') GROUP BY ALL",
        [str(table)],
    )
    classes = dict(rows)
    assert set(classes) <= set(vocabulary.VARIANT_CLASSES), set(classes) - set(vocabulary.VARIANT_CLASSES)
    assert {"snv", "mnp", "insertion", "deletion", "symbolic", "non_ref"} <= set(classes)
    assert classes["snv"] == snps  # bcftools TYPE="snp" on the same split records


def test_every_list_of_classes_and_zygosities_is_the_vocabulary(capsys):
    doc = next(c.doc for c in VARIANT_COLUMNS if c.name == "variant_class")
    readme = " ".join((ROOT / "README.md").read_text().split())
    for name in vocabulary.VARIANT_CLASSES:
        assert name in doc, name
        assert f"`{name}`" in readme or name in readme.split("variant_class", 1)[1][:600], name
    assert Filters.model_json_schema()["properties"]["variant_class"]["anyOf"][0]["enum"] == list(
        vocabulary.VARIANT_CLASSES
    )
    assert {c for _, classes in CLASS_WORDS for c in classes} <= set(vocabulary.VARIANT_CLASSES)
    assert set(Counts.model_fields) - {"carriers", "phased"} == set(vocabulary.ZYGOSITIES)
    assert {zygosity("0/1", 1, 2), zygosity("1/1", 2, 2), zygosity("1", 1, 1), zygosity("./1", 1, 2)} == set(
        vocabulary.ZYGOSITIES
    )
