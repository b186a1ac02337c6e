"""Fetching one file from the server into the source's local work directory.

The download goes to ``NAME.part`` in a folder named after the file's path, size and
mtime, so a broken transfer of the same file is resumed where it stopped. The result is
checked against the listed size: a short transfer is kept for the next poll to resume, a
longer one means the file changed and is thrown away. Only a complete file is renamed to
its final, safe local name. Without ``verify_size`` (FTP in ASCII mode, where sizes do
not match) every try starts afresh and nothing is checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import structlog

from .remotefs import (
    RemoteEntry,
    RemoteFileError,
    RemoteSession,
    RemoteUnavailable,
    safe_local_name,
)

log = structlog.get_logger("pesabridge.sources.files")


def download(
    session: RemoteSession,
    entry: RemoteEntry,
    work_dir: Path,
    *,
    verify_size: bool,
    progress: Callable[[int], None],
    source: str,
) -> Path | None:
    """Fetch to a temporary name, resuming a broken earlier try; check the size.

    None when the file changed while it was downloading (it is taken once stable)."""
    identity = f"{entry.display}\0{entry.size}\0{entry.mtime_ns}"
    token = hashlib.sha256(identity.encode()).hexdigest()[:24]
    folder = work_dir / token
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / safe_local_name(entry.display_name)
    if not final.resolve().is_relative_to(work_dir.resolve()):
        raise RemoteFileError(f"unsafe name {entry.display_name!r}")
    part = final.with_name(final.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    if offset > entry.size or not verify_size:
        part.unlink(missing_ok=True)
        offset = 0
    if offset:
        log.info("resuming download", source=source, file=entry.display, offset=offset)
    session.download(entry, part, offset, progress)
    got = part.stat().st_size
    if verify_size and got < entry.size:
        # A transfer that ended early (even one the server called complete): keep
        # what arrived; the next poll resumes from here.
        raise RemoteUnavailable(
            f"{entry.display}: download ended at {got} of {entry.size} bytes; "
            "it resumes at the next poll"
        )
    if verify_size and got != entry.size:
        part.unlink(missing_ok=True)
        log.warning(
            "file changed while downloading; it will be taken once stable",
            source=source,
            file=entry.display,
            listed=entry.size,
            downloaded=got,
        )
        return None
    part.replace(final)
    return final
