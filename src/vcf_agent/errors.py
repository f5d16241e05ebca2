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


class TooLittleMemory(VcfAgentError):
    """A job's mem_mb is below what its tools need whatever the data.

    The rule scripts' wrapper (vcf_agent.logs.run_job) adds which job it is and how to give it more.
    """

    def __init__(self, given_mb: int, needed_mb: int, why: str) -> None:
        super().__init__(f"mem_mb={given_mb} is too little: {why}, so it needs at least {needed_mb} MB")
        self.given_mb, self.needed_mb, self.why = given_mb, needed_mb, why

    def __reduce__(self):  # pickled whole, e.g. back from vcf_agent.runtime.run_in_child
        return type(self), (self.given_mb, self.needed_mb, self.why)
