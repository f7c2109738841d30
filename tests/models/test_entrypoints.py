"""The hub surface: entrypoint names, docstrings, keywords, pretrained_cfg, heads and import hygiene."""

import dataclasses
import hashlib
import inspect
import json
import os
import socket
import subprocess
import sys
import warnings

import pytest
import torch
from conftest import (
    REPO,
    Reply,
    fast_meta_init,
    parity_fixture,
    remove_big_files,
    seeded_checkpoint,
)
from convnets_hub.models.builder import FreshClassifierWarning
from convnets_hub.models.errors import InvalidArgumentError, UnknownWeightsError
from convnets_hub.models.registry import ALIASES, DISPATCHERS, SPECS
from convnets_hub.models.weights.manifest import load_manifest

MODEL_ENTRYPOINTS = sorted([*SPECS, *ALIASES])


def public_callables(hubconf):
    return sorted(name for name in dir(hubconf) if not name.startswith("_") and callable(getattr(hubconf, name)))


def test_only_entrypoints_are_public(hubconf):
    public = public_callables(hubconf)
    assert set(MODEL_ENTRYPOINTS) <= set(public)
    assert all(name in SPECS or name in ALIASES or name in DISPATCHERS or name.endswith("_utils")
               for name in public), public
    for name in public:
        assert inspect.getdoc(getattr(hubconf, name)), f"{name} has no docstring"


@pytest.mark.parametrize("name", MODEL_ENTRYPOINTS)
def test_signature_and_docstring(hubconf, name):
    entrypoint = getattr(hubconf, name)
    parameters = inspect.signature(entrypoint).parameters
    spec = SPECS[ALIASES.get(name, name)]
    published = bool(load_manifest(REPO / "weights_manifest.json").for_entrypoint(
        ALIASES.get(name, name), "GPUNet-0" if name == "nvidia_gpunet" else None))
    assert [(p.name, p.default) for p in list(parameters.values())[:3]] == [
        ("pretrained", published), ("progress", True), ("weights", None)]
    doc = inspect.getdoc(entrypoint)
    channels = 3 if published else spec.default_cfg["input_size"][0]
    assert f"input {channels}x" in doc
    assert ("top-1" in doc and "license" in doc) if published else "no published weights" in doc


def test_hub_help_text_gives_the_published_accuracy(hubconf):
    help_text = hubconf.nvidia_resneXt.__doc__  # what torch.hub.help returns
    assert "80.43" in help_text and "95.06" in help_text and "NGC model license" in help_text


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def on_meta_device(meta_batch_norm):
    """Models are built on the meta device: their configuration and shapes without memory, initialisation or
    arithmetic."""
    with torch.device("meta"), fast_meta_init():
        yield


@pytest.mark.parametrize("name", MODEL_ENTRYPOINTS)
def test_every_entrypoint_builds_untrained_without_network(repo_dir, hub_home, no_network, on_meta_device, name):
    """Through torch.hub.load, on the meta device (the untrained models compute in test_timm_model_checks,
    once per architecture, and below)."""
    model = torch.hub.load(str(repo_dir), name, source="local", pretrained=False).eval()
    assert next(model.parameters()).is_meta  # built where this test builds it, not on the CPU
    cfg = model.pretrained_cfg
    spec = SPECS[ALIASES.get(name, name)]
    default = load_manifest().default(ALIASES.get(name, name), cfg["model_type"])
    expected = default.preprocessing if default else spec.default_cfg
    num_classes = inspect.signature(spec.build).parameters["num_classes"].default
    assert cfg["input_size"] == tuple(expected["input_size"])
    assert (cfg["interpolation"], cfg["crop_pct"]) == (expected["interpolation"], expected["crop_pct"])
    assert cfg["num_classes"] == num_classes and cfg["id"] is None
    assert len(cfg["mean"]) == len(cfg["std"]) == cfg["input_size"][0]
    x = torch.empty(1, *cfg["input_size"])
    assert model(x).shape == (1, num_classes)
    small = torch.hub.load(str(repo_dir), name, source="local", pretrained=False, num_classes=7).eval()
    assert small(x).shape == (1, 7)
    assert small.pretrained_cfg["num_classes"] == 7


def test_an_untrained_model_from_torch_hub_computes_on_the_cpu(repo_dir, hub_home, no_network):
    model = torch.hub.load(str(repo_dir), "resnet18_ssl", source="local", pretrained=False).eval()
    assert {parameter.device.type for parameter in model.parameters()} == {"cpu"}
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all() and not torch.equal(logits[0], logits[1])


def test_unknown_keyword_is_a_type_error_naming_it(hubconf):
    with pytest.raises(TypeError, match="'colour'"):
        hubconf.resnet18_ssl(pretrained=False, colour="red")


