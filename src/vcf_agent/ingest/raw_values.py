"""Values in a VCF's text that htslib reads as another value without a word.

htslib 1.16 reads POS `123abc` as 123, QUAL `quality` as 0, drops an INFO/END
that is not a number (the record then ends at POS), and reads a blank line as a
record on a contig named ''. The text is never seen again after htslib parsed
it, so one `grep` pass over the decompressed input, beside the normalisation
pipeline, looks for the first such line; the input is then refused with a line
naming the file, the line and the record. A blank line (a valid file may end
in one) is not refused: `BlankLineFound` tells the caller to read the input again
with blank lines left out (`without_blank_lines`). BCF input holds typed values
and is not checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from vcf_agent.errors import VcfAgentError, fail

_QUAL = r"(?:\.|[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?i:inf|infinity|nan))"
_END_OF_FIELD = r"(?:\t|\r?$)"
_BLANK_LINE = r"^\r?$"
#: A data line whose POS, QUAL or INFO/END htslib would misread.
_MISREAD_VALUE = "|".join(
    (
        rf"^[^#\t][^\t]*\t(?![0-9]+{_END_OF_FIELD})",
        rf"^[^#\t][^\t]*(?:\t[^\t]*){{4}}\t(?!{_QUAL}{_END_OF_FIELD})",
        rf"^[^#\t][^\t]*(?:\t[^\t]*){{6}}\t(?:[^\t]*;)?END=(?!(?:-?[0-9]+|\.)(?:;|{_END_OF_FIELD}))",
    )
)
#: grep matches bytes, not characters, under the C locale (and fast).
_C_LOCALE = {**os.environ, "LC_ALL": "C"}
_FULL_QUAL = re.compile(_QUAL + "$")
_INTEGER_END = re.compile(r"(?:-?[0-9]+|\.)$")


class BlankLineFound(VcfAgentError):
    """The input has a blank line: read it again through `without_blank_lines`."""


def without_blank_lines(path: Path, container: str) -> list[list[str]]:
    """Commands that print the text of `path` without its blank lines (htslib then reads '-')."""
    keep = ["grep", "-a", "-v", "-x", "-E", "\r?"]  # a real CR: -E needs no locale for it
    if container == "vcf":
        return [[*keep, str(path)]]
    return [["bgzip", "-dc", str(path)], keep]


class MisreadValueCheck:
    """`grep` for the first misread line of a text VCF, running while the caller does other work."""

    def __init__(self, path: Path, container: str, *, blank_lines: bool = True) -> None:
        """`blank_lines`: also look for blank lines (False once the reader leaves them out)."""
        self.path = path
        self._process: subprocess.Popen | None = None
        if container == "bcf":
            return
        self._found = tempfile.TemporaryFile()  # noqa: SIM115 - closed in verify()
        pattern = f"{_BLANK_LINE}|{_MISREAD_VALUE}" if blank_lines else _MISREAD_VALUE
        grep = ["grep", "-n", "-m", "1", "-P", pattern]
        if container == "vcf":
            self._process = subprocess.Popen([*grep, str(path)], stdout=self._found, env=_C_LOCALE)
            return
        self._reader = subprocess.Popen(["bgzip", "-dc", str(path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._process = subprocess.Popen(grep, stdin=self._reader.stdout, stdout=self._found, env=_C_LOCALE)
        self._reader.stdout.close()  # grep holds it; it stops the reader once it found a line

    def verify(self) -> None:
        """Wait for the scan; raise the one-line error about the first misread line, if any."""
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.wait() > 1:
            raise RuntimeError(f"grep failed ({process.returncode}) scanning {self.path}")
        if hasattr(self, "_reader"):
            self._reader.wait()
        self._found.seek(0)
        found = self._found.read().decode(errors="replace")
        self._found.close()
        if found:
            number, _, line = found.rstrip("\n").partition(":")
            if not line.rstrip("\r"):
                raise BlankLineFound(f"{self.path}: line {number} is blank")
            raise fail(self.path, f"line {number}: {explain_misread(line)}")

    def stop(self) -> None:
        """End the scan without looking at it (the caller failed for another reason)."""
        if self._process is not None:
            for process in (self._process, getattr(self, "_reader", None)):
                if process is not None:
                    process.kill()
                    process.wait()
            self._found.close()
            self._process = None


def explain_misread(line: str) -> str:
    """Which value of `line` htslib would misread, in words."""
    line = line.rstrip("\r")
    columns = line.split("\t")
    chrom, pos = columns[0], columns[1]
    record = f"record {chrom}:{pos}"
    if not pos.isdigit() or not pos.isascii():
        return f"{record}: POS {pos!r} is not a whole number"
    if len(columns) > 5 and not _FULL_QUAL.match(columns[5]):
        return f"{record}: QUAL {columns[5]!r} is not a number"
    for entry in columns[7].split(";") if len(columns) > 7 else []:
        key, _, value = entry.partition("=")
        if key == "END" and not _INTEGER_END.match(value):
            return f"{record}: INFO/END {value!r} is not a whole number"
    return f"{record}: a value htslib would misread"
