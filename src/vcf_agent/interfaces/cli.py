"""`vcf-agent`: ask the stores from the command line (tables for people, --json for scripts).

Asking a server (`--server URL`, $VCF_AGENT_SERVER) is a short call, so that path imports
the standard library only, until the tables are drawn (rich): its parser is built from
command_line.py, the plain copy of the operations' model (interfaces.operations), instead of
the pydantic model itself, and the client speaks HTTP over a socket. Whatever opens the stores
or serves them builds the parser from the model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from vcf_agent.errors import VcfAgentError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the --server path
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

DESCRIPTION = """\
Ask the stores built by the workflow (results/lancedb and results/kuzu):
semantic search over variant descriptions, nearest neighbours, variant
records with their carriers, samples, shared variants, regions and totals.

Every command reads --results DIR (default: results), or asks a running
`vcf-agent serve` instead with --server URL (or $VCF_AGENT_SERVER), prints a
table, or JSON with --json, and exits non-zero with a one-line message on an
error. Run `vcf-agent COMMAND --help` for each command's options and examples."""

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
  vcf-agent serve --workers 2                      # one process per core
  vcf-agent stats --server http://127.0.0.1:8000   # any command, asked of the server
  curl 'http://127.0.0.1:8000/search?text=missense%20variant&limit=5'""",
}


# ---------------------------------------------------------------- parser


def build_parser(filters: type | None = None) -> argparse.ArgumentParser:
    """The parser; each query command's options come from its parameters model
    (interfaces.operations: its arguments and the fields of `filters`, by default query.Filters)."""
    from vcf_agent.interfaces.operations import OPERATIONS, command_line, parameters

    chosen = {"filters": filters} if filters is not None else {}
    return _parser(command_line(**chosen), {name: parameters(name, **chosen) for name in OPERATIONS})


def light_parser() -> argparse.ArgumentParser:
    """The same parser as `build_parser()`, from the copy of the model in command_line.py (no pydantic)."""
    from vcf_agent.interfaces.command_line import COMMANDS

    return _parser(COMMANDS, {})


def _parser(described: dict[str, dict], models: dict[str, Any]) -> argparse.ArgumentParser:
    """The parser of the commands `described` (operations.command_line()); a command's
    parameters model, where given, is its `parameters` default (what run_command fills)."""
    parser = argparse.ArgumentParser(
        prog="vcf-agent", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common_options()
    server = _server_option()

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=EXAMPLES[name],
            parents=[common, *([server] if name != "serve" else [])],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    for name, operation in described.items():
        subparser = command(name, operation["summary"])
        add_arguments(subparser, operation)
        if name in models:
            subparser.set_defaults(parameters=models[name])
    serve = command("serve", "the read-only HTTP API (JSON, OpenAPI at /docs)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (8000)")
    serve.add_argument("--threads", type=int, default=16, help="threads per process running queries (16)")
    serve.add_argument("--workers", type=int, default=1, help="server processes (1; use one per core)")
    serve.add_argument("--graph-handles", type=int, default=None, help="Kuzu queries that may run at once (default: 1)")
    serve.add_argument(
        "--open-partitions", type=int, default=None,
        help="graph partitions kept open at once, ~30 MiB each (default: 32)",
    )  # fmt: skip
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


def _server_option() -> argparse.ArgumentParser:
    from vcf_agent.interfaces.client import SERVER_VARIABLE

    option = argparse.ArgumentParser(add_help=False)
    option.add_argument(
        "--server",
        metavar="URL",
        help=f"ask this running `vcf-agent serve` instead of opening the stores (default: ${SERVER_VARIABLE})",
    )
    return option


#: The value types an argument's `type` names (operations.command_line()).
VALUE_TYPES = {"int": int, "float": float}


def add_arguments(parser: argparse.ArgumentParser, operation: dict) -> None:
    """One argument per field of an operation's parameters (`operation` is one command of
    operations.command_line()): a required field is positional (`sample` -> SAMPLE), the others
    options (`af_min` -> --af-min), a filter in the "filters" group; help from the descriptions."""
    filters = parser.add_argument_group("filters") if operation["filtered"] else parser
    for argument in operation["arguments"]:
        name = argument["name"]
        options: dict[str, Any] = {"help": argument["help"]}
        if "choices" in argument:
            options.update(choices=argument["choices"], metavar=name.upper())
        elif "nargs" in argument:
            options["nargs"] = argument["nargs"]
        elif "type" in argument:
            options["type"] = VALUE_TYPES[argument["type"]]
        if argument["required"]:
            parser.add_argument(name, **{"metavar": name.upper(), **options})
            continue
        group = filters if argument["filter"] else parser
        flag = "--" + name.replace("_", "-")
        if argument.get("flag"):
            group.add_argument(flag, dest=name, action="store_const", const=True, help=options["help"])
        else:
            group.add_argument(flag, dest=name, **{"metavar": name.upper(), **options})


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
    argv = sys.argv[1:] if argv is None else list(argv)
    light = _asks_server(argv)
    parser = light_parser() if light else build_parser()
    args = parser.parse_args(argv)
    server = None if args.command == "serve" else _server_url(args)
    if server is None:  # the stores (or the server's own) are opened: the settings of runtime
        if light:  # `--server ''`: the parser that carries the model
            parser = build_parser()
            args = parser.parse_args(argv)
        from vcf_agent.runtime import setup_process

        setup_process()
    try:
        if args.command == "serve":
            return _serve(args)
        result = _ask_server(server, args, parser) if server else _ask_stores(args)
        if args.json:
            json.dump(result, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            RENDERERS[args.command](result)
        return 0
    except VcfAgentError as error:
        print(f"vcf-agent {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _asks_server(argv: Sequence[str]) -> bool:
    """Whether the command line (or the environment) names a server: then the light parser.
    A wrong guess costs nothing but time: both parsers are the same."""
    from vcf_agent.interfaces.client import SERVER_VARIABLE

    return bool(os.environ.get(SERVER_VARIABLE)) or any(a == "--server" or a.startswith("--server=") for a in argv)


def _server_url(args: argparse.Namespace) -> str | None:
    from vcf_agent.interfaces.client import SERVER_VARIABLE

    return args.server or os.environ.get(SERVER_VARIABLE) or None


def _ask_server(server: str, args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    """The answer of a running server: its JSON, as the stores would have answered (no store opened)."""
    from vcf_agent.interfaces.client import ask_server

    return ask_server(server, args, parser)


def _ask_stores(args: argparse.Namespace) -> Any:
    """The answer of the stores in --results, as JSON values (what --json prints and the tables show)."""
    from vcf_agent.interfaces.startup import defer_rest_client, load_model_meanwhile

    defer_rest_client()
    # A search needs the model: load it while LanceDB and Kuzu are imported and opened.
    model = load_model_meanwhile(args.model) if args.command == "search" else None
    from vcf_agent.query import Stores, to_jsonable

    with Stores.open(args.results, model=args.model) as stores:
        if model is not None:
            model.join()
        return to_jsonable(run_command(args, stores))


def _serve(args: argparse.Namespace) -> int:
    from vcf_agent.interfaces.server import serve

    options = {"host": args.host, "port": args.port, "threads": args.threads, "log_level": args.log_level}
    options["workers"] = args.workers
    options["header_timeout"] = args.header_timeout
    if args.graph_handles is not None:
        options["graph_handles"] = args.graph_handles
    if args.open_partitions is not None:
        options["open_partitions"] = max(1, args.open_partitions)
    serve(args.results, model=args.model, **options)
    return 0


# ---------------------------------------------------------------- tables


def _console():
    """Where the renderers print: rich's console, or plain text where that is rich's output (interfaces.plain)."""
    from vcf_agent.interfaces.plain import Printer

    return Printer()


def _table(console, title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], **options) -> None:
    console.table(title, columns, [[_cell(value) for value in row] for row in rows], **options)


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


def render_hits(hits: list[dict]) -> None:
    rows = [
        (
            i, h["variant_id"], h["gene"], h["consequence"], h["variant_class"], h["af"], h["filter"],
            h["similarity"], h["carriers"], h["carrier_samples"],
        )
        for i, h in enumerate(hits, 1)
    ]  # fmt: skip
    columns = ("#", "variant", "gene", "consequence", "class", "AF", "FILTER", "similarity", "carriers")
    columns += ("first carriers",)
    console = _console()
    _table(console, None, columns, rows)
    for i, h in enumerate(hits, 1):
        console.line(f"{i}. {h['text']}", style="dim")
    if not hits:
        console.line("no variants match")


def render_variant(record: dict) -> None:
    console = _console()
    r = record
    core = [
        ("variant", r["variant_id"]), ("source", r["source"]), ("position", f"{r['chrom']}:{r['pos']}-{r['end']}"),
        ("REF > ALT", f"{r['ref']} > {r['alt']}"), ("ID", r["id"]), ("QUAL", r["qual"]),
        ("FILTER", r["filter"]), ("class", r["variant_class"]), ("gene", r["gene"]),
        ("consequence", r["consequence"]), ("impact", r["impact"]), ("description", r["text"]),
        ("files", r["files"]),
    ]  # fmt: skip
    counts = r["counts"]
    core.append(
        (
            "carriers",
            f"{counts['carriers']} (het {counts['het']}, hom-alt {counts['hom_alt']},"
            f" hemizygous {counts['hemizygous']}, partial {counts['partial']}; phased {counts['phased']})",
        )
    )
    _table(console, None, ("field", "value"), core, show_header=False)
    if r["info"]:
        _table(console, "INFO", ("field", "value"), sorted(r["info"].items()))
    if r["annotations"]:
        columns = ("gene", "consequence", "impact", "feature", "HGVS.c", "HGVS.p")
        names = ("gene", "consequence", "impact", "feature_id", "hgvs_c", "hgvs_p")
        _table(console, "annotations", columns, [[a[n] for n in names] for a in r["annotations"]])
    names = ("sample", "gt", "zygosity", "phased", "dp", "gq", "source")
    rows = [[c[n] for n in names] for c in r["carriers"]]
    title = "carriers" + (f" (first {len(rows)} of {counts['carriers']})" if r["carriers_truncated"] else "")
    _table(console, title, ("sample", "GT", "zygosity", "phased", "dp", "gq", "file"), rows)


HEADERS = {"variant_id": "variant", "variant_class": "class", "af": "AF", "filter": "FILTER"}
#: The variant columns every listing shows, in this order (then its own: gt, carriers, ...).
ROW_COLUMNS = ("variant_id", "gene", "consequence", "variant_class", "af", "filter")


def _variant_rows(result: dict, extra: Sequence[str]) -> tuple[list[str], list[list]]:
    variants = result["variants"]
    names = [name for name in (*ROW_COLUMNS, *extra) if not variants or name in variants[0]]
    rows = [[row[name] for name in names] for row in variants]
    header = [HEADERS.get(name, name) for name in names]
    return header, rows


def _more(console, shown: int, total: int) -> None:
    if total > shown:
        console.line(f"{shown} of {total} shown; raise --limit or use --json for more", style="dim")


def render_sample(result: dict) -> None:
    console = _console()
    c = result["counts"]
    console.line(
        f"sample {result['sample']} ({', '.join(result['files'])}): {c['carriers']} variants"
        f" - het {c['het']}, hom-alt {c['hom_alt']}, hemizygous {c['hemizygous']}, partial {c['partial']}"
        + (f"; filters {result['filters']}" if result["filters"] else "")
    )
    header, rows = _variant_rows(result, ("gt", "zygosity"))
    _table(console, None, header, rows)
    _more(console, len(rows), c["carriers"])


def render_shared(result: dict) -> None:
    console = _console()
    console.line(f"{result['total']} variants carried by all of {', '.join(result['samples'])}")
    header, rows = _variant_rows(result, ("genotypes",))
    _table(console, None, header, rows)
    _more(console, len(rows), result["total"])


def render_region(result: dict) -> None:
    console = _console()
    filters = f" ({result['filters']})" if result["filters"] else ""
    console.line(f"{result['total']} variants in {result['region']}{filters}")
    header, rows = _variant_rows(result, ("carriers",))
    _table(console, None, header, rows)
    _more(console, len(rows), result["total"])


def render_stats(stats: dict) -> None:
    console = _console()
    s = stats
    rows = [
        ("results", s["results"]), ("files", s["files"]), ("samples", f"{s['samples']:,}"),
        ("variants (LanceDB)", f"{s['variants']:,}"), ("variants (Kuzu)", f"{s['graph_variants']:,}"),
        ("genotypes (CARRIES)", f"{s['genotypes']:,}"), ("genes", f"{s['genes']:,}"),
        ("contigs", len(s["contigs"])), ("model", s["model"]), ("vector dim", s["vector_dim"]),
        ("LanceDB built", s["lancedb_built"]), ("Kuzu built", s["kuzu_built"]), ("indexes", s["indexes"]),
        ("INFO columns", len(s["info_columns"])),
    ]  # fmt: skip
    _table(console, None, ("", ""), rows, show_header=False)
    contigs = [(c["name"], f"{c['variants']:,}", c["first"], c["last"]) for c in s["contigs"]]
    _table(console, "contigs", ("contig", "variants", "first", "last"), contigs)


def render_list(rows: list[dict]) -> None:
    console = _console()
    if not rows:
        console.line("nothing listed")
        return
    columns = list(rows[0])
    _table(console, None, columns, [[row[name] for name in columns] for row in rows])


def render_answer(answer: dict) -> None:
    console = _console()
    console.line(answer["answer"])
    for call, result in zip(answer["calls"], answer["results"], strict=True):
        arguments = " ".join(f"{name}={value}" for name, value in call["arguments"].items())
        console.line("\n", (call["operation"], "bold"), f" {arguments}")
        if isinstance(result, dict) and "error" in result:
            console.line(result["error"])
        else:
            RENDERERS["list" if call["operation"] == "list" else call["operation"]](result)
    for note in answer["notes"]:
        console.line(f"note: {note}", style="dim")


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
