"""What an admitted callback becomes in the ledger, and a group of them split back up.

The endpoint hands the group committer its callbacks' observations; in the common case
the observations of every callback in the batch go to one :func:`record_grouped` call
(one :func:`~pesabridge.store.ledger.record_batch`), and each callback gets its own
:class:`~pesabridge.store.RecordResult` back. A callback that also reports failed
attempts is recorded alone (:func:`record_with_failures`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import structlog
from sqlalchemy import Connection

from ...formats.base import FailedAttempt, Observation
from ...store import RecordResult, Sighting, utcnow
from ...store.failures import add_failed_attempts
from ...store.ledger import Router, record_batch

log = structlog.get_logger("pesabridge.sources.callback")


def fill_account(observation: Observation, account: str | None) -> Observation:
    """``observation`` with the configured ``account`` when its transaction has none."""
    txn = observation.transaction
    if txn.account is not None or account is None:
        return observation
    return dataclasses.replace(observation, transaction=dataclasses.replace(txn, account=account))


def record_grouped(
    conn: Connection,
    payloads: Sequence[Sequence[Observation]],
    sighting: Sighting,
    route: Router,
    source: str,
) -> list[RecordResult]:
    """Several callbacks' observations in one :func:`record_batch`; one result each.

    An observation is new for the first callback of the group that carries it and
    known for any later one (a provider's retry racing the original), as it would
    be one by one. Discrepancies are counted for the group: their rows name the
    transaction and the evidence, which is what a person resolves them from.
    """
    flat = [obs for observations in payloads for obs in observations]
    total = record_batch(conn, flat, sighting, route, utcnow())
    fresh = set(total.new_ids)
    results: list[RecordResult] = []
    start = 0
    for observations in payloads:
        ids = total.transaction_ids[start : start + len(observations)]
        start += len(observations)
        result = RecordResult(transaction_ids=ids)
        for txn_id in ids:
            if txn_id in fresh:
                fresh.discard(txn_id)
                result.new += 1
                result.new_ids.append(txn_id)
            else:
                result.known += 1
        results.append(result)
    if total.conflicting:
        if len(results) == 1:
            results[0].conflicting = total.conflicting
        else:
            log.warning(
                "callbacks disagree with recorded transactions",
                source=source,
                discrepancies=total.conflicting,
                callbacks=len(payloads),
            )
    return results


def record_with_failures(
    conn: Connection,
    observations: list[Observation],
    failures: list[FailedAttempt],
    sighting: Sighting,
    route: Router,
    *,
    source: str,
    account: str | None,
) -> tuple[RecordResult, int]:
    """One callback's observations and failed attempts; the result and new failures."""
    now = utcnow()
    result = (
        record_batch(conn, observations, sighting, route, now) if observations else RecordResult()
    )
    failed_new = (
        add_failed_attempts(conn, failures, source=source, account=account, now=now)
        if failures
        else 0
    )
    return result, failed_new
