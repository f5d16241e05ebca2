"""`vcf-agent`: ask the stores from the command line (tables for people, --json for scripts)."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from vcf_agent.errors import VcfAgentError
from vcf_agent.runtime import setup_process

DESCRIPTION = """\
Ask the stores built by the workflow (results/lancedb and results/kuzu):
semantic search over variant descriptions, nearest neighbours, variant
records with their carriers, samples, shared variants, regions and totals.

Every command reads --results DIR (default: results), prints a table, or JSON
with --json, and exits non-zero with a one-line message on an error.
Run `vcf-agent COMMAND --help` for each command's options and examples."""

EXAMPLES = {
    "search": """\
examples:
  vcf-agent search "missense variant in BRCA2, rare"
  vcf-agent search "frameshift deletion, high impact" --gene TP53 --limit 20
  vcf-agent search "common snv, passed filters" --region 22:16.1M-16.2M --carried-by HG00096 --json""",
    "similar": """\
examples:
  vcf-agent similar 22:16050075:A:G
  vcf-agent similar 22:16050075:A:G --region 22:16000000-17000000 --af-max 0.01 --limit 5""",
    "variant": """\
examples:
  vcf-agent variant 22:16050075:A:G
  vcf-agent variant 1:10172:CCCTAA:C --carriers 10 --json""",
    "sample": """\
examples:
  vcf-agent sample HG00096
  vcf-agent sample HG00096 --variant-class deletion --af-max 0.01 --limit 20
  vcf-agent sample NA12878 --region chr21:10M-20M --json""",
    "shared": """\
examples:
  vcf-agent shared HG00096 HG00097
  vcf-agent shared HG00096 HG00097 HG00099 --region 22:16.0M-16.2M --filter PASS""",
    "region": """\
examples:
  vcf-agent region 22:16050000-16060000
  vcf-agent region chr21 --consequence missense_variant --limit 50
  vcf-agent region 22:16.05M-16.1M --carried-by HG00096 --json""",
    "stats": """\
examples:
  vcf-agent stats
  vcf-agent stats --results /data/run1/results --json""",
    "ask": """\
examples:
  vcf-agent ask "who carries rs587697622?"
  vcf-agent ask "which rare variants of HG00096 are also carried by HG00097?" --json
  vcf-agent ask "how many missense variants in chr22:16-17Mb?"
  vcf-agent ask "variants most like 22-16050075-A-G" --llm http://127.0.0.1:8080/v1""",
    "list": """\
examples:
  vcf-agent list samples          # with the variants each carries
  vcf-agent list genes --json
  vcf-agent list contigs
  vcf-agent list files""",
    "serve": """\
examples:
  vcf-agent serve                                  # http://127.0.0.1:8000/docs
  vcf-agent serve --host 0.0.0.0 --port 8080 --results /data/run1/results
  curl 'http://127.0.0.1:8000/search?text=missense%20variant&limit=5'""",
}


# ---------------------------------------------------------------- parser


