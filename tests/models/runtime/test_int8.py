"""``model_math="int8"``: post-training static quantization for the CPU (ONNX Runtime), its accuracy
against float32, its options, its ONNX export and ``validate``'s two precisions."""

import json
import math
import sys
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from conftest import onnx_session
from convnets_hub.models.cli import main
from convnets_hub.models.deploy.exporters import export_model
from convnets_hub.models.errors import InferenceOnlyError, InvalidArgumentError
from convnets_hub.models.runtime import int8
from convnets_hub.models.runtime.cpu_instructions import (
    CpuInstructions,
    cpu_instructions,
)
from convnets_hub.models.runtime.int8 import (
    Int8Model,
    Int8NotFasterWarning,
    quantize_int8,
)
from convnets_hub.models.runtime.int8_calibration import (
    MIN_VIEWS,
    bundled_photos,
    calibration_batch,
)
from convnets_hub.processing.transforms import PreprocessConfig
from image_folders import lenet_settings, make_image_folder
from seeded_weights import seeded_array

WITH_VNNI = CpuInstructions(avx2=True, avx512=True, vnni=True, avx512_bf16=True, amx=False)
WITHOUT_VNNI = CpuInstructions(avx2=True, avx512=False, vnni=False, avx512_bf16=False, amx=False)


def digits_inputs(images):
    """scikit-learn's 8x8 digits (0-16) as LeNet-5's input: 1 x 32 x 32, normalised with mean and std 0.5."""
    x = torch.tensor(images, dtype=torch.float32)[:, None] / 16
    x = F.pad(F.interpolate(x, size=24, mode="bilinear", align_corners=False), (4, 4, 4, 4))
    return (x - 0.5) / 0.5


# The tests of the LeNet-5 learnt here run on one xdist worker, which trains it (and quantizes lenet_int8) once.
ON_THE_DIGITS_WORKER = pytest.mark.xdist_group("int8_digits")


@pytest.fixture(scope="module")
def digits_lenet(tmp_path_factory, hubconf):
    """LeNet-5 trained here on 1347 of scikit-learn's digits (8 epochs); its checkpoint and the data."""
    # imported here: scikit-learn at collection costs every worker 1.4 s
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    train, test = train_test_split(range(len(digits.images)), test_size=0.25, random_state=0, stratify=digits.target)
    x_train, y_train = digits_inputs(digits.images[train]), torch.tensor(digits.target[train])
    x_test, y_test = digits_inputs(digits.images[test]), torch.tensor(digits.target[test])
    torch.manual_seed(0)
    model = hubconf.lenet5()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(8):
        for batch in torch.randperm(len(x_train)).split(64):
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    path = tmp_path_factory.mktemp("digits") / "lenet5_digits.pth"
    torch.save(model.state_dict(), path)
    return path, x_train, x_test, y_test


def accuracy(model, x, y):
    with torch.no_grad():
        return 100.0 * (model(x).argmax(dim=1) == y).float().mean().item()


@ON_THE_DIGITS_WORKER
def test_int8_loses_at_most_one_point_on_digits_a_model_learnt_here(digits_lenet, hubconf):
    """Item 4a: the int8 model, calibrated on 256 training images, within 1 point of float32's top-1 on the
    450 held-out digits (a model that learnt nothing would score about 10 %)."""
    path, x_train, x_test, y_test = digits_lenet
    fp32 = hubconf.lenet5(weights=str(path)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Int8NotFasterWarning)  # LeNet-5 is too small to gain from int8
        quantized = hubconf.lenet5(weights=str(path), model_math="int8", calibration=x_train[:256])
    assert isinstance(quantized, Int8Model) and quantized.pretrained_cfg["entrypoint"] == "lenet5"
    fp32_top1, int8_top1 = accuracy(fp32, x_test, y_test), accuracy(quantized, x_test, y_test)
    assert fp32_top1 > 90
    assert int8_top1 >= fp32_top1 - 1.0, (fp32_top1, int8_top1)
    with torch.no_grad():
        expected = fp32(x_test)
        difference = ((quantized(x_test) - expected).norm() / expected.norm()).item()
    assert 0 < difference < 0.05, difference  # int8 arithmetic indeed, not the float model


