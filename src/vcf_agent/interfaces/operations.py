"""Every operation once: its arguments and the filters it takes, from which the CLI and HTTP are made.

`parameters(operation)` is one pydantic model per operation: the operation's own arguments
(below) and the fields of `query.Filters` (an argument of the same name wins: `region`
takes its REGION instead of the region filter). cli.py turns each field into an option
(`af_min` -> `--af-min`; a required field -> a positional argument), server.py into a query
parameter of the same name (`af_min=`); help text and checks come from the fields. A field
added to Filters (or to a model passed as `filters=`) is therefore a filter of both.

`command_line()` is what cli.py makes the arguments of: each field as plain values (name, help,
choices, ...). `vcf-agent --server URL` builds its parser from a copy of it written into
command_line.py (by `python -m vcf_agent.interfaces.operations`), so that asking a server
imports no pydantic; tests/test_interfaces_model.py checks that the copy equals this model.
"""

from __future__ import annotations

import functools
import pprint
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from vcf_agent.query.filters import _NAME_MAX, MAX_LIMIT, BadQuery, Filters, Region, one_line, value_type

if TYPE_CHECKING:
    from vcf_agent.query import Stores

#: Fields only the command line has (the server does not plan through a model at a URL its client names).
CLI_ONLY = {"cli_only": True}
LISTINGS = ("samples", "genes", "contigs", "files")


def _limit(default: int | None) -> Any:
    return Field(default, ge=1, le=MAX_LIMIT, description="rows to return")


_VARIANT_ID = Field(min_length=1, max_length=100_000, description="chrom:pos:ref:alt as stored, or an rsID")
_HIT_CARRIERS = Field(10, ge=0, le=MAX_LIMIT, description="carrier names shown per hit")
_POSTFILTER = Field(False, description="filter after the vector search (faster, may return fewer)")


class SearchArguments(BaseModel):
    text: str = Field(min_length=1, max_length=10_000, description="what to look for, in words")
    limit: int = _limit(10)
    carriers: int = _HIT_CARRIERS
    postfilter: bool = _POSTFILTER


class SimilarArguments(BaseModel):
    variant_id: str = _VARIANT_ID
    limit: int = _limit(10)
    carriers: int = _HIT_CARRIERS
    postfilter: bool = _POSTFILTER


class VariantArguments(BaseModel):
    variant_id: str = _VARIANT_ID
    carriers: int | None = Field(None, ge=1, le=MAX_LIMIT, description="list at most N carriers (default: all)")


class SampleArguments(BaseModel):
    sample: str = Field(min_length=1, max_length=_NAME_MAX, description="sample name from the VCF header")
    limit: int = _limit(100)


class SharedArguments(BaseModel):
    samples: list[Annotated[str, Field(min_length=1, max_length=_NAME_MAX)]] = Field(
        min_length=2, max_length=100, description="two or more sample names"
    )
    limit: int = _limit(100)


class RegionArguments(BaseModel):
    region: str = Field(min_length=1, max_length=_NAME_MAX, description="chrom, chrom:pos or chrom:start-end")
    limit: int = _limit(100)


class StatsArguments(BaseModel):
    pass


class AskArguments(BaseModel):
    question: str = Field(min_length=1, max_length=10_000, description="the question, in plain words")
    limit: int | None = _limit(None)
    llm: str | None = Field(
        None,
        description="plan with an OpenAI-compatible chat-completions endpoint at this URL",
        json_schema_extra=CLI_ONLY,
    )
    llm_model: str = Field("local", description="model name sent to the --llm endpoint", json_schema_extra=CLI_ONLY)


class ListArguments(BaseModel):
    what: Literal[LISTINGS] = Field(description="samples, genes, contigs or files")  # type: ignore[valid-type]


