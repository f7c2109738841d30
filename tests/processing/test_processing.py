"""nvidia_convnets_processing_utils: every image kind, URLs on loopback, NVIDIA's format, fuzzing."""

import gzip
import io
import json
import math
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import warnings
import zlib
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import skimage
import torch
from conftest import REPO, Reply, closed_port
from convnets_hub.processing import (
    ConvNetsProcessingUtils,
    ImageDecodeError,
    ImageFetchError,
    ImageInputError,
    ImageTooLargeError,
    NotProbabilitiesWarning,
    ProcessingArgumentError,
    SkippedImagesWarning,
)
from convnets_hub.processing.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PreprocessConfig,
    resized_center_crop,
    resized_region,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from PIL import Image
from raw_http import PNG, half_a_body_then_hang_up, raw_http_server
from torchvision import transforms
from torchvision.transforms import InterpolationMode

GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
SKIMAGE = Path(skimage.data_dir)
PIXELS = {"input_size": (3, 224, 224), "crop_pct": 1.0, "interpolation": "bilinear", "mean": (0, 0, 0),
          "std": (1, 1, 1)}  # a config whose output is the plain [0, 1] pixels


@pytest.fixture(scope="module")
def utils():
    return ConvNetsProcessingUtils(read_timeout=1.0)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("path", [GRACE_HOPPER, *(SKIMAGE / name for name in (
    "camera.png", "logo.png", "horse.png", "no_time_for_that_tiny.gif", "multipage.tif", "retina.jpg", "chelsea.png"))],
    ids=lambda p: p.name)
def test_real_images_of_every_mode_become_a_normalized_rgb_batch(utils, path):
    mode = Image.open(path).mode
    tensor = utils.prepare_input_from_uri(str(path))
    assert tensor.shape == (1, 3, 224, 224) and tensor.dtype == torch.float32 and torch.isfinite(tensor).all(), mode
    assert -2.2 < tensor.min() and tensor.max() < 2.7  # ImageNet-normalized [0, 1] pixels


def test_transparent_pixels_are_composited_on_white(utils):
    image = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    assert torch.allclose(utils.prepare_input_from_uri(image, config=PIXELS), torch.ones(1, 3, 224, 224))
    horse = utils.prepare_input_from_uri(SKIMAGE / "horse.png", config=PIXELS)
    assert horse[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]  # the transparent corner of a real RGBA image


def test_cmyk_jpeg_and_16_bit_png(utils):
    cmyk = Image.new("CMYK", (300, 200), (0, 255, 255, 0))  # red in CMYK
    red = utils.prepare_input_from_uri(encoded(cmyk, "JPEG"), config=PIXELS)[0].mean(dim=(1, 2))
    assert red[0] > 0.9 and red[1] < 0.1 and red[2] < 0.1
    ramp = np.tile(np.linspace(0, 65535, 256, dtype=np.uint16), (256, 1))
    sixteen = Image.fromarray(ramp)
    assert sixteen.mode.startswith("I;16")
    pixels = utils.prepare_input_from_uri(encoded(sixteen, "PNG"), config=PIXELS)
    assert pixels.max() > 0.97 and pixels.min() < 0.03, "16-bit values are scaled, not clipped"


def test_exif_orientation_is_applied(utils):
    image = Image.new("RGB", (400, 200), (255, 0, 0))
    image.paste((0, 0, 255), (200, 0, 400, 200))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    pixels = utils.prepare_input_from_uri(encoded(image, "JPEG", exif=exif), config=PIXELS)[0]
    top, bottom = pixels[:, :50].mean(dim=(1, 2)), pixels[:, -50:].mean(dim=(1, 2))
    assert top[0] > 0.8 and bottom[2] > 0.8, "the displayed image is portrait: red on top, blue below"