@pytest.fixture(scope="module")
def resnet18_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "semi_weakly_supervised_resnet18-118f1556.pth"
    torch.save(seeded_checkpoint(parity_fixture("resnet18_ssl_swsl")), path)
    yield path
    remove_big_files(path.parent)


def test_num_classes_with_pretrained_weights_loads_the_backbone_and_warns(hubconf, hub_home, resnet18_checkpoint):
    with pytest.warns(FreshClassifierWarning, match="fc"):
        model = hubconf.resnet18_swsl(weights=str(resnet18_checkpoint), num_classes=10)
    expected = torch.load(resnet18_checkpoint, weights_only=True)
    assert torch.equal(model.layer4[1].conv2.weight, expected["layer4.1.conv2.weight"])
    assert model.fc.weight.shape == (10, 512) and model.pretrained_cfg["num_classes"] == 10


@pytest.mark.parametrize("options", [{}, {"model_math": "fp64"}, {"features_only": True}],
                         ids=["fp32", "fp64", "features_only"])
def test_a_checkpoint_holding_every_weight_loads_without_drawing_random_numbers(hubconf, resnet18_checkpoint,
                                                                                options):
    """Built on the meta device and materialised uninitialised: every tensor is the checkpoint's (none left as
    uninitialised memory) and the global random stream is as the user left it."""
    expected = torch.load(resnet18_checkpoint, weights_only=True)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    model = hubconf.resnet18_swsl(weights=str(resnet18_checkpoint), **options)
    assert torch.equal(torch.get_rng_state(), before)
    features_only = options.get("features_only", False)
    # timm's FeatureGetterNet holds the model as .model, less its head
    loaded = {key.removeprefix("model.") if features_only else key: value for key, value in model.state_dict().items()}
    assert set(loaded) == {key for key in expected if not (features_only and key.startswith("fc."))}
    dtype = torch.float64 if options.get("model_math") else torch.float32
    for key, tensor in loaded.items():
        assert torch.equal(tensor, expected[key].to(tensor.dtype)), key
        assert tensor.dtype == (dtype if tensor.is_floating_point() else torch.int64), key


