"""Which architecture and checkpoint conventions each model entrypoint uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from .resnet import build_resnet, nvidia_se_key


@dataclass(frozen=True)
class ModelSpec:
    """How to build one entrypoint's model and read its upstream checkpoints.

    ``build`` takes ``num_classes`` and the architecture's own keyword options; ``classifier``
    is the state-dict prefix of the classification layer (replaced when ``num_classes`` differs
    from the checkpoint's); ``key_map`` renames upstream checkpoint keys to the model's keys;
    ``default_cfg`` is the preprocessing of models that have no manifest entry.
    """

    build: Callable[..., nn.Module]
    classifier: str
    key_map: Callable[[str], str] | None = None
    default_cfg: dict[str, Any] | None = None


_FACEBOOK_ARCHITECTURES = ("resnet18", "resnet50", "resnext50_32x4d", "resnext101_32x4d",
                           "resnext101_32x8d", "resnext101_32x16d")

SPECS: dict[str, ModelSpec] = {
    "nvidia_resneXt": ModelSpec(partial(build_resnet, "resnext101_32x4d"), "fc"),
    "nvidia_resnet50": ModelSpec(partial(build_resnet, "resnet50"), "fc"),
    "nvidia_se_resnext101_32x4d": ModelSpec(partial(build_resnet, "se_resnext101_32x4d"), "fc",
                                            key_map=nvidia_se_key),
    **{f"{arch}_{kind}": ModelSpec(partial(build_resnet, arch), "fc")
       for arch in _FACEBOOK_ARCHITECTURES for kind in ("ssl", "swsl")},
}

ALIASES = {"nvidia_resnext101_32x4d": "nvidia_resneXt"}
