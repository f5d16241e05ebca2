"""`vcf-agent COMMAND --server URL`: the CLI's commands asked of a running `vcf-agent serve`.

The client opens no store and imports neither LanceDB, Kuzu, pyarrow nor pydantic: the
standard library's socket and json only, so a call costs the interpreter's start and two
round trips. It speaks HTTP/1.1 itself (one GET per connection, read to its end): urllib
(with http.client, email and ssl, ~20 ms at start) only for an https:// server or where a
proxy is set in the environment, which urllib knows how to honour.
It maps a parsed CLI command to its endpoint generically: the command names the path
(``/variant``, ``/list/{what}``), each CLI argument goes as the query or path parameter of
the same name, as the server's own OpenAPI schema lists them (read once per call, so the
client follows whatever the server takes). The answer is the endpoint's JSON, which the CLI prints
as --json or renders as the same tables as without --server.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import urllib.parse

from vcf_agent.errors import VcfAgentError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the --server path
if TYPE_CHECKING:
    from typing import Any

#: Environment variable giving the server when --server is not given.
SERVER_VARIABLE = "VCF_AGENT_SERVER"
#: Seconds a call may take (a search over a large store with strict filters can take a while).
TIMEOUT = 600.0
#: Parsed arguments that choose where or how to answer, not what: never sent.
LOCAL_ARGUMENTS = frozenset({"command", "results", "json", "model", "server", "limit_default"})


class ServerError(VcfAgentError):
    """The server could not be reached or refused the call (its one-line reason)."""


def ask_server(url: str, args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    """The JSON answer of the running server at `url` to the parsed CLI command `args`."""
    base = url.rstrip("/")
    target, query = request_for(args, parser, _get(base, "/openapi.json"))
    return _get(base, target, query)


def request_for(
    args: argparse.Namespace, parser: argparse.ArgumentParser, schema: dict
) -> tuple[str, list[tuple[str, str]]]:
    """(path, query pairs) of the request that asks a server with this OpenAPI `schema` the command `args`."""
    path, operation = _operation(schema, args.command)
    path_values, query = _parameters(args.command, operation, _arguments(args, parser))
    target = path.format(**{name: urllib.parse.quote(str(value), safe="") for name, value in path_values.items()})
    return target, query


def _operation(schema: dict, command: str) -> tuple[str, dict]:
    """The path and GET operation of `command`: /command, or /command/{...}."""
    paths = schema.get("paths", {})
    for path in (f"/{command}", *sorted(p for p in paths if p.startswith(f"/{command}/{{"))):
        if "get" in paths.get(path, {}):
            return path, paths[path]["get"]
    raise ServerError(f"the server has no endpoint for `{command}`")


def _arguments(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, tuple[Any, Any, str]]:
    """dest -> (value, default, what the user typed for it) of the command's arguments."""
    command_parser = _subparser(parser, args.command)
    found = {}
    for action in command_parser._actions:
        if action.dest in LOCAL_ARGUMENTS or action.dest == argparse.SUPPRESS:
            continue
        label = action.option_strings[-1] if action.option_strings else (action.metavar or action.dest)
        found[action.dest] = (getattr(args, action.dest, None), action.default, str(label))
    # positional arguments first: `region REGION` is the region, whatever a --region filter says
    found = dict(sorted(found.items(), key=lambda item: item[1][2].startswith("-")))
    # the CLI's own default number of rows for the command (10 for searches), as run_command uses it
    if "limit" in found and found["limit"][0] is None and getattr(args, "limit_default", None) is not None:
        found["limit"] = (args.limit_default, None, found["limit"][2])
    return found


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise AssertionError("vcf-agent has no sub-commands")


