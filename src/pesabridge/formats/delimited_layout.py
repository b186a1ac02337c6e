"""The ``delimited`` format's columns: where each mapped field is, once the header is known.

A field is found by header name (case-insensitive, surrounding spaces and a byte order
mark ignored) or by 0-based index; its display name (the header's own text) is what a
reject names. A mapping the header cannot satisfy is listed in :attr:`Layout.missing`.
"""

from __future__ import annotations

from collections.abc import Callable

from .delimited_options import DelimitedOptions

Cell = Callable[[list[str]], str]


class Layout:
    """Column positions and their display names, fixed once the header is known."""

    def __init__(self, options: DelimitedOptions, header: list[str] | None) -> None:
        self.missing: list[tuple[str, str]] = []
        self.width = 0
        positions: dict[str, int] = {}
        if header is not None:
            for index, cell in enumerate(header):
                positions.setdefault(cell.strip().lstrip("\ufeff").casefold(), index)
            self.width = len(header)
        self.header = header
        self.positions: dict[str, list[int]] = {}
        self.names: dict[str, str] = {}
        for key, refs in options.columns.references().items():
            indexes: list[int] = []
            labels: list[str] = []
            for ref in refs:
                if isinstance(ref, int):
                    if header is not None and ref >= len(header):
                        self.missing.append(
                            (f"column {ref}", f"the header row has only {len(header)} columns")
                        )
                        continue
                    indexes.append(ref)
                    labels.append(
                        header[ref].strip() if header is not None else f"{key} (column {ref})"
                    )
                else:
                    found = positions.get(ref.strip().casefold())
                    if found is None or header is None:
                        self.missing.append((ref, "no such column in the header row"))
                        continue
                    indexes.append(found)
                    labels.append(header[found].strip())
            self.positions[key] = indexes
            self.names[key] = " + ".join(labels)
            self.width = max([self.width, *(i + 1 for i in indexes)])

    def cell(self, key: str) -> Cell | None:
        """A function reading the field's text from a padded row (joined parts with a space)."""
        indexes = self.positions.get(key)
        if not indexes:
            return None
        if len(indexes) == 1:
            index = indexes[0]
            return lambda row: row[index]
        return lambda row: " ".join(p for i in indexes if (p := row[i].strip()))
