"""The ``--decode`` choices and which one runs where: light (no torchvision), for the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    import torch

DECODE_KINDS = ("auto", "cpu", "gpu", "hybrid")
GPU_BATCH_SIZE = 128  # JPEGs per nvJPEG call: nvJPEG's rate still grows up to about this batch


def choose_decoding(kind: str, device: str | torch.device) -> str:
    """'cpu', 'gpu' or 'hybrid' for ``--decode kind`` on ``device``: 'auto' is 'hybrid' on a CUDA
    device, else 'cpu'; the others are themselves."""
    if kind not in DECODE_KINDS:
        raise InvalidArgumentError(f"decode={kind!r}: choose one of {', '.join(DECODE_KINDS)}")
    if kind == "auto":
        return "hybrid" if str(device).split(":")[0] == "cuda" else "cpu"
    return kind
