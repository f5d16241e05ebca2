"""Running bcftools (alone or in pipelines) and turning its stderr into one-line errors.

bcftools 1.16 sometimes exits 0 after printing an error (norm on a truncated or
column-broken input writes only part of the records), so a command counts as
failed when it exits non-zero OR prints an htslib error line ("[E::...]").
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

from vcf_agent.errors import VcfAgentError, fail

BCFTOOLS = os.environ.get("VCF_AGENT_BCFTOOLS", "bcftools")

_HTSLIB_MESSAGE = re.compile(r"^\[(?P<level>[EW])::(?P<func>[\w]+)\]\s*(?P<text>.*)$")
_UNDECLARED = re.compile(
    r"(?P<kind>Contig|INFO|FORMAT|FILTER) '(?P<name>[^']+)' (?:at \S+ )?is not defined in the header"
)


@dataclass
class Undeclared:
    """Names that records use but the header does not declare (htslib cannot write such BCF)."""

    contigs: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)
    #: contigs whose declared length is shorter than their positions (CSI indexing fails on them)
    bad_lengths: list[str] = field(default_factory=list)

    @classmethod
    def from_stderr(cls, stderr: str) -> Undeclared:
        found = cls()
        lists = {"Contig": found.contigs, "INFO": found.info, "FORMAT": found.formats, "FILTER": found.filters}
        for match in _UNDECLARED.finditer(stderr):
            names = lists[match["kind"]]
            if match["name"] not in names:
                names.append(match["name"])
        return found

    def __bool__(self) -> bool:
        return bool(self.contigs or self.info or self.formats or self.filters or self.bad_lengths)

    def merge(self, other: Undeclared) -> Undeclared:
        merged = Undeclared()
        for name in ("contigs", "info", "formats", "filters", "bad_lengths"):
            getattr(merged, name).extend(dict.fromkeys(getattr(self, name) + getattr(other, name)))
        return merged

    def describe(self) -> str:
        parts = [
            ("contigs", self.contigs), ("INFO", self.info), ("FORMAT", self.formats),
            ("FILTER", self.filters), ("contig lengths shorter than the positions of", self.bad_lengths),
        ]  # fmt: skip
        return "; ".join(f"{kind} {', '.join(names)}" for kind, names in parts if names)


class UndeclaredError(VcfAgentError):
    """Records use contigs or tags the header does not declare."""

    def __init__(self, subject: object, undeclared: Undeclared) -> None:
        super().__init__(f"{subject}: the header does not describe the records: {undeclared.describe()}")
        self.undeclared = undeclared


def bcftools(*args: object) -> list[str]:
    return [BCFTOOLS, *(str(a) for a in args)]


def explain_stderr(stderr: str) -> str:
    """The cause in one line: htslib's error lines first, else the tool's last words."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors, warnings = [], []
    fatal = set(htslib_errors(stderr))
    for line in lines:
        match = _HTSLIB_MESSAGE.match(line)
        if match:
            (errors if line in fatal else warnings).append(match["text"])
    causes = list(dict.fromkeys(_reword(e) for e in errors))[:2] or [_reword(_last_words(lines))]
    if any("No BGZF EOF marker" in w for w in warnings):
        causes.insert(0, "truncated file (no BGZF end-of-file marker)")
    return "; ".join(causes)


_REWORDED = (
    (
        re.compile(r"^Reference allele mismatch at (\S+) \.\. REF_SEQ:'(\w*)' vs VCF:'(\w*)'$"),
        r"record \1: REF \3 does not match the reference FASTA, which has \2 there (is the FASTA the"
        r" assembly the VCF was called on? To carry on past such records, set ref_check to warn, exclude or set)",
    ),
    (re.compile(r"^Failed to read from .*: unknown file type$"), "not a VCF or BCF file (htslib: unknown file type)"),
    (
        re.compile(r"^Could not add dummy header for contig '(.*)'$"),
        r"invalid contig name '\1' (htslib could not declare it)",
    ),
    (
        re.compile(r'^Incorrect allele \("(.*)"\) in (.*) at (\S+)$'),
        r"record \3: the genotype of sample \2 names allele \1, which the record's ALT column does not have",
    ),
)


def _reword(text: str) -> str:
    text = text.rstrip(":").strip()
    for pattern, replacement in _REWORDED:
        if pattern.match(text):
            return pattern.sub(replacement, text)
    return text


def _last_words(lines: list[str]) -> str:
    meaningful = [line for line in lines if not line.startswith("Lines ")]
    return meaningful[-1] if meaningful else "failed without an error message"


#: htslib reports these as errors but carries on without the line, as bcftools view does.
_SURVIVABLE = ("Could not parse the header line",)


