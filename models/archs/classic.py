"""The classic CNNs: torchvision's own AlexNet, VGG-16, GoogLeNet and ResNet-50, and LeNet-5.

The ImageNet architectures are torchvision's classes, so torchvision's checkpoints load unchanged;
the subclasses here only add timm's feature and head API (:class:`~.timm_api.TimmApi`), timm's
``in_chans`` (a first convolution for other than 3 channels, initialised as torchvision does) and
``global_pool``: their ``forward`` computes torchvision's, op for op, but returns the feature map
when the pooling is "" (no pooling, no classifier). LeNet-5 is small enough to be written here.

No ``from __future__ import annotations`` here: TorchScript, and the code that ``torch.fx`` writes for a
traced model, read ``forward``'s annotations as types.
"""

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck
from torchvision.models.vgg import cfgs as vgg_cfgs
from torchvision.models.vgg import make_layers

from .timm_api import (
    FLATTEN,
    Step,
    TimmApi,
    checked_in_chans,
    checked_num_classes,
    global_pool_layer,
    sequential_feature_info,
)


def _kaiming_fan_out(conv: nn.Conv2d) -> None:
    """torchvision's initialisation of VGG's and ResNet's convolutions."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _googlenet_init(conv: nn.Conv2d) -> None:
    """torchvision's initialisation of GoogLeNet's convolutions (``init_weights=True``)."""
    nn.init.trunc_normal_(conv.weight, mean=0.0, std=0.01, a=-2, b=2)


def _input_conv(conv: nn.Conv2d, in_chans: int, init: Callable[[nn.Conv2d], None] | None) -> nn.Conv2d:
    """``conv`` itself for 3 channels, else a convolution like it for ``in_chans`` channels, initialised by
    ``init`` (None: PyTorch's default, as torchvision's AlexNet)."""
    if checked_in_chans(in_chans) == conv.in_channels:
        return conv
    new = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)
    if init is not None:
        init(new)
    return new


class _ConvStackApi(TimmApi):
    """AlexNet, VGG and LeNet-5: ``features`` (convolutions and poolings), then pooling or flattening and
    ``classifier``, a stack whose last layer is the classifier. Its pooling is its own ("avg": AlexNet's
    and VGG's average pooling to the grid their classifier takes; LeNet-5 flattens its 1x1 map), or none
    (""): then the whole head is skipped and ``forward`` returns the feature map."""

    POOL_TYPES = ("", "avg")

    def _init_api(self, num_classes: int, in_chans: int, init: Callable[[nn.Conv2d], None] | None,
                  global_pool: str) -> None:
        self.features[0] = _input_conv(self.features[0], in_chans, init)
        self.feature_info = sequential_feature_info(self.features, "features")
        self.num_features = self.feature_info[-1]["num_chs"]
        self.head_hidden_size = self.get_classifier().in_features
        self._head_for(num_classes, global_pool)

    def _set_global_pool(self, pool_type: str) -> None:
        self.global_pool = pool_type

    def _classifier_name(self) -> str:
        return f"classifier.{len(self.classifier) - 1}"

    def _feature_steps(self) -> list[Step]:
        return self._children("features")

    def _pre_logits_steps(self) -> list[Step]:
        return [*self._named("avgpool"), FLATTEN, *self._children("classifier")[:-1]] if self.global_pool else []

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        if self.global_pool == "":
            return x
        return self.classifier(torch.flatten(self.avgpool(x), 1))


class AlexNet(_ConvStackApi, torchvision.models.AlexNet):
    """torchvision's AlexNet with timm's feature and head API."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, in_chans: int = 3,
                 global_pool: str = "avg") -> None:
        super().__init__(num_classes=checked_num_classes(num_classes) or 1, dropout=dropout)
        self._init_api(num_classes, in_chans, None, global_pool)


