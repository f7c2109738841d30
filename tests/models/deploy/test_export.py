"""``python3 -m models export``: ONNX for every architecture, TorchScript/ExportedProgram, Triton repositories.

The architectures come from hubconf (every model entrypoint, every variant of those that have
variants), never from a list here, so a new entrypoint is exported by these tests the day it is
added. Each distinct architecture is exported once (ssl/swsl pairs and aliases share one; a wider twin,
its narrower model: tests/architectures.py), with
random weights re-drawn so that the logits depend on the input (random GoogLeNets and GPUNets
otherwise answer every image alike, which would make a parity check vacuous); files are deleted
as each test ends.
"""

import functools
import io
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from architectures import WIDER_TWINS, costly_architectures, shallow_twin, signature
from command_line import run_cli
from conftest import HUBCONF, REPO, onnx_session, parity_fixture, seeded_checkpoint
from convnets_hub.models.archs.gpunet.types import GPUNET_TYPES
from convnets_hub.models.cli import main
from convnets_hub.models.deploy.exporters import (
    EXAMPLE_BATCH,
    export_model,
    export_onnx,
)
from convnets_hub.models.deploy.names import deployed_name
from convnets_hub.models.deploy.triton_repository import (
    triton_config,
    write_triton_repository,
)
from convnets_hub.models.hub import variant_keyword
from convnets_hub.processing.labels import imagenet_labels
from torch import nn

ONNX_TOLERANCE = 1e-4
# Not swept: dispatchers return models that the sweep covers; the quantized EfficientNets' ONNX runs in
# int8, which test_efficientnet_quant.py compares with their fake quantization on its own terms.
QUANTIZED = ("nvidia_efficientnet_quant_b0", "nvidia_efficientnet_quant_b4")


# Not swept: VGG16, for VGG16-BN stands for it. torch's exporter folds each eval-mode BatchNorm into the
# convolution before it, so VGG16-BN's ONNX graph is VGG16's, node for node, attribute for attribute,
# initializer shape for initializer shape (checked on torch 2.14.1; tests/models/archs/test_classic.py's
# test_folded_vgg16_bn_is_vgg16 shows the same of the eager models), and export_model takes one path for both.
STOOD_FOR = {"vgg16": "vgg16_bn"}

# Not swept: an architecture that repeats another's blocks more often, and nothing else. The exporter
# traces the same block modules, so the deeper graph is the shallower one's with runs of identical
# block subgraphs made longer: ResNeXt101-32x4d's stages hold 3, 4, 23, 3 of the blocks that
# ResNeXt50-32x4d's hold 3, 4, 6, 3 of (same builder, same Bottleneck, same widths, groups and strides).
# test_a_deeper_twin_repeats_its_models_blocks_only proves it on the meta device.
DEEPER_TWINS = {"nvidia_resneXt": "resnext50_32x4d_ssl"}

# Not run in ONNX Runtime: VGG16-BN, for AlexNet stands for it. Both are torchvision's features ->
# avgpool -> flatten -> classifier; once the exporter has folded each BatchNorm into the convolution
# before it, every operator of VGG16-BN's ONNX graph (its kind and attribute names) is one of AlexNet's,
# whose graph ONNX Runtime runs at batch 1 and 3 here; only counts and sizes differ. VGG16-BN's file
# (528 MB) costs ONNX Runtime seconds to load and its 224 x 224 batches 15 GFLOPs an image.
# test_every_onnx_operator_of_a_covered_model_is_its_stand_ins proves it, batch axis included.
OPERATORS_COVERED_BY = {"vgg16_bn": "alexnet"}

