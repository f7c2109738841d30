"""Folding of BatchNorm layers into the convolutions that feed them (inference only).

A ``Conv2d`` is folded into a ``BatchNorm2d`` only where the BatchNorm provably consumes the
convolution's output and nothing else does:

* neighbours in an ``nn.Sequential`` (timm's downsample, torchvision's VGG ``features``,
  GPUNet's ``net``/``body`` sequences, whatever their child names);
* known attribute pairs of block classes whose ``forward`` applies the BatchNorm right after
  the convolution (:data:`FOLDABLE_PAIRS`, matched by exact class, so a subclass that may
  override ``forward`` is left alone).

Only exact ``nn.Conv2d`` and ``nn.BatchNorm2d`` (with running statistics) are folded, and timm's
``BatchNormAct2d`` (BatchNorm then activation, as in its EfficientNet blocks), which is then
replaced by its activation.
"""

from __future__ import annotations

from itertools import pairwise

from timm.layers import BatchNormAct2d
from timm.models._efficientnet_blocks import (
    DepthwiseSeparableConv,
    EdgeResidual,
    InvertedResidual,
)
from timm.models.efficientnet import EfficientNet
from timm.models.resnet import BasicBlock, Bottleneck
from timm.models.resnet import ResNet as TimmResNet
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.googlenet import BasicConv2d as GoogLeNetBasicConv2d
from torchvision.models.inception import BasicConv2d as InceptionBasicConv2d
from torchvision.models.resnet import BasicBlock as TorchvisionBasicBlock
from torchvision.models.resnet import Bottleneck as TorchvisionBottleneck
from torchvision.models.resnet import ResNet as TorchvisionResNet

from ..archs.classic import TorchvisionResNet as HubTorchvisionResNet
from ..archs.gpunet.blocks import ConvBnAct

_RESNET_BLOCK = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

FOLDABLE_PAIRS: dict[type[nn.Module], tuple[tuple[str, str], ...]] = {
    TimmResNet: (("conv1", "bn1"),),
    BasicBlock: _RESNET_BLOCK[:2],
    Bottleneck: _RESNET_BLOCK,
    TorchvisionResNet: (("conv1", "bn1"),),
    HubTorchvisionResNet: (("conv1", "bn1"),),  # torchvision's ResNet with timm's API, its forward unchanged
    TorchvisionBasicBlock: _RESNET_BLOCK[:2],
    TorchvisionBottleneck: _RESNET_BLOCK,
    GoogLeNetBasicConv2d: (("conv", "bn"),),
    InceptionBasicConv2d: (("conv", "bn"),),
    ConvBnAct: (("conv", "bn1"),),
    InvertedResidual: (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
    EdgeResidual: (("conv_exp", "bn1"), ("conv_pwl", "bn2")),
    DepthwiseSeparableConv: (("conv_dw", "bn1"), ("conv_pw", "bn2")),
    EfficientNet: (("conv_stem", "bn1"), ("conv_head", "bn2")),
}
"""Block classes → (convolution, BatchNorm) attribute pairs that their ``forward`` applies in a row."""


def _after_folding(conv: nn.Module, bn: nn.Module) -> nn.Module | None:
    """What replaces ``bn`` once folded into ``conv``: nothing, or the activation of a
    ``BatchNormAct2d``; None where the pair cannot be folded."""
    if (type(conv) is not nn.Conv2d or type(bn) not in (nn.BatchNorm2d, BatchNormAct2d)
            or bn.running_mean is None or conv.out_channels != bn.num_features):
        return None
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    return bn.act if isinstance(bn.drop, nn.Identity) else None


def fold_conv_bn(model: nn.Module) -> int:
    """Fold every provably adjacent Conv2d → BatchNorm2d pair of ``model`` (in eval mode), in place.

    The convolution is replaced by one carrying the folded weight and bias, the BatchNorm by
    ``nn.Identity`` (a ``BatchNormAct2d`` by its activation), so parameter names of other layers stay as they were. Returns the number of
    pairs folded.
    """
    if model.training:
        raise ValueError("fold_conv_bn needs a model in eval mode (BatchNorm running statistics)")
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for first, second in pairwise(names):
                conv, bn = module._modules[first], module._modules[second]
                replacement = _after_folding(conv, bn)
                if replacement is not None:
                    module._modules[first] = fuse_conv_bn_eval(conv, bn)
                    module._modules[second] = replacement
                    folded += 1
        for conv_name, bn_name in FOLDABLE_PAIRS.get(type(module), ()):
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            replacement = _after_folding(conv, bn)
            if replacement is not None:
                setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, replacement)
                folded += 1
    return folded
