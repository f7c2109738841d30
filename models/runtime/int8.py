"""``model_math="int8"``: a model quantized after training, run in int8 on the CPU by ONNX Runtime.

Post-training static quantization: the (BatchNorm-folded) float model is exported to ONNX, its
activation ranges are measured on calibration images (:mod:`.int8_calibration`), and ONNX Runtime's
``quantize_static`` writes the QDQ form (QuantizeLinear/DequantizeLinear pairs around every
convolution, matrix product and residual add): weights int8 per output channel, symmetric;
activations uint8 per tensor, asymmetric (MinMax ranges). ONNX Runtime fuses the pairs into int8
kernels (QLinearConv, VNNI dot products). On a CPU without VNNI (or AVX-VNNI, AMX) the weights use 7
bits (``reduce_range``): AVX2's u8 x s8 products saturate 16-bit sums with 8-bit weights.

Why ONNX Runtime rather than torchao's PT2E ``X86InductorQuantizer`` with Inductor: measured in one
process (benchmarks/bench_int8.py, RESULTS.md), ONNX Runtime's int8 was faster in every row (about
3x our fp32 ``optimize=True`` at batch 8 on an AVX-512 VNNI CPU, torchao's about 1x), quantizes
faster, needs no C++ compiler nor a compilation per input shape, and its int8 graph is itself the
file that ``export --format onnx`` writes (for ONNX Runtime or TensorRT).
"""

from __future__ import annotations

import importlib.util
import io
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InferenceOnlyError, InvalidArgumentError
from .cpu_instructions import CpuInstructions, cpu_instructions
from .int8_calibration import Calibration, calibration_batch
from .tensor_names import INPUT_NAME, OUTPUT_NAME

INT8 = "int8"
ONNX_OPSET = 17
CALIBRATION_BATCH = 8
SPEED_PROBE_CALLS = 3
NOT_OFFERED = {
    "nvidia_efficientnet": "post-training int8 of EfficientNet's depthwise convolutions, SiLU and squeeze-excitation "
                           "did not keep the top-1 of its float32 model (tests/models/runtime/test_int8.py)",
    "nvidia_gpunet": "GPUNet's EfficientNet-like blocks are not verified in post-training int8",
    "googlenet": "GoogLeNet's top-1 agreed with its float32 model's on only 89-92 % of the bundled photos' crops "
                 "in post-training int8 (seeded weights; the bar is 99 %)",
}
"""Entrypoint families (by name prefix) that post-training int8 is not offered for, and why."""


class Int8NotFasterWarning(UserWarning):
    """On this CPU the int8 model is not faster than the float32 one."""


def is_int8(model_math: Any) -> bool:
    """Whether ``model_math`` asks for int8 ("int8" in any case)."""
    return isinstance(model_math, str) and model_math.lower() == INT8


def check_int8_options(entrypoint: str, model_math: Any, device: torch.device, features_only: bool,
                       calibration: Calibration) -> None:
    """Refuse what int8 cannot do (a GPU, feature maps, the families of :data:`NOT_OFFERED`) and
    ``calibration`` without int8."""
    if not is_int8(model_math):
        if calibration is not None:
            raise InvalidArgumentError(f"calibration={str(calibration)!r} is given with model_math={model_math!r}; "
                                       "it only serves model_math='int8'")
        return
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ModuleNotFoundError(f"model_math='int8' needs {' and '.join(missing)}, which is not installed: "
                                  "python3 -m pip install -r requirements-export.txt")
    if device.type != "cpu":
        raise InvalidArgumentError(f"model_math='int8' runs on the CPU (ONNX Runtime), not on device={str(device)!r}; "
                                   "on a GPU use 'fp16'/'bf16', or export the int8 model to ONNX for TensorRT")
    if features_only:
        raise InvalidArgumentError("model_math='int8' quantizes classifiers: it cannot go with features_only=True")
    family = next((prefix for prefix in NOT_OFFERED if entrypoint.startswith(prefix)), None)
    if family is not None:
        raise InvalidArgumentError(f"{entrypoint}(model_math='int8') is not offered: {NOT_OFFERED[family]}; "
                                   "model_math='bf16' with optimize=True is the fast choice on a CPU")