# Not run in ONNX Runtime: GPUNet-D2 and GPUNet-P0, for GPUNet-D1 and GPUNet-0 together stand for them.
# Every module of theirs runs the forward code of a module of the stand-ins (D2's large stem is a
# Sequential of conv-BN-ReLU, as D1's stem; P0 is the plain family's blocks without SE), and every operator of
# their ONNX graphs is one of the stand-ins', with every attribute's value (kernel, stride, padding,
# dilation, depthwise or dense): D2's is D1's but for a dense 3x3 stride-1 convolution that GPUNet-0 runs,
# P0's is GPUNet-0's but for D1's depthwise 5x5 stride-1 one. Only widths, resolutions and counts differ.
# ONNX Runtime runs both stand-ins at batch 1 and 3 here; GPUNet-D2 (528 x 528) was this sweep's costliest.
# test_every_onnx_operator_of_a_covered_gpunet_is_its_stand_ins_with_its_attributes proves it.
GPUNET_OPERATORS_COVERED_BY = {
    ("nvidia_gpunet", "GPUNet-D2"): (("nvidia_gpunet", "GPUNet-D1"), ("nvidia_gpunet", "GPUNet-0")),
    ("nvidia_gpunet", "GPUNet-P0"): (("nvidia_gpunet", "GPUNet-D1"), ("nvidia_gpunet", "GPUNet-0")),
}


def architectures() -> list[tuple[str, str | None]]:
    """Each architecture exported and run here: the distinct ones, less the quantized, the wider and
    deeper twins, VGG16 and the architectures whose operators another's cover."""
    return [item for item in costly_architectures()
            if item[0] not in {*QUANTIZED, *STOOD_FOR, *DEEPER_TWINS, *OPERATORS_COVERED_BY}
            and item not in GPUNET_OPERATORS_COVERED_BY]


def build(entrypoint: str, model_type: str | None = None, **kwargs) -> nn.Module:
    """The entrypoint's model with random weights, in eval mode."""
    options = {} if model_type is None else {variant_keyword(entrypoint): model_type}
    return getattr(HUBCONF, entrypoint)(pretrained=False, **options, **kwargs).eval()


