"""timm's own model tests, re-expressed for our entrypoints and variants: code written for timm works on ours.

The checks are those of timm's ``tests/test_models.py`` (huggingface/pytorch-image-models): forward,
backward, default_cfgs (``pool_size``, ``first_conv``, ``classifier``, ``reset_classifier(0)`` and
``(0, '')``, ``num_classes=0, global_pool=''``), features_only, forward_intermediates, TorchScript, FX
forward and backward through torchvision's ``create_feature_extractor`` with timm's tracer settings, and
FX then TorchScript. As there, models are untrained (``pretrained=False``) and nothing is excluded but by
timm's size rules (``fixed_input_size``); inputs are smaller than timm's (64 px, 96 px for features) to keep
the suite fast.

What depends on the entrypoint (its ``pretrained_cfg``, ``default_cfg``, input size, head, feature maps) is
checked for every entrypoint and variant, at the model's native size (timm's up to 448 px) on the meta device,
where shapes are exact and cost nothing; a ``type=`` dispatcher's variant builds its target's very model,
``pretrained_cfg`` included (test_aliases_and_types_build_their_targets), and is checked under that name.
What computes (forward, backward, ``pool_size`` against a real forward, intermediates, TorchScript, FX) runs
once per distinct architecture (tests/architectures.py: an ssl/swsl pair shares one build, a wider twin is
checked through its narrower model), on its shallow twin: the model less each block that repeats the one
before it (same classes, attributes and weights' shapes: the same code on the same shapes), so that every
distinct block is still run, differentiated, scripted and traced, once
(test_a_shallow_twin_runs_every_block_of_its_model_on_the_same_shapes); an architecture whose shallow twin is
another's is checked through that one (STAND_INS).
"""

import contextlib
import copy
import functools
import gzip
import json
import math
import warnings
import weakref

import pytest
import timm
import torch
from architectures import costly_architectures, own_signature, shallow_twin, signature
from conftest import HUBCONF, REFERENCE, fast_meta_batch_norm, fast_meta_init
from convnets_hub.models.hub import variant_keyword
from convnets_hub.models.pretrained_config import (
    set_pretrained_cfg,
    update_pretrained_cfg,
)
from convnets_hub.models.registry import ALIASES, DISPATCHERS
from timm.layers import DropPath
from timm.models import get_notrace_functions, get_notrace_modules
from torchvision.models.feature_extraction import (
    NodePathTracer,
    create_feature_extractor,
    get_graph_node_names,
)

PINS = json.loads(gzip.decompress((REFERENCE / "entrypoint_pins.json.gz").read_bytes()))
VARIANTS = [(pin["entrypoint"], pin["kwargs"]) for pin in PINS  # every entrypoint and variant but
            if pin["entrypoint"] not in DISPATCHERS]  # a dispatcher's, which build their targets' models
ARCHITECTURES = [(name, {variant_keyword(name): model_type} if model_type else {})
                 for name, model_type in costly_architectures()]  # each distinct architecture once
STAND_INS = {"resnext50_32x4d_ssl": "nvidia_resneXt"}
"""An architecture -> the one whose checks that compute check it too: their shallow twins are one model (ResNeXt50
and ResNeXt101 32x4d differ only in how many times layer3's block repeats: 6 or 23 times, 2 in the twins):
test_an_architecture_checked_through_another_has_its_very_shallow_twin."""
COMPUTED = [(name, kwargs) for name, kwargs in ARCHITECTURES if name not in STAND_INS]


def ids(variants) -> list[str]:
    return ["-".join([entrypoint, *kwargs.values()]) for entrypoint, kwargs in variants]


ON_META = [  # test_model_default_cfgs and test_model_forward_features of a variant share its meta build: one worker
    pytest.param(entrypoint, kwargs, id=name, marks=pytest.mark.xdist_group(f"test_timm_model_checks.on_meta:{name}"))
    for (entrypoint, kwargs), name in zip(VARIANTS, ids(VARIANTS))]
