"""GPUNet architectures: parity with NVIDIA's builder, checkpoint names, sizes, dtypes, type names."""

import json

import pytest
import torch
from conftest import (
    HUBCONF,
    REFERENCE,
    SHARED_REFERENCE,
    parity_fixture,
    seeded_input,
    seeded_state_dict,
)
from convnets_hub.models.archs.gpunet.config import load_config
from convnets_hub.models.archs.gpunet.model import (
    GPUNET_TYPES,
    build_gpunet,
    canonical_gpunet_type,
)
from convnets_hub.models.archs.timm_api import classifier_name
from convnets_hub.models.errors import InvalidArgumentError
from convnets_hub.models.weights.manifest import load_manifest

TYPES = list(GPUNET_TYPES)
PUBLISHED_PARAMS_M = {"GPUNet-0": 11.89, "GPUNet-1": 12.70, "GPUNet-2": 25.80, "GPUNet-P0": 22.82,
                      "GPUNet-P1": 39.91, "GPUNet-D1": 10.59, "GPUNet-D2": 19.04}
LATENCY_KEYS = {
    "GPUNet-0": "0.65ms",
    "GPUNet-1": "0.85ms",
    "GPUNet-2": "1.75ms",
    "GPUNet-P0": "0.5ms-D",
    "GPUNet-P1": "0.8ms-D",
    "GPUNet-D1": "1.25ms-D",
    "GPUNet-D2": "2.25ms-D",
}


def _parity_fixture(name: str) -> dict:
    return parity_fixture(f"gpunet_{name}")


def _upstream_facts(name: str) -> dict:
    return json.loads((REFERENCE / "upstream_weights.json").read_text())["nvidia_gpunet"][name]


@pytest.fixture(scope="module")
def model_of():
    """Built models shared by the tests of this module (each test sets the dtype it needs)."""
    built = {}

    def get(name: str) -> torch.nn.Module:
        if name not in built:  # through the entrypoint, which adds the input-casting hook
            built[name] = HUBCONF.nvidia_gpunet(pretrained=False, model_type=name)
        return built[name]

    return get


@pytest.mark.parametrize("name", TYPES)
def test_parameter_count_is_the_manifests_and_the_published_one(name, model_of):
    count = sum(p.numel() for p in model_of(name).parameters())
    assert count == load_manifest().default("nvidia_gpunet", name).num_params
    assert round(count / 1e6, 2) == PUBLISHED_PARAMS_M[name]  # NVIDIA's GPUNet README


TOLERANCES = {torch.float64: 1e-6, torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 5e-3}
"""Relative L2 error against NVIDIA's float64 logits (measured over the 7 types: at most 3e-9, 6e-7, 1.1e-2, 1.5e-3)."""
FLOAT16_TYPES = ("GPUNet-0", "GPUNet-D1")
"""float16 on one plain and one distilled type: a CPU without float16 instructions emulates it at 10 to 30 s
an image (GPUNet-2: 18 s against bfloat16's 0.3 s), while bfloat16, the coarser rounding, runs on every type."""


@pytest.mark.parametrize("name", TYPES)
def test_matches_nvidia_builder_in_float64_and_every_precision_takes_a_float32_batch(name, model_of):
    fixture = _parity_fixture(name)
    model = model_of(name).eval()
    assert list(model.state_dict()) == [key for key, _, _ in fixture["state_dict"]]
    state = seeded_state_dict(
        [(key, shape) for key, shape, _ in fixture["state_dict"]], fixture["weights_seed"]
    )
    x = torch.from_numpy(seeded_input(fixture["input_shape"], fixture["input_seed"])).float()
    assert x.shape[-1] == GPUNET_TYPES[name].resolution
    logits = torch.tensor(fixture["logits"], dtype=torch.float64)
    for dtype, tolerance in TOLERANCES.items():
        if dtype == torch.float16 and name not in FLOAT16_TYPES:
            continue
        model.to(dtype).load_state_dict(state, strict=True)  # every precision rounds the float64 weights once
        batch = len(x) if dtype == torch.float64 else 1  # the slow emulated half precisions: one image
        with torch.no_grad():
            out = model(x[:batch])  # float32 whatever the model
        ref = logits[:batch]
        assert out.dtype == dtype and out.shape == ref.shape
        assert float((out.double() - ref).norm() / ref.norm()) <= tolerance, dtype