def lively(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-draw the weights (He-scaled convolutions and linear layers, BatchNorm scales about 1),
    calibrate the BatchNorm statistics on a random batch, then shrink every BatchNorm scale by 0.85:
    every layer passes on what tells one input from another, and each block damps rather than
    amplifies float32 rounding. Uncalibrated, deep SE-ResNeXts amplify it into 30 % differences;
    calibrated but not shrunk, the 101-layer ResNeXts still amplify it to 1e-4; shrunk by 0.75, the
    logits of GPUNet-D2 hardly depend on the input."""
    generator = torch.Generator().manual_seed(seed)

    def draw(tensor: torch.Tensor, scale: float, offset: float = 0.0) -> None:
        tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale + offset)

    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                draw(module.weight, (2.0 / module.weight[0].numel()) ** 0.5)
                if module.bias is not None:
                    draw(module.bias, 0.1)
        for norm in norms:
            draw(norm.weight, 0.2, 1.0)
            draw(norm.bias, 0.1)
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average: the statistics of the calibration batch
        if norms:
            with torch.random.fork_rng():  # dropout and drop-path draw from the global generator
                torch.manual_seed(seed)
                model.train()(seeded_batch(model, 2, seed=seed + 100))
        for norm in norms:
            norm.momentum = 0.1
            norm.weight.mul_(0.85)
    return model.eval()


# Squeeze-and-excitation gates fade random weights' signal until the logits hardly depend on the
# input; these architectures take their parity oracle's recalibrated seeded weights instead.
SEEDED = {f"nvidia_efficientnet_{variant}" for variant in ("b0", "b4", "widese_b0", "widese_b4")}


def seeded_or_lively(entrypoint: str, model_type: str | None, scratch) -> nn.Module:
    if entrypoint not in SEEDED:
        return lively(build(entrypoint, model_type))
    path = scratch / f"{entrypoint}.pth"
    torch.save(seeded_checkpoint(parity_fixture(entrypoint)), path)
    return getattr(HUBCONF, entrypoint)(weights=str(path)).eval()


def relative_error(actual: np.ndarray, expected: torch.Tensor) -> float:
    return float(np.linalg.norm(actual - expected.numpy()) / expected.norm())


def seeded_batch(model: nn.Module, batch: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, *model.pretrained_cfg["input_size"], generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def scratch(tmp_path):
    """A folder whose files are deleted when the test ends (pytest keeps tmp_path's of recent runs)."""
    yield tmp_path
    for path in sorted(tmp_path.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()


def test_every_entrypoint_and_variant_is_covered():
    covered = architectures()
    names = {name for name, _ in covered}
    assert {model_type for name, model_type in covered if name == "nvidia_gpunet"} \
        == set(GPUNET_TYPES) - {model_type for _, model_type in GPUNET_OPERATORS_COVERED_BY}
    assert {stand_in for stand_ins in GPUNET_OPERATORS_COVERED_BY.values() for stand_in in stand_ins} <= set(covered)
    assert {"googlenet", "lenet5", "alexnet", "resnext50_32x4d_ssl", "resnet18_ssl"} <= names
    assert {name for name, _ in costly_architectures()} - names - set(QUANTIZED) \
        == set(STOOD_FOR) | set(DEEPER_TWINS) | set(OPERATORS_COVERED_BY)
    assert set(STOOD_FOR.values()) <= names | set(OPERATORS_COVERED_BY)  # VGG16 -> VGG16-BN -> AlexNet
    assert set(DEEPER_TWINS.values()) | set(OPERATORS_COVERED_BY.values()) <= names
    assert "resnet18_swsl" not in names and "nvidia_resnext101_32x4d" not in names  # same architectures
    assert not names & set(WIDER_TWINS)  # their narrower twins stand for them (tests/models/archs/test_wider_twins.py)


@pytest.mark.parametrize("deeper, model", DEEPER_TWINS.items())
def test_a_deeper_twin_repeats_its_models_blocks_only(deeper, model):
    """Less their repeated blocks (``shallow_twin``), the two are module for module the same, names, classes,
    attributes and weights' shapes included (the top module's own attributes aside: its pretrained_cfg)."""
    with torch.device("meta"):
        (deep, dropped_deep), (shallow, dropped_shallow) = (shallow_twin(build(name)) for name in (deeper, model))
    assert [(name, signature(child)) for name, child in deep.named_children()] \
        == [(name, signature(child)) for name, child in shallow.named_children()]
    assert len(dropped_deep) > len(dropped_shallow)  # indeed deeper, not an alias


def onnx_graph(model: nn.Module) -> onnx.GraphProto:
    """The graph of ``model``'s ONNX export (as ``export_model`` writes it, in memory)."""
    exported = io.BytesIO()
    export_onnx(model.eval(), exported)
    return onnx.load_from_string(exported.getvalue()).graph


def operator_configurations(graph: onnx.GraphProto) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Each operator of ``graph``: its kind and its attributes' values, a convolution's group told as
    "depthwise" where each group holds one input channel (else its count), as ONNX Runtime tells its kernels
    apart. Not the Identity of an initializer: the exporter's way to share equal constants (the equal biases
    that fresh BatchNorm statistics fold to), which depends on the weights' values, not on the architecture."""
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    shared = {node.output[0]: node.input[0] for node in graph.node
              if node.op_type == "Identity" and node.input[0] in initializers}

    def value(node: onnx.NodeProto, attribute: onnx.AttributeProto) -> str:
        if node.op_type == "Conv" and attribute.name == "group" and attribute.i > 1:
            weight = initializers[shared.get(node.input[1], node.input[1])]
            return "depthwise" if weight.dims[1] == 1 else str(attribute.i)
        return str(onnx.helper.get_attribute_value(attribute))

    return {(node.op_type, tuple(sorted((attribute.name, value(node, attribute)) for attribute in node.attribute)))
            for node in graph.node if node.output[0] not in shared}


def operators(graph: onnx.GraphProto) -> set[tuple[str, tuple[str, ...]]]:
    """Each operator of ``graph``: its kind and the names of its attributes (:func:`operator_configurations`
    less the values)."""
    return {(kind, tuple(name for name, _ in attributes)) for kind, attributes in operator_configurations(graph)}


def dims(value: onnx.ValueInfoProto) -> list[str | int]:
    return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]


def zeroed(entrypoint: str) -> nn.Module:
    """The entrypoint's model with zeros for weights and statistics, built without the random initialisation
    (1.2 s of VGG16-BN's 138 M weights), for checks of its graph's operators and shapes, which do not depend on
    the weights' values (but for the Identities that share equal constants, which :func:`operators` leaves out)."""
    with torch.device("meta"):
        model = build(entrypoint)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.zero_()
    return model


@pytest.mark.parametrize("covered, model", OPERATORS_COVERED_BY.items())
def test_every_onnx_operator_of_a_covered_model_is_its_stand_ins(covered, model):
    covered_graph, graph = onnx_graph(zeroed(covered)), onnx_graph(zeroed(model))
    assert operators(covered_graph) <= operators(graph)  # BatchNorm folded, no operator of its own
    for exported in (covered_graph, graph):
        (tensor_in,), (tensor_out,) = exported.input, exported.output
        assert (tensor_in.name, dims(tensor_in)) == ("input", ["batch", 3, 224, 224])
        assert (tensor_out.name, dims(tensor_out)) == ("logits", ["batch", 1000])


STAND_INS_GROUP = pytest.mark.xdist_group("gpunet-onnx-stand-ins")
"""One worker runs the GPUNet operator checks and the stand-ins' sweep: it exports each stand-in once for both."""


@pytest.fixture(scope="module")
def stand_in_export(tmp_path_factory):
    """The GPUNet stand-ins' exports, each made once in this worker for the operator checks of the models they
    stand for and for the sweep: (entrypoint, model_type) -> the model with :func:`lively` weights, its ONNX
    file (``export_model``'s) and the graph's :func:`operator_configurations`. The files go when the module ends."""
    folder, made = tmp_path_factory.mktemp("stand-ins"), {}

    def export(entrypoint: str, model_type: str | None) -> tuple[nn.Module, Path, frozenset]:
        if (entrypoint, model_type) not in made:
            model = lively(build(entrypoint, model_type))
            path = export_model(model, folder / f"{model_type}.onnx", "onnx")
            made[entrypoint, model_type] = model, path, frozenset(operator_configurations(onnx.load(str(path)).graph))
        return made[entrypoint, model_type]

    yield export
    for _, path, _ in made.values():
        path.unlink()


def forward_codes(model: nn.Module) -> dict[tuple[bytes, tuple, tuple], str]:
    """The code each module of ``model`` runs itself (its class's ``forward``'s bytecode, names and
    constants) -> the class's name."""
    return {(code.co_code, code.co_names, code.co_consts): type(module).__qualname__
            for module in model.modules() for code in (type(module).forward.__code__,)}


@STAND_INS_GROUP
@pytest.mark.parametrize("covered, stand_ins", GPUNET_OPERATORS_COVERED_BY.items(),
                         ids=[covered[1] for covered in GPUNET_OPERATORS_COVERED_BY])
def test_every_onnx_operator_of_a_covered_gpunet_is_its_stand_ins_with_its_attributes(covered, stand_ins,
                                                                                       stand_in_export):
    """Random weights (the stand-ins': the sweep's): the operators and shapes of a graph do not depend on the
    weights' values."""
    with torch.device("meta"):
        code, *stand_ins_code = (forward_codes(build(*architecture)) for architecture in (covered, *stand_ins))
    # no module code that ONNX Runtime would run in the covered model only
    assert {name for key, name in code.items() if not any(key in other for other in stand_ins_code)} == set()
    model = build(*covered)
    graph = onnx_graph(model)
    assert operator_configurations(graph) \
        <= set().union(*(stand_in_export(*stand_in)[2] for stand_in in stand_ins))
    (tensor_in,), (tensor_out,) = graph.input, graph.output
    assert (tensor_in.name, dims(tensor_in)) == ("input", ["batch", *model.pretrained_cfg["input_size"]])
    assert (tensor_out.name, dims(tensor_out)) == ("logits", ["batch", model.pretrained_cfg["num_classes"]])


STAND_INS = {stand_in for stand_ins in GPUNET_OPERATORS_COVERED_BY.values() for stand_in in stand_ins}


@pytest.mark.parametrize("entrypoint, model_type", [
    pytest.param(*architecture, marks=[STAND_INS_GROUP] if architecture in STAND_INS else [])
    for architecture in architectures()], ids=lambda value: value if isinstance(value, str) else "")
def test_onnx_matches_the_eager_model_at_batch_1_and_3(entrypoint, model_type, scratch, stand_in_export):
    """Exported from a batch of EXAMPLE_BATCH, run at batch 3 (a batch size baked into the graph fails)
    and at batch 1, the size most deployments run (compared with the eager model's first row). The GPUNet
    stand-ins' exports are those that the operator checks read (made once)."""
    if (entrypoint, model_type) in STAND_INS:
        model, path, _ = stand_in_export(entrypoint, model_type)
    else:
        model = seeded_or_lively(entrypoint, model_type, scratch)
        path = export_model(model, scratch / "model.onnx", "onnx")
    session = onnx_session(path)
    (tensor_in,), (tensor_out,) = session.get_inputs(), session.get_outputs()
    assert tensor_in.name == "input" and tensor_out.name == "logits"
    assert tensor_in.shape == ["batch", *model.pretrained_cfg["input_size"]]
    batch = 3
    assert batch != EXAMPLE_BATCH  # else a batch axis fixed at the traced size would pass
    x = seeded_batch(model, batch)
    with torch.no_grad():
        expected = model(x)
    # the check means something only if an input-blind model would fail it
    assert float((expected[0] - expected[1]).norm() / expected.norm()) > 5 * ONNX_TOLERANCE
    (logits,) = session.run(None, {"input": x.numpy()})
    assert logits.shape == (batch, model.pretrained_cfg["num_classes"])
    assert relative_error(logits, expected) < ONNX_TOLERANCE
    (first,) = session.run(None, {"input": x[:1].numpy()})
    assert first.shape == (1, model.pretrained_cfg["num_classes"])
    assert relative_error(first, expected[:1]) < ONNX_TOLERANCE


@functools.cache
def _resnet18_checkpoint_state() -> dict[str, torch.Tensor]:
    return lively(build("resnet18_ssl"), seed=3).state_dict()


@pytest.fixture
def resnet18_weights(scratch):
    """A resnet18_ssl checkpoint written by the test, and the eager model holding it."""
    path = scratch / "resnet18_test.pth"
    torch.save(_resnet18_checkpoint_state(), path)
    return path, HUBCONF.resnet18_ssl(weights=str(path)).eval()


RELOAD = """
import sys, torch
x = torch.load(sys.argv[3])
scripted = torch.jit.load(sys.argv[1])
program = torch.export.load(sys.argv[2]).module()
torch.save({"torchscript": scripted(x), "exported-program": program(x)}, sys.argv[4])
"""


def test_torchscript_and_exported_program_reload_in_a_fresh_process(resnet18_weights, scratch):
    _, model = resnet18_weights
    export_model(model, scratch / "model.pt", "torchscript")
    export_model(model, scratch / "model.pt2", "exported-program")
    x = seeded_batch(model, 3)
    torch.save(x, scratch / "x.pt")
    reloaded = subprocess.run([sys.executable, "-c", RELOAD, str(scratch / "model.pt"), str(scratch / "model.pt2"),
                               str(scratch / "x.pt"), str(scratch / "out.pt")], capture_output=True, text=True,
                              timeout=300, cwd=scratch, check=False)
    assert reloaded.returncode == 0, reloaded.stderr
    with torch.no_grad():
        expected = model(x)
    for export_format, logits in torch.load(scratch / "out.pt").items():
        assert torch.allclose(logits, expected, rtol=1e-5, atol=1e-5), export_format


@pytest.fixture(scope="module")
def model_config_pb2():
    """Triton's ModelConfig protobuf (from tritonclient), or the test is skipped where it is missing."""
    return pytest.importorskip("tritonclient.grpc.model_config_pb2",
                               reason="parsing config.pbtxt needs tritonclient[grpc] (requirements-deploy.txt)")


def parse_config(model_config_pb2, text: str):
    """``config.pbtxt``'s text as Triton's ModelConfig message (a parse error fails the test)."""
    from google.protobuf import text_format

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_triton_repository_runs_as_its_config_says(resnet18_weights, scratch, model_config_pb2):
    weights, model = resnet18_weights
    repository = scratch / "repository"
    result = run_cli("export", "--entrypoint", "resnet18_ssl", "--weights", str(weights), "--format", "onnx",
                     "--triton-repository", str(repository))
    assert result.returncode == 0, result.stderr
    folder = repository / "resnet18_ssl"
    config = parse_config(model_config_pb2, (folder / "config.pbtxt").read_text())
    assert config.name == "resnet18_ssl" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 64 and config.HasField("dynamic_batching")
    assert [group.kind for group in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
    (tensor_in,), (tensor_out,) = config.input, config.output
    assert list(tensor_in.dims) == [3, 224, 224] and list(tensor_out.dims) == [1000]
    assert tensor_in.data_type == tensor_out.data_type == model_config_pb2.TYPE_FP32
    labels = (folder / tensor_out.label_filename).read_text(encoding="utf-8").splitlines()
    assert labels == list(imagenet_labels())
    session = onnx_session(folder / "1" / config.default_model_filename)
    x = seeded_batch(model, 2)
    (logits,) = session.run([tensor_out.name], {tensor_in.name: x.numpy()})
    with torch.no_grad():
        assert relative_error(logits, model(x)) < ONNX_TOLERANCE


def test_triton_repository_of_torchscript_uses_libtorch_names(scratch, model_config_pb2):
    write_triton_repository(build("lenet5"), scratch, "torchscript", max_batch_size=8)
    config = parse_config(model_config_pb2, (scratch / "lenet5" / "config.pbtxt").read_text())
    assert config.platform == "pytorch_libtorch" and config.max_batch_size == 8
    assert [t.name for t in config.input] == ["INPUT__0"] and [t.name for t in config.output] == ["OUTPUT__0"]
    assert list(config.input[0].dims) == [1, 32, 32] and list(config.output[0].dims) == [10]
    assert (scratch / "lenet5" / config.output[0].label_filename).read_text().splitlines()[9] == "class 9"
    scripted = torch.jit.load(str(scratch / "lenet5" / "1" / config.default_model_filename))
    assert scripted(torch.zeros(5, 1, 32, 32)).shape == (5, 10)


def test_triton_repository_of_an_fp16_model_declares_fp16_io_and_its_gpu(scratch, model_config_pb2):
    """A GPU repository (``export --device cuda --model-math fp16``), checked on the CPU: the fp16
    model file and I/O are written here, the GPU instance group is the one its config declares."""
    import onnx

    model = build("lenet5", model_math="fp16")
    folder = write_triton_repository(model, scratch, "onnx", max_batch_size=32)
    graph = onnx.load(str(folder / "1" / "model.onnx")).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    on_cpu = parse_config(model_config_pb2, (folder / "config.pbtxt").read_text())
    on_gpu = parse_config(model_config_pb2, triton_config(model, "onnx", 32, device=torch.device("cuda", 1)))
    for config in (on_cpu, on_gpu):
        assert config.input[0].data_type == config.output[0].data_type == model_config_pb2.TYPE_FP16
        assert config.max_batch_size == 32 and list(config.input[0].dims) == [1, 32, 32]
    assert [(group.kind, list(group.gpus)) for group in on_cpu.instance_group] \
        == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, [])]
    assert [(group.kind, list(group.gpus), group.count) for group in on_gpu.instance_group] \
        == [(model_config_pb2.ModelInstanceGroup.KIND_GPU, [1], 1)]