SIZE = 64  # forward, backward, TorchScript and FX (timm: 384, 128, 128, 128)
FEATURES_SIZE = 96  # timm's TARGET_FFEAT_SIZE
BACKWARD_CLASSES = 42
FX_MAX_PARAMS = 100e6  # timm's CI: "Skipping FX test on model with more than 100M params."
FX_EXCLUDED = ("vgg",)  # timm's CI EXCLUDE_FX_FILTERS: 'vgg*'


def compiled_as_graphs(variant) -> None:
    """TorchScript and FX apply to every model but NVIDIA's quantization-aware EfficientNets, whose fake
    quantizers (pytorch_quantization's design: calibration state read at every call, a Q/DQ form only
    while ONNX exports them) go to deployment as ONNX Q/DQ graphs (tests/models/archs/test_efficientnet_quant.py)."""
    if "quant" in variant[0]:
        pytest.skip(f"{variant[0]}: fake-quantized, deployed as ONNX Q/DQ, not scripted or traced")


def traceable_by_timms_rules(variant) -> None:
    """timm's own exclusions of its FX tests on its CI runners: VGG, and models above 100 M parameters."""
    compiled_as_graphs(variant)
    params = variant[3]  # the model's, not its shallow twin's
    if variant[0].startswith(FX_EXCLUDED) or params > FX_MAX_PARAMS:
        pytest.skip(f"timm's FX exclusions: {variant[0]} ({params / 1e6:.0f} M parameters)")


def input_size(model: torch.nn.Module, target: int) -> tuple[int, ...]:
    """timm's ``_get_input_size``: the model's own input size if fixed, else at most ``target`` px."""
    cfg = model.default_cfg
    return tuple(cfg["input_size"]) if cfg.get("fixed_input_size") else tuple(min(x, target) for x in cfg["input_size"])


def batch(model: torch.nn.Module, target: int, size: int = 1) -> torch.Tensor:
    return torch.randn((size, *input_size(model, target)), generator=torch.Generator().manual_seed(0))