def test_first_frame_of_an_animation(utils):
    frames = [Image.new("RGB", (64, 64), color) for color in ((0, 255, 0), (255, 0, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    green = utils.prepare_input_from_uri(buffer.getvalue(), config=PIXELS)[0].mean(dim=(1, 2))
    assert green[1] > 0.9 and green[0] < 0.1


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with almost no data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _png_chunk(b"IEND", b""))


def _flat_png(width: int, height: int, bit_depth: int, value: int) -> bytes:
    """A greyscale PNG of one ``value``: any number of pixels in a few hundred KB, made row by row."""
    row = b"\x00" + value.to_bytes(bit_depth // 8, "big") * width
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


# What a process's memory shows, in one process for two tests (a process costs seconds of imports). First (Linux)
# each thin image is prepared, one at a time, a line each, with the address space capped a little above what the
# process holds once warmed up (torch, a first image): an image whose preprocessing needs gigabytes fails there at
# once with MemoryError instead of taking the machine's memory. Then, the cap lifted, three copies of a 16-bit PNG
# are decoded in one prepare_inputs call, as the server does for a request of three images, and the script prints
# how far the process's peak RSS rose above what small images needed. In this order each bound is the one a
# process of its own would have: thin images prepared as they should be peak below the 16-bit warm-up, the
# baseline of the rise, while memory that the big PNGs leave mapped, and free, would widen the cap of later images.
MEMORY_SCRIPT = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
import models
from convnets_hub.processing import ConvNetsProcessingUtils

utils = ConvNetsProcessingUtils()
small, thin, big, small_16_bit = sys.argv[2], sys.argv[3:-2], sys.argv[-2], sys.argv[-1]
if sys.platform == "linux":  # reads /proc/self/status
    utils.prepare_inputs([small])
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + 2**30, resource.RLIM_INFINITY))
    for image in thin:
        try:
            batch = utils.prepare_inputs([image])
        except MemoryError as error:  # a line for that image's test, and the next image is prepared
            print(json.dumps({"thin": {"error": repr(error)}}), flush=True)
            continue
        print(json.dumps({"thin": {"shape": list(batch.shape), "pixel": batch[0, :, 100, 100].tolist()}}), flush=True)
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
utils.prepare_inputs([small_16_bit] * 3, workers=3)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
batch = utils.prepare_inputs([big] * 3, workers=3)
rise = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"big": {"shape": list(batch.shape), "rise_bytes": rise * 1024, "mean": batch.mean().item()}}),
      flush=True)
