"""The classic CNNs: parity with torchvision's own pretrained models, the weights resolver, LeNet-5."""

import contextlib
import copy
import hashlib
import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from compile_capture import operators, recording_compile
from conftest import (
    REPO,
    Reply,
    randomize_batch_norms,
    remove_big_files,
    seeded_input,
    torch_seeded_state_dict,
)
from convnets_hub.models.builder import FreshClassifierWarning
from convnets_hub.models.errors import InvalidArgumentError, UnknownWeightsError
from convnets_hub.models.runtime.optimize import CompiledModel, optimize_for_inference
from torch import nn
from torchvision.models.googlenet import BasicConv2d, GoogLeNet, Inception

TOLERANCE = 1e-6
WEIGHTS = {  # entrypoint: the torchvision weights its default manifest entry serves
    "alexnet": torchvision.models.AlexNet_Weights.IMAGENET1K_V1,
    "vgg16": torchvision.models.VGG16_Weights.IMAGENET1K_V1,
    "vgg16_bn": torchvision.models.VGG16_BN_Weights.IMAGENET1K_V1,
    "googlenet": torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1,
    "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
}
MANIFEST = json.loads((REPO / "weights_manifest.json").read_text())
pytestmark = pytest.mark.xdist_group("test_classic")  # one worker writes each torchvision file once


def torchvision_checkpoint(name: str) -> dict[str, torch.Tensor]:
    """Seeded float32 weights (``torch_seeded_state_dict``) under the keys and shapes of torchvision's file for
    ``name``."""
    # torchvision's GoogLeNet file holds the auxiliary heads, which its builder drops after loading.
    options = {"aux_logits": True, "init_weights": False} if name == "googlenet" else {}
    with torch.device("meta"):
        keys = [(key, value.shape) for key, value in
                torchvision.models.get_model(name, weights=None, **options).state_dict().items()]
    return torch_seeded_state_dict(keys)


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    """``name`` -> torchvision's file of ``torchvision_checkpoint(name)`` (under its real file name), written
    once per module: the float64 parity, the optimize check and the loading tests read the same file."""
    directory = tmp_path_factory.mktemp("torchvision")
    written = {}

    def get(name: str) -> Path:
        if name not in written:
            written[name] = directory / entry(f"{name}.tv_in1k")["file_name"]
            torch.save(torchvision_checkpoint(name), written[name])
        return written[name]

    yield get
    remove_big_files(directory)


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors, memory-mapped (read as they are used)."""
    return torch.load(path, mmap=True, weights_only=True)


@contextlib.contextmanager
def _without_weight_init():
    """torch.nn.init's functions leave their tensor as it is: a model about to load a complete state dict
    (strictly, as torchvision's builder does) skips drawing 138 M random numbers first."""
    names = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "kaiming_uniform_",
             "kaiming_normal_", "xavier_uniform_", "xavier_normal_")
    saved = {name: getattr(torch.nn.init, name) for name in names}
    try:
        for name in names:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, function in saved.items():
            setattr(torch.nn.init, name, function)


def torchvision_pretrained(name: str, state: dict, monkeypatch, **kwargs) -> torch.nn.Module:
    """torchvision's own ``name(weights=...)``, with ``state`` standing in for the downloaded file."""
    weights = WEIGHTS[name]
    monkeypatch.setattr(type(weights), "get_state_dict", lambda self, *args, **kw: state)
    with _without_weight_init():  # torchvision's builder then loads every tensor, strictly
        return torchvision.models.get_model(name, weights=weights, **kwargs)


def entry(weights_id: str) -> dict:
    return next(e for e in MANIFEST["entries"] if e["id"] == weights_id)


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).norm() / ref.norm())


def _logits(model: torch.nn.Module) -> torch.Tensor:
    """The logits of one image of 112 px: the equality with torchvision does not depend on the size, and
    every layer still works on a map of its own (the last maps: AlexNet 2x2, VGG 3x3, GoogLeNet and
    ResNet-50 4x4, GoogLeNet's ceil-mode pools rounding up) before the adaptive pooling; a quarter of 224 px's work."""
    with torch.no_grad():
        return model(torch.from_numpy(seeded_input((1, 3, 112, 112), 0)))


