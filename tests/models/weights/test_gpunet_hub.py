"""nvidia_gpunet through torch.hub: NGC zip checkpoints, the resolver, precisions, errors."""

import pytest
import torch
from conftest import (
    Reply,
    parity_fixture,
    reference_error,
    remove_big_files,
    seeded_checkpoint,
    seeded_input,
)
from convnets_hub.models.weights.manifest import load_manifest
from upstream_files import upstream_bytes, write_mirror

TYPES = ["GPUNet-0", "GPUNet-1", "GPUNet-2", "GPUNet-P0", "GPUNet-P1", "GPUNet-D1", "GPUNet-D2"]
ENTRIES = {e.model_type: e for e in load_manifest().entries if e.entrypoint == "nvidia_gpunet"}


LOGITS_TYPES = ("GPUNet-1", "GPUNet-P1")  # the two layouts at their smallest inputs (288 and 224 px)
"""Through the hub, the reference logits are computed for one type of each file layout: a timm training
checkpoint whose EMA weights are taken, and a plain state dict. Every type is shown to load its file's EMA
weights bit for bit; test_gpunet_arch shows that each type's entrypoint model computes the reference
logits from those weights, in every precision."""


@pytest.mark.parametrize("model_type", TYPES)
def test_ngc_zip_loads_its_ema_weights_and_reproduces_reference_logits(repo_dir, hub_home, tmp_path, model_type):
    entry = ENTRIES[model_type]
    fixture = parity_fixture(f"gpunet_{model_type}")
    state = seeded_checkpoint(fixture)
    path = tmp_path / entry.file_name
    path.write_bytes(upstream_bytes(vars(entry), state))  # a training checkpoint's other weights are zeros
    model = torch.hub.load(str(repo_dir), "nvidia_gpunet", source="local", model_type=model_type, weights=str(path))
    loaded = model.state_dict()
    assert list(loaded) == list(state) and all(torch.equal(loaded[key], value) for key, value in state.items())
    assert model.pretrained_cfg["input_size"] == tuple(fixture["input_shape"][1:])
    if model_type in LOGITS_TYPES:
        assert reference_error(model, fixture) <= 1e-6


def test_pretrained_through_a_mirror_in_fp64(repo_dir, hub_home, tmp_path, server, monkeypatch):
    entry = ENTRIES["GPUNet-P0"]
    manifest = write_mirror(tmp_path / "mirror", [entry.id])
    server.serve(f"/ngc/{entry.file_name}", Reply(body=(tmp_path / "mirror" / entry.file_name).read_bytes()))
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(manifest))
    monkeypatch.setenv("CONVNETS_HUB_MIRROR", server.url("/ngc/"))
    model = torch.hub.load(str(repo_dir), "nvidia_gpunet", source="local", pretrained=True, model_type="0.5ms-D",
                           model_math="fp64", progress=False)
    assert next(model.parameters()).dtype == torch.float64
    assert model.pretrained_cfg["id"] == entry.id and model.pretrained_cfg["metrics"]["imagenet_top1"] == 80.3
    assert reference_error(model, parity_fixture("gpunet_GPUNet-P0")) <= 1e-6
    assert server.hits == [f"/ngc/{entry.file_name}"]


@pytest.fixture(scope="module")
def p0_weights(tmp_path_factory):
    """NVIDIA's GPUNet-P0 zip holding the parity oracle's seeded weights."""
    path = tmp_path_factory.mktemp("gpunet") / ENTRIES["GPUNet-P0"].file_name
    path.write_bytes(upstream_bytes(vars(ENTRIES["GPUNet-P0"]), seeded_checkpoint(parity_fixture("gpunet_GPUNet-P0"))))
    yield path
    remove_big_files(path.parent)


@pytest.mark.parametrize(("model_math", "dtype", "tolerance"), [
    ("fp32", torch.float32, 1e-5), ("fp16", torch.float16, 5e-3), ("bf16", torch.bfloat16, 2e-2)])
def test_model_math_sets_the_precision_and_accepts_a_float32_batch(hubconf, p0_weights, model_math, dtype,
                                                                   tolerance):
    """Within ``tolerance`` of NVIDIA's float64 logits (fp64 itself: test_pretrained_through_a_mirror_in_fp64)."""
    fixture = parity_fixture("gpunet_GPUNet-P0")
    model = hubconf.nvidia_gpunet(model_type="GPUNet-P0", weights=str(p0_weights), model_math=model_math).eval()
    x = torch.from_numpy(seeded_input(fixture["input_shape"], fixture["input_seed"])).float()[:1]
    reference = torch.tensor(fixture["logits"], dtype=torch.float64)[:1]
    with torch.no_grad():
        logits = model(x)
        assert model(x.half()).dtype == dtype  # NVIDIA's `batch.half()` still works
    assert logits.dtype == dtype and logits.shape == reference.shape
    assert float((logits.double() - reference).norm() / reference.norm()) <= tolerance


def test_native_preprocessing_in_pretrained_cfg(hubconf):
    for model_type, size in [("GPUNet-0", 320), ("GPUNet-1", 288), ("GPUNet-D2", 528)]:
        cfg = hubconf.nvidia_gpunet(pretrained=False, model_type=model_type).pretrained_cfg
        assert cfg["input_size"] == (3, size, size) and cfg["crop_pct"] == 1.0 and cfg["interpolation"] == "bicubic"


def test_native_preprocessing_without_manifest_entries(hubconf, tmp_path, monkeypatch):
    """An air-gapped manifest listing only some files still gives every type its own preprocessing."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"schema_version": 1, "entries": []}')
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(manifest))
    cfg = hubconf.nvidia_gpunet(pretrained=False, model_type="GPUNet-1").pretrained_cfg
    assert cfg["input_size"] == (3, 288, 288) and cfg["interpolation"] == "bicubic" and cfg["crop_pct"] == 1.0
    assert hubconf.resnet50_ssl(pretrained=False).pretrained_cfg["input_size"] == (3, 224, 224)
