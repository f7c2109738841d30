"""The forward pre-hook that lets a model take a float batch of any dtype: cast to its own dtype and layout."""

import torch
from torch import nn

# No ``from __future__ import annotations``: TorchScript compiles ``_cast_input`` (a hook of the model)
# and reads its annotations as types.


@torch.jit.unused
def _cast_eager(module: nn.Module, args: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
    """``args`` with a floating first argument cast to the dtype of ``module``'s parameters.

    A 4-D input becomes channels_last when the model's first 4-D parameter is channels_last.
    Other inputs are left alone (the model's own validation sees them). The device is not changed.
    """
    if not args or not isinstance(args[0], torch.Tensor) or not args[0].is_floating_point():
        return args
    x = args[0]
    parameter = next(module.parameters(), None)
    if parameter is None:
        return args
    memory_format = torch.preserve_format
    if x.dim() == 4:
        weight = next((p for p in module.parameters() if p.dim() == 4), None)
        if weight is not None and weight.is_contiguous(memory_format=torch.channels_last) \
                and not weight.is_contiguous():
            memory_format = torch.channels_last
    if x.dtype == parameter.dtype and memory_format is torch.preserve_format:
        return args
    return (x.to(dtype=parameter.dtype, memory_format=memory_format), *args[1:])


def _cast_input(module: nn.Module, args: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
    """Forward pre-hook: :func:`_cast_eager`'s cast. TorchScript compiles it as the identity (a scripted
    model, as timm's, takes its input in its own dtype and layout)."""
    if torch.jit.is_scripting():
        return args
    return _cast_eager(module, args)


def cast_inputs_to_model(model: nn.Module) -> nn.Module:
    """Make ``model`` accept a float batch of any floating dtype (e.g. float32 for a bf16 model).

    Registers a forward pre-hook (once: calling this again changes nothing) that casts the first
    argument to the dtype of the model's parameters, and to channels_last when the model is
    channels_last; the hook reads the model at every call, so it follows later ``.to()`` calls.
    ``torch.jit.script`` compiles the hook as the identity. Returns ``model``.
    """
    if _cast_input not in model._forward_pre_hooks.values():
        model.register_forward_pre_hook(_cast_input)
    return model
