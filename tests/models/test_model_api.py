"""timm's feature and head API on every architecture, through the entrypoints.

For each architecture (one entrypoint where several share the class: every ResNet/ResNeXt/SE-ResNeXt
entrypoint is timm's ``ResNet``, vgg16 and vgg16_bn are torchvision's ``VGG``; every EfficientNet
variant and GPUNet type, whose heads differ; a wide-SE EfficientNet, which differs from its plain-SE model
in widths only, through that model: tests/architectures.py): ``num_classes`` with pretrained weights loads all but the
declared classifier and warns once naming it, ``forward_head(forward_features(x))`` is ``forward(x)``
in float64, ``reset_classifier`` gives a new head or none, and ``features_only=True`` returns the feature
maps that its ``feature_info`` describes. The seeded checkpoints are handed to the loader in memory
(reading files is tested in test_checkpoint).
"""

import contextlib
import gzip
import json
import math
import warnings
from dataclasses import dataclass

import pytest
import torch
import torchvision
from architectures import costly_architectures
from conftest import (
    HUBCONF,
    REFERENCE,
    fast_meta_init,
    seeded_input,
    torch_seeded_state_dict,
)
from convnets_hub.models import builder
from convnets_hub.models.archs.gpunet.types import GPUNET_TYPES
from convnets_hub.models.archs.timm_api import classifier_name
from convnets_hub.models.builder import FreshClassifierWarning
from convnets_hub.models.errors import InvalidArgumentError
from convnets_hub.models.hub import variant_keyword

PINS = json.loads(gzip.decompress((REFERENCE / "entrypoint_pins.json.gz").read_bytes()))
ARCHITECTURES = {
    "resnet": ("resnet18_ssl", {}),
    **{f"efficientnet_{variant}": (f"nvidia_efficientnet_{variant}", {})
       for variant in ("b0", "b4")},
    **{name: ("nvidia_gpunet", {"model_type": name}) for name in GPUNET_TYPES},
    **{name: (name, {}) for name in ("alexnet", "vgg16_bn", "googlenet", "resnet50", "lenet5")},
}
NUM_CLASSES = 5
SIZE = 64  # where every feature map of the first five is at least 2 px wide (AlexNet's unpadded convolutions:
FEATURE_SIZE = {"alexnet": 128}  # at 128); LeNet-5's classifier takes 32 px


def seeded_checkpoint(entrypoint: str, kwargs: dict) -> dict[str, torch.Tensor]:
    """Seeded float32 weights (``torch_seeded_state_dict``) under the keys and shapes of the entrypoint's
    1000-class (lenet5: 10) model; GoogLeNet's, as torchvision's file, with the auxiliary heads that its loader
    then drops."""
    if entrypoint == "googlenet":
        with torch.device("meta"):
            model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
        keys = [(key, value.shape) for key, value in model.state_dict().items()]
    else:
        keys = next(pin["state_dict"] for pin in PINS if pin["entrypoint"] == entrypoint and pin["kwargs"] == kwargs)
    return torch_seeded_state_dict(keys)


def load(entrypoint: str, kwargs: dict, state: dict, path, **options) -> tuple[torch.nn.Module, list]:
    """``entrypoint``'s float64 eval model with ``state`` as its weights file ``path``, and the warnings it gave."""
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        patch.setattr(builder, "read_checkpoint", lambda *args: state)
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


@pytest.fixture(scope="module", params=[  # a module fixture is computed on each xdist worker that runs one of its
    pytest.param(name, marks=pytest.mark.xdist_group(f"test_model_api.built:{name}"))  # tests: keep each
    for name in ARCHITECTURES])  # architecture's on one (vgg16_bn's seeded checkpoint and float64 model take seconds)
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


