"""The CLI's tables and lines as rich prints them into a pipe, without importing rich where that is sure.

Importing rich (rich.console, rich.table) was half of what a `--server` call spends in its own
process. Into a pipe or a file (stdout not a terminal, no FORCE_COLOR or TTY_COMPATIBLE, a UTF-8
encoding) rich writes no escape codes and its layout is simple as long as nothing has to be
wrapped: each column as wide as its widest cell plus one space each side, rich's HEAVY_HEAD box
(SQUARE without a header), a title left-justified over the table's width. `Printer` writes that
itself when every character is printable ASCII (one cell per character) and every line fits the
width; anything else (a terminal, a wider table, a tab, a character of another width) is handed
to rich, which prints it as before. tests/test_cli_server.py compares the two on the CLI's own
outputs and on made-up tables at the edges of these rules.
"""

from __future__ import annotations

import os
import sys

#: How wide rich prints into a pipe (cli: Console(width=240) when stdout is not a terminal).
WIDTH = 240
#: Columns right-justified (numbers).
NUMERIC = frozenset({"pos", "carriers", "AF", "similarity", "n", "variants", "first", "last", "dp", "gq"})
#: Environment variables that make rich write escape codes into a pipe.
COLOR_VARIABLES = ("FORCE_COLOR", "TTY_COMPATIBLE")
#: rich's HEAVY_HEAD box: top, header row, header separator, body row, bottom (left, line, between, right).
HEADED = ("┏━┳┓", "┃ ┃┃", "┡━╇┩", "│ ││", "└─┴┘")
#: Its plain-headed substitute (SQUARE), drawn when the header is not shown.
PLAIN = ("┌─┬┐", "", "", "│ ││", "└─┴┘")


def simple(text: str) -> bool:
    """Printable ASCII and newlines only: one terminal cell per character, nothing rich would change."""
    return text.isascii() and all(" " <= c <= "~" or c == "\n" for c in text)


class Printer:
    """Prints the renderers' lines and tables: itself where its output is rich's, else with rich."""

    def __init__(self) -> None:
        self.plain = plain_output()
        self._console = None

    def rich(self):
        if self._console is None:
            from rich.console import Console

            # Values are printed as they are: no [markup] read in them, no :emoji: codes
            # (rich's defaults turned variant chr1:100:A:G into "chr1💯A:G").
            width = None if sys.stdout.isatty() else WIDTH
            self._console = Console(soft_wrap=False, width=width, markup=False, emoji=False)
        return self._console

    def line(self, *parts: str | tuple[str, str], style: str | None = None) -> None:
        """A line of text; a part (text, style) is styled (in a terminal: bold, dim)."""
        text = "".join(part if isinstance(part, str) else part[0] for part in parts)
        if self.plain and simple(text) and all(len(line) <= WIDTH for line in text.split("\n")):
            sys.stdout.write(text + "\n")
            return
        if len(parts) == 1 and isinstance(parts[0], str):
            self.rich().print(parts[0], style=style)  # a str as before: highlighted in a terminal
            return
        from rich.text import Text

        self.rich().print(Text.assemble(*parts), style=style)

    def table(self, title: str | None, columns: tuple | list, rows: list, *, show_header: bool = True) -> None:
        """A table of text cells (rows of str), numbers right-justified."""
        texts = [title or "", *columns, *(cell for row in rows for cell in row)]
        widths = [max([len(name) if show_header else 0, *(len(row[i]) for row in rows)]) + 2 for i, name in
                  enumerate(columns)]  # fmt: skip
        width = sum(widths) + len(widths) + 1  # the cells and the borders
        # rich folds the cells of a table wider than the line, wraps a title wider than the table,
        # and spreads columns with no cell at all (no header, no rows) over the line
        fits = width <= WIDTH and len(title or "") <= width and (show_header or bool(rows))
        if self.plain and fits and all(simple(text) and "\n" not in text for text in texts):
            sys.stdout.write(draw(title, columns, rows, widths, show_header))
            return
        self.rich().print(rich_table(title, columns, rows, show_header=show_header))


def plain_output() -> bool:
    """Whether rich would write plain text here: not a terminal, no colour forced, UTF-8."""
    encoding = (getattr(sys.stdout, "encoding", None) or "utf-8").lower()
    forced = any(name in os.environ for name in COLOR_VARIABLES)
    return not forced and encoding.startswith("utf") and not sys.stdout.isatty()


def draw(title: str | None, columns, rows, widths: list[int], show_header: bool) -> str:
    top, head, separator, body, bottom = HEADED if show_header else PLAIN
    lines = [title.ljust(sum(widths) + len(widths) + 1)] if title else []
    lines.append(_rule(top, widths))
    if show_header:
        lines.append(_row(head, columns, columns, widths))
        lines.append(_rule(separator, widths))
    lines += [_row(body, row, columns, widths) for row in rows]
    lines.append(_rule(bottom, widths))
    return "\n".join(lines) + "\n"


def _rule(box: str, widths: list[int]) -> str:
    left, line, between, right = box
    return left + between.join(line * width for width in widths) + right


def _row(box: str, cells, columns, widths: list[int]) -> str:
    left, _, between, right = box
    justified = [
        f" {cell.rstrip().rjust(width - 2) if name in NUMERIC else cell.ljust(width - 2)} "  # rich: rstrip, then pad
        for cell, name, width in zip(cells, columns, widths, strict=True)
    ]
    return left + between.join(justified) + right


def rich_table(title: str | None, columns, rows, *, show_header: bool = True):
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=show_header)
    for name in columns:
        table.add_column(name, justify="right" if name in NUMERIC else "left", overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table
