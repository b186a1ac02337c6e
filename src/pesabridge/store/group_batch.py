"""One group commit's batch: each caller's work in a savepoint, mergeable work merged.

The mechanics behind :class:`~pesabridge.store.group.GroupCommitter`, kept apart from
the question of which thread runs them. Inside the batch's write transaction:

- an item submitted with plain work runs in its own SAVEPOINT: its failure (a bad value,
  a unique-key race lost to another process, retried twice) rolls back only itself;
- items naming the same :class:`Bulk` function are handed to it in one call, in one
  savepoint (one ``SELECT`` and one multi-row ``INSERT`` per table for the whole group
  rather than per callback). If that call fails they run again one by one, so a bad
  item still fails only its own caller.

Errors that doom the transaction itself (:data:`FATAL`) propagate to the committer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

log = structlog.get_logger("pesabridge.store.group")

T = TypeVar("T")
P_contra = TypeVar("P_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)
Work = Callable[[Connection], T]

FATAL = (OperationalError, InterfaceError)
"""Errors that doom the whole transaction rather than one item."""


class Bulk(Protocol[P_contra, R_co]):
    """Work for many callers at once: one result per payload, in the payloads' order."""

    def __call__(self, conn: Connection, payloads: Sequence[P_contra], /) -> Sequence[R_co]: ...


@dataclass(slots=True)
class Item(Generic[T]):
    """One caller's work and the future it waits on."""

    work: Work[T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    outcome: tuple[bool, Any] = field(default=(False, None))
    bulk: Bulk[Any, T] | None = None
    payload: Any = None


def settle(items: Sequence[Item[Any]]) -> None:
    """Resolve each item's future with its outcome (on the future's own loop)."""
    for item in items:
        future = item.future
        if future.done():  # the caller went away (client disconnected, shutdown)
            continue
        ok, value = item.outcome
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def run_batch(conn: Connection, batch: Sequence[Item[Any]]) -> None:
    """Every item of the batch, inside the caller's transaction; sets each outcome."""
    # Keyed by the function itself, not its id(): a bound method is a new object at
    # every attribute access, equal (and equally hashed) to the others.
    groups: dict[Bulk[Any, Any], list[Item[Any]]] = {}
    for item in batch:
        if item.bulk is None:
            item.outcome = _one(conn, item)
        else:
            groups.setdefault(item.bulk, []).append(item)
    for items in groups.values():
        if len(items) > 1 and _merged(conn, items):
            continue
        for item in items:
            item.outcome = _one(conn, item)


def _merged(conn: Connection, items: list[Item[Any]]) -> bool:
    """All ``items`` in one call of their bulk function; False: run them one by one."""
    bulk = items[0].bulk
    assert bulk is not None
    savepoint = conn.begin_nested()
    try:
        values = bulk(conn, [item.payload for item in items])
        if len(values) != len(items):
            raise RuntimeError(f"bulk work returned {len(values)} results for {len(items)}")
    except FATAL:
        raise
    except Exception as exc:
        # An IntegrityError (another process won a race), or one bad item: redo them
        # one by one so that only the bad one fails.
        savepoint.rollback()
        log.info("bulk work split up", items=len(items), error=type(exc).__name__)
        return False
    savepoint.commit()
    for item, value in zip(items, values, strict=True):
        item.outcome = (True, value)
    return True


def _one(conn: Connection, item: Item[Any]) -> tuple[bool, Any]:
    """One caller's work in its own savepoint. Fatal errors propagate to the batch."""
    for attempt in range(3):
        savepoint = conn.begin_nested()
        try:
            value = item.work(conn)
        except IntegrityError as exc:
            # Another process inserted the same identity first; its row is visible
            # now, so running the work again finds it as known.
            savepoint.rollback()
            if attempt == 2:
                return (False, exc)
            continue
        except FATAL:
            raise
        except Exception as exc:
            savepoint.rollback()
            return (False, exc)
        savepoint.commit()
        return (True, value)
    raise AssertionError("unreachable")
