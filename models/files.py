"""Files replaced whole: written to a new temporary file beside the target, flushed to disk, then
renamed over it. Every file the hub writes goes through here.

A reader sees the old content or the new, never a part, even if the writer dies. The temporary
file is created exclusively (``O_EXCL | O_NOFOLLOW`` under a random name), so a file or symbolic
link planted at a predictable name is never opened, let alone written through.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Self

NAME_ATTEMPTS = 100
"""Random names tried before giving up (each one taken is someone else's file)."""


class NewFile:
    """A context manager: a new file for ``target``, opened in ``mode``; ``publish()`` renames it over
    ``target`` (a regular file keeps its permissions; a link is replaced, not followed); left
    unpublished, it is removed."""

    def __init__(self, target: Path, mode: str = "wb") -> None:
        self.target = Path(target)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        for _ in range(NAME_ATTEMPTS):
            self.path: Path | None = self.target.parent / f".{self.target.name}.{secrets.token_hex(8)}.tmp"
            try:
                descriptor = os.open(self.path, flags, 0o666)  # the umask applies, as for open()
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"{str(self.target.parent)!r}: {NAME_ATTEMPTS} random names "
                                  f".{self.target.name}.*.tmp were all taken")
        self.file: IO = os.fdopen(descriptor, mode, **({} if "b" in mode else {"encoding": "utf-8"}))

    def __enter__(self) -> Self:
        return self

    def publish(self) -> None:
        """Flush the file to disk and rename it over the target."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        try:
            existing = os.lstat(self.target)
        except FileNotFoundError:
            existing = None
        if existing is not None and stat.S_ISREG(existing.st_mode):  # not a link's target's permissions
            os.chmod(self.path, stat.S_IMODE(existing.st_mode))
        os.replace(self.path, self.target)
        self.path = None
        _sync_directory(self.target.parent)

    def __exit__(self, *exc_info: object) -> None:
        self.file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def write_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Replace ``path`` by what ``write`` writes to the binary file it is handed (``torch.save``,
    ``torch.jit.save``...), whole; on any failure, or if the process dies, ``path`` is left untouched."""
    with NewFile(path) as new:
        write(new.file)
        new.publish()


def write_text_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` (UTF-8) whole; on any failure ``path`` is left untouched."""
    with NewFile(path, "w") as new:
        new.file.write(text)
        new.publish()


def _sync_directory(directory: Path) -> None:
    """Flush a rename in ``directory`` to disk (where the system lets a directory be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # Windows: directories cannot be opened
        return
    try:
        os.fsync(descriptor)
    except OSError:  # some file systems refuse to sync a directory
        pass
    finally:
        os.close(descriptor)
