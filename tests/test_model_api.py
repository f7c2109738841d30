"""timm's feature and head API on every architecture, through the entrypoints.

For each architecture (one entrypoint where several share the class: every ResNet/ResNeXt/SE-ResNeXt
entrypoint is timm's ``ResNet``, vgg16 and vgg16_bn are torchvision's ``VGG``; every EfficientNet
variant and GPUNet type, whose heads differ): ``num_classes`` with pretrained weights loads all but the
declared classifier and warns once naming it, ``forward_head(forward_features(x))`` is ``forward(x)``
in float64, ``reset_classifier`` gives a new head or none, and ``features_only=True`` returns the feature
maps that its ``feature_info`` describes. The seeded checkpoints are handed to the loader in memory
(reading files is tested in test_checkpoint).
"""

import gzip
import json
import math
import warnings
from dataclasses import dataclass

import pytest
import torch
import torchvision
from conftest import HUBCONF, REFERENCE, seeded_input, seeded_state_dict
from convnets_hub.models import factory
from convnets_hub.models.archs.gpunet.types import GPUNET_TYPES
from convnets_hub.models.builder import FreshClassifierWarning
from convnets_hub.models.errors import InvalidArgumentError

PINS = json.loads(gzip.decompress((REFERENCE / "entrypoint_pins.json.gz").read_bytes()))
ARCHITECTURES = {
    "resnet": ("resnet18_ssl", {}),
    **{f"efficientnet_{variant}": (f"nvidia_efficientnet_{variant}", {})
       for variant in ("b0", "b4", "widese_b0", "widese_b4")},
    **{name: ("nvidia_gpunet", {"model_type": name}) for name in GPUNET_TYPES},
    **{name: (name, {}) for name in ("alexnet", "vgg16_bn", "googlenet", "resnet50", "lenet5")},
}
NUM_CLASSES = 5
SIZE = 64  # where every feature map of the first five is at least 2 px wide (AlexNet's unpadded convolutions:
FEATURE_SIZE = {"alexnet": 128}  # at 128); LeNet-5's classifier takes 32 px


def seeded_checkpoint(entrypoint: str, kwargs: dict) -> dict[str, torch.Tensor]:
    """Seeded float32 weights under the keys and shapes of the entrypoint's 1000-class (lenet5: 10) model;
    GoogLeNet's, as torchvision's file, with the auxiliary heads that its loader then drops."""
    if entrypoint == "googlenet":
        with torch.device("meta"):
            model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
        keys = [(key, value.shape) for key, value in model.state_dict().items()]
    else:
        keys = next(pin["state_dict"] for pin in PINS if pin["entrypoint"] == entrypoint and pin["kwargs"] == kwargs)
    return {key: value.float() if value.is_floating_point() else value
            for key, value in seeded_state_dict(keys, 0).items()}


def load(entrypoint: str, kwargs: dict, state: dict, path, **options) -> tuple[torch.nn.Module, list]:
    """``entrypoint``'s float64 eval model with ``state`` as its weights file ``path``, and the warnings it gave."""
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        patch.setattr(factory, "read_checkpoint", lambda *args: state)
        model = getattr(HUBCONF, entrypoint)(weights=str(path), model_math="fp64", **kwargs, **options).eval()
    return model, caught


@dataclass
class Built:
    entrypoint: str
    kwargs: dict
    state: dict
    path: object
    model: torch.nn.Module  # pretrained, with NUM_CLASSES classes
    warnings: list

    def input(self, size: int = SIZE) -> torch.Tensor:
        channels, native, _ = self.model.pretrained_cfg["input_size"]
        size = min(size, native)
        return torch.from_numpy(seeded_input((1, channels, size, size), 0))


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def built(request, tmp_path_factory):
    entrypoint, kwargs = ARCHITECTURES[request.param]
    state = seeded_checkpoint(entrypoint, kwargs)
    path = tmp_path_factory.mktemp("weights") / f"{entrypoint}.pth"
    path.touch()
    model, caught = load(entrypoint, kwargs, state, path, num_classes=NUM_CLASSES)
    return Built(entrypoint, kwargs, state, path, model, caught)


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).norm() / ref.norm())


def test_num_classes_with_pretrained_weights_loads_all_but_the_head_and_warns_once(built):
    model, head = built.model, built.model.pretrained_cfg["classifier"]
    fresh = [w for w in built.warnings if issubclass(w.category, FreshClassifierWarning)]
    assert len(fresh) == 1 and f"but the classifier '{head}', which is freshly initialised" in str(fresh[0].message)
    assert model.get_classifier() is model.get_submodule(head)
    assert model.get_classifier().out_features == model.pretrained_cfg["num_classes"] == NUM_CLASSES
    loaded = {key: value for key, value in model.state_dict().items() if not key.startswith(f"{head}.")}
    assert all(torch.equal(value, built.state[key].to(value.dtype)) for key, value in loaded.items())
    assert built.state[f"{head}.weight"].shape[0] != NUM_CLASSES