class VGG(_ConvStackApi, torchvision.models.VGG):
    """torchvision's VGG (``cfg`` "D": VGG-16) with timm's feature and head API."""

    def __init__(self, cfg: str, batch_norm: bool, num_classes: int = 1000, dropout: float = 0.5,
                 in_chans: int = 3, global_pool: str = "avg") -> None:
        super().__init__(make_layers(vgg_cfgs[cfg], batch_norm=batch_norm),
                         num_classes=checked_num_classes(num_classes) or 1, dropout=dropout)
        self._init_api(num_classes, in_chans, _kaiming_fan_out, global_pool)


class GoogLeNet(TimmApi, torchvision.models.GoogLeNet):
    """torchvision's GoogLeNet with timm's feature and head API (the auxiliary heads are not part of it).

    ``transform_input`` re-normalises the three RGB channels as the original Caffe training did: with
    ``in_chans`` other than 3 there are no RGB channels, and it is off.
    """

    _STAGES = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
               "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
               "inception5a", "inception5b")

    def __init__(self, num_classes: int = 1000, aux_logits: bool = False, transform_input: bool = False,
                 init_weights: bool = True, in_chans: int = 3, global_pool: str = "avg") -> None:
        super().__init__(num_classes=checked_num_classes(num_classes) or 1, aux_logits=aux_logits,
                         transform_input=transform_input and checked_in_chans(in_chans) == 3,
                         init_weights=init_weights)
        self.conv1.conv = _input_conv(self.conv1.conv, in_chans, _googlenet_init if init_weights else None)
        self.feature_info = [{"num_chs": channels, "reduction": reduction, "module": module} for channels, reduction, module
                             in ((64, 2, "conv1"), (192, 4, "conv3"), (480, 8, "inception3b"),
                                 (832, 16, "inception4e"), (1024, 32, "inception5b"))]
        self.num_features = self.head_hidden_size = self.fc.in_features
        self._head_for(num_classes, global_pool)

    def _set_global_pool(self, pool_type: str) -> None:
        self.global_pool = pool_type
        self.avgpool = global_pool_layer(pool_type)

    def _classifier_name(self) -> str:
        return "fc"

    def _feature_steps(self) -> list[Step]:
        return [(None, self._transform_input), *self._named(*self._STAGES)]

    def _pre_logits_steps(self) -> list[Step]:
        return [*self._named("avgpool"), *([FLATTEN] if self.global_pool else []), *self._named("dropout")]

    def forward(self, x: Tensor) -> Tensor:
        """torchvision's: the logits, and in training with auxiliary heads torchvision's ``GoogLeNetOutputs``;
        scripted, the logits only (torchvision's scripted GoogLeNet returns ``GoogLeNetOutputs`` always)."""
        x, aux2, aux1 = self._forward(self._transform_input(x))
        if torch.jit.is_scripting():
            return x
        return self.eager_outputs(x, aux2, aux1)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """torchvision's, but the pooled map is flattened only when there is a pooling."""
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        x = self.inception4a(self.maxpool3(self.inception3b(self.inception3a(x))))
        aux1: Tensor | None = None
        if self.aux1 is not None and self.training:
            aux1 = self.aux1(x)
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2: Tensor | None = None
        if self.aux2 is not None and self.training:
            aux2 = self.aux2(x)
        x = self.avgpool(self.inception5b(self.inception5a(self.maxpool4(self.inception4e(x)))))
        if self.global_pool != "":
            x = torch.flatten(x, 1)
        return self.fc(self.dropout(x)), aux2, aux1


