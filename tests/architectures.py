"""Which models the costly checks run on: each distinct architecture once, a wider twin through its model.

``distinct_architectures()`` lists (entrypoint, model_type) once per distinct architecture, from hubconf
(a new entrypoint is swept the day it is added): equal builders build equal models, so an ssl/swsl pair,
an alias and a type= dispatcher's target share one. ``WIDER_TWINS`` declares the architectures that
differ from another only in their channel widths (ResNeXt101 32x8d and 32x16d from 32x4d, NVIDIA's
wide-SE EfficientNets from their plain SE): the same modules, names, kernels, strides, paddings and
groups (``test_a_wider_twin_differs_from_its_model_in_widths_only`` proves it, on the meta device).
Numeric checks (exports, compilation, backward, int8) run on ``costly_architectures()``, which leaves
the twins out; checks of what depends on widths (shapes, configs) still run on every entrypoint.
"""

from convnets_hub.models.hub import model_entrypoint_names, variant_keyword
from convnets_hub.models.registry import ALIASES, DISPATCHERS, SPECS
from convnets_hub.models.weights.manifest import load_manifest

WIDER_TWINS = {
    "resnext101_32x8d_ssl": "nvidia_resneXt",
    "resnext101_32x16d_ssl": "nvidia_resneXt",
    "nvidia_efficientnet_widese_b0": "nvidia_efficientnet_b0",
    "nvidia_efficientnet_widese_b4": "nvidia_efficientnet_b4",
}
"""An architecture -> the architecture it widens (entrypoints as ``distinct_architectures`` names them)."""


def distinct_architectures() -> list[tuple[str, str | None]]:
    """(entrypoint, model_type) of each distinct architecture of the model entrypoints."""
    manifest = load_manifest()
    seen, result = set(), []
    for name in model_entrypoint_names():
        if name in DISPATCHERS:
            continue
        types = [None]
        if variant_keyword(name) is not None:
            types = sorted({entry.model_type for entry in manifest.entries if entry.entrypoint == name})
            assert types, f"{name} takes a model type but the manifest lists none"
        for model_type in types:
            key = (SPECS[ALIASES.get(name, name)].build, model_type)  # equal builders build equal models
            if key not in seen:
                seen.add(key)
                result.append((name, model_type))
    return result


def costly_architectures() -> list[tuple[str, str | None]]:
    """``distinct_architectures`` less the wider twins, which their narrower models stand for."""
    return [(name, model_type) for name, model_type in distinct_architectures() if name not in WIDER_TWINS]