@pytest.mark.parametrize("name", list(WEIGHTS))
def test_pretrained_model_equals_torchvision_in_float64(repo_dir, hub_home, monkeypatch, torchvision_file, name):
    path = torchvision_file(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a local torchvision file loads without any warning
        model = torch.hub.load(str(repo_dir), name, source="local", weights=str(path), model_math="fp64").eval()
    reference = torchvision_pretrained(name, read_state(path), monkeypatch).double().eval()
    error = relative_error(_logits(model), _logits(reference))
    print(f"{name}: relative L2 error {error:.2e}")
    assert error <= TOLERANCE
    assert sum(p.numel() for p in model.parameters()) == entry(f"{name}.tv_in1k")["num_params"]
    classifier = "fc" if name in ("googlenet", "resnet50") else "classifier.6"
    assert (model.pretrained_cfg["classifier"], model.pretrained_cfg["num_classes"]) == (classifier, 1000)


@pytest.fixture
def googlenet_file(torchvision_file):
    return torchvision_file("googlenet")


def test_pretrained_googlenet_is_torchvisions_without_aux_heads(hubconf, hub_home, googlenet_file):
    model = hubconf.googlenet(weights=str(googlenet_file))
    assert model.aux1 is None and model.aux2 is None and not model.aux_logits and model.transform_input
    model.train()
    assert isinstance(model(torch.randn(2, 3, 224, 224)), torch.Tensor)  # no aux outputs in training either
    untrained = hubconf.googlenet(pretrained=False)
    assert untrained.aux1 is None and not untrained.transform_input


def test_googlenet_with_other_num_classes_keeps_the_pretrained_backbone(hubconf, hub_home, googlenet_file):
    with pytest.warns(FreshClassifierWarning, match="'fc'") as caught:
        model = hubconf.googlenet(weights=str(googlenet_file), num_classes=10).eval()
    # One warning, naming the head; the aux heads' classifiers differ too but are dropped.
    assert [type(w.message) for w in caught] == [FreshClassifierWarning] and "aux1" not in str(caught[0].message)
    state = read_state(googlenet_file)
    assert torch.equal(model.inception5b.branch4[1].conv.weight, state["inception5b.branch4.1.conv.weight"])
    assert model.aux1 is None and model.pretrained_cfg["num_classes"] == 10
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_googlenet_options_the_weights_forbid_are_a_value_error(hubconf, hub_home, googlenet_file):
    with pytest.raises(InvalidArgumentError, match="transform_input=False.*pretrained=False"):
        hubconf.googlenet(weights=str(googlenet_file), transform_input=False)


@pytest.fixture
def resnet50_bytes(torchvision_file) -> bytes:
    return torchvision_file("resnet50").read_bytes()


def pinned_manifest(tmp_path, monkeypatch, payload: bytes, ids: list[str], urls=None) -> None:
    """A manifest of our entries ``ids`` pinned (sha256 and size) to ``payload``, in use."""
    pinned = [{**entry(i), "hash_prefix": None, "sha256": hashlib.sha256(payload).hexdigest(),
               "size": len(payload), **({"urls": urls} if urls else {})} for i in ids]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({**MANIFEST, "entries": pinned}))
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(path))


def test_pinned_weights_are_downloaded_and_loaded(hubconf, hub_home, server, tmp_path, monkeypatch, resnet50_bytes,
                                                  torchvision_file):
    url = server.serve("/models/resnet50-0676ba61.pth", Reply(body=resnet50_bytes))
    pinned_manifest(tmp_path, monkeypatch, resnet50_bytes, ["resnet50.tv_in1k"], [url])
    model = hubconf.resnet50(progress=False)
    assert server.hits == ["/models/resnet50-0676ba61.pth"]
    assert (hub_home / "checkpoints" / "resnet50-0676ba61.pth").read_bytes() == resnet50_bytes
    assert torch.equal(model.fc.weight, read_state(torchvision_file("resnet50"))["fc.weight"])
    assert model.pretrained_cfg["id"] == "resnet50.tv_in1k" and model.pretrained_cfg["crop_pct"] == 0.875


def test_a_file_in_torchvisions_cache_is_used_without_network(hubconf, hub_home, server, tmp_path, monkeypatch,
                                                              resnet50_bytes):
    url = server.serve("/models/resnet50-0676ba61.pth", Reply(status=500))
    pinned_manifest(tmp_path, monkeypatch, resnet50_bytes, ["resnet50.tv_in1k"], [url])
    (hub_home / "checkpoints").mkdir(parents=True)
    (hub_home / "checkpoints" / "resnet50-0676ba61.pth").write_bytes(resnet50_bytes)
    model = hubconf.resnet50()
    assert server.hits == [] and model.pretrained_cfg["checkpoint"].endswith("resnet50-0676ba61.pth")


def test_the_2021_recipe_has_its_own_id_and_preprocessing(hubconf, hub_home, tmp_path, monkeypatch, resnet50_bytes):
    pinned_manifest(tmp_path, monkeypatch, resnet50_bytes, ["resnet50.tv_in1k", "resnet50.tv2_in1k"])
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "resnet50-11ad3fa6.pth").write_bytes(resnet50_bytes)
    monkeypatch.setenv("CONVNETS_HUB_MIRROR", str(mirror))
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")
    cfg = hubconf.resnet50(weights="resnet50.tv2_in1k").pretrained_cfg
    assert cfg["id"] == "resnet50.tv2_in1k" and cfg["crop_pct"] == pytest.approx(224 / 232)
    assert cfg["metrics"]["imagenet_top1"] == 80.858 and cfg["interpolation"] == "bilinear"


