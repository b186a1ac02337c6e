"""What the CLI commands share: finding the database, the console, config loading."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from ..config import Config, load_config
from ..errors import ConfigError
from ..store import DEFAULT_URL, Store

console = Console(stderr=False)
errors = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file.", exists=False, dir_okay=False),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLAlchemy URL of the ledger (sqlite:///path.db, postgresql+psycopg://...). "
        "Default: $PESABRIDGE_DB, the config's database, or sqlite:///pesabridge.db.",
    ),
]


FormatOptionsOption = Annotated[
    str | None,
    typer.Option(
        "--format-options",
        help="Options of the format (e.g. the column mapping of 'delimited'): a YAML/JSON "
        "file, or inline YAML/JSON.",
        show_default=False,
    ),
]


def byte_progress() -> Progress:
    """A progress bar in bytes (downloads, files being read); silent when not a terminal."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=True,
    )


def read_format_options(value: str | None) -> dict[str, Any] | None:
    """``--format-options``: a file's content or the text itself, as a mapping."""
    if value is None:
        return None
    path = Path(value)
    text = path.read_text(encoding="utf-8") if path.is_file() else value
    try:
        options = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        errors.print(f"--format-options: not valid YAML or JSON: {exc}", highlight=False)
        raise typer.Exit(2) from None
    if not isinstance(options, dict):
        errors.print("--format-options: must be a mapping (key: value ...)")
        raise typer.Exit(2)
    return options


def load_or_exit(path: Path) -> Config:
    """Load a config, or print every problem and exit 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        errors.print(f"[bold red]{path}: configuration is not valid[/]")
        for problem in exc.problems:
            errors.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(2) from None


def database_url(db: str | None, config: Config | None) -> str:
    """--db, then $PESABRIDGE_DB, then the config's database, then the default."""
    if db:
        return db
    if os.environ.get("PESABRIDGE_DB"):
        return os.environ["PESABRIDGE_DB"]
    if config is not None:
        return config.database
    return DEFAULT_URL


def open_store(db: str | None, config_path: Path | None) -> tuple[Store, Config | None]:
    """The ledger the user meant, migrated; exits 2 with a clear message on failure."""
    config = load_or_exit(config_path) if config_path else None
    url = database_url(db, config)
    try:
        return Store.open(url), config
    except Exception as exc:
        errors.print(f"[bold red]cannot open the ledger at {url}:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
