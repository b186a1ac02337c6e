"""A real HTTP server for the dashboard tests: uvicorn in a thread, on a free port."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
import uvicorn

from tests.helpers import free_port, wait_for


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10, "the dashboard's server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(base: str, username: str, password: str) -> requests.Session:
    """A browser-like session logged in through the login form."""
    client = requests.Session()
    page = client.get(f"{base}/ui/login")
    answer = client.post(
        f"{base}/ui/login",
        data={"username": username, "password": password, "csrf": csrf_of(page.text)},
        allow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return client
