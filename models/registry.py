"""Which architecture and checkpoint conventions each model entrypoint uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from torch import nn

from . import classic
from .gpunet import build_gpunet, canonical_gpunet_type, gpunet_cfg
from .resnet import build_resnet, nvidia_se_key

IMAGENET_CFG = {"input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bilinear",
                "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


@dataclass(frozen=True)
class ModelSpec:
    """How to build one entrypoint's model and read its upstream checkpoints.

    ``build`` takes ``num_classes`` and the architecture's own keyword options; ``key_map``
    renames upstream checkpoint keys to the model's keys; ``canonical_type`` normalises the
    ``model_type`` keyword of entrypoints that serve several variants (their manifest entries
    are looked up per variant); ``default_cfg`` is the preprocessing used when the manifest in use
    has no entry for the model (a dict, or a function of the model type); ``no_weights_hint``
    completes the error of ``pretrained=True`` for models without published weights.
    ``pretrained_build_kwargs`` are build options that the checkpoints need (used, and fixed, only
    when weights are loaded) and ``after_load(model, options)`` adapts the model once they are
    loaded, given the user's build options.
    """

    build: Callable[..., nn.Module]
    key_map: Callable[[str], str] | None = None
    canonical_type: Callable[[str], str] | None = None
    default_cfg: dict[str, Any] | Callable[[str], dict[str, Any]] = field(default_factory=lambda: IMAGENET_CFG)
    no_weights_hint: str = ""
    pretrained_build_kwargs: dict[str, Any] = field(default_factory=dict)
    after_load: Callable[[nn.Module, dict[str, Any]], None] | None = None

    def preprocessing(self, model_type: str | None) -> dict[str, Any]:
        return self.default_cfg(model_type) if callable(self.default_cfg) else self.default_cfg


_FACEBOOK_ARCHITECTURES = ("resnet18", "resnet50", "resnext50_32x4d", "resnext101_32x4d",
                           "resnext101_32x8d", "resnext101_32x16d")

SPECS: dict[str, ModelSpec] = {
    "nvidia_resneXt": ModelSpec(partial(build_resnet, "resnext101_32x4d")),
    "nvidia_resnet50": ModelSpec(partial(build_resnet, "resnet50")),
    "nvidia_se_resnext101_32x4d": ModelSpec(partial(build_resnet, "se_resnext101_32x4d"),
                                            key_map=nvidia_se_key),
    **{f"{arch}_{kind}": ModelSpec(partial(build_resnet, arch))
       for arch in _FACEBOOK_ARCHITECTURES for kind in ("ssl", "swsl")},
    "nvidia_gpunet": ModelSpec(build_gpunet, canonical_type=canonical_gpunet_type, default_cfg=gpunet_cfg),
    "alexnet": ModelSpec(classic.build_alexnet),
    "vgg16": ModelSpec(classic.build_vgg16),
    "vgg16_bn": ModelSpec(classic.build_vgg16_bn),
    # As torchvision.models.googlenet(weights=...): built with the auxiliary heads that the
    # checkpoint holds and the input transform it was trained with, then the heads are dropped.
    "googlenet": ModelSpec(classic.build_googlenet, after_load=classic.drop_googlenet_aux,
                           pretrained_build_kwargs={"aux_logits": True, "transform_input": True,
                                                    "init_weights": False}),
    "resnet50": ModelSpec(classic.build_resnet50),
    "lenet5": ModelSpec(classic.build_lenet5, no_weights_hint="train it as notebooks/lenet5_digits.ipynb does",
                        default_cfg={"input_size": (1, 32, 32), "crop_pct": 1.0, "interpolation": "bilinear",
                                     "mean": (0.5,), "std": (0.5,)}),
}

ALIASES = {"nvidia_resnext101_32x4d": "nvidia_resneXt"}
