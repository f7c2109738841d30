"""Counts in messages: ``1 file``, ``2 files``."""

from __future__ import annotations


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``number`` and ``noun``, in the plural (``plural``, else noun + "s") unless it is exactly 1."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
