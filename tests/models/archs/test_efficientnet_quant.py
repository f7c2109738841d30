"""NVIDIA's quantization-aware EfficientNets: pytorch_quantization's arithmetic, NGC checkpoints, int8 ONNX."""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import matplotlib
import numpy as np
import onnx
import pytest
import skimage
import torch
from command_line import run_cli
from conftest import HUBCONF, REPO, onnx_session, parity_fixture, seeded_checkpoint
from convnets_hub.models.archs.fake_quantization import TensorQuantizer, fake_quantize
from convnets_hub.models.registry import DISPATCHERS
from convnets_hub.models.runtime.optimize import optimize_for_inference
from ngc_quant_efficientnet import ngc_quant_state, reference_logits
from PIL import Image
from upstream_files import write_mirror

# One worker runs the whole module: the seeded state (_state, a float64 calibration run) and the exported
# ONNX file (the module fixture `exported`) are then computed once, not once on each xdist worker.
pytestmark = pytest.mark.xdist_group("efficientnet_quant")

INPUT = (2, 3, 32, 32)  # EfficientNet-B0 is resolution-agnostic: a small input keeps the float64 runs fast


@functools.cache
def _state() -> dict[str, torch.Tensor]:
    return ngc_quant_state("b0")


def _seeded_input(seed: int = 7) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(INPUT))


@pytest.fixture
def ngc_file(tmp_path):
    """The seeded quantized B0 as NGC's file (float32, keys prefixed with ``module.``)."""
    path = tmp_path / "nvidia-efficientnet-quant-b0-130421.pth"
    torch.save({f"module.{key}": value.float() for key, value in _state().items()}, path)
    return path


def test_fake_quantization_rounds_ties_to_even_and_clamps_at_plus_minus_amax():
    # amax 127: scale 1, so the inputs are the quantized values before rounding and clamping.
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.4, 300.0, -127.6, -300.0, 3.49])
    expected = torch.tensor([0.0, 2.0, 2.0, -0.0, -2.0, -2.0, 126.0, 127.0, 127.0, -127.0, -127.0, 3.0])
    assert torch.equal(fake_quantize(x, torch.tensor(127.0)), expected)  # narrow range: -127, never -128
    # amax 2: steps of 2/127; everything beyond +-amax lands on +-amax exactly.
    values = fake_quantize(torch.tensor([5.0, -5.0, 1.0]), torch.tensor(2.0))
    assert values[:2].tolist() == [2.0, -2.0] and values[2].item() == pytest.approx(round(63.5) * 2 / 127)
    # An amax of 2 ** -24 or less quantizes to 0; per-channel amax broadcast over axis 0.
    assert fake_quantize(torch.tensor([1.0, -3.0]), torch.tensor(2.0 ** -25)).tolist() == [0.0, 0.0]
    per_channel = fake_quantize(torch.tensor([[1.0, 9.0], [1.0, 9.0]]), torch.tensor([[127.0], [1.0]]))
    assert per_channel.tolist() == [[1.0, 9.0], [1.0, 1.0]]


def test_an_uncalibrated_quantizer_uses_the_tensors_own_maximum():
    quantizer, x = TensorQuantizer(), torch.tensor([0.1, -2.0, 1.0])
    assert torch.equal(quantizer(x), fake_quantize(x, torch.tensor(2.0))) and "uncalibrated" in repr(quantizer)
    quantizer.set_amax(1.0)
    assert quantizer(x).tolist() == [pytest.approx(13 / 127), -1.0, 1.0]


@pytest.mark.parametrize(("given", "entrypoint"), [("efficientnet-quant-b0", "nvidia_efficientnet_quant_b0"),
                                                   ("EfficientNet-Quant-B4", "nvidia_efficientnet_quant_b4")])
def test_nvidias_quant_types_are_served(given, entrypoint):
    assert DISPATCHERS["nvidia_efficientnet"].target(given) == entrypoint


def test_parity_with_pytorch_quantizations_formula_through_the_hub(ngc_file, tmp_path, hub_home):
    """Seeded weights and amax values in NGC's layout: our logits are the float64 reference's."""
    torch.save({f"module.{key}": value for key, value in _state().items()}, ngc_file)  # float64 amax and weights
    model = torch.hub.load(str(REPO), "nvidia_efficientnet", type="efficientnet-quant-b0", source="local",
                           weights=str(ngc_file), model_math="fp64").eval()
    x = _seeded_input()
    with torch.no_grad():
        logits = model(x)
    expected = reference_logits(_state(), x)
    assert float((logits - expected).norm() / expected.norm()) <= 1e-6
    assert all(module.calibrated for module in model.modules() if isinstance(module, TensorQuantizer))
    # The quantizers act: the float EfficientNet-B0 on the same weights gives other logits.
    float_file = tmp_path / "float.pth"
    torch.save(seeded_checkpoint(parity_fixture("nvidia_efficientnet_b0"), torch.float64), float_file)
    plain = HUBCONF.nvidia_efficientnet_b0(weights=str(float_file), model_math="fp64").eval()
    with torch.no_grad():
        assert float((plain(x) - logits).norm() / logits.norm()) > 0.02