def weight_codes(model: Int8Model) -> np.ndarray:
    """Every int8 weight of the QDQ graph (the initialisers that feed a DequantizeLinear and are int8)."""
    graph = onnx.load_from_string(model.onnx_model).graph
    tensors = {tensor.name: tensor for tensor in graph.initializer}
    codes = [onnx.numpy_helper.to_array(tensors[node.input[0]]) for node in graph.node
             if node.op_type == "DequantizeLinear" and node.input[0] in tensors
             and tensors[node.input[0]].data_type == onnx.TensorProto.INT8]
    return np.concatenate([code.ravel() for code in codes])


@ON_THE_DIGITS_WORKER
@pytest.mark.parametrize(("instructions", "limit"), [(WITH_VNNI, 127), (WITHOUT_VNNI, 64)])
def test_without_vnni_the_weights_use_seven_bits(digits_lenet, hubconf, monkeypatch, instructions, limit):
    """On a CPU without VNNI (AVX2's u8 x s8 products saturate) the weights are quantized to 7 bits."""
    monkeypatch.setattr(int8, "cpu_instructions", lambda: instructions)
    path, x_train, _, _ = digits_lenet
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Int8NotFasterWarning)
        quantized = hubconf.lenet5(weights=str(path), model_math="int8", calibration=x_train[:64])
    codes = weight_codes(quantized)
    assert quantized.reduce_range == (not instructions.vnni)
    assert np.abs(codes).max() == limit  # symmetric: +-127, or +-64 in 7 bits
    assert str(quantized).count("7-bit") == (not instructions.vnni)


@ON_THE_DIGITS_WORKER
def test_weights_kept_beside_the_float_graph_quantize_to_the_same_bytes(digits_lenet, hubconf, tmp_path):
    """The float model goes to the quantizer with its weights in a file beside the graph (ONNX's external
    data: its shape inference then skips them); the int8 graph is byte for byte that of a single file."""
    model = hubconf.lenet5(weights=str(digits_lenet[0])).eval()
    batch = digits_lenet[1][:16]
    beside, whole = tmp_path / "beside" / "float32.onnx", tmp_path / "whole" / "float32.onnx"
    beside.parent.mkdir(), whole.parent.mkdir()
    int8._export_float(model, beside, batch[:2])
    onnx.save(onnx.load(str(beside)), str(whole))  # onnx.load reads the weights back into the graph
    assert 10 * beside.stat().st_size < whole.stat().st_size  # the weights are not in the graph's file
    for path in (beside, whole):
        int8._quantize(path, path.with_name("int8.onnx"), batch, reduce_range=False)
    assert (beside.parent / "int8.onnx").read_bytes() == (whole.parent / "int8.onnx").read_bytes()


@ON_THE_DIGITS_WORKER
@pytest.mark.parametrize("reduce_range", [False, True])
def test_convolution_scales_computed_at_once_are_the_quantizers_own(digits_lenet, hubconf, tmp_path, monkeypatch,
                                                                    reduce_range):
    """The per-channel scales of the convolutions' weights, computed here for all channels at once and handed to
    quantize_static, give the int8 graph byte for byte that its own per-channel loop gives, in 8 and 7 bits and
    for a channel of zeros (scale 1), on LeNet-5's three convolutions."""
    model = hubconf.lenet5(weights=str(digits_lenet[0])).eval()
    with torch.no_grad():
        model.features[0].weight[1] = 0
    batch = digits_lenet[1][:16]
    float_path = tmp_path / "float32.onnx"
    int8._export_float(model, float_path, batch[:2])
    scales = int8._convolution_weight_scales(float_path, reduce_range)
    assert [len(channels) for channels in scales.values()] == [6, 16, 120] and scales[next(iter(scales))][1]["scale"] == 1
    int8._quantize(float_path, tmp_path / "ours.onnx", batch, reduce_range=reduce_range)
    monkeypatch.setattr(int8, "_convolution_weight_scales", lambda *args: {})
    int8._quantize(float_path, tmp_path / "its.onnx", batch, reduce_range=reduce_range)
    assert (tmp_path / "ours.onnx").read_bytes() == (tmp_path / "its.onnx").read_bytes()


def test_cpu_instructions_are_named_as_benchmarks_quote_them():
    found = cpu_instructions()
    assert found.describe().count(",") == 4 and ("no VNNI" in found.describe()) == (not found.vnni)
    assert WITHOUT_VNNI.describe() == "AVX2, no AVX-512F, no VNNI, no AVX-512 BF16, no AMX"


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeSession:
    """A session whose every run takes ``seconds`` on the fake clock."""

    def __init__(self, clock, seconds):
        self.clock, self.seconds = clock, seconds

    def run(self, outputs, feed):
        self.clock.now += self.seconds


