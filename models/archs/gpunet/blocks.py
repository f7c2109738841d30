"""Layers of the plain (non-distilled) GPUNet family: head, conv, fused_irb, irb and tail.

Submodule names and registration order reproduce the state-dict layout of NVIDIA's checkpoints
(``conv_pw``/``bn1``/``conv_dw``/..., ``se.conv_reduce``/``se.conv_expand``, ``net.<index>``).
The ``irb`` and ``fused_irb`` layers are timm's EfficientNet blocks, whose math and parameter
names are NVIDIA's. Every BatchNorm of this family uses ``eps=1e-3``.
"""

from functools import partial

import torch
from timm.layers import create_act_layer, get_padding
from timm.models._efficientnet_blocks import (
    EdgeResidual,
    InvertedResidual,
    SqueezeExcite,
)
from torch import nn

BN_EPS = 1e-3
SE_RATIO = 0.25


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def _block_options(exp_ratio: float, use_se: bool, act_layer: str, drop_path_rate: float) -> dict:
    """timm block keywords shared by ``irb`` and ``fused_irb``: the SE width is a quarter of the
    block's input width, i.e. ``SE_RATIO / exp_ratio`` of its expanded width."""
    return {
        "exp_ratio": exp_ratio,
        "act_layer": act_layer,
        "norm_layer": partial(nn.BatchNorm2d, eps=BN_EPS),
        "se_layer": partial(SqueezeExcite, rd_ratio=SE_RATIO / exp_ratio) if use_se else None,
        "drop_path_rate": drop_path_rate,
    }


def inverted_residual(in_chs: int, out_chs: int, kernel_size: int, stride: int, exp_ratio: float, use_se: bool,
                      act_layer: str, drop_path_rate: float = 0.0) -> InvertedResidual:
    """``irb`` layer (MBConv): 1x1 expansion, depthwise conv, optional SE, 1x1 linear projection."""
    return InvertedResidual(in_chs, out_chs, dw_kernel_size=kernel_size, stride=stride,
                            **_block_options(exp_ratio, use_se, act_layer, drop_path_rate))


def edge_residual(in_chs: int, out_chs: int, kernel_size: int, stride: int, exp_ratio: float, use_se: bool,
                  act_layer: str, drop_path_rate: float = 0.0) -> EdgeResidual:
    """``fused_irb`` layer (FusedMBConv): full expansion conv, optional SE, 1x1 linear projection.

    Padding of the expansion conv is NVIDIA's: their builder asks for TensorFlow-style "same"
    padding but only applies it where it is static (stride 1, symmetric ``kernel_size // 2``);
    where it would need dynamic, asymmetric padding (stride 2) it falls back to no padding at all.
    The checkpoints were trained that way, so stride 2 here is timm's "valid".
    """
    return EdgeResidual(in_chs, out_chs, exp_kernel_size=kernel_size, stride=stride,
                        pad_type="" if stride == 1 else "valid",
                        **_block_options(exp_ratio, use_se, act_layer, drop_path_rate))


class Prologue(nn.Module):
    """Stem (``head``): 3x3 stride-2 conv, BatchNorm, activation."""

    def __init__(self, in_chs: int, out_chs: int, act_layer: str) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_chs, out_chs, 3, stride=2, padding=1, bias=False),
            _bn(out_chs),
            create_act_layer(act_layer, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvBnAct(nn.Module):
    """``conv`` layer: convolution, BatchNorm, activation (no residual)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int, act_layer: str) -> None:
        super().__init__()
        padding = get_padding(kernel_size, stride)
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn1 = _bn(out_chs)
        self.act1 = create_act_layer(act_layer, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv(x)))


class ClassifierTail(nn.Module):
    """The last layer of a GPUNet (``tail``), as one ``net``: its first ``FEATURE_LAYERS`` layers end the
    feature map (a 1x1 conv, BatchNorm and ReLU), the next ones pool it to the pre-logits, the last is the
    classifier (an identity without classes).

    ``num_features`` is the width of the feature map, ``head_hidden_size`` that of the pre-logits;
    ``net[FEATURE_LAYERS]`` is the pooling and ``net[flatten_layer]`` flattens the pooled map.
    """

    FEATURE_LAYERS = 3

    def __init__(self, layers: list[nn.Module], num_classes: int, num_features: int, head_hidden_size: int) -> None:
        super().__init__()
        classifier = nn.Linear(head_hidden_size, num_classes) if num_classes else nn.Identity()
        self.net = nn.Sequential(*layers, classifier)
        self.flatten_layer = next(index for index, layer in enumerate(layers) if isinstance(layer, nn.Flatten))
        self.num_features = num_features
        self.head_hidden_size = head_hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Epilogue(ClassifierTail):
    """Classifier end (``tail``): 1x1 conv, BatchNorm, ReLU, global pool, dropout, linear."""

    def __init__(self, in_chs: int, out_chs: int, num_classes: int) -> None:
        super().__init__([
            nn.Conv2d(in_chs, out_chs, 1, bias=False),
            _bn(out_chs),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(p=0.2),
        ], num_classes, num_features=out_chs, head_hidden_size=out_chs)
