"""Which models the costly checks run on: each distinct architecture once, a wider twin through its model.

``distinct_architectures()`` lists (entrypoint, model_type) once per distinct architecture, from hubconf
(a new entrypoint is swept the day it is added): equal builders build equal models, so an ssl/swsl pair,
an alias and a type= dispatcher's target share one. ``WIDER_TWINS`` declares the architectures that
differ from another only in their channel widths (ResNeXt101 32x8d and 32x16d from 32x4d, NVIDIA's
wide-SE EfficientNets from their plain SE): the same modules, names, kernels, strides, paddings and
groups (``test_a_wider_twin_differs_from_its_model_in_widths_only`` proves it, on the meta device).
Numeric checks (exports, compilation, backward, int8) run on ``costly_architectures()``, which leaves
the twins out; checks of what depends on widths (shapes, configs) still run on every entrypoint.
``shallow_twin`` is a model less each block that repeats the block before it: the same code on the same
shapes, for checks whose outcome does not depend on how many times in a row a block runs.
"""

import copy
import itertools

import timm
import torch
from convnets_hub.models.hub import model_entrypoint_names, variant_keyword
from convnets_hub.models.registry import ALIASES, DISPATCHERS, SPECS
from convnets_hub.models.weights.manifest import load_manifest
from timm.layers import DropPath
from torch import nn

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


_CHILDREN = ("_parameters", "_buffers", "_modules")


def own_signature(module: nn.Module) -> tuple:
    """What decides the code that ``module``'s own forward runs, its children aside: its class, every plain
    attribute (kernel sizes, strides, groups, widths, flags, hooks...), its parameters' and buffers' names, shapes
    and dtypes. A DropPath's rate counts only as zero or not: its forward branches on that, the value only
    scales (eval: never applied)."""
    attributes = {key: value for key, value in vars(module).items() if key not in _CHILDREN}
    if isinstance(module, DropPath):
        attributes["drop_prob"] = attributes["drop_prob"] > 0
    return (type(module),
            tuple(sorted((key, (tuple(value.shape), value.dtype) if isinstance(value, torch.Tensor) else repr(value))
                         for key, value in attributes.items())),
            tuple((key, tuple(p.shape), p.dtype, p.requires_grad) for key, p in module._parameters.items()
                  if p is not None),
            tuple((key, tuple(b.shape), b.dtype) for key, b in module._buffers.items() if b is not None))


def signature(module: nn.Module) -> tuple:
    """:func:`own_signature` of ``module`` and of every module in it, under their names in it."""
    return tuple((name, own_signature(sub)) for name, sub in module.named_modules())


def shallow_twin(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """``model`` less every block that repeats the block before it in its ``nn.Sequential`` (equal
    :func:`signature`: the same code on the same shapes; the timm checks' outcome depends on the code a model
    runs, not on how many times in a row it runs it), but for the modules that ``feature_info`` names; the
    names of the blocks it dropped. ResNeXt101's 33 blocks become 8, EfficientNet-B4's 32 become 14: each
    distinct block is still scripted, traced and differentiated, in its place
    (test_a_shallow_twin_runs_every_block_of_its_model_on_the_same_shapes)."""
    features = set(timm.models.FeatureInfo(copy.deepcopy(model.feature_info), len(model.feature_info)).module_name())
    dropped = []
    for parent_name, parent in model.named_modules():
        if isinstance(parent, nn.Sequential):
            children = list(parent.named_children())
            for (_, before), (name, child) in itertools.pairwise(children):
                path = f"{parent_name}.{name}" if parent_name else name
                if path not in features and signature(child) == signature(before):
                    dropped.append(path)
    for path in dropped:
        parent_name, _, name = path.rpartition(".")
        del model.get_submodule(parent_name)._modules[name]
    return model, dropped