def test_forward_head_of_forward_features_is_forward_in_float64(built):
    model, x = built.model, built.input()
    with torch.no_grad():
        features = model.forward_features(x)
        pre_logits = model.forward_head(features, pre_logits=True)
        logits = model(x)
        assert relative_error(model.forward_head(features), logits) <= 1e-10
    assert features.dim() == 4 and features.shape[1] == model.num_features
    assert pre_logits.shape == (1, model.head_hidden_size)
    assert logits.shape == (1, NUM_CLASSES)


def test_reset_classifier_gives_a_new_head_or_none(built):
    model, x = built.model, built.input()
    with torch.no_grad():
        features = model.forward_features(x)
        pre_logits = model.forward_head(features, pre_logits=True)
        model.reset_classifier(7)
        head = model.get_classifier()
        assert head is model.get_submodule(model.pretrained_cfg["classifier"])
        assert (head.in_features, head.out_features, head.weight.dtype) == (model.head_hidden_size, 7, torch.float64)
        assert torch.equal(model.forward_head(features), head(pre_logits))
        model.reset_classifier(0)
        assert isinstance(model.get_classifier(), torch.nn.Identity) and model.num_classes == 0
        assert relative_error(model(x), pre_logits) <= 1e-10  # no head: the model returns its pre-logits
    model.reset_classifier(NUM_CLASSES)


def test_features_only_returns_the_feature_maps_its_feature_info_describes(built, request):
    features_model, caught = load(built.entrypoint, built.kwargs, built.state, built.path, features_only=True)
    assert not [w for w in caught if issubclass(w.category, FreshClassifierWarning)]  # no head was built
    info = features_model.feature_info
    assert info.out_indices == tuple(range(min(5, len(info))))  # timm's default: the first five
    size = FEATURE_SIZE.get(request.node.callspec.params["built"], SIZE)
    x = torch.from_numpy(seeded_input((1, built.model.pretrained_cfg["input_size"][0], size, size), 0))
    hooked = {}
    hooks = [built.model.get_submodule(name).register_forward_hook(  # the same backbone weights: the maps
        lambda _, __, out, name=name: hooked.setdefault(name, out)) for name in info.module_name()]  # are theirs
    with torch.no_grad():
        maps = features_model(x)
        built.model.forward_features(x)
    for hook in hooks:
        hook.remove()
    assert [tuple(m.shape[:2]) for m in maps] == [(1, channels) for channels in info.channels()]
    for feature, reduction in zip(maps, info.reduction()):
        assert {2 ** math.floor(math.log2(size / side)) for side in feature.shape[2:]} == {reduction}
    assert all(torch.equal(m, hooked[name]) for m, name in zip(maps, info.module_name()))
    expected_cfg = {k: v for k, v in built.model.pretrained_cfg.items() if k not in ("num_classes", "classifier")}
    assert features_model.pretrained_cfg == expected_cfg


@pytest.mark.parametrize(("out_indices", "channels"), [((1, 2), [16, 120]), (1, [120]), ([-3, -1], [6, 120])])
def test_out_indices_select_feature_maps(hubconf, out_indices, channels):
    model = hubconf.lenet5(features_only=True, out_indices=out_indices)
    assert model.feature_info.channels() == channels
    assert [m.shape[1] for m in model(torch.randn(1, 1, 32, 32))] == channels


@pytest.mark.parametrize("options", [{"features_only": True, "out_indices": (0, 3)},
                                     {"features_only": True, "out_indices": "last"},
                                     {"features_only": True, "out_indices": 0},
                                     {"features_only": "yes"}, {"out_indices": (0, 1)}, {"num_classes": -1}],
                         ids=["out-of-range", "not-indices", "zero", "not-bool", "without-features_only",
                              "negative-classes"])
def test_bad_feature_options_are_value_errors_naming_them(hubconf, options):
    name = next(iter(options)) if "out_indices" not in options else "out_indices"
    with pytest.raises(InvalidArgumentError, match=name):
        hubconf.lenet5(**options)


def test_in_chans_adapts_the_pretrained_input_convolution_as_timm_does(tmp_path):
    from timm.models import adapt_input_conv

    state = seeded_checkpoint("resnet18_ssl", {})
    path = tmp_path / "resnet18.pth"
    path.touch()
    for in_chans in (1, 5):
        model, _ = load("resnet18_ssl", {}, state, path, in_chans=in_chans)
        expected = adapt_input_conv(in_chans, state["conv1.weight"]).double()
        assert torch.equal(model.conv1.weight, expected) and model.conv1.weight.shape[1] == in_chans
        assert torch.equal(model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"].double())
        with torch.no_grad():
            assert model(torch.randn(1, in_chans, SIZE, SIZE, dtype=torch.float64)).shape == (1, 1000)


@pytest.mark.parametrize(("entrypoint", "kwargs"), [("nvidia_gpunet", {"model_type": "GPUNet-D1"}),
                                                    ("nvidia_efficientnet_b0", {}), ("lenet5", {})])
def test_in_chans_of_the_other_architectures_that_allow_it(hubconf, entrypoint, kwargs):
    model = getattr(hubconf, entrypoint)(pretrained=False, in_chans=2, **kwargs).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 2, 32, 32)).shape[0] == 1


def test_the_torchvision_models_take_no_in_chans(hubconf):
    with pytest.raises(TypeError, match="'in_chans'"):
        hubconf.resnet50(pretrained=False, in_chans=1)
