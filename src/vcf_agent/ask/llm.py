"""Optional planning by a language model the user already runs (`vcf-agent ask --llm URL`).

The model is asked through the OpenAI chat-completions protocol (llama.cpp's
server, Ollama, vLLM and others speak it) with one tool per query operation; the
tool schemas are generated from the operations' arguments and the fields of
`vcf_agent.query.Filters`. Every tool call the model returns is validated against
its schema, and its names against the stores, before anything runs; one bad call
rejects the plan, and `vcf_agent.ask.planner` then plans offline. Nothing here downloads
anything or depends on an LLM runtime: the request is one HTTP POST (urllib).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from vcf_agent.ask.planner import DESCRIPTIONS, FILTERED, OPERATIONS, REQUIRED, Call
from vcf_agent.errors import VcfAgentError
from vcf_agent.query.listing import LISTINGS

if TYPE_CHECKING:
    from vcf_agent.query import Stores

#: Seconds the model may take to answer.
LLM_TIMEOUT = 60
#: Largest reply read from the endpoint (bytes).
MAX_REPLY = 1 << 20
ARGUMENT_DOCS = {
    "text": "what to look for, in words",
    "variant_id": "chrom:pos:ref:alt as stored, or an rsID",
    "sample": "sample name from the VCF header",
    "samples": "two or more sample names",
    "limit": "rows to return",
    "carriers": "carrier names shown per variant",
    "what": "what to list",
}


class LlmRejected(VcfAgentError):
    """The model's plan could not be used (no answer, no tool call, or a call that fails validation)."""


def tool_schemas() -> list[dict[str, Any]]:
    """One OpenAI `tools` entry per operation, its JSON schema built from the operation's arguments and Filters."""
    return [
        {
            "type": "function",
            "function": {"name": name, "description": DESCRIPTIONS[name], "parameters": parameters_schema(name)},
        }
        for name in OPERATIONS
    ]


def parameters_schema(operation: str) -> dict[str, Any]:
    from vcf_agent.query import MAX_LIMIT, VARIANT_CLASSES

    properties: dict[str, Any] = {}
    filter_docs = _filter_docs()
    for name, kind in OPERATIONS[operation].items():
        schema: dict[str, Any] = {"type": kind, "description": ARGUMENT_DOCS.get(name) or filter_docs[name]}
        if kind == "array":
            schema.update(items={"type": "string"}, minItems=2, maxItems=100)
        if kind == "integer":
            schema.update(minimum=1, maximum=MAX_LIMIT)
        if name == "what":
            schema["enum"] = list(LISTINGS)
        properties[name] = schema
    if operation in FILTERED:
        for name, hint in _filter_hints().items():
            if name in properties:
                continue
            schema = {"type": "number" if hint is float else "string", "description": filter_docs[name]}
            if hint is float:
                schema.update(minimum=0, maximum=1)
            if name == "variant_class":
                schema["enum"] = list(VARIANT_CLASSES)
            properties[name] = schema
    return {
        "type": "object",
        "properties": properties,
        "required": list(REQUIRED.get(operation, ())),
        "additionalProperties": False,
    }


def _filter_docs() -> dict[str, str]:
    """The filters' descriptions (the CLI's help and the HTTP docs say the same)."""
    from vcf_agent.query.filters import Filters

    return {name: field.description or name for name, field in Filters.model_fields.items()}


def _filter_hints() -> dict[str, type]:
    """Filters' fields and their value types (Region is given as text)."""
    from vcf_agent.query.filters import Filters, value_type

    return {name: float if value_type(f.annotation) is float else str for name, f in Filters.model_fields.items()}


