"""The names a deployed model goes by: model, tensors and class labels."""

from __future__ import annotations

from torch import nn

from ...processing.labels import imagenet_labels

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def deployed_name(model: nn.Module) -> str:
    """The entrypoint, plus the variant when there is one (``nvidia_gpunet_GPUNet-0``)."""
    cfg = model.pretrained_cfg
    return f"{cfg['entrypoint']}_{cfg['model_type']}" if cfg.get("model_type") else cfg["entrypoint"]


def class_labels(num_classes: int) -> tuple[str, ...]:
    """ImageNet-1k's class names for a 1000-class head, ``class <i>`` for any other head."""
    if num_classes == 1000:
        return imagenet_labels()
    return tuple(f"class {index}" for index in range(num_classes))
