"""``classify --output -``: the rows as JSON lines on standard output, each batch as soon as it is done."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO


class StdoutRows:
    """A result store (``write``, ``finish``, ``close``, ``done``) that prints JSON lines instead of
    saving a file: nothing to resume, nothing to lock."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.done: set[str] = set()
        self.error_paths: set[str] = set()

    def write(self, rows: list[dict[str, Any]]) -> None:
        fresh = [row for row in rows if row["path"] not in self.done]
        self.stream.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in fresh)
        self.stream.flush()
        self.done.update(row["path"] for row in fresh)

    def finish(self) -> int:
        return len(self.done)

    def close(self) -> None:
        """Nothing to release."""