def test_an_unknown_weights_id_lists_both_recipes(hubconf, hub_home):
    with pytest.raises(UnknownWeightsError, match="resnet50.tv3") as error:
        hubconf.resnet50(weights="resnet50.tv3")
    assert "resnet50.tv_in1k" in str(error.value) and "resnet50.tv2_in1k" in str(error.value)


def test_lenet5_shape_size_and_no_published_weights(repo_dir, hub_home):
    model = torch.hub.load(str(repo_dir), "lenet5", source="local")
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == 61_706
    assert model.pretrained_cfg["input_size"] == (1, 32, 32) and model.pretrained_cfg["mean"] == (0.5,)
    with pytest.raises(InvalidArgumentError, match="no published weights.*notebooks/lenet5_digits.ipynb"):
        torch.hub.load(str(repo_dir), "lenet5", source="local", pretrained=True)


def test_lenet5_learns_digits(hubconf):
    # imported here: scikit-learn at collection costs every worker 1.4 s
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16
    x = (F.interpolate(images, size=32, mode="bilinear", align_corners=False) - 0.5) / 0.5
    y = torch.tensor(digits.target)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains fastest without thread synchronisation
    try:
        losses = _train_lenet5(hubconf, x, y)
    finally:
        torch.set_num_threads(threads)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert first > 2.0 and last < 0.25 * first, (first, last)