@dataclass(frozen=True)
class Operation:
    name: str
    summary: str
    arguments: type[BaseModel]
    #: (stores, arguments, filters or None) -> the query result
    run: Callable[[Stores, Any, Filters | None], Any]
    filtered: bool = False


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            "search", "variants whose description is nearest to TEXT (semantic search)", SearchArguments,
            lambda s, a, f: s.search(a.text, f, limit=a.limit, prefilter=not a.postfilter, carriers=a.carriers),
            filtered=True,
        ),
        Operation(
            "similar", "nearest neighbours of a stored variant", SimilarArguments,
            lambda s, a, f: s.similar(a.variant_id, f, limit=a.limit, prefilter=not a.postfilter, carriers=a.carriers),
            filtered=True,
        ),
        Operation(
            "variant", "one variant: record, annotations and carriers with zygosity and phase", VariantArguments,
            lambda s, a, f: s.variant(a.variant_id, carriers=a.carriers),
        ),
        Operation(
            "sample", "the variants a sample carries, and its het/hom-alt counts", SampleArguments,
            lambda s, a, f: s.sample(a.sample, f, limit=a.limit), filtered=True,
        ),
        Operation(
            "shared", "variants carried by every one of the samples", SharedArguments,
            lambda s, a, f: s.shared(a.samples, f, limit=a.limit), filtered=True,
        ),
        Operation(
            "region", "variants in a region with their carrier counts", RegionArguments,
            lambda s, a, f: s.region(a.region, f, limit=a.limit), filtered=True,
        ),
        Operation(
            "stats", "what the stores hold: files, samples, variants, genotypes, genes, contigs, model",
            StatsArguments, lambda s, a, f: s.stats(),
        ),
        Operation(
            "ask", "a question in plain words, answered with calls of the operations above", AskArguments,
            lambda s, a, f: s.ask(a.question, llm=a.llm, llm_model=a.llm_model, limit=a.limit),
        ),
        Operation(
            "list", "what the stores hold, by name: samples, genes, contigs or files", ListArguments,
            lambda s, a, f: s.listing(a.what),
        ),
    )
}  # fmt: skip


class Parameters(BaseModel):
    """Everything one call of an operation takes: its arguments and its filters, flat."""

    model_config = ConfigDict(extra="forbid")
    operation: ClassVar[Operation]
    filters_model: ClassVar[type[Filters] | None]

    @classmethod
    def checked(cls, **values: Any) -> Parameters:
        """The parameters from `values`, or BadQuery naming the first bad one (one line)."""
        try:
            return cls(**values)
        except ValidationError as error:
            raise BadQuery(one_line(error)) from None

    def arguments(self) -> BaseModel:
        own = type(self).operation.arguments
        return own.model_construct(**{name: getattr(self, name) for name in own.model_fields if name in self})

    def filters(self) -> Filters | None:
        if type(self).filters_model is None:
            return None
        own = type(self).operation.arguments.model_fields
        names = [name for name in type(self).filters_model.model_fields if name not in own and name in self]
        return type(self).filters_model(**{name: getattr(self, name) for name in names})

    def __contains__(self, name: str) -> bool:
        return name in type(self).model_fields

    def run(self, stores: Stores) -> Any:
        return type(self).operation.run(stores, self.arguments(), self.filters())


def is_cli_only(field) -> bool:
    return isinstance(field.json_schema_extra, dict) and bool(field.json_schema_extra.get("cli_only"))


@functools.cache
def parameters(name: str, *, filters: type[Filters] = Filters, cli: bool = True) -> type[Parameters]:
    """The parameters model of operation `name` (with `cli=False`, less the command-line-only fields)."""
    operation = OPERATIONS[name]
    fields: dict[str, Any] = {
        field_name: (field.annotation, field)
        for field_name, field in operation.arguments.model_fields.items()
        if cli or not is_cli_only(field)
    }
    if operation.filtered:
        for field_name, field in filters.model_fields.items():
            if field_name not in operation.arguments.model_fields:
                fields[field_name] = _as_typed(field)
    model = create_model(f"{name.title()}Parameters", __base__=Parameters, **fields)
    model.operation = operation
    model.filters_model = filters if operation.filtered else None
    return model


