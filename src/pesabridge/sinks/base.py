"""The sink interface: deliver one claimed transaction, or say why not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from ..config import ComponentConfig
from ..store import Claimed


@dataclass(frozen=True, slots=True)
class Delivered:
    """The back office has it."""

    status_code: int | None = None
    response: str | None = None
    note: str | None = None
    """E.g. "409: already had this idempotency key"."""
    document_id: str | None = None
    """The back office's own id for what was posted, when the sink can tell."""
    request_summary: str | None = None
    """What was sent (method, target, size, digest), never secrets or the body."""


class Sink(Protocol):
    """A back office. ``deliver`` returns :class:`Delivered` or raises
    :class:`~pesabridge.errors.DeliveryError`, whose ``retryable`` says whether to try
    again; it must send ``claimed.idempotency_key`` so a repeat is harmless."""

    Config: ClassVar[type[ComponentConfig]]
    name: str

    async def deliver(self, claimed: Claimed) -> Delivered: ...

    async def close(self) -> None: ...


class PreparingSink(Sink, Protocol):
    """A sink that can do a claimed batch's sink-side work (encoding, say) in one go.

    Optional: the worker calls ``prepare`` once per claim with the deliveries it claimed
    for this sink, and hands each delivery's item back to ``deliver``. An item may be
    None (or anything ``deliver`` does not recognise): ``deliver`` then does the work
    itself, so a prepared item is only ever a shortcut, never a different outcome.
    """

    def prepare(self, batch: Sequence[Claimed]) -> Sequence[object]: ...

    async def deliver(self, claimed: Claimed, prepared: object = None) -> Delivered: ...
