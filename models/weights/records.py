"""First-use records of weights files: the sha256 seen the first time, and quick re-checks.

The resolver writes ``<file name>.sha256.json`` beside each file in torch.hub's checkpoints cache
(``torch.hub.get_dir()/checkpoints``): the sha256 and size of the file when it was first verified
(for a file that no manifest sha256 pins: once it has loaded as a checkpoint), and the size,
modification time and inode change time (ns) of each local copy that was hashed. A later load of a
file that no manifest sha256 pins is checked against the recorded sha256 ("trust on first use"),
and a copy whose size and times are unchanged is not hashed again. The inode change time is set by
the system at every write or ``utime`` call, so no user can set it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..files import write_text_atomically

RECORD_SUFFIX = ".sha256.json"


def checkpoint_dir() -> Path:
    """The cache shared with torch.hub, torchvision and NVIDIA's/Facebook's hub code."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def record_path(file_name: str) -> Path:
    """Where the first-use record of the weights file ``file_name`` lives."""
    return checkpoint_dir() / f"{file_name}{RECORD_SUFFIX}"


@dataclass
class FileRecord:
    """The sha256 and size first seen for one weights file name, and the copies hashed since.

    ``copies`` maps each hashed copy's absolute path to its ``[size, mtime_ns, ctime_ns]`` at hashing time.
    """

    file_name: str
    sha256: str
    size: int
    first_seen: str
    copies: dict[str, list[int]] = field(default_factory=dict)

    def known_sha256(self, path: Path) -> str | None:
        """The recorded sha256 if ``path`` is a copy hashed before and unchanged since, else None."""
        return self.sha256 if self.copies.get(str(path.resolve())) == _identity(path.stat()) else None


def read_record(file_name: str) -> FileRecord | None:
    """The record of ``file_name``, or None if there is none (or it is unreadable: it is rebuilt)."""
    try:
        raw = json.loads(record_path(file_name).read_text(encoding="utf-8"))
        return FileRecord(**raw)
    except (OSError, ValueError, TypeError):
        return None


def remember(file_name: str, path: Path, sha256: str, stat: os.stat_result) -> FileRecord:
    """Record that ``path`` (with ``stat`` taken before hashing) has ``sha256``; returns the record.

    A record with another sha256 is replaced: the caller has just verified ``sha256`` against a
    pinned hash or decided to trust it. A cache that cannot be written leaves the file unrecorded.
    """
    record = read_record(file_name)
    if record is None or record.sha256 != sha256:
        record = FileRecord(file_name, sha256, stat.st_size, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    record.copies[str(path.resolve())] = _identity(stat)
    destination = record_path(file_name)
    with contextlib.suppress(OSError):
        destination.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(destination, json.dumps(record.__dict__, indent=1))
    return record


def _identity(stat: os.stat_result) -> list[int]:
    """What changes whenever a file's content may have: its size, modification and inode change times."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
