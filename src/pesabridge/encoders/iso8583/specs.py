"""ISO 8583 spec variants: field definitions as YAML, loaded into pyiso8583 specs.

Built-in variants ship as YAML files in ``fields/`` beside this module:

* ``1987-ascii`` (the default): ISO 8583:1987, ASCII fields, ASCII hex bitmap
  (pyiso8583's ``default_ascii``);
* ``1987-binary``: the same with a binary 8-byte bitmap (pyiso8583's ``default``);
* ``1993``: ISO 8583:1993 as pesabridge writes it (1x20 MTIs, 3-digit action codes,
  local date-time in field 12, original data elements in field 56).

A user's spec is a YAML file with the same shape that names a ``base`` (a built-in
name, a file relative to it, or ``pyiso8583:NAME``) and adds or overrides fields key by
key, so a host's private field 48 is three lines::

    name: my-host
    base: 1987-ascii
    fields:
      "48": {data_enc: ascii, len_enc: ascii, len_type: 3, max_len: 999, kind: ans,
             desc: "Additional Data - Private"}
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from iso8583 import specs as iso_specs

from ..base import EncodeError

DEFAULT_SPEC = "1987-ascii"
KINDS = frozenset(("n", "an", "anp", "ans", "b"))
_PYISO_KEYS = frozenset(
    ("data_enc", "len_enc", "len_type", "max_len", "desc", "len_count", "left_pad", "right_pad")
)
_TOP_KEYS = frozenset(
    ("name", "description", "version", "base", "mti", "approved", "original_data_field", "fields")
)
_MTI_KEYS = ("request", "advice", "reversal")


@dataclass(frozen=True, slots=True)
class Iso8583Spec:
    """One message layout: the pyiso8583 spec plus what pesabridge needs to fill it."""

    name: str
    version: int
    """1987 or 1993: decides the MTI family and which fields carry dates and originals."""
    fields: dict[str, dict[str, Any]]
    """The pyiso8583 spec (``h``, ``t``, ``p``, ``1``, ``2`` .. ``128``)."""
    kinds: dict[str, str]
    """What each field's content may be (n, an, anp, ans, b)."""
    mti: dict[str, str]
    """``request``, ``advice`` and ``reversal`` message types."""
    approved: str
    """The approval response/action code an advice carries in field 39."""
    original_data_field: str
    """Where a reversal carries the original data elements (90 in 1987, 56 in 1993)."""
    description: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def kind(self, key: str) -> str:
        known = self.kinds.get(key)
        if known is not None:
            return known
        return "b" if self.fields.get(key, {}).get("data_enc") == "b" else "ans"

    def describe(self, key: str) -> str:
        return str(self.fields.get(key, {}).get("desc", ""))


def builtin_spec_names() -> list[str]:
    """The names of the spec files shipped with pesabridge."""
    folder = resources.files(__package__) / "fields"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


_cache: dict[str, Iso8583Spec] = {}


def load_spec(name: str | Path) -> Iso8583Spec:
    """A built-in spec by name (``1987-ascii``, ``1987-binary``, ``1993``) or a YAML file.

    Raises :class:`EncodeError` (field ``spec``) naming the file and the problem.
    """
    key = str(name)
    cached = _cache.get(key)
    if cached is None:
        cached = _load(key, ())
        _cache[key] = cached
    return cached


def _is_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or "/" in name or "\\" in name


def _read(name: str, relative_to: Path | None) -> tuple[dict[str, Any], str, Path | None]:
    if _is_path(name):
        path = Path(name)
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EncodeError(
                f"cannot read spec file {path}: {exc.strerror}", field="spec"
            ) from None
        where, folder = str(path), path.parent
    else:
        resource = resources.files(__package__) / "fields" / f"{name}.yaml"
        if not resource.is_file():
            known = ", ".join(builtin_spec_names())
            raise EncodeError(
                f"unknown ISO 8583 spec {name!r}; built-in: {known}, or a .yaml file",
                field="spec",
            )
        text, where, folder = resource.read_text(encoding="utf-8"), f"{name} (built-in)", None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EncodeError(f"{where}: not valid YAML: {exc}", field="spec") from None
    if not isinstance(document, dict):
        raise EncodeError(f"{where}: a spec must be a mapping", field="spec")
    return document, where, folder