def _train_lenet5(hubconf, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """The losses of 200 Adam steps on batches of 64."""
    torch.manual_seed(0)
    model = hubconf.lenet5()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(200):
        batch = torch.randint(len(x), (64,))
        loss = F.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_lenet5_loads_a_trained_checkpoint_given_by_path(hubconf, tmp_path):
    trained = hubconf.lenet5()
    torch.nn.init.constant_(trained.get_classifier().bias, 0.25)
    path = tmp_path / "lenet5_digits.pth"
    torch.save(trained.state_dict(), path)
    loaded = hubconf.lenet5(weights=str(path))  # pretrained defaults to False for lenet5
    assert torch.equal(loaded.get_classifier().bias, torch.full((10,), 0.25))
    assert loaded.pretrained_cfg["checkpoint"] == str(path)


def test_googlenet_keeps_its_aux_heads_when_asked_as_torchvision_does(hubconf, hub_home, googlenet_file):
    with pytest.warns(UserWarning, match="auxiliary heads"):
        model = hubconf.googlenet(weights=str(googlenet_file), aux_logits=True)
    assert model.aux1 is not None and model.aux_logits


def test_folded_vgg16_bn_is_vgg16(hubconf):
    """optimize=True folds VGG16-BN's batch norms into its convolutions: what it compiles then has VGG16's
    layers, in VGG16's order, with VGG16's shapes, so VGG16-BN's compile check stands for VGG16's."""
    def layers(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
        return [(type(module).__name__, tuple(module.weight.shape) if hasattr(module, "weight") else ())
                for module in model.modules() if not list(module.children()) and type(module) is not torch.nn.Identity]

    folded = hubconf.vgg16_bn(pretrained=False, optimize=True)
    with torch.device("meta"):
        plain, unfolded = hubconf.vgg16(pretrained=False), hubconf.vgg16_bn(pretrained=False)
    assert layers(folded.eager) == layers(plain) != layers(unfolded)


OPTIMIZED = [name for name in [*WEIGHTS, "lenet5"] if name != "vgg16"]  # VGG16: test_folded_vgg16_bn_is_vgg16
# Compiled for real with Inductor (3-22 s of CPU each, mostly g++): between them, every operator of OPTIMIZED and
# every pair of operators one feeding the other (test_every_operator_of_an_optimized_classic_model_is_compiled_for_real);
# each of OPTIMIZED is captured whole and checked against its eager model (test_optimize_captures_each_...). Measured
# cold: GoogLeNet 22 s, VGG16-BN 8 s, AlexNet 4.5 s of compiling, the miniature standing for them 15 s.
COMPILED_FOR_REAL = ["lenet5", "resnet50", "miniature"]


class _Miniature(nn.Module):
    """GoogLeNet's and VGG's (and AlexNet's) layers in miniature, compiled for real in their stead: GoogLeNet's
    input transform, ceil-mode pools and inception blocks (four branches concatenated, a pool of a pool), its
    average-pooled head; VGG's pool of a 2x2 map to 7x7 and its classifier (Linear, ReLU, Dropout, Linear)."""

    def __init__(self) -> None:
        super().__init__()
        self.transform_input = True
        self.stem = nn.Sequential(BasicConv2d(3, 8, kernel_size=3, padding=1), nn.MaxPool2d(3, 2, ceil_mode=True))
        self.inceptions = nn.Sequential(Inception(8, 4, 4, 4, 2, 4, 4), nn.MaxPool2d(3, 2, ceil_mode=True),
                                        Inception(16, 4, 4, 4, 2, 4, 4))
        self.googlenet_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(), nn.Linear(16, 4))
        self.vgg_head = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
                                      nn.MaxPool2d(2, 2), nn.AdaptiveAvgPool2d(7), nn.Flatten(),
                                      nn.Linear(8 * 7 * 7, 8), nn.ReLU(), nn.Dropout(), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inceptions(self.stem(GoogLeNet._transform_input(self, x)))
        return self.googlenet_head(x) + self.vgg_head(x)


def optimized_and_eager(hubconf, tmp_path, torchvision_file, name: str):
    """``name`` with optimize=True, its eager model and a batch for both."""
    if name == "miniature":
        torch.manual_seed(0)
        eager = randomize_batch_norms(_Miniature())
        optimized = optimize_for_inference(copy.deepcopy(eager), dtype=torch.float32, device="cpu")
        return optimized, eager, torch.randn(2, 3, 32, 32)
    if name == "lenet5":
        torch.manual_seed(0)
        path, shape = tmp_path / "weights.pth", (2, 1, 32, 32)
        torch.save(hubconf.lenet5().state_dict(), path)
    else:
        path, shape = torchvision_file(name), (2, 3, 64, 64)
    eager = getattr(hubconf, name)(weights=str(path)).eval()
    optimized = getattr(hubconf, name)(weights=str(path), optimize=True)
    assert optimized.pretrained_cfg["checkpoint"] == str(path) and not optimized.training
    return optimized, eager, torch.randn(shape)


@pytest.mark.parametrize("name", COMPILED_FOR_REAL)
def test_optimize_matches_the_eager_model_and_compiles(hubconf, tmp_path, torchvision_file, name):
    """optimize=True (folded, channels_last, torch.compile with Inductor's freezing on the CPU) gives the eager
    model's logits, without a warning nor a fallback. The other classic models' operators are all among these
    models' (test_every_operator_of_an_optimized_classic_model_is_compiled_for_real)."""
    optimized, eager, x = optimized_and_eager(hubconf, tmp_path, torchvision_file, name)
    with torch.no_grad():
        expected = eager(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = optimized(x)
    assert isinstance(optimized, CompiledModel) and not optimized._failed
    assert relative_error(got, expected) <= 1e-5


@pytest.fixture(scope="module")
def captured(hubconf, tmp_path_factory, torchvision_file):
    """``name`` -> the aten graphs that torch.compile gives Inductor for ``name`` optimized (a recording backend
    in Inductor's place: compile_capture.recording_compile), its logits and the eager ones."""
    done = {}

    def get(name: str) -> tuple[list[torch.fx.GraphModule], torch.Tensor, torch.Tensor]:
        if name in done:
            return done[name]
        # fullgraph: a graph break raises (Dynamo compiles the input cast hook and the forward, each whole)
        with recording_compile() as graphs:
            optimized, eager, x = optimized_and_eager(hubconf, tmp_path_factory.mktemp("captured"),
                                                      torchvision_file, name)
            with torch.no_grad():
                expected = eager(x)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                got = optimized(x)
        assert isinstance(optimized, CompiledModel) and not optimized._failed and graphs
        done[name] = graphs, got, expected
        return done[name]

    return get


@pytest.mark.parametrize("name", OPTIMIZED)
def test_optimize_captures_each_classic_model_whole_and_matches_the_eager_model(captured, name):
    """torch.compile captures the optimized model without a graph break (Dynamo's fullgraph), and the captured
    graphs (folded, channels_last) give the eager logits; Inductor's part: test_optimize_matches_the_eager_model_and_compiles."""
    graphs, got, expected = captured(name)
    assert relative_error(got, expected) <= 1e-5
    assert any("aten.convolution" in key for key in operators(graphs))


def test_every_operator_of_an_optimized_classic_model_is_compiled_for_real(captured):
    """Each operator, and each pair of operators one feeding the other, that Inductor gets from an optimized classic
    model is in a model that test_optimize_matches_the_eager_model_and_compiles compiles for real: Inductor lowers
    (and fuses) every one of them on the CPU, with freezing."""
    covered = set().union(*(operators(captured(name)[0]) for name in COMPILED_FOR_REAL))
    for name in OPTIMIZED:
        assert operators(captured(name)[0]) <= covered, (name, operators(captured(name)[0]) - covered)
