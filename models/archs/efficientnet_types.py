"""NVIDIA's EfficientNet variants and type names (``nvidia_efficientnet(type=...)``), without importing an architecture."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgumentError

RESOLUTIONS = {"b0": 224, "b4": 380, "widese_b0": 224, "widese_b4": 380}
"""Every served variant (entrypoint ``nvidia_efficientnet_<variant>``) and its input size in pixels."""
TYPES = {f"efficientnet-{variant.replace('_', '-')}": variant for variant in RESOLUTIONS}
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