@pytest.mark.cuda
def test_gpu_triton_repository_from_the_command_line(scratch, model_config_pb2):
    repository = scratch / "repository"
    result = run_cli("export", "--entrypoint", "resnet18_ssl", "--no-pretrained", "--device", "cuda",
                     "--model-math", "fp16", "--format", "onnx", "--triton-repository", str(repository))
    assert result.returncode == 0, result.stderr
    config = parse_config(model_config_pb2, (repository / "resnet18_ssl" / "config.pbtxt").read_text())
    assert config.input[0].data_type == config.output[0].data_type == model_config_pb2.TYPE_FP16
    assert [(group.kind, list(group.gpus)) for group in config.instance_group] \
        == [(model_config_pb2.ModelInstanceGroup.KIND_GPU, [0])]


def test_a_variant_is_named_after_its_type():
    assert deployed_name(build("nvidia_gpunet", "GPUNet-D1")) == "nvidia_gpunet_GPUNet-D1"
    assert deployed_name(build("lenet5")) == "lenet5"


@pytest.mark.parametrize("args, message", [
    (["--format", "exported-program", "--triton-repository", "x"], "cannot go into a Triton repository"),
    (["--format", "onnx"], "one of the arguments --output --triton-repository is required"),
])
def test_bad_export_arguments_give_one_line_and_exit_code_2(args, message, capsys):
    try:
        exit_code = main(["export", "--entrypoint", "lenet5", "--no-pretrained", *args])
    except SystemExit as exit:  # argparse's own errors
        exit_code = exit.code
    stderr = capsys.readouterr().err
    assert exit_code == 2 and message in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