@pytest.mark.parametrize("architecture", ["alexnet", "googlenet", "resnet50"])
def test_in_chans_adapts_the_torchvision_models_pretrained_input_convolution(architecture, tmp_path):
    """As timm's load_pretrained: the checkpoint's ``first_conv`` summed for one channel, repeated and
    scaled for more; every other weight as in the checkpoint. (VGG shares AlexNet's code path.)"""
    from timm.models import adapt_input_conv

    entrypoint, kwargs = ARCHITECTURES[architecture]
    state = seeded_checkpoint(entrypoint, kwargs)
    path = tmp_path / f"{entrypoint}.pth"
    path.touch()
    for in_chans in (1,):  # more channels: test_in_chans_adapts_the_pretrained_input_convolution_as_timm_does
        model, _ = load(entrypoint, kwargs, state, path, in_chans=in_chans)
        first_conv = f"{model.pretrained_cfg['first_conv']}.weight"
        assert torch.equal(model.state_dict()[first_conv], adapt_input_conv(in_chans, state[first_conv]).double())
        assert all(torch.equal(value, state[key].to(value.dtype)) for key, value in model.state_dict().items()
                   if key != first_conv)
        with torch.no_grad():
            assert model(torch.randn(1, in_chans, SIZE, SIZE, dtype=torch.float64)).shape == (1, 1000)
    assert model.transform_input is False if entrypoint == "googlenet" else True  # RGB re-normalisation: 3 channels


@pytest.mark.parametrize(("entrypoint", "model_type"), costly_architectures(),
                         ids=["-".join(filter(None, architecture)) for architecture in costly_architectures()])
def test_every_untrained_model_takes_in_chans(on_meta, entrypoint, model_type):
    """Every architecture (tests/architectures.py: a wider twin through its narrower model)."""
    model = on_meta(entrypoint, {variant_keyword(entrypoint): model_type} if model_type else {}, in_chans=2)
    assert model.get_submodule(model.pretrained_cfg["first_conv"]).in_channels == 2
    size = model.pretrained_cfg["input_size"][1:] if entrypoint == "lenet5" else (SIZE, SIZE)
    assert model(torch.empty(1, 2, *size, device="meta")).shape == (1, model.num_classes)


CLASSIFIERS = {"resnet18_ssl": "fc", "nvidia_efficientnet_quant_b0": "classifier", "vgg16_bn": "classifier.6",
               "googlenet": "fc", "lenet5": "classifier.2", "GPUNet-0": "network. layer15.net.6",
               "GPUNet-D1": "network.tail:.net.8"}
"""``pretrained_cfg["classifier"]`` (timm's: the qualified name of what ``get_classifier()`` returns) of a few
architectures, as NVIDIA's, torchvision's and timm's checkpoints name it."""


@pytest.mark.parametrize("options", [{"num_classes": 3}, {"num_classes": 0}, {"num_classes": 0, "global_pool": ""}],
                         ids=["3-classes", "no-classes", "unpooled"])
@pytest.mark.parametrize("architecture", list(CLASSIFIERS))
def test_pretrained_cfg_names_the_classifier_even_without_classes(on_meta, architecture, options):
    """As timm's models: with ``num_classes=0`` the classifier is an identity, still named."""
    entrypoint, kwargs = (("nvidia_gpunet", {"model_type": architecture}) if architecture.startswith("GPUNet")
                          else (architecture, {}))
    model = on_meta(entrypoint, kwargs, **options)
    cfg = model.pretrained_cfg
    assert (cfg["classifier"], cfg["num_classes"]) == (CLASSIFIERS[architecture], options["num_classes"])
    assert model.get_classifier() is model.get_submodule(cfg["classifier"])
    assert isinstance(model.get_classifier(), torch.nn.Identity) == (options["num_classes"] == 0)


def test_a_classifier_outside_the_model_has_no_name():
    class Stray(torch.nn.Sequential):
        def get_classifier(self) -> torch.nn.Module:
            return torch.nn.Linear(2, 2)

    with pytest.raises(LookupError, match="Stray.get_classifier.. returns Linear, which is none of the model's"):
        classifier_name(Stray(torch.nn.Linear(2, 2)))