def fresh_head(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in eval mode with a head as built (its classes, average pooling) and no gradients."""
    model.reset_classifier(model.pretrained_cfg["num_classes"], "avg")
    model.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="module", params=[  # each architecture's checks on one xdist worker: one build, not one a worker
    pytest.param(architecture, id=name, marks=pytest.mark.xdist_group(f"test_timm_model_checks:{name}"))
    for architecture, name in zip(COMPUTED, ids(COMPUTED))])
def variant(request):
    """(entrypoint, kwargs, the untrained model's shallow twin, the model's parameter count): built once per
    architecture for the checks that compute."""
    entrypoint, kwargs = request.param
    torch.manual_seed(0)
    with fast_meta_batch_norm():  # its pool_size: a meta forward
        model = getattr(HUBCONF, entrypoint)(pretrained=False, **kwargs)
    return entrypoint, kwargs, shallow_twin(model)[0], sum(p.numel() for p in model.parameters())


def build_on_meta(entrypoint: str, kwargs: dict, **options) -> torch.nn.Module:
    """The untrained model on the meta device: shapes without memory, initialisation or arithmetic."""
    with torch.device("meta"), fast_meta_batch_norm(), fast_meta_init():
        return getattr(HUBCONF, entrypoint)(pretrained=False, **kwargs, **options)


@functools.cache
def _built_on_meta(entrypoint: str, kwargs: tuple) -> torch.nn.Module:
    return build_on_meta(entrypoint, dict(kwargs))


def built_on_meta(entrypoint: str, kwargs: dict) -> torch.nn.Module:
    """:func:`build_on_meta`'s model, built once per test process and shared by the tests of its variant: to read,
    or to run in eval mode (:func:`in_eval_mode`). A build with options, which one test reads, is that test's own
    (:func:`build_on_meta`), not kept for the life of the process."""
    return _built_on_meta(entrypoint, tuple(kwargs.items()))


@contextlib.contextmanager
def in_eval_mode(model: torch.nn.Module):
    """``model`` in eval mode for the block, then each of its modules in the mode it was in: a shared build run
    in eval mode stays as the tests that share it expect it (test_pool_size_is_computed_without_changing_the_model)."""
    modes = [(module, module.training) for module in model.modules()]
    try:
        yield model.eval()
    finally:
        for module, training in modes:
            module.training = training


def on_meta(entrypoint: str, kwargs: dict) -> torch.nn.Module:
    """A copy of :func:`built_on_meta`'s model, its caller's own to change (half the time of a build)."""
    return copy.deepcopy(built_on_meta(entrypoint, kwargs))


@pytest.mark.parametrize(("entrypoint", "kwargs"), [  # beside the variant's meta checks: one meta build
    pytest.param(*architecture, id=name, marks=pytest.mark.xdist_group(f"test_timm_model_checks.on_meta:{name}"))
    for architecture, name in zip(ARCHITECTURES, ids(ARCHITECTURES))])
def test_a_shallow_twin_runs_every_block_of_its_model_on_the_same_shapes(entrypoint, kwargs, meta_batch_norm):
    """What lets the checks that compute run on a model's shallow twin: each block it dropped is, module for
    module, a block it kept beside it; it has every module of the model (class, attributes, weights' shapes),
    its feature_info, pretrained_cfg, and the same shapes at every feature map and at the output."""
    twin, dropped = shallow_twin(on_meta(entrypoint, kwargs))
    twin.eval()
    with in_eval_mode(built_on_meta(entrypoint, kwargs)) as model:  # the shared build, not a copy of it
        kept = {}  # the signatures of the blocks that the twin kept, by container
        for path in dropped:
            parent, _, name = path.rpartition(".")
            if parent not in kept:
                kept[parent] = [signature(block) for block in twin.get_submodule(parent).children()]
            assert signature(model.get_submodule(path)) in kept[parent], path
            assert not hasattr(twin.get_submodule(parent), name)
        assert {own_signature(module) for module in twin.modules()} == {own_signature(module) for module in model.modules()}
        twin_state = {key: value.shape for key, value in twin.state_dict().items()}
        assert twin_state.items() <= {key: value.shape for key, value in model.state_dict().items()}.items()
        assert len(twin_state) < len(model.state_dict()) or not dropped
        assert twin.pretrained_cfg == model.pretrained_cfg and twin.feature_info == model.feature_info
        for size in {input_size(model, SIZE), input_size(model, FEATURES_SIZE)}:  # the checks' inputs
            x = torch.empty((1, *size), device="meta")
            (output, maps), (twin_output, twin_maps) = (m.forward_intermediates(x) for m in (model, twin))
            assert [o.shape for o in (twin_output, *twin_maps)] == [o.shape for o in (output, *maps)]
            assert twin(x).shape == model(x).shape


@pytest.mark.parametrize(("name", "stand_in"), STAND_INS.items())
def test_an_architecture_checked_through_another_has_its_very_shallow_twin(name, stand_in, meta_batch_norm):
    """What lets the checks that compute skip ``name``: its shallow twin is ``stand_in``'s, module for module (class,
    attributes, weights' shapes, feature_info), but for the names and figures of its pretrained_cfg, of which the
    checks read the input size, classes and pool_size; and timm's rules take or skip both alike."""
    def top(model):  # the model's own attributes but its pretrained_cfg; hooks by function, not by handle number
        attributes = {key: list(value.values()) if "hook" in key and isinstance(value, dict) else value
                      for key, value in vars(model).items() if key not in ("_parameters", "_buffers", "_modules")}
        return {key: value for key, value in attributes.items() if key not in ("pretrained_cfg", "default_cfg")}

    twins = [shallow_twin(on_meta(entrypoint, {}))[0] for entrypoint in (name, stand_in)]
    assert top(twins[0]) == top(twins[1]) and own_signature(twins[0])[2:] == own_signature(twins[1])[2:]
    assert signature(twins[0])[1:] == signature(twins[1])[1:]  # every module under it, by name
    read = ("input_size", "fixed_input_size", "num_classes", "pool_size")
    assert [{key: twin.pretrained_cfg.get(key) for key in read} for twin in twins] == [
        {key: twins[1].pretrained_cfg.get(key) for key in read}] * 2
    rules = [(entrypoint.startswith(FX_EXCLUDED), "quant" in entrypoint,
              sum(p.numel() for p in built_on_meta(entrypoint, {}).parameters()) > FX_MAX_PARAMS)
             for entrypoint in (name, stand_in)]
    assert rules[0] == rules[1]


def test_the_signature_sees_a_change_of_block_width_stride_se_or_drop_path(meta_batch_norm):
    """The comparison can fail: a ResNeXt stage's first block (its downsampling) is not the next, ResNeXt50's
    blocks are not SE-ResNeXt101's, nor EfficientNet-B0's last stage block B4's; a stochastic depth of zero is not
    one above zero."""
    resnext, se = (built_on_meta(name, {}) for name in ("resnext50_32x4d_ssl", "nvidia_se_resnext101_32x4d"))
    assert signature(resnext.layer3[0]) != signature(resnext.layer3[1]) == signature(resnext.layer3[2])
    assert signature(resnext.layer3[1]) != signature(se.layer3[1])
    b0, b4 = (built_on_meta(f"nvidia_efficientnet_{name}", {}) for name in ("b0", "b4"))
    assert signature(b0.blocks[1][1]) != signature(b4.blocks[1][1])
    assert signature(b4.blocks[2][1]) == signature(b4.blocks[2][2])  # stochastic depth 0.044 and 0.05: the same code
    assert own_signature(DropPath(0.0)) != own_signature(DropPath(0.1)) == own_signature(DropPath(0.2))
    assert len(shallow_twin(on_meta("nvidia_resneXt", {}))[1]) == 3 + 4 + 23 + 3 - 8  # two blocks a stage kept


def test_meta_builds_skip_only_the_drawing_of_meta_tensors():
    """conftest's fast_meta_init, under which the meta builds run: a meta tensor's ``normal_``/``uniform_`` is
    the tensor itself, as torch's; a CPU tensor still draws, the same numbers from the same generator."""
    def drawn(tensor):
        return (tensor.normal_(generator=torch.Generator().manual_seed(0)).clone(),
                tensor.uniform_(generator=torch.Generator().manual_seed(1)).clone())

    expected = drawn(torch.zeros(8))
    with fast_meta_init():
        meta = torch.empty(8, device="meta")
        assert meta.normal_() is meta and meta.uniform_() is meta and meta.shape == (8,)
        cpu = drawn(torch.zeros(8))
    assert all(torch.equal(a, b) and bool(b.ne(0).all()) for a, b in zip(cpu, expected))


def test_every_xdist_group_of_the_suite_is_one_that_pytest_xdist_forms(request):
    """A group's name must not end in "]": xdist's loadgroup takes ``nodeid@name`` for a group only where the
    "@" comes after the last "]", and otherwise schedules each test alone (these checks' groups once were
    "name[variant]": each model was built on both workers, and again between its tests)."""
    from xdist.scheduler.loadgroup import LoadGroupScheduling

    groups = {mark.args[0] for item in request.session.items for mark in item.iter_markers("xdist_group")}
    assert {"test_timm_model_checks:nvidia_resneXt", "test_timm_model_checks.on_meta:nvidia_resneXt"} <= groups
    for name in groups:
        assert LoadGroupScheduling._split_scope(None, f"tests/test_x.py::test_x[id]@{name}") == name


def test_model_forward(variant):
    model = fresh_head(variant[2])
    with torch.no_grad():
        outputs = model(batch(model, SIZE))
    assert outputs.shape == (1, model.num_classes)
    assert not torch.isnan(outputs).any()


def test_aliases_and_types_build_their_targets():
    """What lets the checks run once per model: the same class, modules, and weights' names and shapes; a
    dispatcher's variant, its target's very ``pretrained_cfg`` (an alias names itself as the entrypoint)."""
    def layout(model):
        return (type(model), [(name, type(module)) for name, module in model.named_modules()],
                [(key, tuple(value.shape)) for key, value in model.state_dict().items()])

    for alias, target in ALIASES.items():
        built, expected = built_on_meta(alias, {}), built_on_meta(target, {})
        assert layout(built) == layout(expected)
        assert built.pretrained_cfg == {**expected.pretrained_cfg, "entrypoint": alias}
    for name, dispatcher in DISPATCHERS.items():
        for model_type, target in dispatcher.types.items():
            built, expected = built_on_meta(name, {dispatcher.keyword: model_type}), built_on_meta(target, {})
            assert layout(built) == layout(expected)
            assert built.pretrained_cfg == expected.pretrained_cfg and built.pretrained_cfg["entrypoint"] == target


def test_model_backward(variant):
    model = fresh_head(variant[2])
    model.reset_classifier(BACKWARD_CLASSES)
    model.train()
    outputs = model(batch(model, SIZE, size=2))
    outputs.mean().backward()
    assert [name for name, parameter in model.named_parameters() if parameter.grad is None] == []
    assert outputs.shape == (2, BACKWARD_CLASSES)
    assert not torch.isnan(outputs).any()


@pytest.mark.parametrize(("entrypoint", "kwargs"), ON_META)
def test_model_default_cfgs(entrypoint, kwargs, meta_batch_norm):
    """timm's test_model_default_cfgs, at the model's native input size, on the meta device."""
    model = on_meta(entrypoint, kwargs).eval()
    assert model.default_cfg is model.pretrained_cfg  # timm's alias
    cfg, state_dict = model.default_cfg, model.state_dict()
    assert model.num_classes >= 0 and model.num_features > 0 and model.head_hidden_size > 0
    x = torch.empty((1, *cfg["input_size"]), device="meta")
    features = model.forward_features(x)
    assert tuple(features.shape[2:]) == tuple(cfg["pool_size"]) and features.shape[1] == model.num_features
    assert model.forward_head(features, pre_logits=True).shape[1] == model.head_hidden_size
    model.reset_classifier(0)
    assert model.num_classes == 0
    assert model(x).shape == (1, model.head_hidden_size)
    model.reset_classifier(0, "")  # no classifier, no pooling
    unpooled = model(x)
    assert unpooled.dim() == 4 and tuple(unpooled.shape[2:]) == tuple(cfg["pool_size"])
    backbone = build_on_meta(entrypoint, kwargs, num_classes=0, global_pool="").eval()
    assert tuple(backbone(x).shape) == tuple(unpooled.shape)
    assert f"{cfg['classifier']}.weight" in state_dict
    assert f"{cfg['first_conv']}.weight" in state_dict


def test_pool_size_follows_the_input_size(variant, meta_batch_norm):
    """pool_size against a real forward_features, at another input size than the native one."""
    model = fresh_head(variant[2])
    x = batch(model, SIZE)
    with torch.no_grad():
        features = model.forward_features(x)
    cfg = model.pretrained_cfg
    try:
        update_pretrained_cfg(model, input_size=tuple(x.shape[1:]))
        resized = {**cfg, "input_size": tuple(x.shape[1:]), "pool_size": tuple(features.shape[2:])}
        assert model.pretrained_cfg == resized and model.default_cfg is model.pretrained_cfg
    finally:
        set_pretrained_cfg(model, cfg)  # the native pool_size: test_model_default_cfgs


@pytest.mark.parametrize(("entrypoint", "kwargs"), ON_META)
def test_model_forward_features(entrypoint, kwargs, meta_batch_norm):
    """timm's test_model_forward_features (shapes: on the meta device) and its cfg: the model's, less the head's."""
    real = built_on_meta(entrypoint, kwargs)
    model = build_on_meta(entrypoint, kwargs, features_only=True).eval()
    channels, reductions = model.feature_info.channels(), model.feature_info.reduction()
    assert len(channels) >= 3
    size = input_size(real, FEATURES_SIZE)
    outputs = model(torch.empty((1, *size), device="meta"))
    assert [o.shape[1] for o in outputs] == channels
    for reduction, output in zip(reductions, outputs):
        assert output.shape[0] == 1
        assert all(side <= math.ceil(full / reduction) + 1 for side, full in zip(output.shape[2:], size[1:]))
    assert model.default_cfg is model.pretrained_cfg
    assert model.pretrained_cfg == {key: value for key, value in real.pretrained_cfg.items()
                                    if key not in ("num_classes", "classifier")}


def test_model_forward_intermediates(variant):
    model = fresh_head(variant[2])
    info = timm.models.FeatureInfo(model.feature_info, len(model.feature_info))
    x = batch(model, FEATURES_SIZE)
    with torch.no_grad():
        output, intermediates = model.forward_intermediates(x, output_fmt="NCHW")
        assert torch.allclose(output, model.forward_features(x))
    assert len(intermediates) == len(info.channels()) >= 3
    for channels, reduction, o in zip(info.channels(), info.reduction(), intermediates):
        assert o.shape[:2] == (1, channels) and not torch.isnan(o).any()
        assert all(side <= math.ceil(full / reduction) + 1 for side, full in zip(o.shape[2:], x.shape[2:]))


def _scripted(module: torch.nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated in favour of torch.export
        return torch.jit.script(module)


def _run_scripted(scripted: torch.jit.ScriptModule, x: torch.Tensor) -> torch.Tensor:
    """The scripted module's one call, run by TorchScript's interpreter without the profiling executor's
    instrumentation: a first call only profiles (its optimized plan comes at the second), and profiling cost
    0.3-0.9 s a model (1 thread), more than the model's eager forward."""
    with torch.jit.optimized_execution(False):
        return scripted(x)


def test_model_forward_torchscript(variant):
    compiled_as_graphs(variant)
    model = fresh_head(variant[2])
    x = batch(model, SIZE)
    scripted = _scripted(model)
    with torch.no_grad():
        outputs, expected = _run_scripted(scripted, x), model(x)
    assert outputs.shape == (1, model.num_classes) and not torch.isnan(outputs).any()
    assert torch.allclose(outputs, expected, rtol=1e-4, atol=1e-5)


TRACER_KWARGS = {"leaf_modules": get_notrace_modules(), "autowrap_functions": get_notrace_functions(),
                 "param_shapes_constant": True}  # timm's
_NODE_NAMES: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[list[str], list[str]]]" = weakref.WeakKeyDictionary()


def _graph_node_names(model: torch.nn.Module) -> tuple[list[str], list[str]]:
    """torchvision's ``get_graph_node_names`` (train and eval graphs: two traces), once per model for its three
    FX checks: the names are those of the modules and calls, whatever weights and classes its head is given."""
    if model not in _NODE_NAMES:
        _NODE_NAMES[model] = get_graph_node_names(model, tracer_kwargs=TRACER_KWARGS)
    return _NODE_NAMES[model]


def _fx_model(model: torch.nn.Module, train: bool = False) -> torch.fx.GraphModule:
    """timm's ``_create_fx_model``: torchvision's feature extractor of the model's output, traced with
    timm's leaf modules and functions."""
    tracer_kwargs = TRACER_KWARGS
    train_nodes, eval_nodes = _graph_node_names(model)
    train_return_nodes = [train_nodes[-1]]
    if train:
        graph_nodes = list(reversed(NodePathTracer(**tracer_kwargs).trace(model).nodes))
        names = [node.name for node in graph_nodes]
        train_return_nodes = [train_nodes[-names.index(node.name)] for node in graph_nodes[0]._input_nodes]
    return create_feature_extractor(model, train_return_nodes=train_return_nodes,
                                    eval_return_nodes=[eval_nodes[-1]], tracer_kwargs=tracer_kwargs)


def test_model_forward_fx(variant):
    """Traced (torch.fx), the model computes bit for bit what it computes eagerly."""
    traceable_by_timms_rules(variant)
    model = fresh_head(variant[2])
    x = batch(model, SIZE)
    with torch.inference_mode():
        outputs = model(x)
        fx_outputs = torch.cat(tuple(_fx_model(model)(x).values()))
    assert torch.equal(fx_outputs, outputs)
    assert outputs.shape[0] == 1 and not torch.isnan(outputs).any()


def test_model_backward_fx(variant):
    traceable_by_timms_rules(variant)
    model = fresh_head(variant[2])
    model.reset_classifier(BACKWARD_CLASSES)
    model.train()
    traced = _fx_model(model, train=True)
    outputs = torch.cat(tuple(traced(batch(model, SIZE, size=2)).values()))
    outputs.mean().backward()
    assert [name for name, parameter in traced.named_parameters() if parameter.grad is None] == []
    assert sum(p.numel() for p in traced.parameters()) == sum(p.numel() for p in model.parameters())
    assert outputs.shape == (2, BACKWARD_CLASSES) and not torch.isnan(outputs).any()


def test_model_forward_fx_torchscript(variant):
    """Traced, then scripted: the traced graph's code compiles (its annotations are real types)."""
    traceable_by_timms_rules(variant)
    model = fresh_head(variant[2])
    x = batch(model, SIZE)
    scripted = _scripted(_fx_model(model))
    with torch.inference_mode():
        outputs = torch.cat(tuple(_run_scripted(scripted, x).values()))
        assert torch.allclose(outputs, model(x), rtol=1e-4, atol=1e-5)
    assert outputs.shape == (1, model.num_classes) and not torch.isnan(outputs).any()


def test_manifest_weights_give_timms_source_fields(meta_batch_norm):
    """For every manifest entry: timm's tag, url, license, and hf_hub_id where the Hub has the same weights,
    whose timm pretrained_cfg then names the same first_conv, classifier and pool_size as ours."""
    from convnets_hub.models.pretrained_config import pretrained_cfg_of
    from convnets_hub.models.registry import SPECS
    from convnets_hub.models.weights.manifest import load_manifest

    hub_ids = []
    for entry in load_manifest().entries:
        spec = SPECS[entry.entrypoint]
        with torch.device("meta"), fast_meta_init():
            model = spec.build(**({"model_type": entry.model_type} if entry.model_type else {}))
        cfg = pretrained_cfg_of(model, spec, architecture=entry.entrypoint, entrypoint=entry.entrypoint,
                                model_type=entry.model_type, preprocessing=entry.preprocessing, loaded=entry,
                                published=entry, checkpoint="file").to_dict()
        assert f"{entry.entrypoint}.{cfg['tag']}" == cfg["id"] == entry.id
        assert (cfg["url"], cfg["license"], cfg["architecture"]) == (entry.urls[0], entry.license, entry.entrypoint)
        if "hf_hub_id" in cfg:
            hub_ids.append(cfg["hf_hub_id"])
            timm_cfg = timm.models.get_pretrained_cfg(cfg["hf_hub_id"].removeprefix("timm/"))
            assert timm_cfg.hf_hub_id == cfg["hf_hub_id"] and timm_cfg.tag == cfg["tag"]
            assert (timm_cfg.first_conv, timm_cfg.classifier, timm_cfg.num_classes) == (
                cfg["first_conv"], cfg["classifier"], cfg["num_classes"])
            # timm's input size may be its training one (resnet50.tv2_in1k: 176 px); ours is the test one
            timm_pool_size = (timm_cfg.pool_size if tuple(timm_cfg.input_size) == cfg["input_size"]
                              else timm_cfg.test_pool_size or tuple(-(-side // 32) for side in cfg["input_size"][1:]))
            assert tuple(timm_pool_size) == cfg["pool_size"]
    assert len(hub_ids) == 14  # the twelve Facebook SSL/SWSL models and torchvision's two ResNet-50 recipes


def test_pool_size_is_computed_without_changing_the_model(meta_batch_norm):
    """In training mode too (a batch of one with a 1x1 map, which BatchNorm refuses in training)."""
    model = on_meta("resnet18_ssl", {})
    assert model.training and model.pretrained_cfg["pool_size"] == (7, 7)
    update_pretrained_cfg(model, input_size=(3, 32, 32))
    assert model.pretrained_cfg["pool_size"] == (1, 1) and model.default_cfg is model.pretrained_cfg
    assert all(module.training for module in model.modules())
