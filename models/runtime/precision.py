"""Precision and device arguments of the entrypoints, and the hook that casts inputs to a model's dtype."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ..errors import InvalidArgumentError

MODEL_MATH = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64}


def parse_model_math(value: Any) -> torch.dtype:
    """The dtype of a ``model_math`` name: "fp32", "fp16", "bf16" or "fp64", in any case.

    ``model_math`` sets the dtype of the weights and activations; the arithmetic is PyTorch's for
    that dtype, and the library never changes PyTorch's global settings. So "fp32" on a GPU follows
    PyTorch's TF32 settings: by default cuDNN convolutions of float32 tensors run in TF32 on
    Ampere and newer GPUs (inputs rounded to 10 mantissa bits: logits about 1e-3 relative from
    strict float32), while matrix products stay IEEE float32. For strict float32 set
    ``torch.backends.cudnn.allow_tf32 = False`` (or ``NVIDIA_TF32_OVERRIDE=0``) before the first
    call, which an ``optimize=True`` model compiles and captures.
    """
    dtype = MODEL_MATH.get(value.lower()) if isinstance(value, str) else None
    if dtype is None:
        raise InvalidArgumentError(f"model_math={value!r} is not a precision; valid: {', '.join(MODEL_MATH)}")
    return dtype


class EmulatedPrecisionWarning(UserWarning):
    """The CPU has no instructions for the requested half precision: it is emulated, and slow."""


_NATIVE_PROBES = {torch.bfloat16: "_is_mkldnn_bf16_supported", torch.float16: "_is_mkldnn_fp16_supported"}


def _cpu_has_native(dtype: torch.dtype) -> bool:
    """Whether oneDNN finds bf16/fp16 instructions (AVX512_BF16, AMX) on this CPU; True when torch cannot say."""
    probe = getattr(torch.ops.mkldnn, _NATIVE_PROBES[dtype], None)
    return True if probe is None else bool(probe())


def warn_if_emulated(dtype: torch.dtype, device: torch.device) -> None:
    """Warn when a half precision is asked for on a CPU that would emulate it."""
    if device.type == "cpu" and dtype in _NATIVE_PROBES and not _cpu_has_native(dtype):
        name = next(key for key, value in MODEL_MATH.items() if value == dtype)
        warnings.warn(f"model_math={name!r}: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no {name} "
                      "instructions, so torch emulates them, several times slower than fp32 (7-20x in "
                      "benchmarks/RESULTS.md); model_math='fp32' with optimize=True is the fast choice here",
                      EmulatedPrecisionWarning, stacklevel=4)


def parse_device(value: Any) -> torch.device:
    """The ``torch.device`` of a ``device`` argument (None: the CPU); CUDA only where a GPU is present."""
    if value is None:
        return torch.device("cpu")
    if not isinstance(value, (str, torch.device)):
        raise InvalidArgumentError(f"device={value!r} is not a device; give a string such as 'cpu' or 'cuda:0'")
    try:
        device = torch.device(value)
    except RuntimeError as error:
        raise InvalidArgumentError(f"device={value!r} is not a device ({error})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidArgumentError(f"device={value!r}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidArgumentError(f"device={value!r}: there are only {torch.cuda.device_count()} CUDA devices")
    elif device.type != "cpu":
        raise InvalidArgumentError(f"device={value!r}: only 'cpu' and 'cuda' devices are supported")
    return device


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