@pytest.fixture
def on_meta(meta_batch_norm):
    """Builds untrained models on the meta device: shapes without memory or initialisation."""
    def build(entrypoint: str, kwargs: dict, **options) -> torch.nn.Module:
        with torch.device("meta"), fast_meta_init():
            return getattr(HUBCONF, entrypoint)(pretrained=False, **kwargs, **options).eval()
    return build


TIMM_BUILT = ("timm-resnet", "timm-efficientnet")
GLOBAL_POOL_HEADS = {"timm-resnet": ("resnet18_ssl", {}), "timm-efficientnet": ("nvidia_efficientnet_b0", {}),
                     "torchvision-resnet": ("resnet50", {}), "googlenet": ("googlenet", {}),
                     "gpunet": ("nvidia_gpunet", {"model_type": "GPUNet-0"})}


@pytest.mark.parametrize("head", list(GLOBAL_POOL_HEADS))
def test_global_pool_sets_the_pooling_of_the_head(head):
    entrypoint, kwargs = GLOBAL_POOL_HEADS[head]
    torch.manual_seed(0)
    model = getattr(HUBCONF, entrypoint)(pretrained=False, global_pool="max", **kwargs).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        features = model.forward_features(x)
        assert torch.equal(model.forward_head(features, pre_logits=True), features.amax((2, 3)))
        model.reset_classifier(0, "avg")
        assert torch.allclose(model(x), features.mean((2, 3)), rtol=1e-5, atol=1e-6)
        model.reset_classifier(0, "")
        assert torch.equal(model(x), features)
        with pytest.raises(InvalidArgumentError, match="needs num_classes=0") if head not in TIMM_BUILT else \
                contextlib.nullcontext():  # timm's own models keep "" and fail at the call
            model.reset_classifier(3)  # as timm's: the current pooling
        model.reset_classifier(3, "avg")
        assert model(x).shape == (1, 3)


def test_global_pool_of_a_distilled_gpunet_keeps_its_convolution_after_pooling(on_meta):
    model = on_meta("nvidia_gpunet", {"model_type": "GPUNet-D1"}, num_classes=0, global_pool="")
    out = model(torch.empty(1, 3, 456, 456, device="meta"))
    assert tuple(out.shape) == (1, model.head_hidden_size, *model.pretrained_cfg["pool_size"])


@pytest.mark.parametrize("entrypoint", ["lenet5", "alexnet"])
def test_global_pool_of_a_conv_stack_is_its_own_or_none(on_meta, entrypoint):
    """AlexNet, VGG and LeNet-5: the classifier takes the grid of the feature map: no global pooling, but
    "" (with num_classes=0) returns the feature map."""
    model = on_meta(entrypoint, {}, num_classes=0, global_pool="")
    size = model.pretrained_cfg["input_size"]
    assert tuple(model(torch.empty(1, *size, device="meta")).shape) == (1, model.num_features,
                                                                         *model.pretrained_cfg["pool_size"])
    with pytest.raises(InvalidArgumentError, match="global_pool='max'"):
        model.reset_classifier(0, "max")


@pytest.mark.parametrize(("entrypoint", "options", "message"), [
    ("lenet5", {"global_pool": "mean"}, "global_pool='mean' is not a pooling"),
    ("resnet18_ssl", {"global_pool": 1}, "global_pool=1 is not a pooling"),
    ("resnet18_ssl", {"global_pool": ""}, "it needs num_classes=0"),
    ("googlenet", {"global_pool": "", "num_classes": 5}, "it needs num_classes=0"),
    ("resnet50", {"global_pool": "catavgmax"}, "global_pool='catavgmax' is not a pooling"),
    ("vgg16", {"global_pool": "avgmax"}, "global_pool='avgmax' is not a pooling"),
    ("alexnet", {"in_chans": 0}, "in_chans must be a positive int")])
def test_bad_global_pool_and_in_chans_are_value_errors_naming_them(on_meta, entrypoint, options, message):
    with pytest.raises(InvalidArgumentError, match=message):
        on_meta(entrypoint, {}, **options)