def quantize_int8(model: nn.Module, calibration: Calibration = None) -> Int8Model:
    """``model`` (float32, with ``pretrained_cfg``) quantized to int8 on calibration images (see the module).

    Warns :class:`Int8NotFasterWarning` when, measured at batch 1 on this CPU, the int8 graph is not
    faster than the same graph in float32 (ONNX Runtime's float32 runs as fast as ``optimize=True``,
    see benchmarks/RESULTS.md).
    """
    model = model.eval().to(torch.float32)
    from .fold import (
        fold_conv_bn,  # timm's blocks: imported once a model is quantized, after torchvision's check
    )

    fold_conv_bn(model)
    batch = calibration_batch(calibration, model.pretrained_cfg)
    instructions = cpu_instructions()
    with tempfile.TemporaryDirectory(prefix="convnets-hub-int8-") as folder:
        float_path, int8_path = Path(folder) / "float32.onnx", Path(folder) / "int8.onnx"
        _export_float(model, float_path, batch[:2])
        _quantize(float_path, int8_path, batch, reduce_range=not instructions.vnni)
        quantized = Int8Model(int8_path.read_bytes(), dict(model.pretrained_cfg), instructions)
        _warn_unless_faster(quantized, onnx_session(str(float_path)), batch[:1], instructions)
    return quantized


class Int8Model(nn.Module):
    """An int8 model: ONNX Runtime's session of a QDQ graph, called like the float model.

    Takes a float batch ``[N, C, H, W]`` on the CPU (any float dtype; cast to float32) and returns
    float32 logits. It has ``pretrained_cfg`` and no parameters; it is inference-only
    (``.train(True)`` raises :class:`~models.errors.InferenceOnlyError`). ``onnx_model`` holds the
    quantized ONNX file's bytes (``export --format onnx`` writes them); ``reduce_range`` says
    whether the weights use 7 bits. The session uses ``torch.get_num_threads()`` threads as it was
    when the model was made. Pickling and ``copy.deepcopy`` make a new session from the bytes.
    """

    def __init__(self, onnx_model: bytes, pretrained_cfg: dict[str, Any], instructions: CpuInstructions) -> None:
        super().__init__()
        self.onnx_model = onnx_model
        self.pretrained_cfg = pretrained_cfg
        self.instructions = instructions
        self.reduce_range = not instructions.vnni
        self.opset = ONNX_OPSET
        self.session = onnx_session(onnx_model)
        super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4:
            raise InvalidArgumentError(f"an int8 model takes a float batch [N, C, H, W], not "
                                       f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
        if x.device.type != "cpu":
            raise InvalidArgumentError(f"an int8 model runs on the CPU; the batch is on {x.device}")
        array = x.detach().to(torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: array})[0])

    def train(self, mode: bool = True) -> Int8Model:
        """Only ``train(False)``/``eval()``: an int8 model is inference-only."""
        if mode:
            raise InferenceOnlyError(".train(True): a model_math='int8' model is inference-only; build it in "
                                     "fp32 to train or fine-tune it")
        return super().train(False)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("session")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.session = onnx_session(self.onnx_model)

    def extra_repr(self) -> str:
        weights = "7-bit (reduce_range, no VNNI)" if self.reduce_range else "8-bit"
        return f"ONNX Runtime QDQ, {weights} per-channel weights, uint8 activations, {len(self.onnx_model)} bytes"


