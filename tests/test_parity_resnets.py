"""Architecture parity: upstream-layout checkpoints loaded through torch.hub reproduce the reference logits."""

import warnings

import pytest
import torch
from conftest import parity_fixture, reference_error, seeded_checkpoint

TOLERANCE = 1e-6

CASES = [
    ("nvidia_resneXt", "nvidia_resneXt"),
    ("nvidia_resnext101_32x4d", "nvidia_resneXt"),
    ("nvidia_resnet50", "nvidia_resnet50"),
    ("nvidia_se_resnext101_32x4d", "nvidia_se_resnext101_32x4d"),
    ("resnet18_ssl", "resnet18_ssl_swsl"),
    ("resnet50_swsl", "resnet50_ssl_swsl"),
    ("resnext50_32x4d_ssl", "resnext50_32x4d_ssl_swsl"),
    ("resnext101_32x4d_swsl", "resnext101_32x4d_ssl_swsl"),
    ("resnext101_32x8d_ssl", "resnext101_32x8d_ssl_swsl"),
    ("resnext101_32x16d_swsl", "resnext101_32x16d_ssl_swsl"),
]


def _load(repo_dir, entrypoint, path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a local checkpoint loads without any warning
        return torch.hub.load(str(repo_dir), entrypoint, source="local", weights=str(path))


@pytest.mark.parametrize(("entrypoint", "fixture_name"), CASES)
def test_upstream_checkpoint_reproduces_reference_logits(repo_dir, hub_home, tmp_path, entrypoint, fixture_name):
    fixture = parity_fixture(fixture_name)
    path = tmp_path / "checkpoint.pth"
    torch.save(seeded_checkpoint(fixture), path)
    model = _load(repo_dir, entrypoint, path)
    assert reference_error(model, fixture) <= TOLERANCE
    assert model.pretrained_cfg["checkpoint"] == str(path)


@pytest.mark.parametrize("entrypoint", ["nvidia_resnet50", "nvidia_se_resnext101_32x4d"])
def test_ngc_layout_with_module_prefix_and_conv_shaped_se(repo_dir, hub_home, tmp_path, entrypoint):
    """NGC files may prefix every key with 'module.' and store SE layers as 1x1 convolutions."""
    fixture = parity_fixture(entrypoint)
    state = {f"module.{key}": value[..., None, None] if ".squeeze." in key and value.dim() == 2 else value
             for key, value in seeded_checkpoint(fixture).items()}
    assert entrypoint == "nvidia_resnet50" or any(value.dim() == 4 and ".squeeze." in key for key, value in state.items())
    path = tmp_path / "nvidia.pth.tar"
    torch.save(state, path)
    assert reference_error(_load(repo_dir, entrypoint, path), fixture) <= TOLERANCE


@pytest.mark.parametrize(("entrypoint", "fixture_name"), [("nvidia_se_resnext101_32x4d", "nvidia_se_resnext101_32x4d"),
                                                         ("resnet18_swsl", "resnet18_ssl_swsl")])
def test_float64_checkpoint_in_fp64_is_exact(repo_dir, hub_home, tmp_path, entrypoint, fixture_name):
    """model_math="fp64" builds the model in float64 before loading, so no precision is lost on the way."""
    fixture = parity_fixture(fixture_name)
    path = tmp_path / "checkpoint.pth"
    torch.save(seeded_checkpoint(fixture, torch.float64), path)
    model = torch.hub.load(str(repo_dir), entrypoint, source="local", weights=str(path), model_math="fp64")
    assert reference_error(model, fixture) <= 1e-12
