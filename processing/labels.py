"""Class names: ImageNet-1k's 1000, as NVIDIA's LOC_synset_mapping.json spells them (bundled with timm), or
``class <i>`` for a head of another size."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The class names in index order (timm, which bundles them, is imported at the first call)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(index) for index in range(info.num_classes()))


def class_labels(num_classes: int) -> tuple[str, ...]:
    """ImageNet-1k's class names for a 1000-class head, ``class <i>`` for a head of any other size."""
    if num_classes == 1000:
        return imagenet_labels()
    return tuple(f"class {index}" for index in range(num_classes))
