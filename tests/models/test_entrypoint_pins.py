"""Every model entrypoint, untrained, has the state-dict keys and shapes and the ``pretrained_cfg``
pinned before the redesign of the library (``tests/reference/entrypoint_pins.json.gz``)."""

import gzip
import json

import pytest
import torch
from conftest import REFERENCE

PINS = json.loads(gzip.decompress((REFERENCE / "entrypoint_pins.json.gz").read_bytes()))


@pytest.fixture
def on_meta_device(meta_batch_norm):
    """Models are built on the meta device: their shapes without memory or initialisation."""
    with torch.device("meta"):
        yield


def test_the_pins_cover_every_model_entrypoint():
    from convnets_hub.models.hub import model_entrypoint_names

    assert {pin["entrypoint"] for pin in PINS} == set(model_entrypoint_names())


@pytest.mark.parametrize("pin", PINS, ids=lambda pin: "-".join([pin["entrypoint"], *pin["kwargs"].values()]))
def test_untrained_model_matches_its_pin(hubconf, hub_home, on_meta_device, pin):
    model = getattr(hubconf, pin["entrypoint"])(pretrained=False, **pin["kwargs"])
    assert [[key, list(value.shape)] for key, value in model.state_dict().items()] == pin["state_dict"]
    # Every pinned field keeps its value; timm's further fields (pool_size, first_conv, ...) may be added.
    cfg = json.loads(json.dumps(model.pretrained_cfg))
    assert {key: cfg.get(key, "missing") for key in pin["pretrained_cfg"]} == pin["pretrained_cfg"]
    # The pinned classifier name is that of the module timm's API of the model returns.
    assert model.get_classifier() is model.get_submodule(pin["pretrained_cfg"]["classifier"])