def _as_typed(field) -> tuple[Any, Any]:
    """A filter field as a user types it: a Region as its text (parsed when the Filters are made)."""
    if value_type(field.annotation) is Region:
        return str | None, Field(None, max_length=_NAME_MAX, description=field.description)
    return field.annotation, field


def parameter_names(name: str, *, filters: type[Filters] = Filters, cli: bool = True) -> set[str]:
    return set(parameters(name, filters=filters, cli=cli).model_fields)


# ---------------------------------------------------------------- the command line, as plain values

#: The copy of `command_line()` that `vcf-agent --server` reads (written by `write_command_line`).
COMMAND_LINE_FILE = Path(__file__).with_name("command_line.py")
_COMMAND_LINE_HEADER = '''"""The CLI's commands and arguments as plain values: a copy of `operations.command_line()`.

Generated by `python -m vcf_agent.interfaces.operations`; do not edit. `vcf-agent --server URL`
builds its parser from it without importing pydantic; tests/test_interfaces_model.py fails when
it differs from the model in operations.py (run the command above again).
"""

# fmt: off
'''


def command_line(*, filters: type[Filters] = Filters) -> dict[str, dict[str, Any]]:
    """Per operation: its summary, whether it takes filters, and its arguments, each a dict:
    name, help, required (a positional argument), filter (in the filters group), cli_only, and
    `choices` (a Literal), `nargs` (a list), `type` ("int", "float") or `flag` (a bool)."""
    return {
        name: {
            "summary": operation.summary,
            "filtered": operation.filtered,
            "arguments": [_argument(field_name, field, operation) for field_name, field in
                          parameters(name, filters=filters).model_fields.items()],
        }
        for name, operation in OPERATIONS.items()
    }  # fmt: skip


def _argument(name: str, field, operation: Operation) -> dict[str, Any]:
    kind = value_type(field.annotation)
    default = None if field.is_required() else field.get_default()
    argument: dict[str, Any] = {
        "name": name,
        "help": (field.description or "") + (f" ({default})" if default not in (None, False) else ""),
        "required": field.is_required(),
        "filter": name not in operation.arguments.model_fields,
        "cli_only": is_cli_only(field),
    }
    if typing.get_origin(kind) is Literal:
        argument["choices"] = typing.get_args(kind)
    elif typing.get_origin(kind) is list:
        argument["nargs"] = "+"
    elif kind in (int, float):
        argument["type"] = kind.__name__
    elif kind is bool:
        argument["flag"] = True
    return argument


#: How command_line.py puts a filtered command's arguments back together: its own, then the
#: filters it does not take as an argument of its own (region's REGION is one).
_COMMAND_LINE_ASSEMBLY = """
#: Every command: its own arguments, then (a filtered command) the filters it does not name itself.
COMMANDS = {
    name: {**command, "arguments": command["arguments"] + [
        f for f in (FILTERS if command["filtered"] else [])
        if f["name"] not in {a["name"] for a in command["arguments"]}
    ]}
    for name, command in OWN_ARGUMENTS.items()
}
"""


def write_command_line(path: Path = COMMAND_LINE_FILE) -> None:
    """Write command_line.py: the filter arguments once, each command's own arguments, and the
    lines that put them together as `command_line()` gives them."""
    from vcf_agent.files import write_text

    commands = command_line()
    filters = max(([a for a in c["arguments"] if a["filter"]] for c in commands.values()), key=len)
    own = {name: {**c, "arguments": [a for a in c["arguments"] if not a["filter"]]} for name, c in commands.items()}
    text = (
        f"{_COMMAND_LINE_HEADER}FILTERS = {pprint.pformat(filters, width=120, sort_dicts=False)}\n\n"
        f"OWN_ARGUMENTS = {pprint.pformat(own, width=120, sort_dicts=False)}\n{_COMMAND_LINE_ASSEMBLY}"
    )
    write_text(path, text)  # tests/test_interfaces_model.py checks that it gives back `commands`


if __name__ == "__main__":
    write_command_line()