@pytest.mark.parametrize(("int8_ms", "fp32_ms", "warned"), [(2.0, 1.0, True), (1.0, 1.0, True), (1.0, 3.0, False)])
def test_one_warning_where_int8_is_not_faster_than_fp32(monkeypatch, int8_ms, fp32_ms, warned):
    clock = FakeClock()
    monkeypatch.setattr(int8.time, "perf_counter", clock)
    quantized = Int8Model.__new__(Int8Model)
    object.__setattr__(quantized, "session", FakeSession(clock, int8_ms / 1e3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        int8._warn_unless_faster(quantized, FakeSession(clock, fp32_ms / 1e3), torch.zeros(1, 1, 2, 2), WITH_VNNI)
    messages = [str(warning.message) for warning in caught if warning.category is Int8NotFasterWarning]
    assert len(messages) == warned
    if warned:
        assert f"{int8_ms:.2f} ms against {fp32_ms:.2f} ms" in messages[0] and "VNNI" in messages[0]


def test_calibration_views_default_folder_and_errors(tmp_path):
    cfg = {"input_size": (3, 40, 40), "mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_pct": 0.875,
           "interpolation": "bilinear"}
    photos = bundled_photos()
    assert photos[0].name == "grace_hopper.jpg" and len(photos) > 5 and all(photo.is_file() for photo in photos)
    default = calibration_batch(None, cfg)
    assert default.shape[1:] == (3, 40, 40) and len(default) >= MIN_VIEWS
    assert torch.equal(default, calibration_batch(None, cfg))  # seeded crops
    assert not torch.equal(default, calibration_batch(None, cfg, seed=1))
    make_image_folder(tmp_path / "mine", train=1, val=0)
    (tmp_path / "mine" / "notes.txt").write_text("not an image")
    mine = calibration_batch(str(tmp_path / "mine"), cfg)
    assert len(mine) == 3 * (MIN_VIEWS // 3 + 1)  # three images, eleven views each
    (tmp_path / "empty").mkdir()
    for bad, cause in ((tmp_path / "empty", "holds no images"), (tmp_path / "absent", "is not a folder"),
                       (torch.zeros(2, 3), "float batch")):
        with pytest.raises(InvalidArgumentError, match=cause):
            calibration_batch(bad if isinstance(bad, torch.Tensor) else str(bad), cfg)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
    with pytest.raises(InvalidArgumentError, match="a.png' cannot be read"):
        calibration_batch(str(tmp_path / "broken"), cfg)


def test_int8_refuses_a_gpu_feature_maps_calibration_alone_and_training(hubconf):
    with pytest.raises(InvalidArgumentError, match="runs on the CPU"):  # checked before any weights are read
        int8.check_int8_options("lenet5", "INT8", torch.device("cuda"), False, None)
    for entrypoint in ("nvidia_efficientnet_b0", "nvidia_gpunet", "googlenet"):
        with pytest.raises(InvalidArgumentError, match=r"\(model_math='int8'\) is not offered"):
            getattr(hubconf, entrypoint)(pretrained=False, model_math="int8")
    with pytest.raises(InvalidArgumentError, match="features_only"):
        hubconf.lenet5(model_math="int8", features_only=True)
    with pytest.raises(InvalidArgumentError, match="only serves model_math='int8'"):
        hubconf.lenet5(calibration="photos")
    with pytest.raises(InvalidArgumentError, match="int8"):
        hubconf.lenet5(model_math="int4")


@pytest.fixture(scope="module")
def lenet_int8(digits_lenet, hubconf):
    path, x_train, _, _ = digits_lenet
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Int8NotFasterWarning)
        return hubconf.lenet5(weights=str(path), model_math="INT8", calibration=x_train[:64])


@ON_THE_DIGITS_WORKER
def test_an_int8_model_is_an_inference_only_cpu_module(lenet_int8, digits_lenet):
    import copy
    import pickle

    x = digits_lenet[2][:5]
    logits = lenet_int8(x)
    assert logits.dtype == torch.float32 and logits.shape == (5, 10)
    assert torch.equal(lenet_int8(x.double()), logits)
    assert torch.equal(copy.deepcopy(lenet_int8)(x), logits)
    assert torch.equal(pickle.loads(pickle.dumps(lenet_int8))(x), logits)
    assert lenet_int8.eval() is lenet_int8
    with pytest.raises(InferenceOnlyError):
        lenet_int8.train()
    with pytest.raises(InvalidArgumentError, match=r"float batch \[N, C, H, W\]"):
        lenet_int8(torch.zeros(1, 32, 32, dtype=torch.uint8))


@ON_THE_DIGITS_WORKER
def test_int8_exports_its_qdq_graph_that_onnxruntime_runs_alike(lenet_int8, digits_lenet, tmp_path):
    x = digits_lenet[2][:7]
    path = export_model(lenet_int8, tmp_path / "lenet5_int8.onnx", "onnx")
    graph = onnx.load(str(path)).graph
    kinds = [node.op_type for node in graph.node]
    assert kinds.count("QuantizeLinear") >= 5 and kinds.count("DequantizeLinear") >= 10  # every conv and gemm
    session = onnx_session(path)
    assert np.array_equal(session.run(None, {"input": x.numpy()})[0], lenet_int8(x).numpy())
    for options in ({"export_format": "torchscript"}, {"export_format": "onnx", "dynamo": True}):
        with pytest.raises(InvalidArgumentError, match="exports as ONNX opset 17 only"):
            export_model(lenet_int8, tmp_path / "other", **options)


def test_validate_prints_int8_beside_fp32(tmp_path, capsys):
    """A LeNet-5 fine-tuned on coloured noise, validated in int8 (calibrated on its training images)."""
    from convnets_hub.models.train.trainer import finetune

    data = make_image_folder(tmp_path / "images")
    finetune(lenet_settings(data, tmp_path / "run", epochs=3))
    capsys.readouterr()
    arguments = ["validate", "--entrypoint", "lenet5", "--weights", str(tmp_path / "run" / "last.pth"),
                 "--data", str(data / "val"), "--workers", "0", "--no-progress"]
    assert main(arguments) == 0
    fp32 = json.loads(capsys.readouterr().out.splitlines()[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Int8NotFasterWarning)
        assert main([*arguments, "--model-math", "int8", "--calibration", str(data / "train")]) == 0
    both = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert fp32["model_math"] == "fp32" and "fp32" not in fp32
    assert both["model_math"] == "int8" and both["images"] == 6
    assert both["fp32"] == {key: fp32[key] for key in ("top1", "top5", "loss")}
    assert abs(both["loss"] - fp32["loss"]) < 0.1


def test_calibration_on_the_command_line_goes_with_int8_only(tmp_path, capsys):
    assert main(["export", "--entrypoint", "lenet5", "--format", "onnx", "--output", str(tmp_path / "x.onnx"),
                 "--calibration", str(tmp_path)]) == 2
    assert "is given with --model-math 'fp32'; it only serves --model-math 'int8'" in capsys.readouterr().err


def seeded_model(hubconf, entrypoint, size):
    """``entrypoint``'s model with the parity tests' seeded weights, its input size ``size`` x ``size``. Built on
    the meta device: every parameter and buffer is in the state dict, which the seeded tensors replace (torch's
    random initialisation, which they would overwrite, cost AlexNet and SE-ResNeXt101 about 1 s each)."""
    name, _, model_type = entrypoint.partition(":")
    with torch.device("meta"):
        model = getattr(hubconf, name)(pretrained=False, **({"model_type": model_type} if model_type else {})).eval()
    model.load_state_dict({key: torch.from_numpy(seeded_array(key, value.shape, 0)).to(value.dtype)
                           for key, value in model.state_dict().items()}, assign=True)
    channels = model.pretrained_cfg["input_size"][0]
    model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (channels, size, size)}
    return model


PHOTO_VIEWS = {}


def photo_views(cfg, seed):
    """``calibration_batch(None, cfg, seed)``, made once per preprocessing and seed in this process (the four
    models at 64 x 64 preprocess alike)."""
    key = PreprocessConfig.from_mapping(cfg), seed
    if key not in PHOTO_VIEWS:
        PHOTO_VIEWS[key] = calibration_batch(None, cfg, seed=seed)
    return PHOTO_VIEWS[key]


def fit_head_to_photos(model, views, per_photo):
    """Give ``model`` a head that tells the photos apart: ridge regression of its features of ``views``
    (``per_photo`` consecutive views of each photo) onto one class per photo. With seeded weights the
    seeded head gives every photo the same class, and a class that no margin decides; this one is a
    linear probe, as fine-tuning a head would give."""
    head = model.get_submodule(model.pretrained_cfg["classifier"])
    features = []
    hook = head.register_forward_pre_hook(lambda _, args: features.append(args[0].flatten(1).double()))
    with torch.no_grad():
        model(views)
        hook.remove()
        centred = features[0] - features[0].mean(dim=0)
        targets = torch.zeros(len(views), head.out_features, dtype=torch.float64)
        targets[torch.arange(len(views)), torch.arange(len(views)) // per_photo * 7] = 10.0
        gram = centred @ centred.T
        weight = (centred.T @ torch.linalg.solve(gram + 1e-3 * gram.diagonal().mean() * torch.eye(len(views)),
                                                 targets)).T
        head.weight.copy_(weight)
        head.bias.copy_(-weight @ features[0].mean(dim=0))


# Every block kind offered in int8 and its input size: small where the model allows. The 101-layer ResNeXts
# are not covered: their blocks are resnext50_32x4d's, but depth matters here (measured with this recipe:
# nvidia_resneXt and resnext101_32x4d 83 %, resnext101_32x8d 97 %; README's int8 section says so). VGG's blocks are those of the
# others (convolution, batch norm and ReLU as in the ResNets; max pooling, adaptive pooling to 7 x 7 and
# the fully connected head as in AlexNet), and cost 12 times AlexNet's arithmetic. AlexNet keeps 224: ONNX
# exports its adaptive pooling only where it divides the feature map evenly.
INT8_ARCHITECTURES = {"resnet18_ssl": 64, "resnext50_32x4d_ssl": 64, "nvidia_resnet50": 64,
                      "nvidia_se_resnext101_32x4d": 64, "alexnet": 224}


@pytest.mark.parametrize(("entrypoint", "size"), INT8_ARCHITECTURES.items())
def test_int8_agrees_with_fp32_on_real_photos(hubconf, monkeypatch, entrypoint, size):
    """Item 4b: seeded weights, a head fitted to tell the bundled photos apart (on crops of seed 2),
    calibrated on the default views (seed 0), compared on other crops (seed 1): top-1 agreement >= 99 %."""
    model = seeded_model(hubconf, entrypoint, size)
    fit_head_to_photos(model, photo_views(model.pretrained_cfg, 2), math.ceil(MIN_VIEWS / len(bundled_photos())))
    views = photo_views(model.pretrained_cfg, 1)
    with torch.no_grad():
        expected = model(views)
    # The speed probe (a float32 session, timed beside the int8 one) only warns: its warning is
    # test_one_warning_where_int8_is_not_faster_than_fp32's, and the LeNet-5 tests run it for real.
    monkeypatch.setattr(int8, "_warn_unless_faster", lambda *args: None)
    quantized = quantize_int8(model)
    predicted = quantized(views)
    assert expected.argmax(dim=1).unique().numel() >= len(bundled_photos()) - 1  # the photos are told apart
    agreement = (predicted.argmax(dim=1) == expected.argmax(dim=1)).float().mean().item()
    assert agreement >= 0.99, agreement


def test_classify_runs_an_int8_model(tmp_path):
    images = make_image_folder(tmp_path / "images", train=1, val=0) / "train"
    output = tmp_path / "out.jsonl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Int8NotFasterWarning)
        assert main(["classify", str(images), "--entrypoint", "lenet5", "--model-math", "int8", "--calibration",
                     str(images), "--output", str(output), "--top-k", "3", "--no-progress", "--workers", "1"]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 3 and all(not row["error"] and len(row["labels"]) == 3 for row in rows)


@ON_THE_DIGITS_WORKER
def test_a_triton_repository_takes_the_int8_model(lenet_int8, tmp_path):
    from convnets_hub.models.deploy.triton_repository import write_triton_repository

    folder = write_triton_repository(lenet_int8, tmp_path / "repository", "onnx")
    assert (folder / "1" / "model.onnx").read_bytes() == lenet_int8.onnx_model
    config = (folder / "config.pbtxt").read_text()
    assert "TYPE_FP32" in config and "KIND_CPU" in config and 'platform: "onnxruntime_onnx"' in config


def test_int8_without_onnxruntime_names_the_requirements_file(hubconf, tmp_path, monkeypatch, capsys):
    """In this process (the exit code of ``python3 -m models`` is main's, tests/models/cli/test_cli.py)."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed (find_spec gives None)
    assert main(["export", "--entrypoint", "lenet5", "--model-math", "int8", "--format", "onnx",
                 "--output", str(tmp_path / "x.onnx")]) == 1
    stderr = capsys.readouterr().err
    assert "requirements-export.txt" in stderr and len(stderr.splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(ModuleNotFoundError, match="requirements-export.txt"):
        hubconf.lenet5(model_math="int8")
