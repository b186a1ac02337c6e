"""Deciding, at each poll, which files on the server are complete and what to do with each.

A file is *complete* when its done-marker (``NAME.done``, ``NAME.ok``) is listed beside
it, or, unless ``require_done_marker`` is set, when its size and mtime have not changed
for ``stable_for`` seconds. Complete files are taken in the configured order, at most
``max_files_per_poll`` of them; one the ledger already knows (by source, path, size and
mtime) is not fetched again, only moved or deleted if the configuration says so and that
has not failed before. The planner remembers, between polls, when each file was first
seen as it is now, and which known files need no further look.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..store import Store
from ..store import remote as remote_ledger
from ..store.remote import RemoteKey
from .file_config import FileSourceConfig
from .file_disposition import Disposition
from .remotefs import RemoteEntry, RemoteSession

Verdict = Literal["take", "changing", "no marker", "known", "cleanup", "later"]


@dataclass(frozen=True, slots=True)
class Planned:
    """What a poll would do with one file, and why."""

    entry: RemoteEntry
    verdict: Verdict
    marker: RemoteEntry | None = None
    known: remote_ledger.RemoteFileRecord | None = None

    @property
    def explanation(self) -> str:
        if self.verdict == "take":
            how = "done marker" if self.marker else "size and mtime stable"
            return f"take ({how})"
        if self.verdict == "changing":
            return "wait: still changing (not stable long enough)"
        if self.verdict == "no marker":
            return "wait: no done marker yet"
        if self.verdict == "later":
            return "next poll (max_files_per_poll reached)"
        known = self.known
        state = known.status if known else "handled"
        reason = f": {known.reason}" if known and known.reason else ""
        extra = " — will be moved/deleted as configured" if self.verdict == "cleanup" else ""
        return f"already {state}{reason}{extra}"


def marker_names(name: str, markers: Sequence[str]) -> list[str]:
    """The marker file names a producer may write for ``name``."""
    return [name + m for m in markers]


class FilePlanner:
    """Plans the polls of one source; keeps what it learns from one poll to the next."""

    def __init__(
        self,
        name: str,
        config: FileSourceConfig,
        store: Store,
        *,
        root: str,
        disposition: Disposition,
    ) -> None:
        self.name = name
        self.config = config
        self.store = store
        self.root = root
        self.disposition = disposition
        # path -> ((size, mtime_ns), monotonic time first seen so)
        self._watch: dict[str, tuple[tuple[int, int], float]] = {}
        self._final: set[RemoteKey] = set()  # known and left where they are
        self._cleanup_failed: set[RemoteKey] = set()

    def key(self, entry: RemoteEntry) -> RemoteKey:
        return RemoteKey(self.name, entry.display, entry.size, entry.mtime_ns)

    def forget(self, entry: RemoteEntry) -> None:
        """Start the stability clock of ``entry``'s path afresh (it was handled or changed)."""
        self._watch.pop(entry.path, None)

    def settled(self, entry: RemoteEntry) -> None:
        """``entry`` is handled and stays where it is: no need to look it up again."""
        self._final.add(self.key(entry))

    def cleanup_failed(self, entry: RemoteEntry) -> None:
        """Moving or deleting ``entry`` failed: leave it from now on."""
        self._cleanup_failed.add(self.key(entry))

    def _wanted(self, entry: RemoteEntry) -> bool:
        name = entry.display_name
        if name.startswith("."):
            return False
        if not any(fnmatch.fnmatchcase(name, p) for p in self.config.include):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.config.exclude)

    def plan(self, session: RemoteSession, now: float | None = None) -> list[Planned]:
        """Look at the server and say, for each wanted file, what this poll does."""
        now = time.monotonic() if now is None else now
        skip = self.disposition.skip_dirs()
        entries = session.list_files(self.root, self.config.recursive, skip)
        markers: dict[str, RemoteEntry] = {}
        data: list[RemoteEntry] = []
        for entry in entries:
            suffix = next(
                (
                    m
                    for m in self.config.done_markers
                    if entry.name.endswith(m) and len(entry.name) > len(m)
                ),
                None,
            )
            if suffix is not None:
                markers[entry.path[: -len(suffix)]] = entry
            elif self._wanted(entry):
                data.append(entry)

        seen: set[str] = set()
        ready: list[tuple[RemoteEntry, RemoteEntry | None]] = []
        planned: list[Planned] = []
        for entry in data:
            seen.add(entry.path)
            signature = (entry.size, entry.mtime_ns)
            previous = self._watch.get(entry.path)
            if previous is None or previous[0] != signature:
                previous = (signature, now)
                self._watch[entry.path] = previous
            marker = markers.get(entry.path)
            if marker is not None:
                ready.append((entry, marker))
            elif self.config.require_done_marker:
                planned.append(Planned(entry, "no marker"))
            elif now - previous[1] >= self.config.stable_for:
                ready.append((entry, None))
            else:
                planned.append(Planned(entry, "changing"))
        for gone in set(self._watch) - seen:
            del self._watch[gone]

        if self.config.order == "name":
            ready.sort(key=lambda item: item[0].display)
        else:
            ready.sort(key=lambda item: (item[0].mtime_ns, item[0].display))
            if self.config.order == "newest":
                ready.reverse()

        taken = 0
        for entry, marker in ready:
            key = self.key(entry)
            if key in self._final:
                continue
            known = None
            with self.store.read() as conn:
                known = remote_ledger.lookup(conn, key)
            if known is not None and known.status in remote_ledger.FINAL:
                action = (
                    self.disposition.on_failure
                    if known.status == "failed"
                    else self.disposition.on_success
                )
                if action == "leave" or key in self._cleanup_failed:
                    self._final.add(key)
                    planned.append(Planned(entry, "known", marker, known))
                else:
                    planned.append(Planned(entry, "cleanup", marker, known))
                continue
            if taken >= self.config.max_files_per_poll:
                planned.append(Planned(entry, "later", marker, known))
                continue
            taken += 1
            planned.append(Planned(entry, "take", marker, known))
        order = {id(entry): i for i, (entry, _) in enumerate(ready)}
        planned.sort(key=lambda p: order.get(id(p.entry), -1))
        return planned
