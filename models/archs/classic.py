"""The classic CNNs: torchvision's own AlexNet, VGG-16, GoogLeNet and ResNet-50, and LeNet-5.

The ImageNet architectures are built by torchvision's builders, so torchvision's checkpoints
load unchanged; LeNet-5 is small enough to be written here.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torchvision
from torch import nn


def build_alexnet(num_classes: int = 1000, dropout: float = 0.5) -> nn.Module:
    return torchvision.models.alexnet(weights=None, num_classes=num_classes, dropout=dropout)


def build_vgg16(num_classes: int = 1000, dropout: float = 0.5) -> nn.Module:
    return torchvision.models.vgg16(weights=None, num_classes=num_classes, dropout=dropout)


def build_vgg16_bn(num_classes: int = 1000, dropout: float = 0.5) -> nn.Module:
    return torchvision.models.vgg16_bn(weights=None, num_classes=num_classes, dropout=dropout)


def build_googlenet(num_classes: int = 1000, aux_logits: bool = False, transform_input: bool = False,
                    init_weights: bool = True) -> nn.Module:
    """GoogLeNet; without weights it has no auxiliary heads unless ``aux_logits=True`` asks for them."""
    return torchvision.models.googlenet(weights=None, num_classes=num_classes, aux_logits=aux_logits,
                                        transform_input=transform_input, init_weights=init_weights)


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
    return torchvision.models.resnet50(weights=None, num_classes=num_classes)


class LeNet5(nn.Module):
    """LeCun et al.'s LeNet-5 (1998) for 1x32x32 images, with tanh and average pooling."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(16, 120, 5), nn.Tanh(),
        )
        self.classifier = nn.Sequential(nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def build_lenet5(num_classes: int = 10) -> nn.Module:
    return LeNet5(num_classes)
