"""The classic CNNs: torchvision's own AlexNet, VGG-16, GoogLeNet and ResNet-50, and LeNet-5.

The ImageNet architectures are torchvision's classes, so torchvision's checkpoints load unchanged;
the subclasses here only add timm's feature and head API (:class:`~.timm_api.TimmApi`), with
``forward`` and every module left as torchvision's. LeNet-5 is small enough to be written here.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import Bottleneck
from torchvision.models.vgg import cfgs as vgg_cfgs
from torchvision.models.vgg import make_layers

from .timm_api import (
    FLATTEN,
    Step,
    TimmApi,
    checked_num_classes,
    sequential_feature_info,
)


class _ConvStackApi(TimmApi):
    """AlexNet, VGG and LeNet-5: ``features`` (convolutions and poolings), then pooling or flattening and
    ``classifier``, a stack whose last layer is the classifier."""

    def _init_api(self, num_classes: int) -> None:
        self.feature_info = sequential_feature_info(self.features, "features")
        self.num_features = self.feature_info[-1]["num_chs"]
        self.head_hidden_size = self.get_classifier().in_features
        self._head_for(num_classes)

    def _classifier_name(self) -> str:
        return f"classifier.{len(self.classifier) - 1}"

    def _feature_steps(self) -> list[Step]:
        return self._children("features")

    def _pre_logits_steps(self) -> list[Step]:
        return [*self._named("avgpool"), FLATTEN, *self._children("classifier")[:-1]]


class AlexNet(_ConvStackApi, torchvision.models.AlexNet):
    """torchvision's AlexNet with timm's feature and head API."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__(num_classes=checked_num_classes(num_classes) or 1, dropout=dropout)
        self._init_api(num_classes)


class VGG(_ConvStackApi, torchvision.models.VGG):
    """torchvision's VGG (``cfg`` "D": VGG-16) with timm's feature and head API."""

    def __init__(self, cfg: str, batch_norm: bool, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__(make_layers(vgg_cfgs[cfg], batch_norm=batch_norm),
                         num_classes=checked_num_classes(num_classes) or 1, dropout=dropout)
        self._init_api(num_classes)


class GoogLeNet(TimmApi, torchvision.models.GoogLeNet):
    """torchvision's GoogLeNet with timm's feature and head API (the auxiliary heads are not part of it)."""

    _STAGES = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
               "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
               "inception5a", "inception5b")

    def __init__(self, num_classes: int = 1000, aux_logits: bool = False, transform_input: bool = False,
                 init_weights: bool = True) -> None:
        super().__init__(num_classes=checked_num_classes(num_classes) or 1, aux_logits=aux_logits,
                         transform_input=transform_input, init_weights=init_weights)
        self.feature_info = [{"num_chs": channels, "reduction": reduction, "module": module} for channels, reduction, module
                             in ((64, 2, "conv1"), (192, 4, "conv3"), (480, 8, "inception3b"),
                                 (832, 16, "inception4e"), (1024, 32, "inception5b"))]
        self.num_features = self.head_hidden_size = self.fc.in_features
        self._head_for(num_classes)

    def _classifier_name(self) -> str:
        return "fc"

    def _feature_steps(self) -> list[Step]:
        return [(None, self._transform_input), *self._named(*self._STAGES)]

    def _pre_logits_steps(self) -> list[Step]:
        return [*self._named("avgpool"), FLATTEN, *self._named("dropout")]


class TorchvisionResNet(TimmApi, torchvision.models.ResNet):
    """torchvision's ResNet-50 with timm's feature and head API."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__(Bottleneck, [3, 4, 6, 3], num_classes=checked_num_classes(num_classes) or 1)
        self.feature_info = [{"num_chs": 64, "reduction": 2, "module": "relu"}] + [
            {"num_chs": 256 * 2 ** stage, "reduction": 4 * 2 ** stage, "module": f"layer{stage + 1}"}
            for stage in range(4)]
        self.num_features = self.head_hidden_size = self.fc.in_features
        self._head_for(num_classes)

    def _classifier_name(self) -> str:
        return "fc"

    def _feature_steps(self) -> list[Step]:
        return self._named("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")

    def _pre_logits_steps(self) -> list[Step]:
        return [*self._named("avgpool"), FLATTEN]


def build_alexnet(num_classes: int = 1000, dropout: float = 0.5) -> nn.Module:
    return AlexNet(num_classes=num_classes, dropout=dropout)


def build_vgg16(num_classes: int = 1000, dropout: float = 0.5) -> nn.Module:
    return VGG("D", batch_norm=False, num_classes=num_classes, dropout=dropout)


def build_vgg16_bn(num_classes: int = 1000, dropout: float = 0.5) -> nn.Module:
    return VGG("D", batch_norm=True, num_classes=num_classes, dropout=dropout)


def build_googlenet(num_classes: int = 1000, aux_logits: bool = False, transform_input: bool = False,
                    init_weights: bool = True) -> nn.Module:
    """GoogLeNet; without weights it has no auxiliary heads unless ``aux_logits=True`` asks for them."""
    return GoogLeNet(num_classes=num_classes, aux_logits=aux_logits, transform_input=transform_input,
                     init_weights=init_weights)


def drop_googlenet_aux(model: nn.Module, options: dict[str, Any]) -> None:
    """What torchvision does after loading GoogLeNet's ImageNet weights: remove the auxiliary heads,
    unless the user asked for them with ``aux_logits=True`` (then they stay, to be trained)."""
    if options.get("aux_logits"):
        warnings.warn("the auxiliary heads of googlenet are kept (aux_logits=True): train them before use",
                      stacklevel=4)
        return
    model.aux_logits = False
    model.aux1 = None
    model.aux2 = None


def build_resnet50(num_classes: int = 1000) -> nn.Module:
    return TorchvisionResNet(num_classes=num_classes)


class LeNet5(_ConvStackApi, nn.Module):
    """LeCun et al.'s LeNet-5 (1998) for 32x32 images (grey: ``in_chans=1``), with tanh and average pooling."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(16, 120, 5), nn.Tanh(),
        )
        self.classifier = nn.Sequential(nn.Linear(120, 84), nn.Tanh(),
                                        nn.Linear(84, checked_num_classes(num_classes) or 1))
        self._init_api(num_classes)

    def _pre_logits_steps(self) -> list[Step]:
        return [FLATTEN, *self._children("classifier")[:-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def build_lenet5(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    return LeNet5(num_classes, in_chans)