@pytest.mark.parametrize("export_format", ["onnx", "torchscript", "exported-program"])
def test_an_export_replaces_a_planted_link_and_never_writes_through_it(scratch, export_format):
    victim = scratch / "victim.txt"
    victim.write_text("precious")
    (scratch / "model.out").symlink_to(victim)
    export_model(build("lenet5"), scratch / "model.out", export_format)
    assert victim.read_text() == "precious" and not (scratch / "model.out").is_symlink()
    assert sorted(path.name for path in scratch.iterdir()) == ["model.out", "victim.txt"]


def test_a_re_export_killed_while_writing_keeps_the_previous_file_whole(scratch):
    """SIGKILL while the new file is written (held at its flush to disk): the previous export stays."""
    path = scratch / "lenet5.pt"
    export_model(build("lenet5"), path, "torchscript")
    previous = path.read_bytes()
    script = (
        "import importlib.util, os, sys, time, torch\n"
        f"spec = importlib.util.spec_from_file_location('hubconf', {str(REPO / 'hubconf.py')!r})\n"
        "hub = importlib.util.module_from_spec(spec); spec.loader.exec_module(hub)\n"
        "from convnets_hub.models.deploy.exporters import export_model\n"
        "def held(descriptor):\n"
        "    print('writing', flush=True); time.sleep(300)\n"
        "os.fsync = held\n"
        "torch.manual_seed(1)\n"
        f"export_model(hub.lenet5().eval(), {str(path)!r}, 'torchscript')\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()  # 'writing', or '' when the export ended without a flush to disk
    finally:
        process.kill()
        process.wait(timeout=60)
    assert line == "writing\n" and path.read_bytes() == previous
    assert zipfile.is_zipfile(path)


def test_triton_labels_and_config_replace_planted_links(scratch):
    model = build("lenet5")
    folder = scratch / deployed_name(model)
    folder.mkdir()
    victim = scratch / "victim.txt"
    victim.write_text("precious")
    for name in ("labels.txt", "config.pbtxt"):
        (folder / name).symlink_to(victim)
    write_triton_repository(model, scratch, "torchscript", max_batch_size=8)
    assert victim.read_text() == "precious"
    assert not (folder / "labels.txt").is_symlink() and not (folder / "config.pbtxt").is_symlink()
    assert len((folder / "labels.txt").read_text().splitlines()) == model.pretrained_cfg["num_classes"]


@pytest.mark.parametrize("export_format", ["onnx", "torchscript", "exported-program"])
def test_an_export_passes_no_deprecation_warning_of_torch_to_the_user(scratch, export_format):
    """torch 2.14 deprecates parts of its exporters' internals; the user can do nothing about them."""
    model = build("lenet5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_model(model, scratch / "model.out", export_format)
    assert [str(w.message) for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))] == []
