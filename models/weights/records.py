"""First-use records of weights files: the sha256 seen the first time, and quick re-checks.

The resolver writes ``<file name>.sha256.json`` beside each file in torch.hub's checkpoints cache
(``torch.hub.get_dir()/checkpoints``): the sha256 and size of the file when it was first downloaded
or verified, and the size and modification time (ns) of each local copy that was hashed. A later
load of a file that no manifest sha256 pins is checked against the recorded sha256 ("trust on
first use"), and a copy whose size and modification time are unchanged is not hashed again.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

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

    ``copies`` maps each hashed copy's absolute path to its ``[size, mtime_ns]`` at hashing time.
    """

    file_name: str
    sha256: str
    size: int
    first_seen: str
    copies: dict[str, list[int]] = field(default_factory=dict)

    def known_sha256(self, path: Path) -> str | None:
        """The recorded sha256 if ``path`` is a copy hashed before and unchanged since, else None."""
        stat = path.stat()
        return self.sha256 if self.copies.get(str(path.resolve())) == [stat.st_size, stat.st_mtime_ns] else None


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
    record.copies[str(path.resolve())] = [stat.st_size, stat.st_mtime_ns]
    destination = record_path(file_name)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    except OSError:
        return record
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as sink:
            json.dump(record.__dict__, sink, indent=1)
        os.replace(temporary, destination)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
    return record
