"""The runtime step of model creation: a loaded model put on its device, in its precision, ready to call."""

from __future__ import annotations

import torch
from torch import nn

from .input_cast import cast_inputs_to_model
from .optimize import fold_dtype, optimize_for_inference


def load_dtype(dtype: torch.dtype, optimize: bool) -> torch.dtype:
    """The precision in which a model of ``dtype`` is built and loaded: ``dtype`` itself, or with
    ``optimize`` the precision of folding (float32 for a half type), cast to ``dtype`` only after folding."""
    return fold_dtype(dtype) if optimize else dtype


def place_model(model: nn.Module, *, dtype: torch.dtype, device: torch.device, optimize: bool) -> nn.Module:
    """``model`` (loaded in :func:`load_dtype`) on ``device`` in ``dtype``: with ``optimize``,
    :func:`optimize_for_inference`'s inference-only model; otherwise the model itself (in training mode),
    accepting a float batch of any dtype."""
    if optimize:
        return optimize_for_inference(model, dtype=dtype, device=device)
    return cast_inputs_to_model(model.to(device=device, dtype=dtype))