def _load(name: str, seen: tuple[str, ...], relative_to: Path | None = None) -> Iso8583Spec:
    if name in seen:
        raise EncodeError(f"spec {name!r} is its own base ({' -> '.join(seen)})", field="spec")
    document, where, folder = _read(name, relative_to)
    unknown = sorted(set(document) - _TOP_KEYS)
    if unknown:
        raise EncodeError(f"{where}: unknown keys {', '.join(unknown)}", field="spec")
    base_name = document.get("base")
    if not isinstance(base_name, str) or not base_name:
        raise EncodeError(f"{where}: base: must name a spec", field="spec")
    if base_name.startswith("pyiso8583:"):
        attribute = base_name.partition(":")[2]
        raw = getattr(iso_specs, attribute, None)
        if not isinstance(raw, dict):
            raise EncodeError(f"{where}: base: pyiso8583 has no spec {attribute!r}", field="spec")
        base = Iso8583Spec(
            name=base_name,
            version=1987,
            fields=copy.deepcopy(raw),
            kinds={},
            mti={"request": "0200", "advice": "0220", "reversal": "0420"},
            approved="00",
            original_data_field="90",
        )
    else:
        base = _load(base_name, (*seen, name), folder)
    fields = copy.deepcopy(base.fields)
    kinds = dict(base.kinds)
    overrides = document.get("fields") or {}
    if not isinstance(overrides, dict):
        raise EncodeError(f"{where}: fields: must be a mapping", field="spec")
    for raw_key, definition in overrides.items():
        key = str(raw_key)
        place = f"{where}: fields.{key}"
        if key not in ("h", "t", "p", "1") and not (key.isdigit() and 2 <= int(key) <= 128):
            raise EncodeError(f"{place}: not a field (h, t, p, 1, 2..128)", field="spec")
        if not isinstance(definition, dict):
            raise EncodeError(f"{place}: must be a mapping", field="spec")
        bad = sorted(set(definition) - _PYISO_KEYS - {"kind"})
        if bad:
            raise EncodeError(f"{place}: unknown keys {', '.join(bad)}", field="spec")
        merged = {**fields.get(key, {}), **{k: v for k, v in definition.items() if k != "kind"}}
        missing = sorted({"data_enc", "len_enc", "len_type", "max_len"} - set(merged))
        if missing:
            raise EncodeError(f"{place}: a new field needs {', '.join(missing)}", field="spec")
        if not isinstance(merged["max_len"], int) or not isinstance(merged["len_type"], int):
            raise EncodeError(f"{place}: max_len and len_type must be integers", field="spec")
        merged.setdefault("desc", f"Field {key}")
        fields[key] = merged
        if "kind" in definition:
            if definition["kind"] not in KINDS:
                raise EncodeError(
                    f"{place}: kind {definition['kind']!r} is not one of "
                    + ", ".join(sorted(KINDS)),
                    field="spec",
                )
            kinds[key] = definition["kind"]
    mti = dict(base.mti)
    given_mti = document.get("mti") or {}
    if not isinstance(given_mti, dict):
        raise EncodeError(f"{where}: mti: must be a mapping", field="spec")
    for mti_key, value in given_mti.items():
        text = str(value)
        if mti_key not in _MTI_KEYS or len(text) != 4 or not text.isdigit():
            raise EncodeError(
                f"{where}: mti.{mti_key}: expected request/advice/reversal as 4 digits",
                field="spec",
            )
        mti[mti_key] = text
    version = int(document.get("version", base.version))
    if version not in (1987, 1993):
        raise EncodeError(f"{where}: version: must be 1987 or 1993", field="spec")
    original = str(document.get("original_data_field", base.original_data_field))
    if original not in fields:
        raise EncodeError(
            f"{where}: original_data_field: field {original} is not defined", field="spec"
        )
    return Iso8583Spec(
        name=str(document.get("name", name)),
        version=version,
        fields=fields,
        kinds=kinds,
        mti=mti,
        approved=str(document.get("approved", base.approved)),
        original_data_field=original,
        description=str(document.get("description", base.description)),
        source=where,
    )