def validate(name: str, arguments: Any) -> Call:
    """The call, when `arguments` satisfy the operation's schema and the filters' own checks; else LlmRejected."""
    from vcf_agent.ask.planner import filters_of
    from vcf_agent.query import BadQuery, Region

    if name not in OPERATIONS:
        raise LlmRejected(f"unknown tool {name!r}")
    if not isinstance(arguments, dict):
        raise LlmRejected(f"{name}: arguments are not an object")
    schema = parameters_schema(name)
    for key, value in arguments.items():
        if key not in schema["properties"]:
            raise LlmRejected(f"{name}: unknown argument {key!r}")
        _check_value(name, key, value, schema["properties"][key])
    missing = [key for key in schema["required"] if key not in arguments]
    if missing:
        raise LlmRejected(f"{name}: missing {', '.join(missing)}")
    try:
        filters_of(arguments)
        if name == "region":
            Region.parse(arguments["region"])
    except BadQuery as error:
        raise LlmRejected(f"{name}: {error}") from None
    return Call(name, dict(arguments))


def _check_value(operation: str, key: str, value: Any, schema: dict[str, Any]) -> None:
    kind = schema["type"]
    valid = {
        "string": isinstance(value, str) and bool(value),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "array": isinstance(value, list) and all(isinstance(item, str) for item in value),
    }[kind]
    if valid and "enum" in schema:
        valid = value in schema["enum"]
    if valid and "minimum" in schema:
        valid = schema["minimum"] <= value <= schema["maximum"]
    if valid and kind == "array":
        valid = schema["minItems"] <= len(value) <= schema["maxItems"]
    if not valid:
        raise LlmRejected(f"{operation}: argument {key}={value!r} does not match its schema ({kind})")


def check_names(stores: Stores, call: Call) -> None:
    """The samples, contigs and variants a call names must be in the stores (else LlmRejected)."""
    from vcf_agent.ask.planner import filters_of
    from vcf_agent.query import BadQuery, NotFound

    a = call.arguments
    try:
        stores.check(filters_of(a))
        for sample in [a["sample"]] if "sample" in a else a.get("samples", []):
            stores._require_sample(sample)
        if "variant_id" in a and not stores.resolve_variant(a["variant_id"]):
            raise NotFound(f"unknown variant {a['variant_id']!r}")
    except (NotFound, BadQuery) as error:
        raise LlmRejected(f"{call.operation}: {error}") from None


def endpoint(url: str) -> str:
    """The chat-completions URL: as given when it ends so, else URL/chat/completions (for a URL ending in /v1)
    or URL/v1/chat/completions."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def plan_with_llm(
    stores: Stores, question: str, url: str, *, model: str = "local", timeout: float = LLM_TIMEOUT
) -> list[Call]:
    """The model's tool calls for `question`, validated (LlmRejected when the plan cannot be used)."""
    if not url.startswith(("http://", "https://")):
        raise LlmRejected(f"--llm {url!r}: not an http(s) URL")
    body = {
        "model": model,
        "temperature": 0,
        "messages": [{"role": "system", "content": _system_prompt(stores)}, {"role": "user", "content": question}],
        "tools": tool_schemas(),
        "tool_choice": "auto",
    }
    request = urllib.request.Request(
        endpoint(url), data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read(MAX_REPLY))
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise LlmRejected(f"{endpoint(url)}: {error}") from None
    calls = []
    for tool_call in _tool_calls(reply):
        function = tool_call.get("function") or {}
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except ValueError:
                raise LlmRejected(f"{function.get('name')}: arguments are not JSON") from None
        call = validate(str(function.get("name")), arguments)
        check_names(stores, call)
        calls.append(call)
    if not calls:
        raise LlmRejected("the model called no tool")
    return calls


def _tool_calls(reply: Any) -> list[dict]:
    try:
        calls = reply["choices"][0]["message"].get("tool_calls") or []
    except (KeyError, IndexError, TypeError, AttributeError):
        raise LlmRejected("the reply is not a chat completion") from None
    if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
        raise LlmRejected("tool_calls is not a list of objects")
    return calls


def _system_prompt(stores: Stores) -> str:
    stats = stores.stats()
    names = stores.sample_names()
    return (
        "You answer questions about genetic variants by calling the tools; call one or more tools, do not answer"
        " in words. Variant ids are chrom:pos:ref:alt (or rsIDs). The stores hold"
        f" {stats.variants} variants of {stats.samples} samples on contigs"
        f" {', '.join(c.name for c in stats.contigs[:25])}; sample names look like {', '.join(names[:3])}."
        " Rare means af_max 0.01, common af_min 0.05."
    )