def onnx_session(onnx_model: bytes | str) -> Any:
    """An ONNX Runtime CPU session of ``onnx_model`` (the file's bytes, or its path) with torch's number of threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])


def _export_float(model: nn.Module, path: Path, example: torch.Tensor) -> None:
    """The float model as ONNX (batch axis dynamic), with every Identity of a weight bypassed: the
    exporter shares equal constants (zero biases) through Identity nodes, which the quantizer
    would leave in float. The weights go to a file beside ``path`` (ONNX's external data): the
    quantizer's shape inference then reads and writes the graph alone, not every weight twice
    (a quarter of AlexNet's quantization time), and quantizes the same weights to the same bytes."""
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch's, on its TorchScript-based exporter
        torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    graph_model = onnx.load_from_string(buffer.getvalue())
    graph = graph_model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    for node in [node for node in graph.node if node.op_type == "Identity" and node.input[0] in weights]:
        copy = onnx.TensorProto()
        copy.CopyFrom(weights[node.input[0]])
        copy.name = node.output[0]
        graph.initializer.append(copy)
        graph.node.remove(node)
    onnx.save(graph_model, str(path), save_as_external_data=True, location=f"{path.name}.weights")


def _quantize(float_path: Path, int8_path: Path, batch: torch.Tensor, *, reduce_range: bool) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Views(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batch.split(CALIBRATION_BATCH))

        def get_next(self) -> dict[str, np.ndarray] | None:
            views = next(self.batches, None)
            return None if views is None else {INPUT_NAME: views.numpy()}

    with _quiet_quantizer():
        quantize_static(str(float_path), str(int8_path), Views(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        extra_options={"TensorQuantOverrides": _convolution_weight_scales(float_path, reduce_range)})


def _convolution_weight_scales(float_path: Path, reduce_range: bool) -> dict[str, list[dict[str, Any]]]:
    """The scale of each output channel of every convolution's weight, as ``quantize_static`` computes
    it (symmetric int8 over the quantizer's own range, -127..127 or -64..64 in 7 bits; 1 for a
    channel of zeros), computed for all channels at once and handed to it as its tensor overrides:
    its own loop takes a Python call per channel, a third of a ResNeXt101's quantization time. The
    int8 graph is byte for byte the same (tests/models/runtime/test_int8.py)."""
    import onnx
    from onnx.numpy_helper import to_array
    from onnxruntime.quantization.quant_utils import get_qmin_qmax_for_qType

    graph = onnx.load(str(float_path)).graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    qmin, qmax = get_qmin_qmax_for_qType(onnx.TensorProto.INT8, reduce_range=reduce_range, symmetric=True)
    steps = np.float64(qmax) - np.float64(qmin)
    scales = {}
    for node in graph.node:
        if node.op_type == "Conv" and node.input[1] in weights:
            weight = to_array(weights[node.input[1]])
            largest = np.abs(weight.reshape(len(weight), -1)).max(axis=1).astype(np.float64)
            scale = 2 * largest / steps  # the range -largest..largest over the steps, in float64, as the quantizer
            scale = np.where(scale < np.finfo(weight.dtype).tiny, 1.0, scale).astype(weight.dtype)
            scales[node.input[1]] = [{"scale": float(value), "zero_point": 0, **({"axis": 0} if channel == 0 else {})}
                                     for channel, value in enumerate(scale)]
    return scales


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """onnxruntime.quantization logs advice through the root logger at WARNING; silence it meanwhile."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _warn_unless_faster(quantized: Int8Model, float_session: Any, example: torch.Tensor,
                        instructions: CpuInstructions) -> None:
    feed = {INPUT_NAME: example.numpy()}
    runs = {"int8": quantized.session, "fp32": float_session}
    best = dict.fromkeys(runs, float("inf"))
    for session in runs.values():
        session.run(None, feed)  # warm-up
    for _ in range(SPEED_PROBE_CALLS):  # interleaved: a busy machine slows both alike
        for name, session in runs.items():
            start = time.perf_counter()
            session.run(None, feed)
            best[name] = min(best[name], time.perf_counter() - start)
    if best["int8"] >= best["fp32"]:
        warnings.warn(f"model_math='int8' is not faster than fp32 on this CPU ({instructions.describe()}): "
                      f"{best['int8'] * 1e3:.2f} ms against {best['fp32'] * 1e3:.2f} ms at batch 1; "
                      "model_math='fp32' with optimize=True is the fast choice here", Int8NotFasterWarning,
                      stacklevel=5)  # the caller of the entrypoint
