"""What the callback parsers share: JSON loading, field readers and the parse/parse_body frame.

A callback format is a *mapper*: a function from one decoded payload to the
transactions and failed attempts it reports, raising :class:`Bad` (a JSON path and a
reason) at the first value it cannot read. :class:`JsonCallbackParser` turns a mapper
into a parser that never raises: ``parse_body`` for one HTTP request body, ``parse``
for a file holding one body or a JSON array of bodies.

JSON is decoded with ``parse_float=Decimal``, so ``1.00`` arrives as ``Decimal("1.00")``
and an amount is never read through a float.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, BinaryIO, ClassVar

from ..errors import InvalidValue
from ..model import Transaction, parse_amount
from .base import FailedAttempt, Observation, ParseItem, Reject

BOM = b"\xef\xbb\xbf"
EAT_OFFSET = timedelta(hours=3)


class Bad(Exception):
    """One unreadable field: its JSON path and what is wrong with it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Failure:
    """A mapper's report of a failed attempt; the frame adds source, provider and raw."""

    request_id: str | None
    code: str | None
    reason: str


Mapped = list[Transaction | Failure]
Mapper = Callable[[Any, str], Mapped]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def load_json(body: bytes, source: str) -> Any | Reject:
    """The decoded body (floats as ``Decimal``), or a reject saying why it is not JSON."""
    text = body[len(BOM) :] if body.startswith(BOM) else body
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        reason = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except (ValueError, RecursionError) as exc:  # bad UTF-8, NaN, absurd nesting
        reason = f"not valid JSON: {exc}"
    return Reject(source, None, None, reason, body)


def dump_json(value: Any) -> bytes:
    """Compact JSON for one element of an array file, decimals written as they were read."""
    if isinstance(value, Decimal):
        return str(value).encode()
    if isinstance(value, dict):
        inner = b",".join(
            json.dumps(str(k), ensure_ascii=False).encode() + b":" + dump_json(v)
            for k, v in value.items()
        )
        return b"{" + inner + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(dump_json(v) for v in value) + b"]"
    return json.dumps(value, ensure_ascii=False).encode()


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def as_text(value: Any, path: str) -> str | None:
    """A value as text: strings as they are, numbers from their JSON text, null as None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise Bad(path, f"must be a string, not {json_type(value)}")
    return str(value)


def text(data: Mapping[str, Any], key: str, prefix: str) -> str | None:
    """``data[key]`` as text, ``None`` when absent, null or blank (surrounding spaces kept)."""
    value = as_text(data.get(key), prefix + key)
    return value if value and value.strip() else None


def required(data: Mapping[str, Any], key: str, prefix: str) -> str:
    """``data[key]`` as stripped text; missing, null or blank is an error."""
    if data.get(key) is None:
        raise Bad(prefix + key, "is missing")
    value = text(data, key, prefix)
    if value is None:
        raise Bad(prefix + key, "is empty")
    return value.strip()


def obj(data: Mapping[str, Any], key: str, prefix: str) -> dict[str, Any]:
    """``data[key]``, which must be a JSON object."""
    value = data.get(key)
    if value is None:
        raise Bad(prefix + key, "is missing")
    if not isinstance(value, dict):
        raise Bad(prefix + key, f"must be an object, not {json_type(value)}")
    return value


def amount(value: Any, path: str) -> Decimal:
    """Money from a JSON string (``"1,020.00"``) or number (``1.00``, ``10``), never a float."""
    if value is None:
        raise Bad(path, "is missing")
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise Bad(path, f"must be a number or a string, not {json_type(value)}")
    try:
        number = parse_amount(value, path) if isinstance(value, str) else Decimal(value)
    except InvalidValue as exc:
        raise Bad(path, exc.message) from None
    if not number.is_finite():
        raise Bad(path, f"{value!r} is not a number")
    return number


def result_code(value: Any, path: str) -> str:
    """A result code as text; numbers and strings both arrive (``0``, ``"0"``, ``"1032"``)."""
    if value is None:
        raise Bad(path, "is missing")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Bad(path, f"must be a number or a string, not {json_type(value)}")
    code = str(value).strip()
    if not code:
        raise Bad(path, "is empty")
    return code


def is_success(code: str) -> bool:
    """``0``, ``"0"`` or ``"00"``: the provider's success code."""
    return code.isascii() and code.isdigit() and int(code) == 0


