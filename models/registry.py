"""Which architecture and checkpoint conventions each model entrypoint uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from .gpunet import build_gpunet, canonical_gpunet_type
from .resnet import build_resnet, nvidia_se_key


@dataclass(frozen=True)
class ModelSpec:
    """How to build one entrypoint's model and read its upstream checkpoints.

    ``build`` takes ``num_classes`` and the architecture's own keyword options; ``key_map``
    renames upstream checkpoint keys to the model's keys; ``canonical_type`` normalises the
    ``model_type`` keyword of entrypoints that serve several variants (their manifest entries
    are looked up per variant); ``default_cfg`` is the preprocessing of models that have no
    manifest entry.
    """

    build: Callable[..., nn.Module]
    key_map: Callable[[str], str] | None = None
    canonical_type: Callable[[str], str] | None = None
    default_cfg: dict[str, Any] | None = None


_FACEBOOK_ARCHITECTURES = ("resnet18", "resnet50", "resnext50_32x4d", "resnext101_32x4d",
                           "resnext101_32x8d", "resnext101_32x16d")

SPECS: dict[str, ModelSpec] = {
    "nvidia_resneXt": ModelSpec(partial(build_resnet, "resnext101_32x4d")),
    "nvidia_resnet50": ModelSpec(partial(build_resnet, "resnet50")),
    "nvidia_se_resnext101_32x4d": ModelSpec(partial(build_resnet, "se_resnext101_32x4d"),
                                            key_map=nvidia_se_key),
    **{f"{arch}_{kind}": ModelSpec(partial(build_resnet, arch))
       for arch in _FACEBOOK_ARCHITECTURES for kind in ("ssl", "swsl")},
    "nvidia_gpunet": ModelSpec(build_gpunet, canonical_type=canonical_gpunet_type),
}

ALIASES = {"nvidia_resnext101_32x4d": "nvidia_resneXt"}
