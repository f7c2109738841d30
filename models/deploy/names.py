"""The names a deployed model goes by: model, tensors and class labels."""

from __future__ import annotations

from torch import nn

from ...processing.labels import class_names
from ..runtime.tensor_names import INPUT_NAME, OUTPUT_NAME

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "class_labels", "deployed_name"]


def deployed_name(model: nn.Module) -> str:
    """The entrypoint, plus the variant when there is one (``nvidia_gpunet_GPUNet-0``)."""
    cfg = model.pretrained_cfg
    return f"{cfg['entrypoint']}_{cfg['model_type']}" if cfg.get("model_type") else cfg["entrypoint"]


def class_labels(model: nn.Module) -> tuple[str, ...]:
    """The model's class names (a fine-tuned checkpoint's own, ImageNet-1k's, or ``class <i>``)."""
    return class_names(model.pretrained_cfg)
