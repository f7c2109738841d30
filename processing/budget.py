"""How many pixels the decoding threads may hold at once: a bound on decoding's memory."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# After an image this large, the memory its decoding freed goes back to the system at once.
RETURN_MEMORY_PIXELS = 16_000_000


class PixelBudget:
    """``reserve(pixels)`` waits while the reservations of other threads and this one would exceed
    ``limit`` together. An image larger than ``limit`` waits until it is alone.

    glibc keeps the memory a thread frees for that thread's next allocations: each decoding thread
    would keep what its largest image needed, and the threads together far more than ``limit``
    allows. After a reservation of ``RETURN_MEMORY_PIXELS`` or more, ``malloc_trim`` returns it.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        """Hold ``pixels`` of the budget for the ``with`` block."""
        with self._changed:
            self._changed.wait_for(lambda: self._held == 0 or self._held + pixels <= self.limit)
            self._held += pixels
        try:
            yield
        finally:
            if pixels >= RETURN_MEMORY_PIXELS and _MALLOC_TRIM is not None:
                _MALLOC_TRIM(0)
            with self._changed:
                self._held -= pixels
                self._changed.notify_all()


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None elsewhere: other allocators, other systems)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()