class TorchvisionResNet(TimmApi, torchvision.models.ResNet):
    """torchvision's ResNet-50 with timm's feature and head API."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, global_pool: str = "avg") -> None:
        super().__init__(Bottleneck, [3, 4, 6, 3], num_classes=checked_num_classes(num_classes) or 1)
        self.conv1 = _input_conv(self.conv1, in_chans, _kaiming_fan_out)
        self.feature_info = [{"num_chs": 64, "reduction": 2, "module": "relu"}] + [
            {"num_chs": 256 * 2 ** stage, "reduction": 4 * 2 ** stage, "module": f"layer{stage + 1}"}
            for stage in range(4)]
        self.num_features = self.head_hidden_size = self.fc.in_features
        self._head_for(num_classes, global_pool)

    def _set_global_pool(self, pool_type: str) -> None:
        self.global_pool = pool_type
        self.avgpool = global_pool_layer(pool_type)

    def _classifier_name(self) -> str:
        return "fc"

    def _feature_steps(self) -> list[Step]:
        return self._named("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")

    def _pre_logits_steps(self) -> list[Step]:
        return [*self._named("avgpool"), *([FLATTEN] if self.global_pool else [])]

    def _forward_impl(self, x: Tensor) -> Tensor:
        """torchvision's, but the pooled map is flattened only when there is a pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.avgpool(self.layer4(self.layer3(self.layer2(self.layer1(x)))))
        if self.global_pool != "":
            x = torch.flatten(x, 1)
        return self.fc(x)


def build_alexnet(num_classes: int = 1000, dropout: float = 0.5, in_chans: int = 3,
                  global_pool: str = "avg") -> nn.Module:
    return AlexNet(num_classes=num_classes, dropout=dropout, in_chans=in_chans, global_pool=global_pool)


def build_vgg16(num_classes: int = 1000, dropout: float = 0.5, in_chans: int = 3,
                global_pool: str = "avg") -> nn.Module:
    return VGG("D", batch_norm=False, num_classes=num_classes, dropout=dropout, in_chans=in_chans,
               global_pool=global_pool)


def build_vgg16_bn(num_classes: int = 1000, dropout: float = 0.5, in_chans: int = 3,
                   global_pool: str = "avg") -> nn.Module:
    return VGG("D", batch_norm=True, num_classes=num_classes, dropout=dropout, in_chans=in_chans,
               global_pool=global_pool)


def build_googlenet(num_classes: int = 1000, aux_logits: bool = False, transform_input: bool = False,
                    init_weights: bool = True, in_chans: int = 3, global_pool: str = "avg") -> nn.Module:
    """GoogLeNet; without weights it has no auxiliary heads unless ``aux_logits=True`` asks for them."""
    return GoogLeNet(num_classes=num_classes, aux_logits=aux_logits, transform_input=transform_input,
                     init_weights=init_weights, in_chans=in_chans, global_pool=global_pool)


def drop_googlenet_aux(model: nn.Module, options: dict[str, Any]) -> None:
    """What torchvision does after loading GoogLeNet's ImageNet weights: remove the auxiliary heads,
    unless the user asked for them with ``aux_logits=True`` (then they stay, to be trained)."""
    if options.get("aux_logits"):
        warnings.warn("the auxiliary heads of googlenet are kept (aux_logits=True): train them before use",
                      stacklevel=5)
        return
    model.aux_logits = False
    model.aux1 = None
    model.aux2 = None


def build_resnet50(num_classes: int = 1000, in_chans: int = 3, global_pool: str = "avg") -> nn.Module:
    return TorchvisionResNet(num_classes=num_classes, in_chans=in_chans, global_pool=global_pool)


class LeNet5(_ConvStackApi, nn.Module):
    """LeCun et al.'s LeNet-5 (1998) for 32x32 images (grey: ``in_chans=1``), with tanh and average pooling."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, global_pool: str = "avg") -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(checked_in_chans(in_chans), 6, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(16, 120, 5), nn.Tanh(),
        )
        self.classifier = nn.Sequential(nn.Linear(120, 84), nn.Tanh(),
                                        nn.Linear(84, checked_num_classes(num_classes) or 1))
        self._init_api(num_classes, in_chans, None, global_pool)

    def _pre_logits_steps(self) -> list[Step]:
        return [FLATTEN, *self._children("classifier")[:-1]] if self.global_pool else []

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        if self.global_pool == "":
            return x
        return self.classifier(torch.flatten(x, 1))


def build_lenet5(num_classes: int = 10, in_chans: int = 1, global_pool: str = "avg") -> nn.Module:
    return LeNet5(num_classes, in_chans, global_pool)
