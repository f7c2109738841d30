"""Layers of the plain (non-distilled) GPUNet family: head, conv, fused_irb, irb and tail.

Submodule names and registration order reproduce the state-dict layout of NVIDIA's checkpoints
(``conv_pw``/``bn1``/``conv_dw``/..., ``se.conv_reduce``/``se.conv_expand``, ``net.<index>``).
Every BatchNorm of this family uses ``eps=1e-3``.
"""

import torch
from timm.layers import DropPath, create_act_layer, get_padding, make_divisible
from torch import nn

BN_EPS = 1e-3
SE_RATIO = 0.25


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def _drop_path(rate: float) -> nn.Module:
    return DropPath(rate) if rate > 0.0 else nn.Identity()


def fused_irb_padding(kernel_size: int, stride: int) -> int:
    """Padding of a fused IRB's expansion conv, as NVIDIA's builder computes it.

    The builder asks for TensorFlow-style "same" padding but only applies it where it is static
    (stride 1): symmetric ``kernel_size // 2``. Where "same" would need dynamic, asymmetric padding
    (stride 2), it falls back to a plain convolution with no padding at all. The checkpoints were
    trained with that behaviour, so it is reproduced here.
    """
    return get_padding(kernel_size) if stride == 1 else 0


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global mean, 1x1 reduce, activation, 1x1 expand, sigmoid gate.

    The reduced width is ``round(channels * rd_ratio)``. (timm's ``timm.layers.SqueezeExcite`` has the
    same math but names its convs ``fc1``/``fc2``; the checkpoints use ``conv_reduce``/``conv_expand``.)
    """

    def __init__(self, channels: int, rd_ratio: float, act_layer: str) -> None:
        super().__init__()
        rd_channels = round(channels * rd_ratio)
        self.conv_reduce = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.act1 = create_act_layer(act_layer, inplace=True)
        self.conv_expand = nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.conv_expand(self.act1(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x * self.gate(scale)


def _squeeze_excite(channels: int, exp_ratio: float, act_layer: str, use_se: bool) -> nn.Module:
    return SqueezeExcite(channels, SE_RATIO / exp_ratio, act_layer) if use_se else nn.Identity()


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


class InvertedResidual(nn.Module):
    """``irb`` layer (MBConv): 1x1 expansion, depthwise conv, optional SE, 1x1 linear projection.

    The expanded width is ``make_divisible(in_chs * exp_ratio, 8)``; the block is residual when
    stride is 1 and the width is unchanged.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int,
        stride: int,
        exp_ratio: float,
        use_se: bool,
        act_layer: str,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        mid_chs = make_divisible(in_chs * exp_ratio)
        self.has_residual = stride == 1 and in_chs == out_chs
        self.conv_pw = nn.Conv2d(in_chs, mid_chs, 1, bias=False)
        self.bn1 = _bn(mid_chs)
        self.act1 = create_act_layer(act_layer, inplace=True)
        self.conv_dw = nn.Conv2d(
            mid_chs,
            mid_chs,
            kernel_size,
            stride=stride,
            padding=get_padding(kernel_size, stride),
            groups=mid_chs,
            bias=False,
        )
        self.bn2 = _bn(mid_chs)
        self.act2 = create_act_layer(act_layer, inplace=True)
        self.se = _squeeze_excite(mid_chs, exp_ratio, act_layer, use_se)
        self.conv_pwl = nn.Conv2d(mid_chs, out_chs, 1, bias=False)
        self.bn3 = _bn(out_chs)
        self.drop_path = _drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv_pw(x)))
        out = self.act2(self.bn2(self.conv_dw(out)))
        out = self.bn3(self.conv_pwl(self.se(out)))
        return self.drop_path(out) + x if self.has_residual else out


class EdgeResidual(nn.Module):
    """``fused_irb`` layer (FusedMBConv): full expansion conv, optional SE, 1x1 linear projection.

    The expanded width is ``make_divisible(in_chs * exp_ratio, 8)``; padding follows
    :func:`fused_irb_padding`; the block is residual when stride is 1 and the width is unchanged.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int,
        stride: int,
        exp_ratio: float,
        use_se: bool,
        act_layer: str,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        mid_chs = make_divisible(in_chs * exp_ratio)
        self.has_residual = stride == 1 and in_chs == out_chs
        self.conv_exp = nn.Conv2d(
            in_chs,
            mid_chs,
            kernel_size,
            stride=stride,
            padding=fused_irb_padding(kernel_size, stride),
            bias=False,
        )
        self.bn1 = _bn(mid_chs)
        self.act1 = create_act_layer(act_layer, inplace=True)
        self.se = _squeeze_excite(mid_chs, exp_ratio, act_layer, use_se)
        self.conv_pwl = nn.Conv2d(mid_chs, out_chs, 1, bias=False)
        self.bn2 = _bn(out_chs)
        self.drop_path = _drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv_exp(x)))
        out = self.bn2(self.conv_pwl(self.se(out)))
        return self.drop_path(out) + x if self.has_residual else out


class Epilogue(nn.Module):
    """Classifier end (``tail``): 1x1 conv, BatchNorm, ReLU, global pool, dropout, linear.

    ``net[CLASSIFIER_INDEX]`` is the classifier.
    """

    CLASSIFIER_INDEX = 6

    def __init__(self, in_chs: int, out_chs: int, num_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_chs, out_chs, 1, bias=False),
            _bn(out_chs),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(p=0.2),
            nn.Linear(out_chs, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
