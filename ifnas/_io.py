"""Atomic file writes: a crash mid-write leaves the previous file whole."""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write(file)` on a temporary file beside `path`, sync it, then rename it over `path`.

    The rename is atomic on POSIX file systems, so readers see the old file or the new one,
    never a part of either. The file gets the permissions of one made by `open()` (0666 less
    the umask), not the owner-only ones of a temporary file, so that shared run folders stay
    readable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
