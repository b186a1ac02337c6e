"""One poller per source: ``Store.exclusive`` across connections and processes."""

from __future__ import annotations

import subprocess
import sys
import threading

from pesabridge.store import Store

HOLD_IN_CHILD = """
import sys, time
from pesabridge.store import Store
store = Store.open(sys.argv[1])
with store.exclusive("poll:statements") as held:
    print("held" if held else "busy", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_holder_is_refused_until_release(store: Store) -> None:
    results: list[bool] = []

    def try_it() -> None:
        with store.exclusive("poll:statements") as held:
            results.append(held)

    with store.exclusive("poll:statements") as first:
        assert first
        worker = threading.Thread(target=try_it)
        worker.start()
        worker.join(10)
        with store.exclusive("poll:other-source") as other:
            assert other  # names are independent
    assert results == [False]
    with store.exclusive("poll:statements") as again:
        assert again


def test_another_process_is_refused_while_held(store: Store, db_url: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_IN_CHILD, db_url, "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        with store.exclusive("poll:statements") as held:
            assert not held
    finally:
        child.wait(20)
    with store.exclusive("poll:statements") as held:
        assert held
