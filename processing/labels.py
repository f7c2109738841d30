"""The 1000 ImageNet-1k class names, as NVIDIA's LOC_synset_mapping.json spells them (bundled with timm)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The class names in index order (timm, which bundles them, is imported at the first call)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(index) for index in range(info.num_classes()))
