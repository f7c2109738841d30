"""NVIDIA's EfficientNet variants and their one table.

Nothing here imports an architecture, so that the registry reads the table cheaply;
:mod:`.efficientnet` builds the models from it, and the registry derives NVIDIA's type names
(``nvidia_efficientnet(type="efficientnet-b0")``) from its keys.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EfficientNetVariant:
    """One of NVIDIA's EfficientNets: scaling, regularisation, squeeze-and-excitation width, input size."""

    width: float
    depth: float
    dropout: float
    drop_path: float  # 1 - survival probability of stochastic depth (training only)
    wide_se: bool
    resolution: int  # evaluation input in pixels (bicubic resize to resolution + 32, then a centre crop)
    quantized: bool = False  # NVIDIA's quantization-aware-trained 8-bit model (fake quantization)

    @property
    def scale(self) -> str:
        """"B0" or "B4": the compound scaling step."""
        return "B0" if self.width == 1.0 else "B4"


VARIANTS = {
    "b0": EfficientNetVariant(1.0, 1.0, 0.2, 0.0, False, 224),
    "b4": EfficientNetVariant(1.4, 1.8, 0.4, 0.2, False, 380),
    "widese_b0": EfficientNetVariant(1.0, 1.0, 0.2, 0.0, True, 224),
    "widese_b4": EfficientNetVariant(1.4, 1.8, 0.4, 0.2, True, 380),
    "quant_b0": EfficientNetVariant(1.0, 1.0, 0.2, 0.0, False, 224, quantized=True),
    "quant_b4": EfficientNetVariant(1.4, 1.8, 0.4, 0.2, False, 380, quantized=True),
}
"""Every served variant: entrypoint ``nvidia_efficientnet_<variant>``."""
