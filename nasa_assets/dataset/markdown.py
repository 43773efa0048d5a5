"""Markdown tables for the dataset card and the UI's metadata, with one escaping rule."""

from collections.abc import Iterable, Sequence


def cell(value) -> str:
    """Text from the data, safe inside a table cell: a pipe is escaped, a line break is a space."""
    return str(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence], align: str = "") -> list[str]:
    """The lines of a table. Cells are written as given, so they may hold links, images or code:
    pass text from the data through `cell`. `align` has one letter per column, "l" or "r"."""
    align = align or "l" * len(header)

    def line(cells) -> str:
        return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"

    return [line(header), "|" + "".join("---:|" if a == "r" else "---|" for a in align),
            *(line(row) for row in rows)]
