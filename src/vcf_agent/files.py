"""Writing files and folders so that an interrupted job never leaves one that looks complete.

One way for the whole package: write under a hidden temporary name beside the final one (same
file system, so the rename is atomic), rename it into place once complete, and remove it on any
failure, so the previous file (or folder) stays as it was. Temporary names end in ``.tmp``
(``.<name>.<pid>-<random>.tmp``): a sweep of leftovers by a killed process matches them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

TMP_SUFFIX = ".tmp"


def atomic_path(final: Path | str) -> Path:
    """A temporary sibling of `final`, unique to this call (its folder is made if missing)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.with_name(f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


@contextlib.contextmanager
def atomic_files(*finals: Path | str, sync: bool = False) -> Iterator[list[Path]]:
    """Temporary paths for `finals`, to write in the block: all renamed into place when it ends
    without error, all removed when it fails (the finals then stay as they were).

    `sync`: flush each file to disk before its rename (a file others read while it is replaced).
    """
    tmps = [atomic_path(final) for final in finals]
    try:
        yield tmps
        for tmp in tmps:
            if sync:
                _fsync(tmp)
        _place(tmps, [Path(final) for final in finals])
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(final: Path | str, *, sync: bool = False) -> Iterator[Path]:
    """`atomic_files` for one file: ``with atomic_file(path) as tmp: write(tmp)``."""
    with atomic_files(final, sync=sync) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_folder(final: Path | str, *, sync: bool = False) -> Iterator[Path]:
    """A new empty folder beside `final`, to fill in the block, renamed to `final` when it ends
    without error and removed when it fails.

    A folder cannot replace another: when `final` appeared meanwhile (another process finished
    the same work first), theirs is kept and ours removed. `sync`: flush the files first.
    """
    final = Path(final)
    building = atomic_path(final)
    building.mkdir()
    try:
        yield building
        if sync:
            for file in building.rglob("*"):
                if file.is_file():
                    _fsync(file)
        try:
            building.rename(final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _place(tmps: list[Path], finals: list[Path]) -> None:
    """Rename each into place, in order (a data file before its index); a set of files made
    together is never left half replaced: if a rename fails, those placed are removed."""
    placed = []
    try:
        for tmp, final in zip(tmps, finals, strict=True):
            tmp.replace(final)
            placed.append(final)
    except BaseException:
        for final in placed:
            final.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_text(path: Path | str, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_json(data: object, path: Path | str) -> None:
    """Write JSON to a temporary name, then rename it into place."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path | str) -> object:
    return json.loads(Path(path).read_text())
