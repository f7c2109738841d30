"""Which images a fine-tuned checkpoint was trained on: one short content digest per file.

``finetune`` records the digests of its training images in the checkpoint; ``validate`` counts the
images of its folder that are among them (by content: a copied or renamed file is still found), so
that measuring on the training data does not pass for held-out accuracy.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

DIGEST_BYTES = 8  # a signed 64-bit integer: a tensor of them loads with weights_only=True


def file_digest(path: str | os.PathLike) -> int:
    """The first 8 bytes of the file's BLAKE2b digest, as a signed 64-bit integer."""
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return int.from_bytes(digest.digest(), "little", signed=True)


def file_digests(paths: Sequence[str | os.PathLike], workers: int = 4) -> list[int]:
    """:func:`file_digest` of each path, in order, read in ``workers`` threads."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(file_digest, paths))


def training_digests(checkpoint: str | os.PathLike) -> frozenset[int]:
    """The training images' digests that a fine-tuned checkpoint records (empty for any other file)."""
    from ..weights.finetuned import TRAINING_DIGESTS_KEY

    try:  # memory-mapped: only the digests are read from a large file
        contents = torch.load(Path(checkpoint), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 -- not a checkpoint of ours (the model loaded it already): nothing recorded
        return frozenset()
    digests = contents.get(TRAINING_DIGESTS_KEY) if isinstance(contents, dict) else None
    return frozenset(digests.tolist()) if isinstance(digests, torch.Tensor) else frozenset()
