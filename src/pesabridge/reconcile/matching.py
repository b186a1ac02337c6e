"""Pairing records that share no identity: by receipt, then by rules, then in groups.

Used for the back office's record against the deliveries to its sink, and for statement
rows against callbacks whose ids differ. Both sides are lists of :class:`Item`; the
result says which items were paired, how, and with what confidence. Candidates are found
through a sort by amount and a binary search, so the cost grows with n log n, not n².
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .settings import MatchRules

_SPACES = re.compile(r"\s+")


def normalise_reference(text: str | None) -> str | None:
    """Trim, fold case and drop inner spaces: ``" inv 1001 "`` -> ``"INV1001"``."""
    if text is None:
        return None
    folded = _SPACES.sub("", text).upper()
    return folded or None


@dataclass(frozen=True, slots=True)
class Item:
    """One record to pair. ``ref`` is the caller's handle (an index or an id)."""

    ref: int
    amount_minor: int
    at: datetime | None = None
    receipt: str | None = None
    reference: str | None = None
    """Normalised (:func:`normalise_reference`)."""
    counterparty: str | None = None
    """A plain MSISDN; ``None`` when absent or hashed (a hash is never compared)."""
    group: str | None = None
    """Items with the same group may together match one item of the other side (a day's
    charges posted as one line, a payment split over several lines)."""
    slots: tuple[str, ...] = ()
    """As the one side of a group match: the group names (prefixes) this item accepts;
    empty accepts any group."""

    def accepts(self, group: str) -> bool:
        return not self.slots or any(group.startswith(slot) for slot in self.slots)


@dataclass(frozen=True, slots=True)
class Pair:
    """``left`` items matched ``right`` items (one of the two tuples has one element)."""

    left: tuple[int, ...]
    right: tuple[int, ...]
    method: str  # receipt | rule | group
    confidence: float


@dataclass(slots=True)
class Matching:
    pairs: list[Pair] = field(default_factory=list)
    left_over: list[Item] = field(default_factory=list)
    right_over: list[Item] = field(default_factory=list)


def match(
    left: Sequence[Item], right: Sequence[Item], rules: MatchRules, tolerance: int
) -> Matching:
    """Pair ``left`` with ``right``: exact receipt, then the rules, then groups.

    ``tolerance`` is ``rules.amount_tolerance`` in minor units. Each item is used at
    most once; groups make one-to-many and many-to-one pairs.
    """
    result = Matching()
    free_left = {item.ref: item for item in left}
    free_right = {item.ref: item for item in right}
    _by_receipt(free_left, free_right, tolerance, result)
    _by_rules(free_left, free_right, rules, tolerance, result)
    if rules.groups:
        _by_groups(free_left, free_right, tolerance, result, many_left=True)
        _by_groups(free_right, free_left, tolerance, result, many_left=False)
    result.left_over = list(free_left.values())
    result.right_over = list(free_right.values())
    return result


def _by_receipt(
    free_left: dict[int, Item], free_right: dict[int, Item], tolerance: int, out: Matching
) -> None:
    """Same receipt and amount; then a receipt left with one item on each side (the
    amounts differ: still the same movement, with less confidence). A payment and its
    charge share a receipt, so the amount decides between them."""
    lefts: dict[str, list[Item]] = defaultdict(list)
    rights: dict[str, list[Item]] = defaultdict(list)
    for item in free_left.values():
        if item.receipt:
            lefts[item.receipt].append(item)
    for item in free_right.values():
        if item.receipt:
            rights[item.receipt].append(item)
    for receipt, candidates in rights.items():
        mine = lefts.get(receipt)
        if not mine:
            continue
        for item in list(mine):
            best = next(
                (c for c in candidates if abs(c.amount_minor - item.amount_minor) <= tolerance),
                None,
            )
            if best is not None:
                candidates.remove(best)
                mine.remove(item)
                del free_left[item.ref]
                del free_right[best.ref]
                out.pairs.append(Pair((item.ref,), (best.ref,), "receipt", 1.0))
        if len(mine) == 1 and len(candidates) == 1:
            item, best = mine.pop(), candidates.pop()
            del free_left[item.ref]
            del free_right[best.ref]
            out.pairs.append(Pair((item.ref,), (best.ref,), "receipt", 0.7))


def score(a: Item, b: Item, rules: MatchRules, tolerance: int) -> float:
    """How sure we are that ``a`` and ``b`` are the same movement: 0 when a rule rules
    the pair out; otherwise amount 0.4 (0.3 within tolerance), time 0.3 (less the
    further apart), reference 0.2, counterparty 0.1; a field missing on either side
    counts half."""
    difference = abs(a.amount_minor - b.amount_minor)
    if difference > tolerance:
        return 0.0
    total = 0.4 if difference == 0 else 0.3
    window = rules.time_window_minutes * 60
    if a.at is not None and b.at is not None:
        apart = abs((a.at - b.at).total_seconds())
        if apart > window:
            return 0.0
        total += 0.3 * (1 - apart / window) if window else 0.3
    else:
        total += 0.15
    if a.reference is not None and b.reference is not None:
        if a.reference == b.reference:
            total += 0.2
        elif rules.reference:
            return 0.0
    else:
        total += 0.1
    if rules.counterparty and a.counterparty is not None and b.counterparty is not None:
        if a.counterparty != b.counterparty:
            return 0.0
        total += 0.1
    else:
        total += 0.05
    return round(total, 3)


def _by_rules(
    free_left: dict[int, Item],
    free_right: dict[int, Item],
    rules: MatchRules,
    tolerance: int,
    out: Matching,
) -> None:
    rights = sorted(free_right.values(), key=lambda i: i.amount_minor)
    amounts = [i.amount_minor for i in rights]
    scored: list[tuple[float, int, int]] = []
    for item in free_left.values():
        low = bisect.bisect_left(amounts, item.amount_minor - tolerance)
        high = bisect.bisect_right(amounts, item.amount_minor + tolerance)
        for candidate in rights[low:high]:
            value = score(item, candidate, rules, tolerance)
            if value >= rules.min_confidence:
                scored.append((value, item.ref, candidate.ref))
    # best first; each side used once (greedy is enough: ties are rare and scored alike)
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    for value, left_ref, right_ref in scored:
        if left_ref in free_left and right_ref in free_right:
            del free_left[left_ref]
            del free_right[right_ref]
            out.pairs.append(Pair((left_ref,), (right_ref,), "rule", value))


def _by_groups(
    many: dict[int, Item],
    one: dict[int, Item],
    tolerance: int,
    out: Matching,
    *,
    many_left: bool,
) -> None:
    """Items of ``many`` sharing a group whose amounts add up to one item of ``one``
    (one that :meth:`Item.accepts` the group)."""
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in many.values():
        if item.group is not None:
            groups[item.group].append(item)
    for name, members in sorted(groups.items()):
        if len(members) < 2:
            continue
        total = sum(m.amount_minor for m in members)
        target = next(
            (
                o
                for o in sorted(one.values(), key=lambda o: o.ref)
                if o.accepts(name) and abs(o.amount_minor - total) <= tolerance
            ),
            None,
        )
        if target is None:
            continue
        del one[target.ref]
        refs = tuple(sorted(m.ref for m in members))
        for ref in refs:
            del many[ref]
        confidence = 0.9 if total == target.amount_minor else 0.8
        pair = (
            Pair(refs, (target.ref,), "group", confidence)
            if many_left
            else Pair((target.ref,), refs, "group", confidence)
        )
        out.pairs.append(pair)