def test_pretrained_from_the_ngc_mirror(tmp_path, hub_home, monkeypatch):
    mirror = tmp_path / "mirror"
    entry_id = "nvidia_efficientnet_quant_b0.ngc_qat_21.03.0"
    manifest = write_mirror(mirror, [entry_id], states={entry_id: {k: v.float() for k, v in _state().items()}})
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(manifest))
    monkeypatch.setenv("CONVNETS_HUB_MIRROR", str(mirror))
    model = HUBCONF.nvidia_efficientnet(type="efficientnet-quant-b0").eval()
    cfg = model.pretrained_cfg
    assert (cfg["id"], cfg["metrics"]["imagenet_top1"]) == (entry_id, 77.12)
    assert (cfg["input_size"], cfg["interpolation"]) == ((3, 224, 224), "bicubic")
    amax = model.get_submodule("blocks.1.1.residual_quantizer")._amax
    assert amax.item() == pytest.approx(_state()["layer2.block1.residual_quantizer._amax"].item())


def test_optimize_keeps_the_quantized_convolutions_and_their_logits(ngc_file):
    model = HUBCONF.nvidia_efficientnet_quant_b0(weights=str(ngc_file)).eval()
    folded = optimize_for_inference(HUBCONF.nvidia_efficientnet_quant_b0(weights=str(ngc_file)), compile=False)
    x = _seeded_input().float()
    with torch.no_grad():
        assert torch.equal(folded(x), model(x))


# int8 ONNX ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The seeded quantized B0 (float32) and its ONNX file, exported by the command line into a Triton
    model repository (NVIDIA's type name, NGC's file)."""
    folder = tmp_path_factory.mktemp("quant_onnx")
    path = folder / "nvidia-efficientnet-quant-b0-130421.pth"
    torch.save({f"module.{key}": value.float() for key, value in _state().items()}, path)
    result = run_cli("export", "--entrypoint", "nvidia_efficientnet", "--model-type", "efficientnet-quant-b0",
                     "--weights", str(path), "--format", "onnx", "--triton-repository", str(folder / "repository"))
    assert result.returncode == 0, result.stderr
    model = HUBCONF.nvidia_efficientnet_quant_b0(weights=str(path)).eval()
    return model, folder / "repository" / "nvidia_efficientnet_quant_b0" / "1" / "model.onnx"


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Every initializer and Constant output, followed through Identity nodes."""
    values = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return values


def test_onnx_holds_quantize_dequantize_pairs_with_nvidias_scales(exported):
    model, path = exported
    graph = onnx.load(str(path)).graph
    constants = _constants(graph)
    quantizers = {name: module for name, module in model.named_modules() if isinstance(module, TensorQuantizer)}
    ops = Counter(node.op_type for node in graph.node)
    assert ops["QuantizeLinear"] == ops["DequantizeLinear"] == len(quantizers)
    scales = [(constants[node.input[1]], constants[node.input[2]]) for node in graph.node
              if node.op_type == "DequantizeLinear"]
    assert all(zero.dtype == np.int8 and not zero.any() for _, zero in scales)
    per_tensor = sorted(float(scale) for scale, _ in scales if scale.ndim == 0)
    expected = sorted(float(m._amax) / 127 for m in quantizers.values() if not m.per_channel)
    np.testing.assert_allclose(per_tensor, expected, rtol=1e-6)
    per_channel = {tuple(np.round(scale, 9)) for scale, _ in scales if scale.ndim == 1}
    stem = model.conv_stem._weight_quantizer._amax.flatten().numpy() / 127
    assert tuple(np.round(stem, 9)) in per_channel
    assert len(per_channel) == sum(m.per_channel for m in quantizers.values())


def _photos(size: int) -> torch.Tensor:
    """Real photos (scikit-image's and matplotlib's sample data), preprocessed for the model."""
    utils = HUBCONF.nvidia_convnets_processing_utils()
    images = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket(),
              np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))]
    config = {"input_size": (3, size, size), "crop_pct": 0.875, "interpolation": "bicubic",
              "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    return torch.cat([utils.prepare_input_from_uri(Image.fromarray(image), config=config) for image in images])


def test_onnx_runtime_int8_agrees_with_the_fake_quantized_model_on_photos(exported):
    model, path = exported
    photos = _photos(224)
    session = onnx_session(path)
    (logits,) = session.run(None, {"input": photos.numpy()})
    with torch.no_grad():
        expected = model(photos).numpy()
    assert (logits.argmax(1) == expected.argmax(1)).all()
    assert np.abs(logits - expected).max() <= 0.05 * np.abs(expected).max()


def test_triton_repository_takes_the_int8_onnx(exported):
    _, path = exported
    config = (path.parents[1] / "config.pbtxt").read_text()
    assert 'name: "nvidia_efficientnet_quant_b0"' in config and 'platform: "onnxruntime_onnx"' in config
    assert "dims: [ 3, 224, 224 ]" in config and "dims: [ 1000 ]" in config
    assert (path.parents[1] / "labels.txt").read_text().splitlines()[0] == "tench, Tinca tinca"