@pytest.mark.parametrize("name", ["GPUNet-2", "GPUNet-D2"])
def test_trains(name):
    model = build_gpunet(name, num_classes=5).train()
    loss = model(torch.randn(2, 3, 96, 96)).logsumexp(dim=1).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["GPUNet-P0", "GPUNet-D1"])
def test_backbone_loads_under_a_fresh_classifier(name, model_of):
    checkpoint_keys = [key for key, _, _ in _parity_fixture(name)["state_dict"]]
    model = build_gpunet(name, num_classes=10)
    classifier = classifier_name(model)  # the model's own; the hub's loader re-initialises it
    keys = [f"{classifier}.weight", f"{classifier}.bias"]
    assert keys == checkpoint_keys[-2:]
    backbone = {k: v for k, v in model_of(name).float().state_dict().items() if k not in keys}
    result = model.load_state_dict(backbone, strict=False)
    assert (result.missing_keys, result.unexpected_keys) == (keys, [])
    assert model.get_classifier().out_features == 10
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 10)


@pytest.mark.parametrize("num_classes", [-3, True, 10.0, "10"])
def test_rejects_bad_num_classes(num_classes):
    with pytest.raises(InvalidArgumentError, match="num_classes"):
        build_gpunet("GPUNet-0", num_classes=num_classes)


@pytest.mark.parametrize(
    "x",
    [torch.zeros(1, 3, 64, 64, dtype=torch.uint8), torch.zeros(3, 64, 64), torch.zeros(1, 1, 64, 64)],
    ids=["uint8", "3d", "one-channel"],
)
def test_rejects_bad_input(x, model_of):
    with pytest.raises(InvalidArgumentError, match="GPUNet input"):
        model_of("GPUNet-P0")(x)


@pytest.mark.parametrize("name", TYPES)
def test_type_table(name):
    gpunet_type = GPUNET_TYPES[name]
    facts = _upstream_facts(name)
    fixture = _parity_fixture(name)
    assert gpunet_type.name == name
    assert gpunet_type.latency_key == LATENCY_KEYS[name]
    assert gpunet_type.config_file == fixture["config"] == f"{LATENCY_KEYS[name]}.json"
    assert gpunet_type.resolution == load_config(gpunet_type.config_file)[0]["img_resolution"]
    assert gpunet_type.resolution == fixture["input_shape"][-1]
    assert gpunet_type.resolution == facts["preprocessing"]["input_size"][-1]


def test_type_table_order():
    assert TYPES == list(LATENCY_KEYS)


@pytest.mark.skipif(not SHARED_REFERENCE.is_dir(), reason="needs ../shared/reference beside the checkout")
@pytest.mark.parametrize("file_name", sorted({t.config_file for t in GPUNET_TYPES.values()}))
def test_shipped_configs_are_nvidias(file_name):
    shipped = load_config(file_name)
    assert shipped == json.loads((SHARED_REFERENCE / "gpunet_configs" / file_name).read_text())


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("GPUNet-0", "GPUNet-0"),
        ("gpunet-0", "GPUNet-0"),
        ("GPUNET-D1", "GPUNet-D1"),
        ("gpunet-p1", "GPUNet-P1"),
        ("0.65ms", "GPUNet-0"),
        ("0.5ms-D", "GPUNet-P0"),
        ("0.8MS-d", "GPUNet-P1"),
        ("2.25ms-D", "GPUNet-D2"),
    ],
)
def test_canonical_type(given, canonical):
    assert canonical_gpunet_type(given) == canonical


def test_every_name_and_latency_key_is_accepted():
    for name, key in LATENCY_KEYS.items():
        assert canonical_gpunet_type(name) == canonical_gpunet_type(key) == name


@pytest.mark.parametrize("given", ["GPUNet-3", "GPUNet0", "resnet50", "0.65", "", None, 0])
def test_unknown_type_lists_the_valid_ones(given):
    with pytest.raises(ValueError, match="model_type") as error:
        canonical_gpunet_type(given)
    assert isinstance(error.value, InvalidArgumentError)
    assert all(name in str(error.value) for name in TYPES)


def test_build_accepts_any_spelling():
    assert build_gpunet("0.5MS-D", num_classes=3).model_type == "GPUNet-P0"
