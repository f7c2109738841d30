"""Shared test setup: our packages are imported the way torch.hub imports them.

``hubconf`` is executed from the checkout as torch.hub executes it, which registers the private
parent package ``convnets_hub``; test modules then import ``convnets_hub.models`` /
``convnets_hub.processing``, and ``HUBCONF`` is that hubconf module, whose entrypoints the
library made (``convnets_hub.models.hub``).
The repository root is never put on ``sys.path``, so nothing here hides a collision with an
unrelated top-level ``models`` package.
"""

import contextlib
import errno
import gzip
import importlib.util
import json
import math
import os
import queue
import socket
import sys
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torch._inductor.config

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).resolve().parent / "reference"  # vendored copy of ../shared/reference
SHARED_REFERENCE = REPO.parent / "shared" / "reference"  # the source of that copy, where it is beside us


def _load_hubconf():
    spec = importlib.util.spec_from_file_location("hubconf", REPO / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# pytest-xdist workers share the cores: torch's default of one thread per core in every worker
# oversubscribes them, and the many small parallel regions of float64 depthwise convolutions then
# run a hundred times slower. The processes that tests start (notebook kernels, the command line,
# torchrun, Ray's workers) read OMP_NUM_THREADS: with a thread per core each, their OpenMP threads
# spin while waiting for cores that the workers hold (under load, three notebooks took 60 % more CPU time).
WORKER_THREADS = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
torch.set_num_threads(WORKER_THREADS)
os.environ.setdefault("OMP_NUM_THREADS", str(WORKER_THREADS))
# Inductor's compile workers likewise: with more than one, each compiling process (a worker, a notebook's
# kernel) first starts a pool of processes that import torch again, to compile in parallel on cores that
# the other worker holds (test_optimize.py alone, cold cache: 76.7 s CPU with 2, 74.0 s with 1).
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", str(WORKER_THREADS))
torch._inductor.config.compile_threads = int(os.environ["TORCHINDUCTOR_COMPILE_THREADS"])

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _beyond_loopback(sock: socket.socket, address) -> bool:
    return sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK


def _connect(connect):
    """``socket.socket.connect`` that refuses, at once, an internet address other than 127.0.0.1/::1: the
    tests never reach beyond this machine, and a test that tried would otherwise wait for the network's
    timeouts and retries (a fallback to huggingface.co once cost one ~23 s)."""

    def guarded(self, address):
        if _beyond_loopback(self, address):
            raise ConnectionRefusedError(f"the tests reach only 127.0.0.1, not {address[0]}:{address[1]}")
        return connect(self, address)

    return guarded


def _connect_ex(connect_ex):
    """``socket.socket.connect_ex``, refusing as :func:`_connect` does (an error number, not an exception)."""

    def guarded(self, address):
        return errno.ECONNREFUSED if _beyond_loopback(self, address) else connect_ex(self, address)

    return guarded


socket.socket.connect = _connect(socket.socket.connect)
socket.socket.connect_ex = _connect_ex(socket.socket.connect_ex)

HUBCONF = _load_hubconf()  # as torch.hub does: mounts the private package ``convnets_hub`` over the checkout


def onnx_session(path: Path | str):
    """An onnxruntime CPU session on the worker's share of the cores: onnxruntime's default, a thread
    per core whose waits spin, takes the cores of the other workers."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = WORKER_THREADS
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped where torch.cuda.is_available() is False)")
    config.addinivalue_line("markers", "start_first: a test of about 10 s or more, which pytest-xdist hands out first")


def pytest_collection_modifyitems(config, items):
    # xdist hands out the tests in this order (after its groups, largest first): long tests at the end would
    # leave one worker idle while the other finishes them
    items.sort(key=lambda item: item.get_closest_marker("start_first") is None)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:  # not item.keywords: a parameter id "cuda" is one too
            item.add_marker(skip)


BIG_FILE = 1 << 20
"""Files of at least this many bytes under a test's ``tmp_path`` are deleted when the test ends."""


@pytest.fixture(autouse=True)
def _delete_big_files_when_the_test_ends(request):
    """Checkpoints, mirrors and caches written under ``tmp_path`` go when their test ends: pytest
    keeps the temporary directories of three runs, which would otherwise hold gigabytes."""
    directory = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if directory is not None:
        remove_big_files(directory)


def remove_big_files(directory: Path) -> None:
    """Delete every regular file of at least ``BIG_FILE`` bytes under ``directory``."""
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size >= BIG_FILE:
            path.unlink()


def _batch_norm_of_shapes(original):
    def batch_norm(input, weight, bias, running_mean, running_var, *args):
        if input.device.type != "meta":
            return original(input, weight, bias, running_mean, running_var, *args)
        for name, tensor in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                             ("running_var", running_var)):
            if tensor is not None and tuple(tensor.shape) != (input.shape[1],):
                raise RuntimeError(f"{name} should contain {input.shape[1]} elements not {tensor.numel()}")
        return torch.empty_like(input)
    return batch_norm


