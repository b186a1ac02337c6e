"""Small asyncio helpers shared by the long-running loops."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, waking at once when ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on the event loop the long-running commands use.

    That is uvloop where it is installed (Linux and macOS): with httptools under uvicorn
    it roughly halves the CPU spent per callback and per delivery. ``PESABRIDGE_LOOP=asyncio``
    forces the standard loop, for debugging or to compare.
    """
    if os.environ.get("PESABRIDGE_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)
