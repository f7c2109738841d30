"""Layers of the distilled GPUNet family: head, head_large, irb, fused_irb and tail.

This family is a different code path from the plain one: ReLU everywhere, no SE, no channel
rounding (expanded width is ``in_chs * expansion``), ``nn.Sequential`` bodies (state-dict keys
``net.<index>`` and ``body.<index>``) and PyTorch's default BatchNorm ``eps=1e-5``, except in the
fused IRB (``eps=1e-3``).
"""

import torch
from torch import nn

from .blocks import ClassifierTail


def _conv_bn_relu(in_chs: int, out_chs: int, kernel_size: int, stride: int) -> list[nn.Module]:
    conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
    return [conv, nn.BatchNorm2d(out_chs), nn.ReLU(inplace=True)]


class PrologueD(nn.Module):
    """Stem (``head``): 3x3 stride-2 conv, BatchNorm, ReLU."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.net = nn.Sequential(*_conv_bn_relu(in_chs, out_chs, 3, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PrologueLargeD(nn.Module):
    """Large stem (``head_large``): a 3x3 stride-2 conv-BN-ReLU, then two 3x3 stride-1 ones."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            *_conv_bn_relu(in_chs, out_chs, 3, 2),
            *_conv_bn_relu(out_chs, out_chs, 3, 1),
            *_conv_bn_relu(out_chs, out_chs, 3, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _ResidualBody(nn.Module):
    """A ``body`` with an identity shortcut when stride is 1 and the width is unchanged."""

    def __init__(self, body: nn.Sequential, residual: bool) -> None:
        super().__init__()
        self.body = body
        self.has_residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.has_residual else out


class InvertedResidualD(_ResidualBody):
    """``irb`` layer: 1x1 expansion (grouped), depthwise conv, 1x1 projection (grouped)."""

    def __init__(
        self, in_chs: int, out_chs: int, kernel_size: int, stride: int, expansion: int, groups: int
    ) -> None:
        mid_chs = in_chs * expansion
        body = nn.Sequential(
            nn.Conv2d(in_chs, mid_chs, 1, groups=groups, bias=False),
            nn.BatchNorm2d(mid_chs),
            nn.ReLU(inplace=True),
            nn.Conv2d(
                mid_chs,
                mid_chs,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                groups=mid_chs,
                bias=False,
            ),
            nn.BatchNorm2d(mid_chs),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_chs, out_chs, 1, groups=groups, bias=False),
            nn.BatchNorm2d(out_chs),
        )
        super().__init__(body, stride == 1 and in_chs == out_chs)


class FusedInvertedResidualD(_ResidualBody):
    """``fused_irb`` layer: full expansion conv, 1x1 projection; BatchNorm ``eps=1e-3``."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int, expansion: int) -> None:
        mid_chs = in_chs * expansion
        body = nn.Sequential(
            nn.Conv2d(in_chs, mid_chs, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(mid_chs, eps=1e-3),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_chs, out_chs, 1, bias=False),
            nn.BatchNorm2d(out_chs, eps=1e-3),
        )
        super().__init__(body, stride == 1 and in_chs == out_chs)


class EpilogueD(ClassifierTail):
    """Classifier end (``tail``): 1x1 conv to 1152, BN, ReLU, pool, 1x1 conv, ReLU, dropout, linear."""

    HIDDEN_CHS = 1152

    def __init__(self, in_chs: int, out_chs: int, num_classes: int) -> None:
        super().__init__([
            nn.Conv2d(in_chs, self.HIDDEN_CHS, 1, bias=False),
            nn.BatchNorm2d(self.HIDDEN_CHS),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(self.HIDDEN_CHS, out_chs, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Dropout(p=0.2),
        ], num_classes, num_features=self.HIDDEN_CHS, head_hidden_size=out_chs)
