"""Writing files so that an interrupted job never leaves one that looks complete."""

from __future__ import annotations

import json
import os
from pathlib import Path


def atomic_path(final: Path | str) -> Path:
    """A temporary sibling of `final` (same filesystem, so the rename is atomic)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


def write_json(data: object, path: Path | str) -> None:
    """Write JSON to a temporary name, then rename it into place."""
    tmp = atomic_path(path)
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def read_json(path: Path | str) -> object:
    return json.loads(Path(path).read_text())
