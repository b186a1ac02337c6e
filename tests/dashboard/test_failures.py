"""Dead letters through the Failures page: groups, replay of a group, resolve with a
comment, and a resolution lapsing when the delivery dies again."""

from __future__ import annotations

from pesabridge.dashboard import audit
from pesabridge.store import Store

from . import seed
from .serving import csrf_of, login


def test_a_whole_group_is_replayed_and_other_groups_are_left(base: str, seeded: Store) -> None:
    first = seed.kill(seeded, "SLK1000001", status=422, error="unknown account")
    second = seed.kill(seeded, "SLK1000002", status=422, error="unknown account")
    other = seed.kill(seeded, "SLK1000003", status=400, error="bad reference")
    operator = login(base, "olive", seed.PASSWORDS["olive"])
    page = operator.get(f"{base}/ui/failures").text
    assert page.index("2 dead") < page.index("1 dead")  # the largest group first
    answer = operator.post(
        f"{base}/ui/failures/replay",
        data={
            "csrf": csrf_of(page),
            "scope": "group",
            "group_sink": "erp",
            "group_status": "422",
            "group_error": "unknown account",
        },
    )
    assert "2 delivery(ies) due again" in answer.text
    states = {i: seeded.delivery(i).view.state for i in (first, second, other)}  # type: ignore[union-attr]
    assert states == {first: "pending", second: "pending", other: "dead"}


def test_resolving_needs_a_comment_hides_the_dead_letter_until_it_dies_again(
    base: str, seeded: Store
) -> None:
    delivery = seed.kill(seeded, "SLK1000001")
    operator = login(base, "olive", seed.PASSWORDS["olive"])
    token = csrf_of(operator.get(f"{base}/ui/failures").text)
    form = {"csrf": token, "scope": "selected", "delivery": str(delivery)}
    refused = operator.post(f"{base}/ui/failures/resolve", data={**form, "comment": " "})
    assert "A comment is required" in refused.text
    done = operator.post(
        f"{base}/ui/failures/resolve", data={**form, "comment": "posted by hand in the ERP"}
    )
    assert "1 dead letter(s) marked resolved" in done.text
    assert "SLK1000001" not in done.text
    shown = operator.get(f"{base}/ui/failures", params={"resolved": "1"}).text
    assert "olive: posted by hand in the ERP" in shown
    assert seeded.delivery(delivery).view.state == "dead"  # type: ignore[union-attr]
    entries, _ = audit.entries(seeded)
    assert (entries[0].action, entries[0].detail["comment"]) == (
        "resolve",
        "posted by hand in the ERP",
    )
    # Replayed, and dead again: back on the list.
    seeded.replay(ids=[delivery])
    seed.kill(seeded, "SLK1000001")
    assert "SLK1000001" in operator.get(f"{base}/ui/failures").text