"""
THIN = [("tall.png", (1, 100_000)), ("wide.png", (30_000, 1))]


@pytest.fixture(scope="module")
def memory(tmp_path_factory) -> dict:
    """The thin images' lines (Linux) and the 16-bit PNGs' line of MEMORY_SCRIPT, and the sizes of its files."""
    folder = tmp_path_factory.mktemp("memory")
    Image.new("RGB", (64, 48), (1, 2, 3)).save(folder / "small.png")
    for name, size in THIN:
        Image.new("RGB", size, (200, 100, 50)).save(folder / name)
    (folder / "big.png").write_bytes(_flat_png(9000, 9000, 16, 40000))
    (folder / "small_16_bit.png").write_bytes(_flat_png(300, 300, 16, 40000))
    files = [folder / "small.png", *(folder / name for name, _ in THIN), folder / "big.png", folder / "small_16_bit.png"]
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(REPO), *map(str, files)],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {"thin": [line["thin"] for line in lines if "thin" in line], "big": lines[-1]["big"],
            "sizes": {path.name: path.stat().st_size for path in files}}


@pytest.mark.xdist_group("processing_memory")  # the tests of one process, on one pytest-xdist worker
def test_three_16_bit_9000_px_pngs_in_one_batch_stay_far_below_a_gigabyte(memory):
    """A 16-bit 9000 x 9000 PNG of under 200 KB is 81 Mpx: decoded through float64 it took 2.2 GiB,
    three in one batch 6.3 GiB; the decoding budget lets one such image decode at a time."""
    assert memory["sizes"]["big.png"] < 200_000
    measured = memory["big"]
    assert measured["shape"] == [3, 3, 224, 224]
    assert measured["rise_bytes"] < 2**30, f"peak RSS rose by {measured['rise_bytes'] / 2**20:.0f} MiB"
    grey = (40000 // 257) / 255  # 16-bit values scaled to 8 bits, rounded down
    normalized = (grey - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert measured["mean"] == pytest.approx(normalized.mean().item(), abs=1e-5)


def test_max_pixels_above_pillows_own_warning_limit_is_honoured():
    side = math.isqrt(Image.MAX_IMAGE_PIXELS) + 100  # just above the canvas where Pillow warns
    data = _flat_png(side, side, 8, 200)
    with pytest.warns(Image.DecompressionBombWarning):  # Pillow's warning, left a warning
        pixels = ConvNetsProcessingUtils(max_pixels=side * side).prepare_input_from_uri(data, config=PIXELS)
    assert torch.allclose(pixels, torch.full_like(pixels, 200 / 255))
    with pytest.raises(ImageTooLargeError, match=f"{side}x{side} pixels exceed the limit of {side * side - 1}"), \
            pytest.warns(Image.DecompressionBombWarning):
        ConvNetsProcessingUtils(max_pixels=side * side - 1).prepare_input_from_uri(data)


def test_threaded_decoding_leaves_the_warnings_filters_alone():
    before = list(warnings.filters)
    images = [encoded(Image.new("RGB", (640, 480), (index, 0, 0)), "PNG") for index in range(64)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can: any race on global state shows
    try:
        for _ in range(3):
            ConvNetsProcessingUtils(workers=8).prepare_inputs(images)
    finally:
        sys.setswitchinterval(interval)
    assert warnings.filters == before


@pytest.mark.parametrize(("payload", "error"), [
    (encoded(Image.open(GRACE_HOPPER), "JPEG")[:5000], ImageDecodeError),
    (b"", ImageDecodeError),
    (os.urandom(4096), ImageDecodeError),
    (b"just some text, certainly not an image\n" * 10, ImageDecodeError),
    (_png_header(100_000, 100_000), ImageTooLargeError),
], ids=["truncated-jpeg", "zero-bytes", "random-bytes", "text", "bomb-header"])
def test_broken_inputs_raise_a_value_error_naming_the_cause(utils, payload, error):
    with pytest.raises(error) as raised:
        utils.prepare_input_from_uri(payload)
    assert isinstance(raised.value, ValueError) and f"<{len(payload)} bytes>" in str(raised.value)
    assert " at 0x" not in str(raised.value)  # the same input gives the same message


def test_input_kinds(utils, tmp_path):
    reference = utils.prepare_input_from_uri(str(GRACE_HOPPER))
    data = GRACE_HOPPER.read_bytes()
    for kind in (GRACE_HOPPER, data, bytearray(data), io.BytesIO(data), Image.open(GRACE_HOPPER)):
        assert torch.allclose(utils.prepare_input_from_uri(kind), reference, atol=1e-6), type(kind)
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    with open(text_file) as handle, pytest.raises(ImageInputError, match="binary mode"):
        utils.prepare_input_from_uri(handle)
    with pytest.raises(ImageDecodeError, match="notes.txt"):
        utils.prepare_input_from_uri(text_file)
    with pytest.raises(ImageInputError, match="no such file"):
        utils.prepare_input_from_uri(tmp_path / "missing.jpg")
    with pytest.raises(ImageInputError, match="expected a URL"):
        utils.prepare_input_from_uri(42)


def test_urls_against_a_loopback_server(utils, server):
    jpeg = GRACE_HOPPER.read_bytes()
    good = server.serve("/img.jpg", Reply(body=jpeg, headers={"Content-Type": "image/jpeg"}))
    assert utils.prepare_input_from_uri(good).shape == (1, 3, 224, 224)
    moved = server.serve("/old.jpg", Reply(status=302, headers={"Location": "/img.jpg"}))
    assert torch.equal(utils.prepare_input_from_uri(moved), utils.prepare_input_from_uri(good))
    cases = {
        "/missing.jpg": (Reply(status=404, body=b"nope"), "HTTP 404"),
        "/broken.jpg": (Reply(status=500, body=b"oops"), "HTTP 500"),
        "/page.jpg": (Reply(body=b"<html>hi</html>", headers={"Content-Type": "text/html; charset=utf-8"}),
                      "text/html"),
    }
    for path, (reply, cause) in cases.items():
        url = server.serve(path, reply)
        with pytest.raises(ImageFetchError, match=cause) as raised:
            utils.prepare_input_from_uri(url)
        assert url in str(raised.value)
    small = ConvNetsProcessingUtils(max_bytes=10_000)
    with pytest.raises(ImageFetchError, match="exceed"):
        small.prepare_input_from_uri(good)
    chunked = server.serve("/chunked.jpg", Reply(body=jpeg, headers={"Content-Type": "image/jpeg",
                                                                     "Content-Length": ""}))
    with pytest.raises(ImageFetchError, match="limit"):
        small.prepare_input_from_uri(chunked)


def test_a_stalled_server_times_out_after_the_read_timeout_without_a_retry(utils, server):
    url = server.serve("/stall.jpg", Reply(stall=True))
    with pytest.raises(ImageFetchError, match=r"timed out \(1 s read timeout\)"):
        utils.prepare_input_from_uri(url)
    assert server.hits == ["/stall.jpg"]


def test_a_server_dripping_bytes_is_cut_off_by_the_total_timeout(server):
    url = server.serve("/drip.jpg", Reply(body=GRACE_HOPPER.read_bytes(), seconds=10.0,
                                          headers={"Content-Type": "image/jpeg"}))
    with pytest.raises(ImageFetchError, match=r"timed out \(1 s for the whole response, headers included\)"):
        ConvNetsProcessingUtils(read_timeout=2.0, total_timeout=1.0).prepare_input_from_uri(url)
    assert server.outcomes.get(timeout=30) == ("/drip.jpg", "cut off"), "the client hung up before the body's end"


def drip_header_lines(connection: socket.socket, stop: threading.Event) -> None:
    """A header line every 0.2 s for 8 s, then a good PNG: each wait is far below any read timeout."""
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n")
    for number in range(40):
        if stop.wait(0.2):
            return
        connection.sendall(b"X-Drip-%d: still here\r\n" % number)
    connection.sendall(b"Content-Length: %d\r\n\r\n" % len(PNG) + PNG)


def test_a_server_dripping_header_lines_is_cut_off_by_the_total_timeout():
    """requests' read timeout bounds each wait, not the headers' sum: a 5 s total deadline was held 30 s."""
    with raw_http_server(drip_header_lines) as url:
        started = time.monotonic()
        with pytest.raises(ImageFetchError) as raised:
            ConvNetsProcessingUtils(read_timeout=5.0, total_timeout=1.0).prepare_input_from_uri(url)
        elapsed = time.monotonic() - started
    assert str(raised.value) == f"{url}: timed out (1 s for the whole response, headers included)"
    assert elapsed < 4, f"the deadline of 1 s held the client {elapsed:.1f} s"


def half_a_body_then_silence(connection: socket.socket, stop: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n" % len(PNG)
                       + PNG[: len(PNG) // 2])
    stop.wait(30)


def a_broken_chunk(connection: socket.socket, stop: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"10\r\n" + PNG[:16] + b"\r\nzz\r\n")


@pytest.mark.parametrize(("answer", "cause"), [
    (half_a_body_then_silence, "timed out (1 s read timeout)"),
    (half_a_body_then_hang_up, "the connection broke off (Connection broken: IncompleteRead("),
    (a_broken_chunk, "the connection broke off (Connection broken: "),
])
def test_a_body_that_stalls_or_breaks_off_is_one_error_line_naming_the_url(utils, answer, cause):
    """urllib3's ReadTimeoutError and ProtocolError escaped fetch_bytes: a traceback, and
    prepare_inputs(skip_errors=True) raised too."""
    with raw_http_server(answer) as url:
        with pytest.raises(ImageFetchError) as raised:
            utils.prepare_input_from_uri(url)
        message = str(raised.value)
        assert message.startswith(f"{url}: {cause}") and "\n" not in message
        with pytest.warns(SkippedImagesWarning, match="input 1"):
            batch = utils.prepare_inputs([PNG, url], skip_errors=True)
    assert batch.shape == (1, 3, 224, 224)


def test_gzip_and_deflate_encoded_images_are_decoded_within_the_byte_limit(server):
    plain = server.serve("/plain.png", Reply(body=PNG, headers={"Content-Type": "image/png"}))
    expected = ConvNetsProcessingUtils().prepare_input_from_uri(plain)
    for encoding, body in [("gzip", gzip.compress(PNG)), ("deflate", zlib.compress(PNG))]:
        url = server.serve(f"/{encoding}.png", Reply(body=body, headers={"Content-Type": "image/png",
                                                                         "Content-Encoding": encoding}))
        assert torch.equal(ConvNetsProcessingUtils().prepare_input_from_uri(url), expected), encoding
    bomb = server.serve("/bomb.png", Reply(body=gzip.compress(PNG + bytes(50_000)),
                                           headers={"Content-Type": "image/png", "Content-Encoding": "gzip"}))
    with pytest.raises(ImageFetchError, match="decompresses to more than the limit of 20000 bytes"):
        ConvNetsProcessingUtils(max_bytes=20_000).prepare_input_from_uri(bomb)
    cut = server.serve("/cut.png", Reply(body=gzip.compress(PNG)[:-30],
                                         headers={"Content-Type": "image/png", "Content-Encoding": "gzip"}))
    with pytest.raises(ImageFetchError, match="the compressed body is truncated"):
        ConvNetsProcessingUtils().prepare_input_from_uri(cut)
    brotli = server.serve("/br.png", Reply(body=PNG, headers={"Content-Type": "image/png", "Content-Encoding": "br"}))
    with pytest.raises(ImageFetchError, match="Content-Encoding 'br'"):
        ConvNetsProcessingUtils().prepare_input_from_uri(brotli)


def test_a_refused_connection_is_one_readable_line(utils):
    url = f"http://127.0.0.1:{closed_port()}/x.jpg"
    with pytest.raises(ImageFetchError) as raised:
        utils.prepare_input_from_uri(url)
    assert str(raised.value) == f"{url}: cannot connect: connection refused"  # not urllib3's nested repr


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/a.jpg", "file:///etc/passwd", "gopher://127.0.0.1/x"])
def test_other_schemes_are_refused(utils, url):
    with pytest.raises(ImageFetchError, match="only http and https"):
        utils.prepare_input_from_uri(url)


def test_model_aware_preprocessing(utils, hubconf):
    gpunet = hubconf.nvidia_gpunet(pretrained=False, model_type="GPUNet-0")
    assert utils.prepare_input_from_uri(GRACE_HOPPER, model=gpunet).shape == (1, 3, 320, 320)
    compiled_like = torch.nn.Module()
    compiled_like._orig_mod = gpunet
    assert utils.prepare_input_from_uri(GRACE_HOPPER, model=compiled_like).shape == (1, 3, 320, 320)
    config = {**gpunet.pretrained_cfg, "input_size": (3, 96, 96)}
    assert utils.prepare_input_from_uri(GRACE_HOPPER, config=config).shape == (1, 3, 96, 96)
    with pytest.raises(ProcessingArgumentError, match="pretrained_cfg"):
        utils.prepare_input_from_uri(GRACE_HOPPER, model=torch.nn.Linear(2, 2))
    with pytest.raises(ProcessingArgumentError):
        utils.prepare_input_from_uri(GRACE_HOPPER, config={"input_size": (3, 224, 224)})


def test_bicubic_native_resolution_differs_from_nvidia_crop(utils, hubconf):
    """GPUNet-0's own preprocessing (bicubic, 320 px, no crop) is not NVIDIA's (bilinear, 256 px,
    center crop 224): each is torchvision's pipeline of that recipe."""
    gpunet = hubconf.nvidia_gpunet(pretrained=False, model_type="GPUNet-0")
    native = utils.prepare_input_from_uri(GRACE_HOPPER, model=gpunet)[0]
    nvidia = utils.prepare_input_from_uri(GRACE_HOPPER)[0]
    image = Image.open(GRACE_HOPPER).convert("RGB")

    def torchvision_pipeline(resize: int, crop: int, interpolation: InterpolationMode) -> torch.Tensor:
        return transforms.Compose([transforms.Resize(resize, interpolation), transforms.CenterCrop(crop),
                                   transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(image)

    assert torch.allclose(native, torchvision_pipeline(320, 320, InterpolationMode.BICUBIC), atol=1e-5)
    assert torch.allclose(nvidia, torchvision_pipeline(256, 224, InterpolationMode.BILINEAR), atol=1e-5)
    bilinear = torchvision_pipeline(320, 320, InterpolationMode.BILINEAR)
    assert (native - bilinear).abs().max() > 0.1, "bicubic, not bilinear"


def test_prepare_inputs_batches_in_threads_and_names_bad_items(utils):
    uris = [GRACE_HOPPER, SKIMAGE / "chelsea.png", SKIMAGE / "camera.png"]
    batch = utils.prepare_inputs(uris, workers=3)
    assert torch.allclose(batch, torch.cat([utils.prepare_input_from_uri(uri) for uri in uris]), atol=1e-6)
    with pytest.raises(ImageDecodeError, match=r"input 1 \(<3 bytes>\)"):
        utils.prepare_inputs([GRACE_HOPPER, b"bad", GRACE_HOPPER])
    with pytest.warns(SkippedImagesWarning, match="input 1"):
        assert utils.prepare_inputs([GRACE_HOPPER, b"bad", GRACE_HOPPER], skip_errors=True).shape[0] == 2


def test_cuda_without_a_gpu_is_a_clear_value_error(utils):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for cuda in (True, "cuda", torch.device("cuda:0")):
        with pytest.raises(ProcessingArgumentError, match="torch.cuda.is_available"):
            utils.prepare_input_from_uri(GRACE_HOPPER, cuda=cuda)
    assert utils.prepare_input_from_uri(GRACE_HOPPER, cuda="cpu").device.type == "cpu"


def test_pick_n_best_in_nvidia_format(utils, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scores = torch.zeros(2, 1000)
    scores[0, 0], scores[0, 1], scores[1, 999] = 0.7, 0.2, 0.9
    results = utils.pick_n_best(predictions=scores, n=2)
    assert results[0] == [("tench, Tinca tinca", "70.0%"), ("goldfish, Carassius auratus", "20.0%")]
    assert results[1][0] == ("toilet tissue, toilet paper, bathroom tissue", "90.0%")
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"sample {i}: {result}" for i, result in enumerate(results)]
    assert list(tmp_path.iterdir()) == [], "labels are bundled: nothing is downloaded or written"
    assert utils.pick_n_best(scores, verbose=False) and capsys.readouterr().out == ""


def test_pick_n_best_gives_the_n_most_probable_in_order_up_to_every_class(utils):
    scores = torch.softmax(torch.linspace(0, 5, 1000), 0)  # class 999 first, then 998...
    labels = utils.get_imgnet_classes()
    for n, expected in [(10, 10), (1000, 1000), (2000, 1000)]:
        (result,) = utils.pick_n_best(scores, n=n, verbose=False)
        assert [name for name, _ in result] == list(labels[::-1][:expected])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_pick_n_best_dtypes_shapes_and_custom_labels(utils, dtype):
    scores = torch.softmax(torch.randn(1000), 0).to(dtype)
    assert len(utils.pick_n_best(scores, n=3, verbose=False)) == 1  # a 1-D tensor is one sample
    head = torch.tensor([[0.125, 0.5, 0.25]], dtype=dtype)  # exact in every dtype
    assert utils.pick_n_best(head, n=10, labels=["cat", "dog", "bird"], verbose=False) == [
        [("dog", "50.0%"), ("bird", "25.0%"), ("cat", "12.5%")]]
    with pytest.raises(ProcessingArgumentError, match="2 names"):
        utils.pick_n_best(head, labels=["cat", "dog"])


@pytest.mark.parametrize("scores", [torch.randn(2, 1000) * 5, torch.full((1, 1000), -1.0),
                                    torch.tensor([[0.5, float("nan"), 0.2]]), torch.linspace(-3, 3, 1000).exp(),
                                    torch.tensor([[0.2, 1.01, 0.3]])],
                         ids=["logits", "negative", "nan", "exp-of-logits", "just-above-1"])
def test_pick_n_best_warns_when_rows_are_not_probabilities(utils, scores):
    with pytest.warns(NotProbabilitiesWarning, match="not probabilities.*softmax") as caught:
        utils.pick_n_best(scores, n=2, verbose=False)
    assert len(caught) == 1 and caught[0].filename == __file__  # points at the caller


def test_pick_n_best_takes_probabilities_of_any_precision_silently(utils):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotProbabilitiesWarning)
        for dtype in (torch.float16, torch.bfloat16, torch.float32):
            utils.pick_n_best(torch.softmax(torch.randn(3, 1000) * 10, 1).to(dtype), verbose=False)
        utils.pick_n_best(torch.sigmoid(torch.randn(2, 10)), verbose=False)  # multi-label scores


def test_show_returns_a_headless_figure(utils):
    uris = [GRACE_HOPPER, SKIMAGE / "chelsea.png"]
    results = utils.pick_n_best(torch.softmax(torch.randn(2, 1000), 1), n=3, verbose=False)
    figure = utils.show(uris, results)
    assert isinstance(figure, Figure) and len(figure.axes) == 4
    assert [t.get_text() for t in figure.axes[1].get_yticklabels()][-1] == results[0][0][0].split(",")[0]
    figure.savefig(io.BytesIO(), format="png")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=2048), st.binary(max_size=512).map(lambda tail: _png_header(8, 8) + tail),
                 st.binary(max_size=512).map(lambda tail: b"\xff\xd8\xff\xe0" + tail)))
