"""NVIDIA's EfficientNets (DeepLearningExamples ConvNets, NGC 20.12.0), built from timm's EfficientNet.

NVIDIA's model is the EfficientNet of Tan and Le (2019) with SiLU, BatchNorm eps 1e-3 and
symmetric padding: timm's ``EfficientNet`` with timm's blocks (``DepthwiseSeparableConv``,
``InvertedResidual``, ``SqueezeExcite``) computes the same. Two things are NVIDIA's own: the
WideSE variants size the squeeze-and-excitation layer from the expanded width (timm: from the
block input), and the checkpoints name the stages ``layer1``..``layer7``, which
:func:`nvidia_efficientnet_key` renames to timm's names. The quantized variants are this model with
NVIDIA's fake-quantized modules (:mod:`.efficientnet_quant`).
"""

from __future__ import annotations

import re
from functools import partial

from timm.models._efficientnet_builder import decode_arch_def, round_channels
from timm.models.efficientnet import EfficientNet
from torch import nn

from .efficientnet_quant import quantize_efficientnet
from .efficientnet_types import VARIANTS
from .timm_api import checked_global_pool

# Stage: block kind, repeats, kernel, stride, expansion, output channels (EfficientNet-B0).
_STAGES = (("ds", 1, 3, 1, 1, 16), ("ir", 2, 3, 2, 6, 24), ("ir", 2, 5, 2, 6, 40), ("ir", 3, 3, 2, 6, 80),
           ("ir", 3, 5, 1, 6, 112), ("ir", 4, 5, 2, 6, 192), ("ir", 1, 3, 1, 6, 320))
_SE_RATIO = 0.25
_BN_EPS = 1e-3


def build_nvidia_efficientnet(variant: str, num_classes: int = 1000, in_chans: int = 3,
                              drop_rate: float | None = None, drop_path_rate: float | None = None,
                              global_pool: str = "avg") -> nn.Module:
    """NVIDIA's EfficientNet ``variant`` (a key of ``VARIANTS``: "b0", ..., "quant_b4") as a timm ``EfficientNet``.

    ``drop_rate`` (dropout before the classifier) and ``drop_path_rate`` (stochastic depth) default to
    NVIDIA's training values; both act only in training mode. ``global_pool`` is timm's (its pool types;
    "" with ``num_classes=0``: the model returns the feature map).
    """
    spec = VARIANTS[variant]
    arch_def = []
    for kind, repeats, kernel, stride, expansion, channels in _STAGES:
        # timm divides the SE ratio by the expansion (SE width from the block input); WideSE sizes it
        # from the expanded width, so its ratio is given multiplied by the expansion.
        se_ratio = _SE_RATIO * expansion if spec.wide_se else _SE_RATIO
        arch_def.append([f"{kind}_r{repeats}_k{kernel}_s{stride}_e{expansion}_c{channels}_se{se_ratio:g}"])
    round_chs = partial(round_channels, multiplier=spec.width, divisor=8)
    model = EfficientNet(
        block_args=decode_arch_def(arch_def, spec.depth, depth_trunc="ceil"),
        num_classes=num_classes, in_chans=in_chans, num_features=round_chs(1280), stem_size=32, round_chs_fn=round_chs,
        act_layer=nn.SiLU, norm_layer=partial(nn.BatchNorm2d, eps=_BN_EPS),
        drop_rate=spec.dropout if drop_rate is None else drop_rate,
        drop_path_rate=spec.drop_path if drop_path_rate is None else drop_path_rate,
        global_pool=checked_global_pool(global_pool, num_classes),
    )
    return quantize_efficientnet(model) if spec.quantized else model


_BLOCK_KEY = re.compile(r"^layer(\d+)\.block(\d+)\.(\w+)\.(.*)$")
# NVIDIA's layer names in a block -> timm's, for blocks without (ds) and with (ir) an expansion.
_DS_NAMES = {"depsep.conv": "conv_dw", "depsep.bn": "bn1", "proj.conv": "conv_pw", "proj.bn": "bn2"}
_IR_NAMES = {"expand.conv": "conv_pw", "expand.bn": "bn1", "depsep.conv": "conv_dw", "depsep.bn": "bn2",
             "proj.conv": "conv_pwl", "proj.bn": "bn3"}
_SE_NAMES = {"squeeze": "conv_reduce", "expand": "conv_expand"}
_TOP_NAMES = {"stem.conv.": "conv_stem.", "stem.bn.": "bn1.", "features.conv.": "conv_head.",
              "features.bn.": "bn2.", "classifier.fc.": "classifier.", "classifier.pooling.": "global_pool."}


def nvidia_efficientnet_key(key: str) -> str:
    """An NGC EfficientNet checkpoint key (``layer2.block0.expand.conv.weight``) as timm's model names it."""
    match = _BLOCK_KEY.match(key)
    if match is None:
        return next((timm + key[len(nvidia):] for nvidia, timm in _TOP_NAMES.items() if key.startswith(nvidia)), key)
    stage, block, layer, rest = match.groups()
    prefix = f"blocks.{int(stage) - 1}.{block}."
    if layer == "se":
        name, leaf = rest.split(".", 1)
        return f"{prefix}se.{_SE_NAMES.get(name, name)}.{leaf}"
    if layer == "residual_quantizer":  # quantized blocks: residual_quantizer._amax
        return f"{prefix}{layer}.{rest}"
    module, leaf = rest.split(".", 1)
    names = _DS_NAMES if _STAGES[int(stage) - 1][0] == "ds" else _IR_NAMES
    return prefix + names.get(f"{layer}.{module}", f"{layer}.{module}") + "." + leaf
