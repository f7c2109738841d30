"""The precision (``model_math``) and device arguments of the entrypoints."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ...processing.devices import parse_device as processing_device
from ..errors import InvalidArgumentError

MODEL_MATH = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64}


def parse_model_math(value: Any) -> torch.dtype:
    """The dtype of a ``model_math`` name: "fp32", "fp16", "bf16" or "fp64", in any case.

    ``model_math`` sets the dtype of the weights and activations; the arithmetic is PyTorch's for
    that dtype, and the library never changes PyTorch's global settings. So "fp32" on a GPU follows
    PyTorch's TF32 settings: by default cuDNN convolutions of float32 tensors run in TF32 on
    Ampere and newer GPUs (inputs rounded to 10 mantissa bits: logits about 1e-3 relative from
    strict float32), while matrix products stay IEEE float32. For strict float32 set
    ``torch.backends.cudnn.conv.fp32_precision = "ieee"`` (or ``NVIDIA_TF32_OVERRIDE=0``) before
    the first call, which an ``optimize=True`` model compiles and captures.
    """
    dtype = MODEL_MATH.get(value.lower()) if isinstance(value, str) else None
    if dtype is None:
        raise InvalidArgumentError(f"model_math={value!r} is not a precision; valid: {', '.join(MODEL_MATH)}"
                                   ", and int8 (a CPU model quantized by ONNX Runtime)")
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
                      "instructions, so torch emulates them, several times slower than fp32 (see "
                      "benchmarks/RESULTS.md); model_math='fp32' with optimize=True is the fast choice here",
                      EmulatedPrecisionWarning, stacklevel=4)


def parse_device(value: Any) -> torch.device:
    """The ``torch.device`` of a model's ``device`` argument; CUDA only where a GPU is present. None is where
    torch builds tensors now, as timm's models are built: the CPU, unless ``torch.set_default_device`` or a
    ``with torch.device("meta"):`` block says otherwise."""
    if value is None:
        return torch.get_default_device()
    if isinstance(value, bool):
        raise InvalidArgumentError(f"device={value!r} is not a device; give a string such as 'cpu' or 'cuda:0'")
    return processing_device(value, "device")