def build_parser(filters: type | None = None) -> argparse.ArgumentParser:
    """The parser; each query command's options come from its parameters model
    (interfaces.operations: its arguments and the fields of `filters`, by default query.Filters)."""
    from vcf_agent.interfaces.operations import OPERATIONS, parameters

    parser = argparse.ArgumentParser(
        prog="vcf-agent", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common_options()

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=EXAMPLES[name],
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    for name, operation in OPERATIONS.items():
        model = parameters(name, **({"filters": filters} if filters is not None else {}))
        add_parameters(command(name, operation.summary), model)
    serve = command("serve", "the read-only HTTP API (JSON, OpenAPI at /docs)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (8000)")
    serve.add_argument("--threads", type=int, default=16, help="threads per process running queries (16)")
    serve.add_argument("--workers", type=int, default=1, help="server processes (1; use one per core)")
    serve.add_argument("--graph-handles", type=int, default=None, help="Kuzu queries that may run at once (default: 1)")
    serve.add_argument("--log-level", default="warning", help="uvicorn log level (warning)")
    serve.add_argument(
        "--header-timeout", type=float, default=10.0, help="seconds a request may take to send its headers (10)"
    )
    return parser


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--results", type=Path, default=Path("results"), help="the workflow's results folder")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_argument("--model", default=None, help="local model folder, if the stores used another model")
    return common


def add_parameters(parser: argparse.ArgumentParser, model) -> None:
    """One argument per field of a parameters model: a required field is positional
    (`sample` -> SAMPLE), the others options (`af_min` -> --af-min); help from the descriptions."""
    from vcf_agent.query.filters import value_type

    filters = parser.add_argument_group("filters") if model.filters_model is not None else parser
    own = model.operation.arguments.model_fields
    for name, field in model.model_fields.items():
        kind = value_type(field.annotation)
        options: dict[str, Any] = {"help": _help(field)}
        if typing.get_origin(kind) is Literal:
            options.update(choices=typing.get_args(kind), metavar=name.upper())
        elif typing.get_origin(kind) is list:
            options["nargs"] = "+"
        elif kind in (int, float):
            options["type"] = kind
        if field.is_required():
            parser.add_argument(name, **{"metavar": name.upper(), **options})
            continue
        group = parser if name in own else filters
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            group.add_argument(flag, dest=name, action="store_const", const=True, help=options["help"])
        else:
            group.add_argument(flag, dest=name, **{"metavar": name.upper(), **options})
    parser.set_defaults(parameters=model)


def _help(field) -> str:
    default = None if field.is_required() else field.get_default()
    return (field.description or "") + (f" ({default})" if default not in (None, False) else "")


def parameters_of(args: argparse.Namespace):
    """The command's parameters model filled from the command line (BadQuery if one is invalid)."""
    model = args.parameters
    given = {name: getattr(args, name) for name in model.model_fields if getattr(args, name, None) is not None}
    return model.checked(**given)


# ---------------------------------------------------------------- commands


def run_command(args: argparse.Namespace, stores) -> Any:
    """The result object of one command (query.results models)."""
    return parameters_of(args).run(stores)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_process()
    try:
        if args.command == "serve":
            return _serve(args)
        from vcf_agent.query import Stores, to_jsonable

        with Stores.open(args.results, model=args.model) as stores:
            result = run_command(args, stores)
        if args.json:
            json.dump(to_jsonable(result), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            RENDERERS[args.command](result)
        return 0
    except VcfAgentError as error:
        print(f"vcf-agent {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _serve(args: argparse.Namespace) -> int:
    from vcf_agent.interfaces.server import serve

    options = {"host": args.host, "port": args.port, "threads": args.threads, "log_level": args.log_level}
    options["workers"] = args.workers
    options["header_timeout"] = args.header_timeout
    if args.graph_handles is not None:
        options["graph_handles"] = args.graph_handles
    serve(args.results, model=args.model, **options)
    return 0


# ---------------------------------------------------------------- tables


def _console():
    """Rich console; when stdout is not a terminal, wide enough that no column is folded."""
    from rich.console import Console

    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 240)


def _table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], **options):
    from rich.table import Table

    table = Table(title=title, title_justify="left", **options)
    for name in columns:
        numeric = name in {"pos", "carriers", "AF", "similarity", "n", "variants", "first", "last", "dp", "gq"}
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def render_hits(hits) -> None:
    rows = [
        (
            i, h.variant_id, h.gene, h.consequence, h.variant_class, h.af, h.filter,
            h.similarity, h.carriers, h.carrier_samples,
        )
        for i, h in enumerate(hits, 1)
    ]  # fmt: skip
    columns = ("#", "variant", "gene", "consequence", "class", "AF", "FILTER", "similarity", "carriers")
    columns += ("first carriers",)
    console = _console()
    console.print(_table(None, columns, rows))
    for i, h in enumerate(hits, 1):
        console.print(f"[dim]{i}. {h.text}[/dim]")
    if not hits:
        console.print("no variants match")


def render_variant(record) -> None:
    console = _console()
    core = [
        ("variant", record.variant_id), ("source", record.source),
        ("position", f"{record.chrom}:{record.pos}-{record.end}"),
        ("REF > ALT", f"{record.ref} > {record.alt}"), ("ID", record.id), ("QUAL", record.qual),
        ("FILTER", record.filter), ("class", record.variant_class), ("gene", record.gene),
        ("consequence", record.consequence), ("impact", record.impact), ("description", record.text),
        ("files", record.files),
    ]  # fmt: skip
    counts = record.counts
    core.append(
        (
            "carriers",
            f"{counts.carriers} (het {counts.het}, hom-alt {counts.hom_alt}, hemizygous {counts.hemizygous},"
            f" partial {counts.partial}; phased {counts.phased})",
        )
    )
    console.print(_table(None, ("field", "value"), core, show_header=False))
    if record.info:
        console.print(_table("INFO", ("field", "value"), sorted(record.info.items())))
    if record.annotations:
        columns = ("gene", "consequence", "impact", "feature", "HGVS.c", "HGVS.p")
        rows = [(a.gene, a.consequence, a.impact, a.feature_id, a.hgvs_c, a.hgvs_p) for a in record.annotations]
        console.print(_table("annotations", columns, rows))
    rows = [(c.sample, c.gt, c.zygosity, c.phased, c.dp, c.gq, c.source) for c in record.carriers]
    title = "carriers" + (f" (first {len(rows)} of {counts.carriers})" if record.carriers_truncated else "")
    console.print(_table(title, ("sample", "GT", "zygosity", "phased", "dp", "gq", "file"), rows))


