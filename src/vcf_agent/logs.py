"""Running one workflow step with a log file and a one-line error instead of a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from vcf_agent.errors import VcfAgentError

T = TypeVar("T")

log = logging.getLogger("vcf_agent")


def setup_logging(log_file: Path | str | None = None, level: int = logging.INFO) -> None:
    """Log to `log_file` (the rule's log) and to stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=level, handlers=handlers, force=True, format="%(asctime)s %(levelname)s %(message)s")


def run_logged(log_file: Path | str | None, step: Callable[..., T], *args, **kwargs) -> T:
    """Run `step`; a VcfAgentError becomes 'ERROR: <one line>' in the log and exit status 1."""
    setup_logging(log_file)
    try:
        return step(*args, **kwargs)
    except VcfAgentError as error:
        log.error("%s", error)
        raise SystemExit(1) from None