def htslib_errors(stderr: str) -> list[str]:
    """htslib error lines that mean records were lost or misread."""
    return [
        line
        for line in stderr.splitlines()
        if line.startswith("[E::") and not any(text in line for text in _SURVIVABLE)
    ]


def has_htslib_error(stderr: str) -> bool:
    return bool(htslib_errors(stderr))


def run(args: Sequence[str], *, subject: object, stdout: IO | int | None = subprocess.PIPE) -> str:
    """Run one command; return its stdout (text) or raise a one-line error about `subject`."""
    result = subprocess.run(args, stdout=stdout, stderr=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0 or has_htslib_error(result.stderr):
        raise fail(subject, explain_stderr(result.stderr))
    return result.stdout if isinstance(result.stdout, str) else ""


@dataclass
class Pipeline:
    """Commands chained stdout -> stdin, each with its stderr kept in a temporary file."""

    commands: list[list[str]]
    processes: list[subprocess.Popen] = field(default_factory=list)
    returncodes: list[int] = field(default_factory=list)
    stderr_texts: list[str] = field(default_factory=list)
    _stderr_files: list[IO] = field(default_factory=list)

    @property
    def stdout(self) -> IO[bytes]:
        return self.processes[-1].stdout

    def start(self, stdout: IO | int) -> None:
        upstream = None
        for position, args in enumerate(self.commands):
            last = position == len(self.commands) - 1
            err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finish()
            self._stderr_files.append(err)
            process = subprocess.Popen(args, stdin=upstream, stdout=stdout if last else subprocess.PIPE, stderr=err)
            if upstream is not None:
                upstream.close()  # the child holds it now; closing ours lets SIGPIPE reach the writer
            upstream = process.stdout
            self.processes.append(process)

    def finish(self, kill: bool = False) -> None:
        """Wait for every process (killing them first if asked) and keep their stderr."""
        for process in self.processes:
            if kill:
                process.kill()
            if process.stdout is not None:
                process.stdout.close()
        self.returncodes = [process.wait() for process in self.processes]
        for handle in self._stderr_files:
            handle.seek(0)
            self.stderr_texts.append(handle.read().decode(errors="replace"))
            handle.close()

    def stderr_of(self, index: int) -> str:
        return self.stderr_texts[index]

    def all_stderr(self, first: int = 0) -> str:
        return "\n".join(self.stderr_texts[first:])


@contextmanager
def pipeline(
    commands: list[list[str]],
    *,
    subject: object,
    stdout: IO | int = subprocess.PIPE,
    header_fixed_after: int = 0,
) -> Iterator[Pipeline]:
    """Start the commands; on leaving, wait for all and raise if any of them failed.

    The caller consumes `Pipeline.stdout` inside the block (when stdout is PIPE);
    stderr_of() is available after the block. An exception inside the block
    kills the processes first. Warnings about undeclared contigs from the first
    `header_fixed_after` commands are expected (they read the input before its
    header is completed) and ignored.
    """
    pipe = Pipeline(commands)
    try:
        pipe.start(stdout)
        yield pipe
    except BaseException as error:
        pipe.finish(kill=True)
        undeclared = Undeclared.from_stderr(pipe.all_stderr(header_fixed_after))
        if undeclared:
            raise UndeclaredError(subject, undeclared) from error
        # In pipeline order: a stage fails on what the stage before it wrote, so the first failed one
        # holds the cause (bcftools norm's REF mismatch, not annotate's "Failed to read BCF header").
        errors = [
            text
            for code, text in zip(pipe.returncodes, pipe.stderr_texts, strict=True)
            if code > 0 or has_htslib_error(text)
        ]
        if errors and not isinstance(error, VcfAgentError):
            # The reader of our stream failed because a tool upstream did: report the tool's cause.
            raise fail(subject, explain_stderr(errors[0])) from error
        raise
    pipe.finish()
    _raise_on_failure(pipe, subject, header_fixed_after)


def _raise_on_failure(pipe: Pipeline, subject: object, header_fixed_after: int) -> None:
    undeclared = Undeclared.from_stderr(pipe.all_stderr(header_fixed_after))
    if undeclared:
        raise UndeclaredError(subject, undeclared)
    failed = [
        (code, text)
        for code, text in zip(pipe.returncodes, pipe.stderr_texts, strict=True)
        if code != 0 or has_htslib_error(text)
    ]
    if failed:
        # A writer killed by SIGPIPE only tells us its reader died: report the reader's cause. Otherwise
        # the first failed stage in pipeline order: the later ones failed on what it wrote.
        telling = [f for f in failed if f[0] != -signal.SIGPIPE]
        raise fail(subject, explain_stderr((telling or failed)[0][1]))
