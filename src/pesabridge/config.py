"""The configuration file: one YAML document validated by pydantic.

Secrets are never written in the file: a value ``${ERP_TOKEN}`` is read from the
environment (and ``${file:/run/secrets/erp}`` from a file) when the config is loaded, and
sink credentials are held as :class:`pydantic.SecretStr` so they never reach a log.
Source and sink sections are validated by the model their ``type`` registers in
:mod:`pesabridge.registry`; every problem is reported with its YAML path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError
from .reconcile.settings import ReconciliationConfig
from .store.connector import DEFAULT_URL

_REFERENCE = re.compile(r"\$\{([^}]+)\}")


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ComponentConfig(Strict):
    """What every source and sink section has."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)
    type: str


class RouteConfig(Strict):
    """Which sources' transactions go to which sinks, optionally filtered."""

    from_: list[str] = Field(alias="from", min_length=1)
    to: list[str] = Field(min_length=1)
    entries: list[str] | None = None
    """Entry kinds to deliver (``payment``, ``reversal`` ...); all when omitted."""
    statuses: list[str] = ["completed"]
    """Failed rows are never posted unless listed here."""
    providers: list[str] | None = None
    accounts: list[str] | None = None
    directions: list[Literal["credit", "debit"]] | None = None
    amount_min: Decimal | None = None
    """Inclusive, in the transaction's currency."""
    amount_max: Decimal | None = None
    """Inclusive."""
    reference: str | None = None
    """A regular expression searched in the reference (``re.search``); a transaction
    without a reference does not match."""

    @field_validator("reference")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


class ServerConfig(Strict):
    """The HTTP side: callbacks, health and metrics."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    commit_max_batch: int = Field(default=256, ge=1, le=10_000)
    """Callbacks committed together at most (1: one transaction per callback)."""
    commit_max_wait: float = Field(default=0.002, ge=0, le=0.1)
    """Seconds the group committer waits for more callbacks after the first."""


class WorkerConfig(Strict):
    """The delivery side."""

    concurrency: int = Field(default=16, ge=1, le=1024)
    batch: int = Field(default=32, ge=1, le=1000)
    lease_seconds: float = Field(default=120.0, gt=0)
    poll_interval: float = Field(default=1.0, gt=0)


class Config(Strict):
    """The whole file."""

    database: str = DEFAULT_URL
    server: ServerConfig = ServerConfig()
    worker: WorkerConfig = WorkerConfig()
    sources: list[ComponentConfig] = []
    sinks: list[ComponentConfig] = []
    routes: list[RouteConfig] = []
    reconciliation: ReconciliationConfig = ReconciliationConfig()
    """Reconciliation (see docs/reconciliation.md)."""
    base_dir: Path = Path(".")
    """The config file's folder: relative paths in the file are relative to it."""


def expand_secrets(value: Any, path: str, problems: list[str], environ: dict[str, str]) -> Any:
    """Replace ``${NAME}`` and ``${file:PATH}`` references throughout a parsed document."""
    if isinstance(value, dict):
        return {
            k: expand_secrets(v, f"{path}.{k}" if path else str(k), problems, environ)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [expand_secrets(v, f"{path}[{i}]", problems, environ) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def resolve(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref.startswith("file:"):
            try:
                return Path(ref[5:]).read_text().strip()
            except OSError as exc:
                problems.append(f"{path}: cannot read secret file {ref[5:]!r}: {exc.strerror}")
                return ""
        if ref not in environ:
            problems.append(f"{path}: environment variable {ref} is not set")
            return ""
        return environ[ref]

    return _REFERENCE.sub(resolve, value)


def _loc(prefix: str, loc: Sequence[int | str]) -> str:
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def validation_problems(exc: ValidationError, prefix: str = "") -> list[str]:
    """pydantic errors as ``yaml.path: message`` lines."""
    return [f"{_loc(prefix, e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]


def parse_config(
    document: Any, *, base_dir: Path = Path("."), environ: dict[str, str] | None = None
) -> Config:
    """Validate a parsed YAML document; raises :class:`ConfigError` listing every problem."""
    from .registry import sink_config_model, source_config_model

    problems: list[str] = []
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(["(top): the configuration must be a mapping"])
    document = expand_secrets(
        document, "", problems, dict(os.environ if environ is None else environ)
    )
    # Sources and sinks are validated by the model their type registers, so the
    # top level is validated without them first.
    sections = {key: document.pop(key, None) or [] for key in ("sources", "sinks")}
    typed: dict[str, list[ComponentConfig]] = {}
    for key, lookup in (("sources", source_config_model), ("sinks", sink_config_model)):
        if not isinstance(sections[key], list):
            problems.append(f"{key}: must be a list")
            sections[key] = []
        typed[key] = [
            item
            for i, raw in enumerate(sections[key])
            if (item := _typed(raw, f"{key}[{i}]", key[:-1], lookup, problems)) is not None
        ]
    try:
        config = Config.model_validate({**document, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(problems + validation_problems(exc)) from None
    config = config.model_copy(update=typed)
    _check_names(config, problems)
    if problems:
        raise ConfigError(problems)
    return config


def _typed(
    raw: Any, path: str, kind: str, lookup: Any, problems: list[str]
) -> ComponentConfig | None:
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a mapping with at least name and type")
        return None
    kind_name = raw.get("type")
    if not isinstance(kind_name, str):
        problems.append(f"{path}.type: missing; say which kind of {kind} this is")
        return None
    model = lookup(kind_name)
    if model is None:
        problems.append(f"{path}.type: unknown {kind} type {kind_name!r}")
        return None
    try:
        result: ComponentConfig = model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, path))
        return None
    return result


def _check_names(config: Config, problems: list[str]) -> None:
    for section in ("sources", "sinks"):
        seen: set[str] = set()
        for i, component in enumerate(getattr(config, section)):
            if component.name in seen:
                problems.append(f"{section}[{i}].name: {component.name!r} is used twice")
            seen.add(component.name)
    source_names = {s.name for s in config.sources}
    sink_names = {s.name for s in config.sinks}
    for i, route in enumerate(config.routes):
        for j, name in enumerate(route.from_):
            if name not in source_names:
                problems.append(f"routes[{i}].from[{j}]: no source named {name!r}")
        for j, name in enumerate(route.to):
            if name not in sink_names:
                problems.append(f"routes[{i}].to[{j}]: no sink named {name!r}")


def load_config(path: str | Path, *, environ: dict[str, str] | None = None) -> Config:
    """Read and validate a config file; raises :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    return parse_config(document, base_dir=path.resolve().parent, environ=environ)
