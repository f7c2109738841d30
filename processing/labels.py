"""The 1000 ImageNet-1k classes (names as NVIDIA's LOC_synset_mapping.json spells them, and WordNet synset
ids), bundled with timm; and the class names of any model's ``pretrained_cfg``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The class names in index order (timm, which bundles them, is imported at the first call)."""
    from .torchvision_pair import require_torchvision

    require_torchvision()  # before timm: a mismatched torchvision is one clear line
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(index) for index in range(info.num_classes()))


@lru_cache(maxsize=1)
def imagenet_synsets() -> tuple[str, ...]:
    """The WordNet synset ids (``n01440764``, ...) in the order of :func:`imagenet_labels`: the folder
    names of ImageNet's training and (sorted) validation sets."""
    from .torchvision_pair import require_torchvision

    require_torchvision()  # before timm: a mismatched torchvision is one clear line
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_label_name(index) for index in range(info.num_classes()))


def class_names(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """A model's class names from its ``pretrained_cfg``: its own ``label_names`` (a fine-tuned
    checkpoint's classes), else ImageNet-1k's for a 1000-class head, else ``class <i>``."""
    names = cfg.get("label_names")
    return tuple(names) if names else default_class_names(cfg["num_classes"])


def default_class_names(num_classes: int) -> tuple[str, ...]:
    """ImageNet-1k's class names for a 1000-class head, ``class <i>`` for a head of any other size."""
    if num_classes == 1000:
        return imagenet_labels()
    return tuple(f"class {index}" for index in range(num_classes))
