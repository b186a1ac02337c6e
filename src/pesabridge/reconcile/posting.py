"""What was delivered to a sink against the back office's own record of its postings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from ..store.rows import idempotency_key
from . import sides
from .backoffice import Posting
from .matching import Item, Matching, Pair, match, normalise_reference
from .records import (
    DISCREPANCY,
    NOT_POSTED,
    POSTED,
    UNDELIVERED,
    UNEXPECTED_POSTING,
    Finding,
)
from .scope import Result, Scope, finding_key


def backoffice(
    conn: Connection,
    scope: Scope,
    sink: str,
    postings: Sequence[Posting],
    source: str,
    out: Result,
) -> None:
    """What was delivered to ``sink`` against what the back office says it posted."""
    rows = sides.sink_deliveries(
        conn, scope.provider, scope.account, scope.start_utc, scope.end_utc, sink
    )
    delivered = []
    for row in rows:
        if row.state == "delivered":
            delivered.append(row)
        else:
            out.count(scope.day(row.occurred_at), UNDELIVERED, row.amount_minor)
    pairs: list[Pair] = []
    free = dict(enumerate(postings))
    # the back office's document id or our idempotency key: as good as a receipt
    by_document = {p.document: i for i, p in free.items() if p.document}
    by_key = {p.key: i for i, p in free.items() if p.key}
    left: list[Item] = []
    for index, row in enumerate(delivered):
        key = idempotency_key((row.provider, row.account, row.receipt, row.entry), sink)
        hit = by_key.get(key)
        if hit is None and row.document_id:
            hit = by_document.get(row.document_id)
        if hit is not None and hit in free:
            del free[hit]
            pairs.append(Pair((index,), (hit,), "key", 1.0))
            continue
        day = scope.day(row.occurred_at)
        reference = normalise_reference(row.reference)
        left.append(
            Item(
                ref=index,
                amount_minor=row.amount_minor,
                at=row.occurred_at,
                receipt=row.receipt,
                reference=reference,
                counterparty=row.msisdn if row.msisdn_kind == "plain" else None,
                group=f"{day}/{row.entry}",
                slots=(f"r:{row.receipt}", *((f"f:{reference}",) if reference else ())),
            )
        )
    right = [_posting_item(i, p, scope) for i, p in free.items()]
    result: Matching = match(left, right, scope.rules, scope.tolerance)
    pairs.extend(result.pairs)
    for method in ("key", "receipt", "rule", "group"):
        out.add_matches(f"back office: {method}", [p for p in pairs if p.method == method])
    for pair in pairs:
        for index in pair.left:
            row = delivered[index]
            out.count(scope.day(row.occurred_at), POSTED, row.amount_minor)
        if len(pair.left) == 1 and len(pair.right) == 1:
            row, posting = delivered[pair.left[0]], postings[pair.right[0]]
            if abs(row.amount_minor - posting.amount_minor) > scope.tolerance:
                _posted_differently(scope, sink, row, posting, source, out)
    for item in result.left_over:
        row = delivered[item.ref]
        day = scope.day(row.occurred_at)
        out.count(day, NOT_POSTED, row.amount_minor)
        out.findings.append(
            Finding(
                key=finding_key(
                    NOT_POSTED, sink, row.provider, row.account, row.receipt, row.entry
                ),
                kind=NOT_POSTED,
                day=day,
                detail=(
                    f"delivered to {sink} (document {row.document_id or '-'}), but absent from "
                    f"the back office's record ({source}); replay it with "
                    f"`pesabridge replay --receipt {row.receipt} --sink {sink}`"
                ),
                transaction_id=row.id,
                receipt=row.receipt,
                sink=sink,
                amount_minor=row.amount_minor,
                currency=row.currency,
            )
        )
    for item in result.right_over:
        posting = postings[item.ref]
        day = scope.day(posting.at)
        out.count(day, UNEXPECTED_POSTING, posting.amount_minor)
        what = posting.document or posting.receipt or posting.reference or f"line {posting.line}"
        out.findings.append(
            Finding(
                key=finding_key(
                    UNEXPECTED_POSTING, sink, scope.account, what, posting.amount_minor
                ),
                kind=UNEXPECTED_POSTING,
                day=day,
                detail=(
                    f"{source} line {posting.line} ({what}, {scope.money(posting.amount_minor)}) "
                    f"matches nothing delivered to {sink}: keyed by hand, or posted twice?"
                ),
                receipt=posting.receipt,
                sink=sink,
                line=posting.line,
                amount_minor=posting.amount_minor,
                currency=scope.currency,
            )
        )
    out.checked.update((NOT_POSTED, UNEXPECTED_POSTING))


def _posted_differently(
    scope: Scope, sink: str, row: Any, posting: Posting, source: str, out: Result
) -> None:
    day = scope.day(row.occurred_at)
    out.count(day, DISCREPANCY, row.amount_minor)
    out.findings.append(
        Finding(
            key=finding_key(DISCREPANCY, sink, row.provider, row.account, row.receipt, row.entry),
            kind=DISCREPANCY,
            day=day,
            detail=(
                f"delivered to {sink} as {scope.money(row.amount_minor)}, but the back "
                f"office's record ({source} line {posting.line}) says "
                f"{scope.money(posting.amount_minor)}"
            ),
            transaction_id=row.id,
            receipt=row.receipt,
            sink=sink,
            amount_minor=row.amount_minor,
            currency=row.currency,
        )
    )


def _posting_item(index: int, posting: Posting, scope: Scope) -> Item:
    reference = normalise_reference(posting.reference)
    group = f"r:{posting.receipt}" if posting.receipt else f"f:{reference}" if reference else None
    slots: tuple[str, ...] = ()
    if posting.at is not None:
        day = scope.day(posting.at)
        slots = (f"{day}/{posting.entry}" if posting.entry else f"{day}/",)
    plain = posting.counterparty
    return Item(
        ref=index,
        amount_minor=posting.amount_minor,
        at=posting.at,
        receipt=posting.receipt,
        reference=reference,
        counterparty=plain if plain and plain.lstrip("+").isdigit() else None,
        group=group,
        slots=slots,
    )
