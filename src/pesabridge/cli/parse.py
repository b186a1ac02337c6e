"""``pesabridge parse``: print canonical transactions, one JSON object per line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UnknownFormat
from ..formats import Observation, Reject, format_names
from ..formats.registry import FormatOptionsError
from ..pipeline import choose_parser
from .common import FormatOptionsOption, errors, read_format_options


def parse(
    files: Annotated[list[Path], typer.Argument(help="Files to parse.", show_default=False)],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="Format name, or auto to recognise each file.")
    ] = "auto",
    format_options: FormatOptionsOption = None,
) -> None:
    """Parse files and print one JSON transaction per line; rejects go to stderr.

    Exit status: 0 all parsed, 1 some rows rejected (good ones still printed), 2 usage error.
    """
    if fmt != "auto" and fmt not in format_names():
        errors.print(f"unknown format {fmt!r}; known: {', '.join([*format_names(), 'auto'])}")
        raise typer.Exit(2)
    options = read_format_options(format_options)
    rejected = 0
    out = sys.stdout
    for path in files:
        if not path.is_file():
            errors.print(f"{path}: no such file", highlight=False)
            raise typer.Exit(2)
        try:
            parser = choose_parser(path, fmt, options)
        except FormatOptionsError as exc:
            for problem in exc.problems:
                errors.print(problem, highlight=False, markup=False)
            raise typer.Exit(2) from None
        except UnknownFormat as exc:
            errors.print(str(exc), highlight=False)
            raise typer.Exit(2) from None
        with path.open("rb") as stream:
            for item in parser.parse(stream, path.name):
                if isinstance(item, Observation):
                    out.write(json.dumps(item.transaction.to_dict(), ensure_ascii=False) + "\n")
                elif isinstance(item, Reject):
                    rejected += 1
                    print(str(item), file=sys.stderr)
    out.flush()
    if rejected:
        raise typer.Exit(1)
