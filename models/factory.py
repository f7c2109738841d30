"""The one path every model entrypoint takes: build and load (:mod:`.builder`), then place (:mod:`.runtime.placement`)."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..processing import torchvision_pair  # noqa: F401 -- first: a mismatched torchvision is one clear line
from .archs.timm_api import OutIndices
from .builder import build_model
from .errors import InvalidArgumentError
from .runtime.int8 import check_int8_options, is_int8, quantize_int8
from .runtime.int8_calibration import Calibration
from .runtime.placement import load_dtype, place_model
from .runtime.precision import parse_device, parse_model_math, warn_if_emulated


def create_model(entrypoint: str, *, pretrained: bool = True, progress: bool = True,
                 weights: str | os.PathLike | None = None, model_math: str = "fp32",
                 device: str | torch.device | None = None, optimize: bool = False, features_only: bool = False,
                 out_indices: OutIndices = None, calibration: Calibration = None, **kwargs: Any) -> nn.Module:
    """Build ``entrypoint``'s model, load its weights, attach ``pretrained_cfg``, set precision and device.

    With ``optimize=True`` the result is :func:`.runtime.optimize.optimize_for_inference`'s inference-only
    model (weights loaded and BatchNorm folded in float32, or float64 for "fp64", then cast);
    otherwise the model (in training mode) is moved to ``device`` and ``model_math`` and accepts a
    float batch of any dtype. With ``features_only=True`` it is timm's feature extractor of the
    model, whose ``pretrained_cfg`` has no classifier. With ``model_math="int8"`` it is
    :func:`.runtime.int8.quantize_int8`'s CPU model, calibrated on ``calibration``.
    """
    int8 = is_int8(model_math)
    dtype = parse_model_math("fp32" if int8 else model_math)
    target = parse_device(device)
    check_int8_options(entrypoint, model_math, target, features_only, calibration)
    warn_if_emulated(dtype, target)
    for option, value in (("optimize", optimize), ("features_only", features_only)):
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"{option}={value!r} must be True or False")
    model = build_model(entrypoint, pretrained=pretrained, progress=progress, weights=weights,
                        dtype=load_dtype(dtype, optimize), features_only=features_only, out_indices=out_indices,
                        **kwargs)
    if int8:
        return quantize_int8(model, calibration)
    return place_model(model, dtype=dtype, device=target, optimize=optimize)
