"""Fixtures for the parser tests: where the reference samples live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _samples_dir() -> Path:
    shared = os.environ.get(
        "PESABRIDGE_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared"
    )
    return Path(shared) / "samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """``<clone>/../shared/samples`` (or ``$PESABRIDGE_SHARED/samples``); fails if absent.

    A missing folder must fail, not skip: a green run without the samples proves nothing.
    """
    path = _samples_dir()
    if not path.is_dir():
        pytest.fail(f"reference samples not found at {path.resolve()}; set PESABRIDGE_SHARED")
    return path
