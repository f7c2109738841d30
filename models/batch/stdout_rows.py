"""``classify --output -``: the rows as JSON lines on standard output, each batch as soon as it is done."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, TextIO


class StdoutRows:
    """A result store (``write``, ``finish``, ``close``, ``is_done``, ``failed_before``) that prints JSON
    lines, as a ``.jsonl`` OUT holds them (a file name that is not UTF-8 as ``\\udcNN``), instead of
    saving a file: nothing to resume, nothing to lock."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._written: set[str] = set()

    def write(self, rows: list[dict[str, Any]]) -> None:
        fresh = [row for row in rows if row["path"] not in self._written]
        self.stream.writelines(json.dumps(row) + "\n" for row in fresh)
        self.stream.flush()
        self._written.update(row["path"] for row in fresh)

    def is_done(self, source: str) -> bool:
        return source in self._written

    def failed_before(self, sources: Iterable[str]) -> int:
        """Nothing was saved before: none."""
        return 0

    def finish(self) -> int:
        return len(self._written)

    def close(self) -> None:
        """Nothing to release."""
