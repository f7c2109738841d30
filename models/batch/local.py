"""The local engine: decoding in worker threads, overlapped with the model in the calling thread."""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from tqdm import tqdm

from .decoding import Decoder
from .predictor import Predictor
from .store import ResultStore


def classify_local(sources: Sequence[str], predictor: Predictor, decoder: Decoder, store: ResultStore, *,
                   batch_size: int = 64, workers: int = 2, prefetch_batches: int = 2,
                   progress: bool = True) -> int:
    """Classify ``sources`` in batches and save each batch's rows in ``store`` as soon as it is done.

    ``workers`` threads decode up to ``prefetch_batches`` batches ahead of the model. Returns the
    number of rows written. On KeyboardInterrupt the queued decoding is cancelled and the
    interrupt propagates; the batches already written stay in ``store``.
    """
    written = 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="classify-decode",
                              initializer=_yield_to_the_model)
    try:
        with tqdm(total=len(sources), unit="img", disable=not progress, desc="classify") as bar:
            for chunk, futures in _decoded_batches(pool, decoder, sources, batch_size, prefetch_batches):
                rows = predictor.classify(chunk, decoder.finish([future.result() for future in futures]))
                store.write(rows)
                written += len(rows)
                bar.update(len(rows))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return written


def _decoded_batches(pool: ThreadPoolExecutor, decoder: Decoder, sources: Sequence[str], batch_size: int,
                     prefetch_batches: int) -> Iterator[tuple[list[str], list[Future]]]:
    """Batches of sources with their decoding futures, submitted ``prefetch_batches`` ahead."""
    chunks = (list(sources[start:start + batch_size]) for start in range(0, len(sources), batch_size))
    queue: deque[tuple[list[str], list[Future]]] = deque()
    for chunk in itertools.islice(chunks, prefetch_batches + 1):
        queue.append((chunk, [pool.submit(decoder.load, source) for source in chunk]))
    while queue:
        yield queue.popleft()
        for chunk in itertools.islice(chunks, 1):
            queue.append((chunk, [pool.submit(decoder.load, source) for source in chunk]))


def _yield_to_the_model() -> None:
    """Lower this decoding thread's priority: where the cores are all busy, the model's threads
    go first and decoding takes what they leave, instead of both slowing each other down."""
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + 10))
    except (AttributeError, OSError):  # not Linux, or not allowed: equal priority
        pass
