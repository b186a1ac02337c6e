"""Debian's headless Chromium under Playwright, and the checks every page gets.

Playwright never downloads a browser here: it drives /usr/bin/chromium (installed by
``make chromium``, a prerequisite of ``make test``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("PESABRIDGE_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots" / "dashboard"
"""Where the run saves a picture of each page (build/ is ignored by git)."""

UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML)"""

MARK_FOCUSABLE = """() => {
  const all = [...document.querySelectorAll(
      'a[href], button, input:not([type=hidden]), select, textarea, summary')]
    .filter(el => el.getClientRects().length > 0 && !el.disabled);
  all.forEach((el, i) => el.setAttribute('data-kbd', String(i)));
  return all.length;
}"""


def check_page(page: Any, name: str, *, tab_stops: int = 30) -> None:
    """Every form field labelled, one heading, and the keyboard reaches the first
    ``tab_stops`` controls in document order from the skip link on; then a screenshot."""
    assert page.evaluate(UNLABELLED) == [], f"{name}: form fields without a label"
    assert page.locator("h1").count() == 1, f"{name}: one h1"
    count = page.evaluate(MARK_FOCUSABLE)
    wanted = min(count, tab_stops)
    reached: list[str] = []
    if wanted:
        # Start on the first control (the skip link), wherever the mouse was last.
        page.locator("[data-kbd='0']").focus()
        reached.append("0")
    # A date field takes several Tab presses (day, month, year): count each control once.
    for _ in range(wanted * 4):
        if len(reached) == wanted:
            break
        page.keyboard.press("Tab")
        current = page.evaluate("() => document.activeElement.getAttribute('data-kbd')")
        if not reached or reached[-1] != current:
            reached.append(current)
    expected = [str(i) for i in range(wanted)]
    assert reached == expected, f"{name}: tab order {reached} instead of {expected}"
    if count:
        first = page.locator("[data-kbd='0']")
        assert first.evaluate("el => el.className === 'skip' || el.id === 'username'"), name
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
