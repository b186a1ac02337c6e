"""What becomes of a statement file on the server once it is handled: left, moved or deleted.

A moved file goes to its folder under a name that never overwrites another file there,
its done-marker beside it and, when it failed, a ``NAME.error.txt`` saying why. A deleted
file takes its marker with it. A lost connection is raised (the next poll finishes the
job); any other failure to move or delete is logged and reported to the caller, which
stops trying for that file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import structlog

from ..store import utcnow
from .remotefs import RemoteEntry, RemoteSession, RemoteUnavailable

log = structlog.get_logger("pesabridge.sources.files")

Outcome = Literal["left", "done", "failed"]
"""``left`` where it was; ``done``: moved or deleted; ``failed``: that did not work."""


@dataclass(frozen=True, slots=True)
class Disposition:
    """What happens to a file on the server after it is handled."""

    on_success: Literal["leave", "move", "delete"] = "leave"
    success_dir: str | None = None
    on_failure: Literal["leave", "move"] = "leave"
    failure_dir: str | None = None

    def skip_dirs(self) -> list[str]:
        """The folders files are moved to, which a listing must not descend into."""
        return [p for p in (self.success_dir, self.failure_dir) if p]


def dispose(
    session: RemoteSession,
    disposition: Disposition,
    entry: RemoteEntry,
    marker: RemoteEntry | None,
    *,
    success: bool,
    note: str | None,
    source: str,
) -> Outcome:
    """Leave, move or delete ``entry`` (and its ``marker``) as ``disposition`` says."""
    d = disposition
    action = d.on_success if success else d.on_failure
    folder = d.success_dir if success else d.failure_dir
    if action == "leave":
        return "left"
    try:
        if action == "delete":
            session.delete(entry.path)
            if marker is not None:
                session.delete(marker.path)
            return "done"
        assert folder is not None
        session.makedirs(folder)
        target = unique_target(session, folder, entry.name)
        session.rename(entry.path, target)
        if marker is not None:
            session.rename(marker.path, target + marker.name[len(entry.name) :])
        if note is not None:
            session.write_bytes(target + ".error.txt", (note + "\n").encode())
        log.info("file moved", source=source, file=entry.display, folder=folder)
        return "done"
    except RemoteUnavailable:
        raise  # the connection is gone; the next poll finishes the job
    except Exception as exc:
        log.warning(
            f"could not {action} the file on the server",
            source=source,
            file=entry.display,
            error=str(exc),
        )
        return "failed"


def unique_target(session: RemoteSession, folder: str, name: str) -> str:
    """``folder/name``, or a timestamped name when that is taken: never overwrite."""
    target = session.join(folder, name)
    if not session.exists(target):
        return target
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
    stem, dot, suffix = name.rpartition(".")
    renamed = f"{stem}.{stamp}.{suffix}" if dot and stem else f"{name}.{stamp}"
    return session.join(folder, renamed)