def test_a_head_of_another_size_is_initialised_from_the_global_random_stream(hubconf, resnet18_checkpoint):
    """A checkpoint that leaves the classifier fresh is loaded into a model built (and initialised) for real: its
    head is what the architecture draws under the user's seed, as an untrained model's is."""
    expected = torch.load(resnet18_checkpoint, weights_only=True)

    def load(seed):
        torch.manual_seed(seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = hubconf.resnet18_swsl(weights=str(resnet18_checkpoint), num_classes=10)
        assert [w.category for w in caught if issubclass(w.category, FreshClassifierWarning)] == [
            FreshClassifierWarning]
        return model

    model, other = load(0), load(1)
    torch.manual_seed(0)
    untrained = hubconf.resnet18_swsl(pretrained=False, num_classes=10)
    for key in ("fc.weight", "fc.bias"):
        assert torch.equal(model.state_dict()[key], untrained.state_dict()[key]), key  # same seed, same head
        assert not torch.equal(other.state_dict()[key], model.state_dict()[key]), key
    for key, tensor in model.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(tensor, expected[key]), key


def test_a_buffer_missing_from_the_state_dict_keeps_its_initial_value(hubconf, lenet_weights, monkeypatch):
    """A non-persistent buffer (no entrypoint's model has one today) is in no checkpoint: the model is then built
    for real, so the buffer holds what the architecture sets, not uninitialised memory."""
    spec = SPECS["lenet5"]

    def with_buffer(**kwargs):
        model = spec.build(**kwargs)
        model.register_buffer("scale", torch.arange(1.0, 65.0), persistent=False)
        return model

    monkeypatch.setitem(SPECS, "lenet5", dataclasses.replace(spec, build=with_buffer))
    model = hubconf.lenet5(weights=str(lenet_weights))
    assert torch.equal(model.scale, torch.arange(1.0, 65.0))
    expected = torch.load(lenet_weights, weights_only=True)
    assert all(torch.equal(tensor, expected[key]) for key, tensor in model.state_dict().items())


def test_a_fine_tuned_checkpoint_keeps_its_own_head(hubconf, hub_home, resnet18_checkpoint, tmp_path):
    state = torch.load(resnet18_checkpoint, weights_only=True)
    state["fc.weight"], state["fc.bias"] = torch.randn(10, 512), torch.randn(10)
    path = tmp_path / "finetuned.pth"
    torch.save({"state_dict": state, "epoch": 9}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FreshClassifierWarning)
        model = hubconf.resnet18_ssl(weights=str(path), num_classes=10)
    assert torch.equal(model.fc.weight, state["fc.weight"])


def test_weights_of_ones_own_file_or_url_claim_no_published_metrics(hubconf, hub_home, resnet18_checkpoint, server):
    url = server.serve("/mine/my-resnet18.pth", Reply(body=resnet18_checkpoint.read_bytes()))
    for weights in (str(resnet18_checkpoint), url):
        cfg = hubconf.resnet18_ssl(weights=weights, progress=False).pretrained_cfg
        assert cfg["metrics"] is None and cfg["id"] is None, weights
        assert cfg["input_size"] == (3, 224, 224) and cfg["crop_pct"] == 0.875  # preprocessed as published
    published = hubconf.resnet18_ssl(pretrained=False).pretrained_cfg["metrics"]
    assert published["imagenet_top1"] == 72.8  # an untrained model names its architecture's figures


def _manifest_with_mirror(tmp_path, monkeypatch, checkpoint):
    """Our manifest's resnet18_swsl entry pinned to the seeded file, plus an alternative entry, offline."""
    manifest = json.loads((REPO / "weights_manifest.json").read_text())
    default = next(e for e in manifest["entries"] if e["entrypoint"] == "resnet18_swsl")
    pinned = {**default, "hash_prefix": None, "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest()}
    manifest["entries"] = [pinned, {**pinned, "id": "resnet18_swsl.alternative", "default": False,
                                    "file_name": "alternative.pth"}]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in (default["file_name"], "alternative.pth"):
        (mirror / name).write_bytes(checkpoint.read_bytes())
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(path))
    monkeypatch.setenv("CONVNETS_HUB_MIRROR", str(mirror))
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")
    return default["id"]


def test_facebook_call_style_and_weights_ids(hubconf, hub_home, tmp_path, monkeypatch, resnet18_checkpoint):
    default_id = _manifest_with_mirror(tmp_path, monkeypatch, resnet18_checkpoint)
    model = hubconf.resnet18_swsl(progress=False)  # Facebook's hub call
    assert model.pretrained_cfg["id"] == default_id and model.pretrained_cfg["metrics"]["imagenet_top1"] == 73.4
    alternative = hubconf.resnet18_swsl(weights="resnet18_swsl.alternative")
    assert alternative.pretrained_cfg["id"] == "resnet18_swsl.alternative"
    assert torch.equal(model.fc.weight, alternative.fc.weight)


def test_weights_id_of_another_entrypoint_or_unknown_is_a_value_error(hubconf, hub_home):
    with pytest.raises(UnknownWeightsError, match="resnet50_swsl") as error:
        hubconf.resnet18_ssl(weights="resnet50_swsl.fb_swsl_ig1b_ft_in1k")
    assert "resnet18_ssl.fb_ssl_yfcc100m_ft_in1k" in str(error.value)
    with pytest.raises(ValueError, match="no-such-weights"):
        hubconf.resnet18_ssl(weights="no-such-weights")
    with pytest.raises(InvalidArgumentError, match="pretrained=False"):
        hubconf.resnet18_ssl(pretrained=False, weights="resnet18_ssl.fb_ssl_yfcc100m_ft_in1k")


def test_importing_hubconf_builds_nothing_touches_no_network_and_writes_nothing(repo_dir, tmp_path):
    script = f"""
import importlib.util, os, socket, sys, torch
calls = []
socket.socket.connect = lambda *a, **k: calls.append(a)
original_init = torch.nn.Module.__init__
torch.nn.Module.__init__ = lambda self, *a, **k: (calls.append('module'), original_init(self, *a, **k))[1]
spec = importlib.util.spec_from_file_location("hubconf", {str(repo_dir / "hubconf.py")!r})
hubconf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hubconf)
assert hubconf.nvidia_resneXt.__doc__
print(calls)
"""
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch")}
    result = subprocess.run([sys.executable, "-c", script], check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_hubconf_imports_under_a_manifest_that_lists_one_entrypoint(repo_dir, tmp_path):
    """An air-gapped user's manifest may list only the weights they mirror; every other docstring still renders."""
    manifest = json.loads((REPO / "weights_manifest.json").read_text())
    manifest["entries"] = [e for e in manifest["entries"] if e["entrypoint"] == "resnet18_ssl"]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    script = ("import importlib.util\n"
              f"spec = importlib.util.spec_from_file_location('hubconf', {str(repo_dir / 'hubconf.py')!r})\n"
              "hubconf = importlib.util.module_from_spec(spec)\n"
              "spec.loader.exec_module(hubconf)\n"
              "print(hubconf.nvidia_gpunet.__doc__, hubconf.nvidia_resneXt.__doc__)\n")
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "CONVNETS_HUB_MANIFEST": str(path)}
    result = subprocess.run([sys.executable, "-c", script], check=False, cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("no published weights in the manifest in use") == 2
    assert "follow model_type" in result.stdout and "input 3x224x224" in result.stdout
