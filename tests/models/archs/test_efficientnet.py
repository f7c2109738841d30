"""NVIDIA's EfficientNets: parity with NVIDIA's model through the hub, NGC layouts, types, preprocessing."""

import pytest
import torch
from conftest import REPO, parity_fixture, reference_error, seeded_checkpoint
from upstream_files import write_mirror

VARIANTS = ["b0", "b4", "widese_b0", "widese_b4"]
PARAMETERS_M = {"b0": 5.29, "b4": 19.34, "widese_b0": 8.42, "widese_b4": 34.93}


def _ngc_file(path, variant: str, module_prefix: bool, conv_se: bool):
    """The seeded weights as an NGC file: optionally ``module.`` keys and 1x1-convolution SE weights."""
    state = seeded_checkpoint(parity_fixture(f"nvidia_efficientnet_{variant}"))
    if conv_se:
        state = {key: value[:, :, None, None] if ".se." in key and value.dim() == 2 else value
                 for key, value in state.items()}
    if module_prefix:
        state = {f"module.{key}": value for key, value in state.items()}
    torch.save(state, path)
    return path


@pytest.mark.parametrize(("variant", "module_prefix", "conv_se"),
                         [("b0", False, False), ("b4", True, False), ("widese_b0", False, True),
                          ("widese_b4", True, True)])
def test_parity_with_nvidias_model_through_the_hub(tmp_path, hub_home, variant, module_prefix, conv_se):
    path = _ngc_file(tmp_path / f"nvidia_efficientnet-{variant}.pth", variant, module_prefix, conv_se)
    model = torch.hub.load(str(REPO), f"nvidia_efficientnet_{variant}", source="local", weights=str(path))
    assert reference_error(model, parity_fixture(f"nvidia_efficientnet_{variant}")) <= 1e-6
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == PARAMETERS_M[variant]


@pytest.mark.parametrize(("given", "entrypoint"), [("efficientnet-b0", "nvidia_efficientnet_b0"),
                                                   ("EfficientNet-B4", "nvidia_efficientnet_b4"),
                                                   ("efficientnet-widese-b0", "nvidia_efficientnet_widese_b0"),
                                                   ("EFFICIENTNET-WIDESE-B4", "nvidia_efficientnet_widese_b4")])
def test_nvidia_type_names(hubconf, given, entrypoint):
    model = hubconf.nvidia_efficientnet(type=given, pretrained=False)
    assert model.pretrained_cfg["entrypoint"] == entrypoint


@pytest.mark.parametrize(("given", "why"), [("efficientnet-quant-b2", "is not a type of this entrypoint"),
                                            ("efficientnet-b7", "is not a type of this entrypoint"),
                                            (None, "is not a type")])
def test_unserved_types_are_value_errors_listing_the_valid_ones(hubconf, given, why):
    with pytest.raises(ValueError, match=why) as error:
        hubconf.nvidia_efficientnet(type=given, pretrained=False)
    assert "efficientnet-widese-b4" in str(error.value) and "efficientnet-quant-b4" in str(error.value)


def test_pretrained_from_the_ngc_mirror_with_nvidias_preprocessing(tmp_path, hub_home, monkeypatch, hubconf):
    mirror = tmp_path / "mirror"
    manifest = write_mirror(mirror, ["nvidia_efficientnet_b4.ngc_amp_20.12.0"])
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(manifest))
    monkeypatch.setenv("CONVNETS_HUB_MIRROR", str(mirror))
    model = hubconf.nvidia_efficientnet_b4(pretrained=True).eval()
    cfg = model.pretrained_cfg
    assert cfg["id"] == "nvidia_efficientnet_b4.ngc_amp_20.12.0"
    assert (cfg["input_size"], cfg["interpolation"], round(380 / cfg["crop_pct"])) == ((3, 380, 380), "bicubic", 412)
    assert cfg["metrics"]["imagenet_top1"] == 82.85
    utils = hubconf.nvidia_convnets_processing_utils()
    image = tmp_path / "grey.png"
    from PIL import Image
    Image.new("RGB", (500, 400), (120, 130, 140)).save(image)
    assert utils.prepare_input_from_uri(str(image), model=model).shape == (1, 3, 380, 380)
    with torch.no_grad():
        assert model(utils.prepare_input_from_uri(str(image))).shape == (1, 1000)  # NVIDIA's 224 px batches


def test_dropout_and_stochastic_depth_act_only_in_training(hubconf):
    model = hubconf.nvidia_efficientnet_b4(pretrained=False, num_classes=10)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))


def test_optimize_folds_and_matches_eager(hubconf):
    torch.manual_seed(0)
    eager = hubconf.nvidia_efficientnet_b0(pretrained=False).eval()
    for module in eager.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    optimized = hubconf.nvidia_efficientnet_b0(pretrained=False)
    optimized.load_state_dict(eager.state_dict())
    from convnets_hub.models.runtime.optimize import optimize_for_inference
    folded = optimize_for_inference(optimized, compile=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 64, 64)  # folding's exactness does not depend on the size; every block still runs (2x2 last)
    with torch.no_grad():
        ref, out = eager(x), folded(x)
    assert float((out - ref).norm() / ref.norm()) <= 1e-5