def test_arbitrary_bytes_give_a_tensor_or_a_value_error(utils, data):
    try:
        tensor = utils.prepare_input_from_uri(data)
    except ValueError as error:
        assert isinstance(error, ImageInputError)
    else:
        assert tensor.shape == (1, 3, 224, 224)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status and caps RLIMIT_AS (Linux)")
@pytest.mark.xdist_group("processing_memory")
def test_a_thin_image_costs_memory_in_proportion_to_the_crop(memory):
    """A 1 x 100000 PNG of a few hundred bytes was resized to 256 x 25.6 M pixels (~20 GB) before
    its crop was taken: MemoryError. Only the part of it that the crop reads is resized now.
    A tall and a wide one, in one capped process (each prepared within the cap)."""
    assert all(memory["sizes"][name] < 1000 for name, _ in THIN)
    expected = (torch.tensor([200, 100, 50]) / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    for (name, _), measured in zip(THIN, memory["thin"], strict=True):
        assert measured.get("shape") == [1, 3, 224, 224], (name, measured)
        assert measured["pixel"] == pytest.approx(expected.tolist(), abs=1e-5), name


def _resized_then_cropped(image: Image.Image, config: PreprocessConfig) -> Image.Image:
    """The pipeline before thin images were bounded: the whole image resized, then cropped."""
    resized = image.resize(config.resized_dimensions(*image.size), Image.Resampling[config.interpolation.upper()])
    left, top = config.crop_origin(*resized.size)
    height, width = config.input_size[1:]
    return resized.crop((left, top, left + width, top + height))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_resizing_only_the_cropped_region_gives_the_pixels_of_resizing_the_whole_image(interpolation):
    photos = [GRACE_HOPPER, SKIMAGE / "chelsea.png", SKIMAGE / "astronaut.png", SKIMAGE / "coffee.png"]
    differing = total = 0
    for photo in photos:
        image = Image.open(photo).convert("RGB")
        strip = image.resize((image.width // 16, image.height * 4))  # a resized image of 50+ crops
        for config in [PreprocessConfig(interpolation=interpolation),
                       PreprocessConfig(input_size=(3, 288, 288), crop_pct=0.95, interpolation=interpolation),
                       PreprocessConfig(input_size=(3, 320, 320), crop_pct=1.0, interpolation=interpolation),
                       PreprocessConfig(input_size=(3, 224, 320), interpolation=interpolation)]:  # padded
            for source in (image, image.transpose(Image.Transpose.ROTATE_90), strip):
                whole = np.asarray(_resized_then_cropped(source, config), dtype=np.int16)
                region = np.asarray(resized_region(source, config), dtype=np.int16)
                assert region.shape == whole.shape
                assert np.abs(whole - region).max() <= 2, (photo, config, source.size)
                differing += np.count_nonzero(whole != region)
                total += whole.size
            if config.input_size[1] == config.input_size[2]:  # a normal photo is still resized whole
                assert np.array_equal(np.asarray(resized_center_crop(image, config)),
                                      np.asarray(_resized_then_cropped(image, config)))
        assert not PreprocessConfig().resizes_whole(*strip.size)
    assert differing / total < 0.002
