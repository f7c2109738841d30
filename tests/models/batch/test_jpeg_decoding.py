"""The JPEG library behind ``--decode gpu/hybrid`` (``models/batch/jpeg_backends.py``): which one decodes,
the fallbacks, no deprecation warning, the stream safety of GPU decoding, and its pixels on a GPU."""

import warnings

import pytest
import skimage
import torch
from convnets_hub.models.batch import jpeg_backends
from convnets_hub.models.batch.decoding import GpuJpegDecoder, make_decoder
from convnets_hub.models.batch.jpeg_backends import (
    JPEG_DECODER_ENV,
    PREFERENCE,
    JpegBackendUnavailable,
    choose_jpeg_backend,
)
from convnets_hub.models.errors import InvalidArgumentError
from photos import AGREEMENT_BOUNDS, LEVELS, PREPROCESS, agreement_photos
from PIL import Image


def torchcodec_missing() -> str | None:
    try:
        from torchcodec.decoders import decode_jpeg  # noqa: F401
    except Exception as error:  # noqa: BLE001 - whatever keeps it from loading
        return f"torchcodec does not load here: {error}"
    return None


needs_torchcodec = pytest.mark.skipif(torchcodec_missing() is not None, reason=str(torchcodec_missing()))


class FakeBackend:
    """A JPEG library that decodes every JPEG to a gray image of the probe's size, and logs its calls."""

    applies_exif_orientation = False

    def __init__(self, name: str, log: list[str], fails: str = "") -> None:
        self.name, self.log, self.fails = name, log, fails

    def decode(self, data):
        self.log.append(f"decode {len(data)}")
        if self.fails == "probe" or (self.fails == "batch" and len(data) > 1):
            raise RuntimeError(f"{self.name} failed")
        return [torch.full((3, 8, 16), 128, dtype=torch.uint8) for _ in data]


@pytest.fixture
def fake_backends(monkeypatch):
    """Every backend replaced by a fake; ``setup(name=reason, ...)`` makes one unavailable
    (reason 'probe': its probe decode fails). It returns the log of loads and decode calls, new each time."""
    log: list[str] = []
    monkeypatch.delenv(JPEG_DECODER_ENV, raising=False)

    def setup(**unavailable: str) -> list[str]:
        log.clear()

        def loader(name: str):
            def load(device):
                log.append(f"load {name}")
                if unavailable.get(name, "probe") != "probe":
                    raise JpegBackendUnavailable(unavailable[name])
                return FakeBackend(name, log, fails=unavailable.get(name, ""))
            return load
        monkeypatch.setattr(jpeg_backends, "BACKENDS", {name: loader(name) for name in PREFERENCE})
        return log

    return setup


def test_the_jpeg_library_is_the_first_of_the_documented_order_that_works(fake_backends):
    """TorchCodec, then nvImageCodec, then torchvision's deprecated decoder: each one that does not
    load, or fails its probe decode, hands over to the next."""
    assert PREFERENCE == ("torchcodec", "nvimgcodec", "torchvision")
    log = fake_backends()
    assert choose_jpeg_backend("cpu").name == "torchcodec" and log == ["load torchcodec", "decode 1"]
    fake_backends(torchcodec="not installed")
    assert choose_jpeg_backend("cuda").name == "nvimgcodec"
    log = fake_backends(torchcodec="not installed", nvimgcodec="probe")
    assert choose_jpeg_backend("cuda").name == "torchvision"
    assert log == ["load torchcodec", "load nvimgcodec", "decode 1", "load torchvision", "decode 1"]
    fake_backends(torchcodec="no", nvimgcodec="nope", torchvision="never")
    with pytest.raises(RuntimeError, match="no JPEG decoder works on cpu: torchcodec: no; nvimgcodec: nope; "
                                           "torchvision: never"):
        choose_jpeg_backend("cpu")


def test_the_environment_variable_or_the_argument_picks_the_jpeg_library(fake_backends, monkeypatch):
    log = fake_backends(torchvision="probe")
    monkeypatch.setenv(JPEG_DECODER_ENV, "nvimgcodec")
    assert choose_jpeg_backend("cuda").name == "nvimgcodec" and log == ["load nvimgcodec", "decode 1"]
    assert choose_jpeg_backend("cuda", "torchcodec").name == "torchcodec", "the argument goes before the variable"
    with pytest.raises(InvalidArgumentError, match="the JPEG library 'torchvision' cannot decode on cpu: "
                                               "torchvision: its probe decode failed"):
        choose_jpeg_backend("cpu", "torchvision")  # named: no fallback, the reason instead
    monkeypatch.setenv(JPEG_DECODER_ENV, "pillow")
    with pytest.raises(InvalidArgumentError, match=f"{JPEG_DECODER_ENV}='pillow': choose one of torchcodec, "
                                               "nvimgcodec, torchvision"):
        make_decoder("gpu", PREPROCESS, "cpu")  # before any work: exit code 2 on the command line
    with pytest.raises(InvalidArgumentError, match="jpeg_backend='pil': choose one of"):
        GpuJpegDecoder(PREPROCESS, "cpu", jpeg_backend="pil")


def test_nvimgcodec_is_passed_over_on_a_cpu_with_the_reason(monkeypatch):
    monkeypatch.delenv(JPEG_DECODER_ENV, raising=False)
    with pytest.raises(InvalidArgumentError, match="'nvimgcodec' cannot decode on cpu: .*CUDA devices only, not cpu"):
        choose_jpeg_backend("cpu", "nvimgcodec")


