"""NVIDIA's quantization-aware EfficientNets (NGC 21.03.0 ``efficientnet-quant-b0``/``-b4``) on timm's EfficientNet.

NVIDIA builds them with ``pytorch_quantization``'s module substitution: every convolution, the linear classifier
and every average pooling get a fake-quantized input (per tensor) and, for weights, per-output-channel fake
quantization (:mod:`.fake_quantization`). Its quantized blocks differ from the float ones in three places, all
reproduced here:

- squeeze-and-excitation is NVIDIA's TensorRT form: quantized average pooling, 1x1 convolutions, and the product
  of the quantized gate (``mul_a_quantizer``) and the quantized block activation (``mul_b_quantizer``);
- a block with a residual adds the branch to its quantized input (``residual_quantizer``);
- the classifier's pooling quantizes its input (NVIDIA's ``classifier.pooling``, here ``global_pool``).

:func:`quantize_efficientnet` turns a float model of :func:`.efficientnet.build_nvidia_efficientnet` into this
form in place of its modules, keeping timm's module names (NGC keys are renamed by
:func:`.efficientnet.nvidia_efficientnet_key`), so that timm's API and ``features_only`` work unchanged.
"""

from __future__ import annotations

import torch
from timm.models._efficientnet_blocks import (
    DepthwiseSeparableConv,
    InvertedResidual,
    SqueezeExcite,
)
from timm.models.efficientnet import EfficientNet
from torch import nn

from .fake_quantization import (
    QuantConv2d,
    QuantGlobalAvgPool,
    QuantLinear,
    TensorQuantizer,
)


class QuantSqueezeExcite(nn.Module):
    """NVIDIA's ``SequentialSqueezeAndExcitationTRT`` with quantization: ``mul_a(gate) * mul_b(x)``."""

    def __init__(self, se: SqueezeExcite) -> None:
        super().__init__()
        self.pooling = QuantGlobalAvgPool()
        self.conv_reduce = QuantConv2d.from_float(se.conv_reduce)
        self.act1 = se.act1
        self.conv_expand = QuantConv2d.from_float(se.conv_expand)
        self.gate = se.gate
        self.mul_a_quantizer = TensorQuantizer()
        self.mul_b_quantizer = TensorQuantizer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.gate(self.conv_expand(self.act1(self.conv_reduce(self.pooling(x)))))
        return self.mul_a_quantizer(gate) * self.mul_b_quantizer(x)


class _QuantBlock(nn.Module):
    """A block of timm's whose convolutions and SE are quantized, with the residual input quantized."""

    def __init__(self, block: DepthwiseSeparableConv | InvertedResidual, layers: tuple[str, ...]) -> None:
        super().__init__()
        self.layers = layers
        for name in layers:
            module = getattr(block, name)
            if isinstance(module, nn.Conv2d):
                module = QuantConv2d.from_float(module)
            elif isinstance(module, SqueezeExcite):
                module = QuantSqueezeExcite(module)
            self.add_module(name, module)
        self.has_skip = block.has_skip
        self.drop_path = block.drop_path
        self.residual_quantizer = TensorQuantizer() if self.has_skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        for name in self.layers:
            x = getattr(self, name)(x)
        if self.has_skip:
            x = self.drop_path(x) + self.residual_quantizer(shortcut)
        return x


_DS_LAYERS = ("conv_dw", "bn1", "se", "conv_pw", "bn2")
_IR_LAYERS = ("conv_pw", "bn1", "conv_dw", "bn2", "se", "conv_pwl", "bn3")


def _quantized_block(block: nn.Module) -> _QuantBlock:
    if isinstance(block, DepthwiseSeparableConv):
        return _QuantBlock(block, _DS_LAYERS)
    if isinstance(block, InvertedResidual):
        return _QuantBlock(block, _IR_LAYERS)
    raise TypeError(f"no quantized form of {type(block).__name__}")


def quantize_efficientnet(model: EfficientNet) -> EfficientNet:
    """``model`` with NVIDIA's quantized modules in place of its float ones (the same weights, quantizers
    uncalibrated until a checkpoint's ``_amax`` values are loaded); returns ``model``."""
    model.conv_stem = QuantConv2d.from_float(model.conv_stem)
    for stage in model.blocks:
        for index, block in enumerate(stage):
            stage[index] = _quantized_block(block)
    model.conv_head = QuantConv2d.from_float(model.conv_head)
    if model.global_pool.pool_type == "avg":  # NVIDIA's quantized pooling; another timm pooling stays as built
        model.global_pool = QuantGlobalAvgPool(flatten=True)
    if isinstance(model.classifier, nn.Linear):  # not num_classes=0's identity
        model.classifier = QuantLinear.from_float(model.classifier)
    return model
