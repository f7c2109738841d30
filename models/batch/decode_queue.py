"""One queue of a run's sources that every decoder takes images from, and the threads that run them.

Decoding workers (CPU threads taking one image at a time, the GPU decoder taking a batch) take
sources in input order from one :class:`DecodeQueue` and put their results back by index; the
model's thread gets them back in input order, a batch at a time. So each decoder decodes as many
images as its speed allows, and their rates add up. Workers never run more than ``window``
images ahead of the batch the model waits for, which bounds the memory of decoded images.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


class DecodeQueue:
    """The sources of one run, handed out in order and collected by index (thread-safe)."""

    def __init__(self, sources: Sequence[str], window: int) -> None:
        self.sources = sources
        self.window = max(1, window)
        self._next = 0  # the first source not taken yet
        self._released = 0  # the sources before this one went to the model
        self._results: dict[int, Any] = {}
        self._failure: BaseException | None = None
        self._closed = False
        self._changed = threading.Condition()

    @property
    def closed(self) -> bool:
        return self._closed

    def take(self, count: int) -> list[tuple[int, str]]:
        """Up to ``count`` (index, source) pairs, the next in input order; waits while the workers are
        ``window`` images ahead of the model. An empty list: nothing is left (or the run ended)."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or self._next >= len(self.sources)
                                   or self._next < self._released + self.window)
            if self._closed or self._next >= len(self.sources):
                return []
            end = min(self._next + count, len(self.sources), self._released + self.window)
            taken = [(index, self.sources[index]) for index in range(self._next, end)]
            self._next = end
            return taken

    def put(self, results: Iterable[tuple[int, Any]]) -> None:
        """Hand back decoded images (or error texts) by index."""
        results = list(results)  # decode before taking the lock
        with self._changed:
            self._results.update(results)
            self._changed.notify_all()

    def fail(self, error: BaseException) -> None:
        """A worker died of ``error``: the model's thread raises it instead of waiting for ever."""
        with self._changed:
            self._failure = self._failure or error
            self._closed = True
            self._changed.notify_all()

    def close(self) -> None:
        """End the run: workers get nothing more to take."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def batches(self, batch_size: int) -> Iterator[tuple[list[str], list[Any]]]:
        """(sources, results) of each batch in input order, as soon as all of the batch is decoded."""
        for start in range(0, len(self.sources), batch_size):
            end = min(start + batch_size, len(self.sources))
            with self._changed:
                self._changed.wait_for(lambda end=end: self._failure is not None
                                       or all(index in self._results for index in range(self._released, end)))
                if self._failure is not None:
                    raise self._failure
                results = [self._results.pop(index) for index in range(start, end)]
                self._released = end
                self._changed.notify_all()
            yield list(self.sources[start:end]), results


@dataclass(frozen=True)
class Worker:
    """A decoding thread's loop; ``nice``: it yields the cores to the model's threads (CPU decoding)."""

    loop: Callable[[DecodeQueue], None]
    nice: bool = False


def start_workers(queue: DecodeQueue, workers: Sequence[Worker], name: str = "classify-decode") -> None:
    """Run each worker's loop in a daemon thread; an exception in one fails the queue."""
    for number, worker in enumerate(workers):
        threading.Thread(target=_run, args=(queue, worker), name=f"{name}-{number}", daemon=True).start()


def _run(queue: DecodeQueue, worker: Worker) -> None:
    if worker.nice:
        yield_to_the_model()
    try:
        worker.loop(queue)
    except BaseException as error:  # noqa: BLE001 - the model's thread re-raises it
        queue.fail(error)


def yield_to_the_model() -> None:
    """Lower this decoding thread's priority: where the cores are all busy, the model's threads
    go first and decoding takes what they leave, instead of both slowing each other down."""
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + 10))
    except (AttributeError, OSError):  # not Linux, or not allowed: equal priority
        pass
