"""NVIDIA's EfficientNet variants, their one table, and NVIDIA's type names (``nvidia_efficientnet(type=...)``).

Nothing here imports an architecture, so that hubconf and the registry read the table cheaply;
:mod:`.efficientnet` builds the models from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError


@dataclass(frozen=True)
class EfficientNetVariant:
    """One of NVIDIA's EfficientNets: scaling, regularisation, squeeze-and-excitation width, input size."""

    width: float
    depth: float
    dropout: float
    drop_path: float  # 1 - survival probability of stochastic depth (training only)
    wide_se: bool
    resolution: int  # evaluation input in pixels (bicubic resize to resolution + 32, then a centre crop)

    @property
    def scale(self) -> str:
        """"B0" or "B4": the compound scaling step."""
        return "B0" if self.width == 1.0 else "B4"


VARIANTS = {
    "b0": EfficientNetVariant(1.0, 1.0, 0.2, 0.0, False, 224),
    "b4": EfficientNetVariant(1.4, 1.8, 0.4, 0.2, False, 380),
    "widese_b0": EfficientNetVariant(1.0, 1.0, 0.2, 0.0, True, 224),
    "widese_b4": EfficientNetVariant(1.4, 1.8, 0.4, 0.2, True, 380),
}
"""Every served variant: entrypoint ``nvidia_efficientnet_<variant>``."""
TYPES = {f"efficientnet-{variant.replace('_', '-')}": variant for variant in VARIANTS}
QUANTIZED_TYPES = ("efficientnet-quant-b0", "efficientnet-quant-b4")


def entrypoint_of_type(model_type: Any) -> str:
    """The entrypoint serving NVIDIA's ``type`` name ("efficientnet-b0", ..., in any case)."""
    key = model_type.strip().lower() if isinstance(model_type, str) else None
    if key in QUANTIZED_TYPES:
        raise InvalidArgumentError(
            f"type={model_type!r} is a quantization-aware-training checkpoint that needs NVIDIA's "
            f"pytorch_quantization to run; it is not served. Valid types: {', '.join(TYPES)}")
    if key not in TYPES:
        raise InvalidArgumentError(f"type={model_type!r} is not an EfficientNet type; valid: {', '.join(TYPES)}")
    return f"nvidia_efficientnet_{TYPES[key]}"
