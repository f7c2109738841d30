"""Which architecture and checkpoint conventions each model entrypoint uses."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

from torch import nn

from .archs.efficientnet_types import RESOLUTIONS as EFFICIENTNET_RESOLUTIONS
from .archs.gpunet.types import canonical_gpunet_type

IMAGENET_CFG = {"input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bilinear",
                "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


class Lazy:
    """``module:function`` of this package (with leading positional arguments), imported at the first call.

    The registry names the builders this way, so that importing hubconf (``torch.hub.list``,
    ``torch.hub.help``) does not import timm or torchvision's model zoo; ``inspect.signature``
    sees the function's own signature, less the bound arguments.
    """

    def __init__(self, reference: str, *args: Any) -> None:
        self.reference = reference
        self.args = args

    @cached_property
    def function(self) -> Callable[..., Any]:
        module, name = self.reference.split(":")
        resolved = getattr(importlib.import_module(f"{__package__}.{module}"), name)
        return partial(resolved, *self.args) if self.args else resolved

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Lazy({', '.join(map(repr, (self.reference, *self.args)))})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lazy) and (self.reference, self.args) == (other.reference, other.args)

    def __hash__(self) -> int:
        return hash((self.reference, self.args))


@dataclass(frozen=True)
class ModelSpec:
    """How to build one entrypoint's model and read its upstream checkpoints.

    ``build`` (usually a :class:`Lazy` reference) takes ``num_classes`` and the architecture's own keyword options; ``key_map``
    renames upstream checkpoint keys to the model's keys; ``canonical_type`` normalises the
    ``model_type`` keyword of entrypoints that serve several variants (their manifest entries
    are looked up per variant); ``default_cfg`` is the preprocessing used when the manifest in use
    has no entry for the model (a dict, or a function of the model type); ``no_weights_hint``
    completes the error of ``pretrained=True`` for models without published weights.
    ``pretrained_build_kwargs`` are build options that the checkpoints need (used, and fixed, only
    when weights are loaded) and ``after_load(model, options)`` adapts the model once they are
    loaded, given the user's build options.
    ``classifier`` is the qualified name of the classifier (timm's ``default_cfg["classifier"]``; a
    function of the model type where it depends on it): with pretrained weights of another number of
    classes, it is re-initialised, and so are ``aux_classifiers``, other classifiers the checkpoints hold.
    """

    build: Callable[..., nn.Module]
    classifier: str | Callable[[str], str]
    key_map: Callable[[str], str] | None = None
    canonical_type: Callable[[str], str] | None = None
    default_cfg: dict[str, Any] | Callable[[str], dict[str, Any]] = field(default_factory=lambda: IMAGENET_CFG)
    no_weights_hint: str = ""
    pretrained_build_kwargs: dict[str, Any] = field(default_factory=dict)
    after_load: Callable[[nn.Module, dict[str, Any]], None] | None = None
    aux_classifiers: tuple[str, ...] = ()

    def classifier_name(self, model_type: str | None) -> str:
        return self.classifier(model_type) if callable(self.classifier) else self.classifier

    def preprocessing(self, model_type: str | None) -> dict[str, Any]:
        return self.default_cfg(model_type) if callable(self.default_cfg) else self.default_cfg


def _nvidia_efficientnet_cfg(resolution: int) -> dict[str, Any]:
    """NVIDIA's EfficientNet evaluation: bicubic resize to resolution + 32, then a centre crop."""
    return {**IMAGENET_CFG, "input_size": (3, resolution, resolution), "crop_pct": resolution / (resolution + 32),
            "interpolation": "bicubic"}


_FACEBOOK_ARCHITECTURES = ("resnet18", "resnet50", "resnext50_32x4d", "resnext101_32x4d",
                           "resnext101_32x8d", "resnext101_32x16d")

SPECS: dict[str, ModelSpec] = {
    "nvidia_resneXt": ModelSpec(Lazy("archs.resnet:build_resnet", "resnext101_32x4d"), classifier="fc"),
    "nvidia_resnet50": ModelSpec(Lazy("archs.resnet:build_resnet", "resnet50"), classifier="fc"),
    "nvidia_se_resnext101_32x4d": ModelSpec(Lazy("archs.resnet:build_resnet", "se_resnext101_32x4d"), classifier="fc",
                                            key_map=Lazy("archs.resnet:nvidia_se_key")),
    **{f"{arch}_{kind}": ModelSpec(Lazy("archs.resnet:build_resnet", arch), classifier="fc")
       for arch in _FACEBOOK_ARCHITECTURES for kind in ("ssl", "swsl")},
    "nvidia_gpunet": ModelSpec(Lazy("archs.gpunet.model:build_gpunet"),
                               classifier=Lazy("archs.gpunet.model:gpunet_classifier"), canonical_type=canonical_gpunet_type,
                               default_cfg=Lazy("archs.gpunet.model:gpunet_cfg")),
    **{f"nvidia_efficientnet_{variant}": ModelSpec(
        Lazy("archs.efficientnet:build_nvidia_efficientnet", variant), classifier="classifier",
        key_map=Lazy("archs.efficientnet:nvidia_efficientnet_key"),
        default_cfg=_nvidia_efficientnet_cfg(resolution))
       for variant, resolution in EFFICIENTNET_RESOLUTIONS.items()},
    "alexnet": ModelSpec(Lazy("archs.classic:build_alexnet"), classifier="classifier.6"),
    "vgg16": ModelSpec(Lazy("archs.classic:build_vgg16"), classifier="classifier.6"),
    "vgg16_bn": ModelSpec(Lazy("archs.classic:build_vgg16_bn"), classifier="classifier.6"),
    # As torchvision.models.googlenet(weights=...): built with the auxiliary heads that the
    # checkpoint holds and the input transform it was trained with, then the heads are dropped.
    "googlenet": ModelSpec(Lazy("archs.classic:build_googlenet"), classifier="fc", aux_classifiers=("aux1.fc2", "aux2.fc2"),
                           after_load=Lazy("archs.classic:drop_googlenet_aux"),
                           pretrained_build_kwargs={"aux_logits": True, "transform_input": True,
                                                    "init_weights": False}),
    "resnet50": ModelSpec(Lazy("archs.classic:build_resnet50"), classifier="fc"),
    "lenet5": ModelSpec(Lazy("archs.classic:build_lenet5"), classifier="classifier.2",
                        no_weights_hint="train it as notebooks/lenet5_digits.ipynb does",
                        default_cfg={"input_size": (1, 32, 32), "crop_pct": 1.0, "interpolation": "bilinear",
                                     "mean": (0.5,), "std": (0.5,)}),
}

ALIASES = {"nvidia_resnext101_32x4d": "nvidia_resneXt"}
DISPATCHERS: dict[str, tuple[str, ...]] = {
    "nvidia_efficientnet": tuple(f"nvidia_efficientnet_{variant}" for variant in EFFICIENTNET_RESOLUTIONS),
}
"""Entrypoints that take NVIDIA's ``type=`` and return the model of one of these entrypoints."""
