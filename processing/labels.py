"""The 1000 ImageNet-1k class names, as NVIDIA's LOC_synset_mapping.json spells them (bundled with timm)."""

from __future__ import annotations

from functools import lru_cache

from timm.data import ImageNetInfo


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    info = ImageNetInfo()
    return tuple(info.index_to_description(index) for index in range(info.num_classes()))