@contextlib.contextmanager
def fast_meta_batch_norm():
    """BatchNorm on the meta device gives its input's shape, after the same check of its per-channel tensors,
    at once: torch reaches that shape through a Python decomposition, 2-4 ms a layer (ResNeXt101's meta forward,
    its ``pool_size`` at every build: 220-390 ms, 18-38 ms with this; 1 thread, loaded 2-core machine). ``F.batch_norm``'s own checks
    (a training batch of one 1x1 map) still run; any other device computes as ever."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "batch_norm", _batch_norm_of_shapes(torch.batch_norm))
        yield


@pytest.fixture
def meta_batch_norm():
    """:func:`fast_meta_batch_norm` for one test (not where it scripts or traces: they would see the patch)."""
    with fast_meta_batch_norm():
        yield


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def hubconf():
    return HUBCONF


sys.path.insert(0, str(REFERENCE))
from seeded_weights import seeded_input, seeded_state_dict


def parity_fixture(name: str) -> dict:
    """One architecture's oracle (``tests/reference/parity/<name>.json.gz``)."""
    with gzip.open(REFERENCE / "parity" / f"{name}.json.gz", "rt", encoding="utf-8") as handle:
        return json.load(handle)


def seeded_checkpoint(fixture: dict, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The fixture's seeded weights under the upstream key names, stored as upstream files store them."""
    state = seeded_state_dict([(key, shape) for key, shape, _ in fixture["state_dict"]], fixture["weights_seed"])
    for prefix, scale in fixture.get("running_var_scale", {}).items():
        state[f"{prefix}.running_var"] = state[f"{prefix}.running_var"] * scale
    return floats_as(state, dtype)


def torch_seeded_state_dict(keys: list[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    """Seeded float32 tensors under ``keys`` (name, shape), drawn as ``seeded_weights`` draws them (BatchNorm
    statistics near one, weights scaled by their fan-in) but by torch, each from a seed of its name: a fifth of
    NumPy's float64 time (VGG16's 138 M numbers). For checkpoints that no reference logits were computed from."""
    return {key: _seeded_tensor(key, torch.Size(shape)) for key, shape in keys}


def _seeded_tensor(key: str, shape: torch.Size) -> torch.Tensor:
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=torch.int64)
    if leaf == "running_var" or (len(shape) <= 1 and leaf == "weight"):
        return torch.rand(shape, generator=generator) + 0.5
    if len(shape) <= 1:  # biases and running means
        return torch.randn(shape, generator=generator) * 0.1
    return torch.randn(shape, generator=generator) / math.sqrt(shape[1:].numel())


def randomize_batch_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """``model`` in eval mode with non-trivial BatchNorm statistics and affine parameters: folding them into the
    convolutions then changes every weight (a fresh BatchNorm folds to nearly the identity)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(size, generator=generator) * 0.1)
    return model.eval()


def floats_as(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """``state`` with its floating-point tensors in ``dtype`` (counters such as ``num_batches_tracked`` stay)."""
    return {key: value.to(dtype) if value.is_floating_point() else value for key, value in state.items()}


def reference_error(model: torch.nn.Module, fixture: dict) -> float:
    """Relative L2 error of ``model`` (run in float64, eval mode) against the fixture's logits."""
    x = torch.from_numpy(seeded_input(fixture["input_shape"], fixture["input_seed"]))
    with torch.no_grad():
        out = model.double().eval()(x)
    ref = torch.tensor(fixture["logits"], dtype=torch.float64)
    return float((out - ref).norm() / ref.norm())


@dataclass
class Reply:
    """One scripted HTTP answer of the loopback server."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stall: bool = False  # send nothing until the server stops
    truncate: bool = False  # announce the full length, send half, close
    seconds: float = 0.0  # spread the body over this long (throttled download)


class LoopbackServer:
    """An HTTP server on 127.0.0.1 answering each path with scripted replies (the last repeats)."""

    def __init__(self):
        self.routes: dict[str, list[Reply]] = {}
        self.hits: list[str] = []
        self.outcomes: queue.Queue[tuple[str, str]] = queue.Queue()  # (path, "sent" or "cut off") per reply
        self.released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.hits.append(self.path)
                replies = server.routes.get(self.path) or [Reply(status=404, body=b"not found")]
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
                if reply.stall:
                    server.released.wait(60)
                    return
                self.send_response(reply.status)
                for key, value in {"Content-Length": str(len(reply.body)), **reply.headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                body = reply.body[: len(reply.body) // 2] if reply.truncate else reply.body
                pieces = max(1, int(reply.seconds * 20))
                step = -(-len(body) // pieces) or 1
                try:
                    for start in range(0, len(body), step):
                        self.wfile.write(body[start:start + step])
                        if reply.seconds:
                            server.released.wait(reply.seconds / pieces)
                except (BrokenPipeError, ConnectionResetError):  # the client hung up
                    server.outcomes.put((self.path, "cut off"))
                    return
                server.outcomes.put((self.path, "sent"))
                if reply.truncate:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        # shutdown() waits for the loop's next poll: 0.5 s by default, at the end of every test with a server
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve(self, path: str, *replies: Reply) -> str:
        self.routes[path] = list(replies)
        return self.url(path)

    def close(self):
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    loopback = LoopbackServer()
    yield loopback
    loopback.close()


def closed_port() -> int:
    """A port of 127.0.0.1 on which nothing listens: a connection to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def hub_home(tmp_path, monkeypatch) -> Path:
    """An empty torch hub directory and a clean convnets-hub environment for one test."""
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("CONVNETS_HUB_MANIFEST", "CONVNETS_HUB_MIRROR", "CONVNETS_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONVNETS_HUB_BACKOFF", "0.01")
    monkeypatch.setenv("CONVNETS_HUB_CONNECT_TIMEOUT", "5")
    monkeypatch.setenv("CONVNETS_HUB_READ_TIMEOUT", "5")
    return tmp_path / "torch" / "hub"


@pytest.fixture(scope="module")
def lenet_weights(tmp_path_factory, hubconf) -> Path:
    """A seeded LeNet-5 checkpoint: every process that loads it has the same model."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "lenet5.pth"
    torch.save(hubconf.lenet5(pretrained=False).state_dict(), path)
    return path


def _drawing_nothing_on_meta(draw):
    def drawn(self, *args, **kwargs):
        return self if self.is_meta else draw(self, *args, **kwargs)
    return drawn


@contextlib.contextmanager
def fast_meta_init():
    """``normal_`` and ``uniform_`` of a meta tensor return it at once: it has no values to draw, but torch reaches
    that result through a Python decomposition, 0.8 ms a ``normal_`` (a third of a meta build of ResNeXt101, which
    has 104 convolutions to initialise; 1 thread). A tensor on any other device draws as ever."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("normal_", "uniform_"):
            patch.setattr(torch.Tensor, name, _drawing_nothing_on_meta(getattr(torch.Tensor, name)))
        yield
