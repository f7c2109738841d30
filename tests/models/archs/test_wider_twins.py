"""The wider twins (tests/architectures.py) differ from their models in channel widths only, so the
costly checks of the narrower model stand for them."""

import pytest
import torch
from architectures import (
    WIDER_TWINS,
    costly_architectures,
    distinct_architectures,
)
from conftest import HUBCONF, fast_meta_batch_norm
from torch import nn

LAYOUT = ("kernel_size", "stride", "padding", "dilation", "groups", "ceil_mode", "output_size", "inplace", "p")


def on_meta(entrypoint: str) -> nn.Module:
    with torch.device("meta"), fast_meta_batch_norm():
        return getattr(HUBCONF, entrypoint)(pretrained=False)


def structure(entrypoint: str | nn.Module) -> list[tuple]:
    """Every module's name, class and layout attributes (not its channel counts), and the weights' names, of
    the model (or the entrypoint's untrained model)."""
    model = on_meta(entrypoint) if isinstance(entrypoint, str) else entrypoint
    modules = [(name, type(module), tuple(getattr(module, key, None) for key in LAYOUT))
               for name, module in model.named_modules()]
    return [type(model), modules, list(model.state_dict())]


@pytest.mark.parametrize(("twin", "model"), WIDER_TWINS.items())
def test_a_wider_twin_differs_from_its_model_in_widths_only(twin, model):
    wider, narrower = on_meta(twin), on_meta(model)
    assert structure(wider) == structure(narrower)
    widths = [sum(p.numel() for p in built.parameters()) for built in (wider, narrower)]
    assert widths[0] > widths[1]  # wider, not the same model twice


def test_the_structure_sees_a_change_of_groups_or_depth():
    """The comparison can fail: ResNeXt50 is not ResNeXt101's twin (depth), nor is ResNet-50 (groups)."""
    resnext = structure("resnext101_32x4d_ssl")
    assert structure("resnext50_32x4d_ssl") != resnext
    assert structure("resnet50_ssl")[1] != structure("resnext50_32x4d_ssl")[1]
    assert nn.Conv2d in {kind for _, kind, _ in resnext[1]}


def test_every_architecture_is_checked_itself_or_through_its_twin():
    costly = {name for name, _ in costly_architectures()}
    assert set(WIDER_TWINS) <= {name for name, _ in distinct_architectures()}
    assert set(WIDER_TWINS.values()) <= costly and not set(WIDER_TWINS) & costly
