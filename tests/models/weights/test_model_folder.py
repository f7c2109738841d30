"""save-pretrained: a model folder (model.safetensors, timm's config.json, a model card) that timm and weights=DIR load."""

import json

import pytest
import timm
import torch
from command_line import run_cli
from conftest import parity_fixture, seeded_checkpoint
from convnets_hub.models.factory import create_model
from convnets_hub.models.registry import SPECS
from convnets_hub.models.sharing import save_pretrained
from convnets_hub.models.train.trainer import finetune
from image_folders import CLASSES, lenet_settings, make_image_folder


def relative_error(model, reference, x) -> float:
    """Relative L2 error of ``model``'s float64 logits against ``reference``'s for the batch ``x``."""
    with torch.no_grad():
        expected = reference.double().eval()(x)
        return float((model.double().eval()(x) - expected).norm() / expected.norm())


def timm_load(folder):
    """timm's model of a folder, as a user of the installed timm loads one (``local-dir:`` where it has it)."""
    from timm.models import _factory

    if "local-dir" in getattr(_factory, "_MODEL_SOURCES", ()):
        return timm.create_model(f"local-dir:{folder}", pretrained=True)
    config = json.loads((folder / "config.json").read_text())
    return timm.create_model(config["architecture"], pretrained=True, num_classes=config["num_classes"],
                             pretrained_cfg_overlay={"file": str(folder / "model.safetensors")},
                             **config.get("model_args", {}))


@pytest.mark.parametrize(("entrypoint", "fixture", "architecture"), [
    ("resnet18_ssl", "resnet18_ssl_swsl", "resnet18"),
    ("nvidia_efficientnet_b0", "nvidia_efficientnet_b0", "efficientnet_b0"),
])
def test_timm_loads_a_saved_folder_and_computes_our_logits(tmp_path, entrypoint, fixture, architecture):
    """Seeded weights in the upstream layout (BatchNorm statistics that matter), in float64 on a small image
    (float64 depthwise convolutions are slow on a CPU)."""
    torch.save(seeded_checkpoint(parity_fixture(fixture)), tmp_path / "upstream.pth")
    ours = create_model(entrypoint, weights=str(tmp_path / "upstream.pth"))
    folder = save_pretrained(ours, tmp_path / "folder")
    assert sorted(path.name for path in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert (config["architecture"], config["num_classes"]) == (architecture, 1000)
    assert config["num_features"] == ours.num_features
    assert config["pretrained_cfg"]["label_names"][0].startswith("tench")
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert relative_error(timm_load(folder), ours, x) <= 1e-6
    again = create_model(entrypoint, weights=str(folder))
    assert all(torch.equal(value, ours.state_dict()[key]) for key, value in again.state_dict().items())


def test_only_exact_timm_architectures_are_named():
    """timm computes NVIDIA's SE-ResNeXt (16 SE channels) and WideSE EfficientNets differently: not named."""
    named = {name for name, spec in SPECS.items() if spec.timm_architecture}
    assert {"nvidia_resneXt", "nvidia_resnet50", "resnet50", "nvidia_efficientnet_b4", "resnext101_32x16d_swsl"} <= named
    assert not named & {"nvidia_se_resnext101_32x4d", "nvidia_efficientnet_widese_b0", "nvidia_gpunet", "lenet5",
                        "vgg16", "googlenet", "alexnet"}
    for name in sorted(named):  # built on the meta device: no memory, no time
        spec = SPECS[name]
        with torch.device("meta"):
            ours, theirs = spec.build(), timm.create_model(spec.timm_architecture, **spec.timm_model_args)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
        if name != "resnet50":  # torchvision's ResNet class: same keys and shapes, and logits below
            assert repr(ours) == repr(theirs), name  # every module, stride, group count and BatchNorm eps
    torch.manual_seed(0)
    ours, theirs = create_model("resnet50", pretrained=False), timm.create_model("resnet50")
    theirs.load_state_dict(ours.state_dict())
    assert relative_error(theirs, ours, torch.randn(1, 3, 32, 32, dtype=torch.float64)) <= 1e-6


def test_finetune_then_save_pretrained_then_timm_loads_it(tmp_path):
    """The round trip for a timm-built architecture: its classes, preprocessing and logits reach timm."""
    data = make_image_folder(tmp_path / "images", train=2, val=1, size=32)
    torch.manual_seed(0)
    base = create_model("resnet18_ssl", pretrained=False)
    torch.save(base.state_dict(), tmp_path / "base.pth")
    settings = lenet_settings(data, tmp_path / "run", entrypoint="resnet18_ssl", weights=str(tmp_path / "base.pth"),
                              epochs=1, batch_size=6, image_size=32)
    result = finetune(settings)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"images": 3, "top1": 66.7, "top5": 100.0, "loss": 0.9, "data": "images/val"}))
    saved = run_cli("save-pretrained", "--entrypoint", "resnet18_ssl", "--weights", str(result.best),
                    "--metrics", str(metrics), str(tmp_path / "folder"))
    assert saved.returncode == 0, saved.stderr
    folder = tmp_path / "folder"
    loaded = timm_load(folder).eval()
    assert loaded.pretrained_cfg["label_names"] == list(CLASSES)
    assert tuple(loaded.pretrained_cfg["input_size"]) == (3, 32, 32)
    finetuned = create_model("resnet18_ssl", weights=str(result.best))
    assert relative_error(loaded, finetuned, torch.randn(1, 3, 32, 32, dtype=torch.float64)) <= 1e-6
    again = create_model("resnet18_ssl", weights=str(folder))
    assert again.pretrained_cfg["label_names"] == CLASSES and again.pretrained_cfg["input_size"] == (3, 32, 32)
    card = (folder / "README.md").read_text()
    assert "library_name: timm" in card and "license: cc-by-nc-4.0" in card
    assert "| top-1 (%) | 66.7 |" in card and 'timm.create_model("hf-hub:' in card


def test_a_model_timm_does_not_build_is_saved_for_torch_hub_and_its_card_says_so(tmp_path):
    torch.manual_seed(0)
    model = create_model("lenet5", pretrained=False, num_classes=10)
    folder = save_pretrained(model, tmp_path / "lenet")
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "lenet5" and config["pretrained_cfg"]["label_names"][0] == "class 0"
    card = (folder / "README.md").read_text()
    assert "timm has no architecture that computes this model exactly" in card
    assert 'torch.hub.load("convnets-hub/convnets-hub", "lenet5"' in card and "timm.create_model" not in card
    loaded = create_model("lenet5", weights=str(folder))
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(loaded.eval()(x), model.eval()(x))


def test_save_pretrained_refuses_bad_metrics_and_a_feature_extractor(tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_text("not json\n")
    result = run_cli("save-pretrained", "--entrypoint", "lenet5", "--metrics", str(bad), str(tmp_path / "out"))
    assert result.returncode == 2 and "--metrics" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="features_only"):
        save_pretrained(create_model("lenet5", pretrained=False, features_only=True), tmp_path / "features")