def _parameters(command: str, operation: dict, arguments: dict) -> tuple[dict, list[tuple[str, str]]]:
    """(path parameters, query pairs) for the operation, each CLI argument under the server's name."""
    accepted = {p["name"]: p.get("in", "query") for p in operation.get("parameters", [])}
    path_values: dict[str, Any] = {}
    query: list[tuple[str, str]] = []
    for dest, (value, default, label) in arguments.items():
        if value is None:
            continue
        name, value = _server_name(dest, value, accepted)
        if name is not None and (name in path_values or any(name == taken for taken, _ in query)):
            continue  # already given by a positional argument (the local command ignores it too)
        if name is None:
            if value == default:
                continue  # an option left as it was, which this endpoint does not have
            raise ServerError(f"{label} is not available through the server (its /{command} does not take it)")
        if accepted[name] == "path":
            path_values[name] = value
        else:
            for item in value if isinstance(value, list) else [value]:
                query.append((name, _text(item)))
    return path_values, query


def _server_name(dest: str, value: Any, accepted: dict[str, str]) -> tuple[str | None, Any]:
    if dest in accepted:
        return dest, value
    return None, value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: Environment variables that send HTTP through a proxy (urllib's, in either case).
PROXY_VARIABLES = ("http_proxy", "all_proxy")


def _get(base: str, target: str, query: list[tuple[str, str]] | None = None) -> Any:
    url = base + target + ("?" + urllib.parse.urlencode(query) if query else "")
    try:
        status, reason, body = _fetch(url)
    except (OSError, ValueError) as error:  # urllib's URLError is an OSError; a bad port a ValueError
        reason = getattr(error, "reason", error)
        raise ServerError(f"cannot reach the server at {base}: {reason}") from None
    if status >= 400:
        raise ServerError(_refusal(status, reason, body))
    try:
        return json.loads(body)
    except ValueError as error:
        raise ServerError(f"{base}{target}: the server's answer is not JSON ({error})") from None


def _fetch(url: str) -> tuple[int, str, bytes]:
    """(status, reason, body) of a GET of `url`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or any(os.environ.get(n) or os.environ.get(n.upper()) for n in PROXY_VARIABLES):
        return _fetch_with_urllib(url)
    host = parts.netloc.rpartition("@")[2]
    request = (
        f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
        f"Host: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((_address(parts.hostname), parts.port or 80), timeout=TIMEOUT) as connection:
        connection.sendall(request.encode("latin-1"))
        chunks = []
        while chunk := connection.recv(1 << 16):
            chunks.append(chunk)
    return _response(b"".join(chunks))


def _address(hostname: str) -> str | bytes:
    """An ASCII host name as bytes: socket encodes a str with the idna codec (stringprep, unicodedata)."""
    return hostname.encode("ascii") if hostname.isascii() else hostname


def _response(data: bytes) -> tuple[int, str, bytes]:
    """(status, reason, body) of a whole HTTP/1.1 response, its connection closed after it."""
    head, separator, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not separator or not version.startswith("HTTP/") or not code.isdigit():
        raise ConnectionError(f"not an HTTP response: {status_line[:80]!r}")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _unchunked(body)
    elif "content-length" in headers:
        if len(body) < int(headers["content-length"]):
            raise ConnectionError(f"the answer ended after {len(body)} of {headers['content-length']} bytes")
        body = body[: int(headers["content-length"])]
    return int(code), reason, body


def _unchunked(body: bytes) -> bytes:
    pieces = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b"".join(pieces)
        if len(body) < size:
            raise ConnectionError("the answer ended inside a chunk")
        pieces.append(body[:size])
        body = body[size + 2 :]


def _fetch_with_urllib(url: str) -> tuple[int, str, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.reason, response.read()
    except urllib.error.HTTPError as error:
        try:
            return error.code, str(error.reason), error.read()
        except OSError:
            return error.code, str(error.reason), b""


def _refusal(status: int, reason: str, body: bytes) -> str:
    """The server's one-line reason: its {"detail": ...}, a validation error's fields, or the status."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # FastAPI's 422: [{"loc": [...], "msg": ...}, ...]
        detail = "; ".join(f"{_where(item)}: {item.get('msg', '')}" for item in detail if isinstance(item, dict))
    return str(detail) if detail else f"the server answered {status} {reason}"


def _where(item: dict) -> str:
    location = [str(part) for part in item.get("loc", []) if part not in ("query", "path")]
    return ".".join(location) or "request"
