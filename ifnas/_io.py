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


def read_text(
    path: Path, what: str, expected: str, error: type[Exception], missing: type[Exception]
) -> str:
    """The UTF-8 text of the file `path`, the `what` of a command (`config file`).

    Raises `missing` when there is no such file, and `error` when `path` is a directory or its
    bytes are not UTF-8 text; each message names the file and says it should be `expected`.
    """
    if path.is_dir():
        raise error(f"{what} {path} is a directory; expected {expected}")
    if not path.is_file():
        raise missing(f"{what} {path} does not exist")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as decode_error:
        raise error(
            f"{what} {path} is not a text file (not UTF-8 at byte {decode_error.start}); "
            f"expected {expected}"
        ) from decode_error


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
