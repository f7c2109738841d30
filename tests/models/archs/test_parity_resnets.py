"""Architecture parity: upstream-layout checkpoints loaded through torch.hub reproduce the reference logits."""

import warnings
from collections import Counter

import pytest
import torch
from conftest import floats_as, parity_fixture, reference_error, seeded_checkpoint

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

NGC_LAYOUT = ["nvidia_resnet50", "nvidia_se_resnext101_32x4d"]
FLOAT64_CASES = [("nvidia_se_resnext101_32x4d", "nvidia_se_resnext101_32x4d"), ("resnet18_swsl", "resnet18_ssl_swsl")]
USES = Counter([name for _, name in CASES + FLOAT64_CASES] + NGC_LAYOUT)
"""How many tests load each oracle's seeded weights: those of more than one are drawn once per module and
kept until their last test (the others, among them the 88 M and 194 M of ResNeXt101 32x8d and 32x16d, are
drawn by their one test and not kept)."""
pytestmark = pytest.mark.xdist_group("test_parity_resnets")  # one worker draws each shared oracle once


@pytest.fixture(scope="module")
def oracle():
    """``name`` -> (its parity fixture, its seeded weights in float64)."""
    kept, left = {}, USES.copy()

    def get(name: str) -> tuple[dict, dict[str, torch.Tensor]]:
        fixture = parity_fixture(name)
        state = kept.pop(name, None) or seeded_checkpoint(fixture, torch.float64)
        left[name] -= 1
        if left[name] > 0:
            kept[name] = state
        return fixture, state

    yield get
    kept.clear()


def _load(repo_dir, entrypoint, path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a local checkpoint loads without any warning
        return torch.hub.load(str(repo_dir), entrypoint, source="local", weights=str(path))


@pytest.mark.parametrize(("entrypoint", "fixture_name"), CASES)
def test_upstream_checkpoint_reproduces_reference_logits(repo_dir, hub_home, tmp_path, oracle, entrypoint,
                                                         fixture_name):
    fixture, state = oracle(fixture_name)
    path = tmp_path / "checkpoint.pth"
    torch.save(floats_as(state, torch.float32), path)
    model = _load(repo_dir, entrypoint, path)
    assert reference_error(model, fixture) <= TOLERANCE
    assert model.pretrained_cfg["checkpoint"] == str(path)


@pytest.mark.parametrize("entrypoint", NGC_LAYOUT)
def test_ngc_layout_with_module_prefix_and_conv_shaped_se(repo_dir, hub_home, tmp_path, oracle, entrypoint):
    """NGC files may prefix every key with 'module.' and store SE layers as 1x1 convolutions."""
    fixture, seeded = oracle(entrypoint)
    state = {f"module.{key}": value[..., None, None] if ".squeeze." in key and value.dim() == 2 else value
             for key, value in floats_as(seeded, torch.float32).items()}
    assert entrypoint == "nvidia_resnet50" or any(value.dim() == 4 and ".squeeze." in key for key, value in state.items())
    path = tmp_path / "nvidia.pth.tar"
    torch.save(state, path)
    assert reference_error(_load(repo_dir, entrypoint, path), fixture) <= TOLERANCE


@pytest.mark.parametrize(("entrypoint", "fixture_name"), FLOAT64_CASES)
def test_float64_checkpoint_in_fp64_is_exact(repo_dir, hub_home, tmp_path, oracle, entrypoint, fixture_name):
    """model_math="fp64" builds the model in float64 before loading, so no precision is lost on the way."""
    fixture, state = oracle(fixture_name)
    path = tmp_path / "checkpoint.pth"
    torch.save(state, path)
    model = torch.hub.load(str(repo_dir), entrypoint, source="local", weights=str(path), model_math="fp64")
    assert reference_error(model, fixture) <= 1e-12
