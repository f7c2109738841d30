"""The local engine: decoding in worker threads (CPU, GPU or both), overlapped with the model in the calling thread."""

from __future__ import annotations

from collections.abc import Sequence

from tqdm import tqdm

from .decode_queue import DecodeQueue, start_workers
from .decoding import Decoder
from .predictor import Predictor
from .store import ResultStore


def classify_local(sources: Sequence[str], predictor: Predictor, decoder: Decoder, store: ResultStore, *,
                   batch_size: int = 64, workers: int = 2, prefetch_batches: int = 2,
                   progress: bool = True) -> int:
    """Classify ``sources`` in batches and save each batch's rows in ``store`` as soon as it is done.

    ``decoder``'s threads (``workers`` CPU decoding threads, and/or the GPU decoder's) take the
    sources from one queue and decode up to ``prefetch_batches`` batches (plus what the decoder
    holds in flight) ahead of the model. Returns the number of rows written. On KeyboardInterrupt
    the decoding stops and the interrupt propagates; the batches already written stay in ``store``.
    """
    window = (prefetch_batches + 1) * batch_size + decoder.images_in_flight(workers)
    queue = DecodeQueue(sources, window)
    written = 0
    try:
        start_workers(queue, decoder.workers(workers))
        with tqdm(total=len(sources), unit="img", disable=not progress, desc="classify") as bar:
            for chunk, decoded in queue.batches(batch_size):
                rows = predictor.classify(chunk, decoder.finish(decoded))
                store.write(rows)
                written += len(rows)
                bar.update(len(rows))
    finally:
        queue.close()
    return written