@needs_torchcodec
def test_the_default_gpu_path_decodes_with_torchcodec_and_warns_nothing(monkeypatch, tmp_path):
    """torchvision 0.29 deprecates its decoders with a DeprecationWarning on every call, CPU included:
    the default path is TorchCodec, and torchvision's fallback keeps its warning from users too."""
    monkeypatch.delenv(JPEG_DECODER_ENV, raising=False)
    path = tmp_path / "coffee.jpg"
    Image.fromarray(skimage.data.coffee()).save(path, quality=90)
    images = {}
    for backend in (None, "torchvision"):
        gpu = GpuJpegDecoder(PREPROCESS, "cpu", jpeg_backend=backend)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            images[backend] = gpu.decode([gpu.read(str(path))])[0]
        assert [str(warning.message) for warning in caught] == [], backend
        assert gpu.jpeg_backend.name == (backend or "torchcodec")
    assert torch.equal(images[None], images["torchvision"]), "the same libjpeg-turbo pixels on a CPU"


@needs_torchcodec
@pytest.mark.parametrize("orientation", [5, 6])  # a transpose and a rotation: not square
def test_every_jpeg_library_turns_photos_upright_once(tmp_path, orientation):
    """TorchCodec applies EXIF orientation itself, torchvision does not: the decoder turns only the latter's."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "turned.jpg"
    Image.fromarray(skimage.data.chelsea()).save(path, exif=exif, quality=90)
    decoded = {}
    for backend in ("torchcodec", "torchvision"):
        gpu = GpuJpegDecoder(PREPROCESS, "cpu", jpeg_backend=backend)
        decoded[backend] = gpu.decode([gpu.read(str(path))])[0]
    assert torch.equal(decoded["torchcodec"], decoded["torchvision"])


class FakeStream:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def synchronize(self) -> None:
        self.log.append("synchronize")


def test_the_decoding_stream_is_host_synchronized_before_every_decode_call():
    """nvJPEG's hardware decode may write before the work queued on its stream has run: the decoder
    waits on the host before each call, the batch and the one-by-one retry of a failed batch alike."""
    log: list[str] = []
    gpu = GpuJpegDecoder(PREPROCESS, "cpu")
    gpu._stream = FakeStream(log)  # as on a GPU, where the first decode creates it
    gpu.jpeg_backend = FakeBackend("fake", log, fails="batch")
    data = [torch.zeros(4, dtype=torch.uint8)] * 3
    assert [image.shape for image in gpu._decode_jpegs(data)] == [(3, 8, 16)] * 3
    assert log == ["synchronize", "decode 3"] + ["synchronize", "decode 1"] * 3


@pytest.mark.cuda
@pytest.mark.parametrize("backend", PREFERENCE)
def test_decoding_the_same_batch_while_a_model_runs_gives_identical_images_200_times(tmp_path, backend):
    """nvJPEG on an H100 corrupted 134 of 200 iterations of this pattern (pytorch/vision#9606): the
    model's stream still reads the images of the last batch, freed, when the next batch is decoded.
    Every image of every iteration, read on the model's stream after the model, equals the first decode."""
    import torchvision

    try:
        gpu = GpuJpegDecoder(PREPROCESS, "cuda", batch_size=16, jpeg_backend=backend)
        jpegs = [gpu.read(path) for path in agreement_photos(tmp_path)]
        reference = torch.stack(gpu.finish(gpu.decode(jpegs))).clone()
    except InvalidArgumentError as error:
        pytest.skip(str(error))
    torch.cuda.synchronize()
    model = torchvision.models.resnet50().cuda().eval().half().to(memory_format=torch.channels_last)
    model_stream, iterations = torch.cuda.Stream(), 200
    mismatches = torch.zeros(iterations, dtype=torch.int64, device="cuda")
    with torch.cuda.stream(model_stream), torch.inference_mode():
        for iteration in range(iterations):
            images = gpu.finish(gpu.decode(jpegs))  # the model's stream waits for the decode, records the use
            for _ in range(3):  # tens of milliseconds queued: the next decode comes while these still run
                model(torch.stack(images).half().contiguous(memory_format=torch.channels_last))
            mismatches[iteration] = sum((image != expected).sum() for image, expected in zip(images, reference,
                                                                                             strict=True))
            del images  # freed while the model's stream still reads them
    torch.cuda.synchronize()
    corrupted = [iteration for iteration, count in enumerate(mismatches.tolist()) if count]
    print(f"{backend}: {len(corrupted)}/{iterations} iterations differ")
    assert corrupted == [], f"{len(corrupted)} of {iterations} iterations differ from the first decode"


@pytest.mark.cuda
@pytest.mark.parametrize("backend", PREFERENCE)
def test_every_jpeg_library_on_the_gpu_stays_within_the_documented_bound_of_cpu_decoding(tmp_path, backend):
    """nvJPEG (through each library) against the same code on the CPU (libjpeg-turbo), over the sample
    photos: the bound that decoding.py's docstring states for the GPU path against the hub's pixels."""
    paths = agreement_photos(tmp_path)
    on_cpu = GpuJpegDecoder(PREPROCESS, "cpu")
    expected = torch.stack(on_cpu.decode([on_cpu.read(path) for path in paths]))
    try:
        gpu = GpuJpegDecoder(PREPROCESS, "cuda", jpeg_backend=backend)
        decoded = torch.stack(gpu.finish(gpu.decode([gpu.read(path) for path in paths]))).cpu()
    except InvalidArgumentError as error:
        pytest.skip(str(error))
    difference = ((decoded - expected) * LEVELS).abs()
    mean, p99 = difference.mean().item(), torch.quantile(difference.flatten(), 0.99).item()
    print(f"{backend}: GPU against CPU decoding: mean {mean:.3f} levels, p99 {p99:.2f}, "
          f"max {difference.max().item():.0f}")
    assert mean <= AGREEMENT_BOUNDS["cuda"]["mean"] and p99 <= AGREEMENT_BOUNDS["cuda"]["p99"]