_COMPACT = re.compile(r"\d{14}")


def eat_compact(value: Any, path: str) -> datetime:
    """``YYYYMMDDHHmmss`` in East Africa Time (string or JSON number), as aware UTC."""
    raw = as_text(value, path)
    if raw is None:
        raise Bad(path, "is missing")
    digits = raw.strip()
    if not (digits.isascii() and _COMPACT.fullmatch(digits)):
        raise Bad(path, f"{raw!r} is not a YYYYMMDDHHmmss time")
    try:
        return datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=UTC) - EAT_OFFSET
    except ValueError:
        raise Bad(path, f"{raw!r} is not a valid YYYYMMDDHHmmss time") from None


def iso_time(value: Any, path: str, *, naive_is_utc: bool = False) -> datetime:
    """An ISO 8601 time with an offset (``+03:00``, ``Z``), as aware UTC."""
    raw = as_text(value, path)
    if raw is None or not raw.strip():
        raise Bad(path, "is missing")
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Bad(path, f"{raw!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        if not naive_is_utc:
            raise Bad(path, f"{raw!r} has no time zone")
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def join_name(*parts: str | None) -> str | None:
    """The non-empty name parts joined with one space, spelled as given."""
    return " ".join(p.strip() for p in parts if p and p.strip()) or None


def build(paths: Mapping[str, str], **fields: Any) -> Transaction:
    """A transaction; a value the model refuses becomes :class:`Bad` at its JSON path.

    ``paths`` maps canonical field names (``amount``) to where they came from
    (``Body.stkCallback.CallbackMetadata.Item[0].Value``).
    """
    try:
        return Transaction(**fields)
    except InvalidValue as exc:
        field = exc.field.split(".")[0]
        raise Bad(paths.get(field, exc.field), exc.message) from None


def items(
    mapper: Mapper, data: Any, source: str, raw: bytes, prefix: str, provider: str
) -> list[ParseItem]:
    """Run a mapper on one payload: observations and failed attempts, or one reject."""
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or None
        what = "is not a JSON object" if prefix else "the body is not a JSON object"
        return [Reject(source, None, where, f"{what} (got {json_type(data)})", raw)]
    try:
        mapped = mapper(data, prefix)
    except Bad as exc:
        return [Reject(source, None, exc.path, exc.reason, raw)]
    out: list[ParseItem] = []
    for result in mapped:
        if isinstance(result, Failure):
            out.append(
                FailedAttempt(source, provider, result.request_id, result.code, result.reason, raw)
            )
        else:
            out.append(Observation(result, source, None, raw))
    return out


def head_is_json(head: bytes) -> bool:
    """The bytes open a JSON object or array (after a BOM and white space)."""
    text = head[len(BOM) :] if head.startswith(BOM) else head
    return text.lstrip(b" \t\r\n")[:1] in (b"{", b"[")


class JsonCallbackParser:
    """A callback format whose body is one JSON object; subclasses give ``_map``.

    ``parse_body`` reads one request body (``content_type`` is not needed: the body
    is JSON whatever the header says). ``parse`` reads a file holding one body, or a
    JSON array of bodies (each element's path is prefixed ``[i].``).
    """

    name: ClassVar[str]
    provider: ClassVar[str]

    def _map(self, data: dict[str, Any], prefix: str) -> Mapped:
        raise NotImplementedError

    def _decode(self, body: bytes, source: str, content_type: str | None) -> Any | Reject:
        return load_json(body, source)

    def parse_body(
        self, body: bytes, source: str, content_type: str | None = None
    ) -> list[ParseItem]:
        """The transactions, failed attempts or reject in one request body; never raises."""
        data = self._decode(body, source, content_type)
        if isinstance(data, Reject):
            return [data]
        return items(self._map, data, source, body, "", self.provider)

    def parse(self, stream: BinaryIO, source: str) -> Iterator[ParseItem]:
        """Yield the items of one body, or of each body in a JSON array."""
        body = stream.read()
        data = self._decode(body, source, None)
        if isinstance(data, Reject):
            yield data
        elif isinstance(data, list):
            for index, value in enumerate(data):
                yield from items(
                    self._map, value, source, dump_json(value), f"[{index}].", self.provider
                )
        else:
            yield from items(self._map, data, source, body, "", self.provider)
