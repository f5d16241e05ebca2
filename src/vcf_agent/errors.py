"""Errors a user can act on.

Every failure caused by the input (a broken VCF, a wrong reference, a bad
config value) is raised as VcfAgentError: its message is one line that names
the file, the record or line where known, and the cause. The CLI and the rule
scripts print that line and exit non-zero instead of a traceback.
"""

from __future__ import annotations


class VcfAgentError(Exception):
    """An error caused by the input, with a one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def fail(subject: object, cause: str) -> VcfAgentError:
    """Build the standard 'subject: cause' error (use as `raise fail(path, "...")`)."""
    return VcfAgentError(f"{subject}: {cause}")
