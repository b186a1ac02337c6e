"""Access control over real HTTP: login, sessions, CSRF, roles, lockout, audit."""

from __future__ import annotations

import requests

from pesabridge.dashboard import audit
from pesabridge.dashboard.users import MAX_FAILURES, set_disabled
from pesabridge.store import Store

from . import seed
from .serving import csrf_of, login

PAGES = (
    "/ui/",
    "/ui/transactions",
    "/ui/transactions/1",
    "/ui/transactions.csv",
    "/ui/failures",
    "/ui/files",
    "/ui/files/callbacks/rejects.csv",
    "/ui/reconciliation",
    "/ui/settings",
    "/ui/audit",
)


def test_nothing_answers_without_a_login_but_health_and_metrics(base: str) -> None:
    for path in PAGES:
        answer = requests.get(base + path, allow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/ui/login?next="), path
        assert "SLK" not in answer.text
    for path in ("/ui/failures/replay", "/ui/failures/resolve", "/ui/settings/users"):
        answer = requests.post(base + path, data={"delivery": "1"}, allow_redirects=False)
        assert answer.status_code == 401, path
    assert requests.get(base + "/healthz").json() == {"status": "ok"}
    assert requests.get(base + "/metrics").status_code == 200


def test_login_sets_a_strict_session_cookie_and_logout_ends_it(base: str) -> None:
    client = requests.Session()
    page = client.get(f"{base}/ui/login")
    answer = client.post(
        f"{base}/ui/login",
        data={"username": "admin", "password": seed.PASSWORDS["admin"], "csrf": csrf_of(page.text)},
        allow_redirects=False,
    )
    cookie = answer.headers["set-cookie"]
    assert "pb_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    assert client.get(f"{base}/ui/").status_code == 200
    home = client.get(f"{base}/ui/audit")
    assert client.post(f"{base}/ui/logout", data={"csrf": csrf_of(home.text)}).ok
    assert client.get(f"{base}/ui/", allow_redirects=False).status_code == 303


def test_the_cookie_is_secure_behind_tls(base: str) -> None:
    client = requests.Session()
    headers = {"X-Forwarded-Proto": "https"}
    page = client.get(f"{base}/ui/login", headers=headers)
    answer = client.post(
        f"{base}/ui/login",
        data={"username": "admin", "password": seed.PASSWORDS["admin"], "csrf": csrf_of(page.text)},
        headers=headers,
        allow_redirects=False,
    )
    assert "Secure" in answer.headers["set-cookie"]


def test_login_without_the_form_token_is_refused(base: str) -> None:
    answer = requests.post(
        f"{base}/ui/login",
        data={"username": "admin", "password": seed.PASSWORDS["admin"]},
        allow_redirects=False,
    )
    assert answer.status_code == 403
    assert "pb_session" not in answer.headers.get("set-cookie", "")


def test_repeated_bad_passwords_lock_the_account(base: str, seeded: Store) -> None:
    client = requests.Session()
    for _ in range(MAX_FAILURES):
        page = client.get(f"{base}/ui/login")
        answer = client.post(
            f"{base}/ui/login",
            data={"username": "olive", "password": "wrong-password", "csrf": csrf_of(page.text)},
        )
        assert answer.status_code == 401
    page = client.get(f"{base}/ui/login")
    answer = client.post(
        f"{base}/ui/login",
        data={"username": "olive", "password": seed.PASSWORDS["olive"], "csrf": csrf_of(page.text)},
        allow_redirects=False,
    )
    assert answer.status_code == 401
    assert "locked" in answer.text
    entries, _ = audit.entries(seeded)
    reasons = [e.detail.get("reason") for e in entries if e.action == "login.failed"]
    assert reasons[0] == "locked"
    assert reasons.count("wrong password") == MAX_FAILURES - 1


def test_post_without_csrf_is_refused_and_changes_nothing(base: str, seeded: Store) -> None:
    delivery = seed.kill(seeded, "SLK1000001")
    operator = login(base, "olive", seed.PASSWORDS["olive"])
    answer = operator.post(f"{base}/ui/failures/replay", data={"delivery": str(delivery)})
    assert answer.status_code == 403
    assert seeded.delivery(delivery).view.state == "dead"  # type: ignore[union-attr]
    page = operator.get(f"{base}/ui/failures")
    answer = operator.post(
        f"{base}/ui/failures/replay",
        data={"delivery": str(delivery), "csrf": csrf_of(page.text), "scope": "selected"},
    )
    assert answer.ok
    assert seeded.delivery(delivery).view.state == "pending"  # type: ignore[union-attr]
    entries, _ = audit.entries(seeded)
    assert (entries[0].username, entries[0].action, entries[0].target) == (
        "olive",
        "replay",
        str(delivery),
    )


def test_a_viewer_cannot_replay_or_resolve(base: str, seeded: Store) -> None:
    delivery = seed.kill(seeded, "SLK1000002")
    viewer = login(base, "victor", seed.PASSWORDS["victor"])
    page = viewer.get(f"{base}/ui/failures")
    assert "SLK1000002" in page.text
    assert "Replay selected" not in page.text
    token = csrf_of(page.text)
    for path in ("/ui/failures/replay", "/ui/failures/resolve"):
        answer = viewer.post(
            base + path,
            data={"delivery": str(delivery), "csrf": token, "scope": "selected", "comment": "x"},
        )
        assert answer.status_code == 403, path
    assert seeded.delivery(delivery).view.state == "dead"  # type: ignore[union-attr]
    assert viewer.get(f"{base}/ui/settings").status_code == 403


def test_viewers_see_masked_numbers_and_admins_full_ones(base: str) -> None:
    viewer = login(base, "victor", seed.PASSWORDS["victor"])
    listing = viewer.get(f"{base}/ui/transactions").text
    assert "2547****5678" in listing
    assert "254712345678" not in listing
    detail = viewer.get(f"{base}/ui/transactions/1").text
    assert "254712345678" not in detail  # nor in the raw payload
    csv_text = viewer.get(f"{base}/ui/transactions.csv").text
    assert "2547****5678" in csv_text
    assert "254712345678" not in csv_text
    refused = viewer.get(f"{base}/ui/transactions", params={"phone": "712345678"})
    assert "search by the last 4 digits" in refused.text
    assert "SLK1000001" not in refused.text
    admin = login(base, "admin", seed.PASSWORDS["admin"])
    assert "254712345678" in admin.get(f"{base}/ui/transactions").text
    found = admin.get(f"{base}/ui/transactions", params={"phone": "0712 345 678"}).text
    assert "SLK1000001" in found
    assert "SLK1000002" not in found


def test_secrets_in_evidence_are_redacted(base: str) -> None:
    admin = login(base, "admin", seed.PASSWORDS["admin"])
    detail = admin.get(f"{base}/ui/transactions/1").text
    assert "s3cr3t-credential" not in detail
    assert "SecurityCredential" in detail
    assert "[redacted]" in detail


def test_a_disabled_user_is_logged_out_at_once(base: str, seeded: Store) -> None:
    viewer = login(base, "victor", seed.PASSWORDS["victor"])
    assert viewer.get(f"{base}/ui/").status_code == 200
    set_disabled(seeded, "victor", True)
    assert viewer.get(f"{base}/ui/", allow_redirects=False).status_code == 303


def test_pages_send_security_headers(base: str) -> None:
    admin = login(base, "admin", seed.PASSWORDS["admin"])
    answer = admin.get(f"{base}/ui/")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"


def test_many_failed_logins_from_one_address_are_slowed_down(base: str) -> None:
    client = requests.Session()
    statuses = []
    for n in range(21):
        page = client.get(f"{base}/ui/login")
        answer = client.post(
            f"{base}/ui/login",
            data={"username": f"nobody{n}", "password": "guess", "csrf": csrf_of(page.text)},
        )
        statuses.append(answer.status_code)
    assert statuses == [401] * 20 + [429]
    assert "Too many failed logins" in answer.text


def test_login_returns_only_into_the_dashboard(base: str) -> None:
    for target, expected in (
        ("/ui/transactions?receipt=SLK1000001", "/ui/transactions?receipt=SLK1000001"),
        ("//evil.example/ui/", "/ui/"),
        ("https://evil.example/", "/ui/"),
    ):
        client = requests.Session()
        page = client.get(f"{base}/ui/login")
        answer = client.post(
            f"{base}/ui/login",
            data={
                "username": "victor",
                "password": seed.PASSWORDS["victor"],
                "csrf": csrf_of(page.text),
                "next": target,
            },
            allow_redirects=False,
        )
        assert answer.headers["location"] == expected
