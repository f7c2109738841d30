"""The forward pre-hook that lets a model take a float batch of any dtype: cast to its own dtype and layout."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _cast_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Forward pre-hook: a floating first argument is cast to the dtype of ``module``'s parameters.

    A 4-D input becomes channels_last when the model's first 4-D parameter is channels_last.
    Other inputs are left alone (the model's own validation sees them). The device is not changed.
    """
    if not args or not isinstance(args[0], torch.Tensor) or not args[0].is_floating_point():
        return None
    x = args[0]
    parameter = next(module.parameters(), None)
    if parameter is None:
        return None
    memory_format = torch.preserve_format
    if x.dim() == 4:
        weight = next((p for p in module.parameters() if p.dim() == 4), None)
        if weight is not None and weight.is_contiguous(memory_format=torch.channels_last) \
                and not weight.is_contiguous():
            memory_format = torch.channels_last
    if x.dtype == parameter.dtype and memory_format is torch.preserve_format:
        return None
    return (x.to(dtype=parameter.dtype, memory_format=memory_format), *args[1:])


def cast_inputs_to_model(model: nn.Module) -> nn.Module:
    """Make ``model`` accept a float batch of any floating dtype (e.g. float32 for a bf16 model).

    Registers a forward pre-hook (once: calling this again changes nothing) that casts the first
    argument to the dtype of the model's parameters, and to channels_last when the model is
    channels_last; the hook reads the model at every call, so it follows later ``.to()`` calls.
    Returns ``model``.
    """
    if _cast_input not in model._forward_pre_hooks.values():
        model.register_forward_pre_hook(_cast_input)
    return model