HEADERS = {"variant_id": "variant", "variant_class": "class", "af": "AF", "filter": "FILTER"}


def _variant_rows(result, extra: Sequence[str]) -> tuple[list[str], list[list]]:
    base = ("variant_id", "gene", "consequence", "variant_class", "af", "filter")
    names = [name for name in (*base, *extra) if name in result.variants.column_names]
    rows = [[row[name] for name in names] for row in result.variants.to_pylist()]
    header = [HEADERS.get(name, name) for name in names]
    return header, rows


def _more(console, shown: int, total: int) -> None:
    if total > shown:
        console.print(f"[dim]{shown} of {total} shown; raise --limit or use --json for more[/dim]")


def render_sample(result) -> None:
    console = _console()
    c = result.counts
    console.print(
        f"sample {result.sample} ({', '.join(result.files)}): {c.carriers} variants"
        f" - het {c.het}, hom-alt {c.hom_alt}, hemizygous {c.hemizygous}, partial {c.partial}"
        + (f"; filters {result.filters}" if result.filters else "")
    )
    header, rows = _variant_rows(result, ("gt", "zygosity"))
    console.print(_table(None, header, rows))
    _more(console, len(rows), c.carriers)


def render_shared(result) -> None:
    console = _console()
    console.print(f"{result.total} variants carried by all of {', '.join(result.samples)}")
    header, rows = _variant_rows(result, ("genotypes",))
    console.print(_table(None, header, rows))
    _more(console, len(rows), result.total)


def render_region(result) -> None:
    console = _console()
    console.print(f"{result.total} variants in {result.region}" + (f" ({result.filters})" if result.filters else ""))
    header, rows = _variant_rows(result, ("carriers",))
    console.print(_table(None, header, rows))
    _more(console, len(rows), result.total)


def render_stats(stats) -> None:
    console = _console()
    rows = [
        ("results", stats.results), ("files", stats.files), ("samples", f"{stats.samples:,}"),
        ("variants (LanceDB)", f"{stats.variants:,}"), ("variants (Kuzu)", f"{stats.graph_variants:,}"),
        ("genotypes (CARRIES)", f"{stats.genotypes:,}"), ("genes", f"{stats.genes:,}"),
        ("contigs", len(stats.contigs)), ("model", stats.model), ("vector dim", stats.vector_dim),
        ("LanceDB built", stats.lancedb_built), ("Kuzu built", stats.kuzu_built), ("indexes", stats.indexes),
        ("INFO columns", len(stats.info_columns)),
    ]  # fmt: skip
    console.print(_table(None, ("", ""), rows, show_header=False))
    contigs = [(c.name, f"{c.variants:,}", c.first, c.last) for c in stats.contigs]
    console.print(_table("contigs", ("contig", "variants", "first", "last"), contigs))


def render_list(entries) -> None:
    from vcf_agent.query import to_jsonable

    rows = to_jsonable(entries)
    console = _console()
    if not rows:
        console.print("nothing listed")
        return
    columns = list(rows[0])
    console.print(_table(None, columns, [[row[name] for name in columns] for row in rows]))


def render_answer(answer) -> None:
    console = _console()
    console.print(answer.answer)
    for call, result in zip(answer.calls, answer.results, strict=True):
        arguments = " ".join(f"{name}={value}" for name, value in call.arguments.items())
        console.print(f"\n[bold]{call.operation}[/bold] {arguments}")
        if isinstance(result, dict) and "error" in result:
            console.print(result["error"])
        else:
            RENDERERS["list" if call.operation == "list" else call.operation](result)
    for note in answer.notes:
        console.print(f"[dim]note: {note}[/dim]")


RENDERERS: dict[str, Callable[[Any], None]] = {
    "search": render_hits,
    "similar": render_hits,
    "variant": render_variant,
    "sample": render_sample,
    "shared": render_shared,
    "region": render_region,
    "stats": render_stats,
    "ask": render_answer,
    "list": render_list,
}


if __name__ == "__main__":
    sys.exit(main())
