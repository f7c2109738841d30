"""``python3 -m models serve``: a real Triton Inference Server (PyTriton) on free loopback ports.

One server's whole life in one test (start, tensor and image requests, garbage, 16 concurrent
clients, SIGTERM), so that pytest-xdist cannot split it across workers and start two servers.
resnet18_ssl with weights the test writes keeps start-up short.
"""

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import matplotlib.cbook
import numpy as np
import pytest
import torch
from conftest import HUBCONF, REPO
from convnets_hub.processing import ConvNetsProcessingUtils
from convnets_hub.processing.labels import imagenet_labels

START_DEADLINE_S = 240
NAME = "resnet18_ssl"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture
def triton_http():
    """tritonclient's HTTP client module, or the test is skipped where the client or PyTriton's server is missing."""
    pytest.importorskip("pytriton", reason="serving needs nvidia-pytriton (requirements-deploy.txt)")
    return pytest.importorskip("tritonclient.http", reason="the requests need tritonclient[http] "
                                                            "(requirements-deploy.txt)")


def wait_until_ready(process: subprocess.Popen, client, log) -> None:
    from tritonclient.utils import InferenceServerException

    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited with {process.returncode}: {log.read_text()[-3000:]}"
        try:
            if client.is_model_ready(NAME) and client.is_model_ready(f"{NAME}_image"):
                return
        except (ConnectionError, InferenceServerException, OSError):
            pass
        time.sleep(0.2)  # a polling interval, bounded by the deadline
    pytest.fail(f"the server was not ready within {START_DEADLINE_S} s: {log.read_text()[-3000:]}")


def infer_tensor(client, batch: np.ndarray, datatype: str = "FP32") -> np.ndarray:
    from tritonclient.http import InferInput

    tensor = InferInput("input", list(batch.shape), datatype)
    tensor.set_data_from_numpy(batch)
    return client.infer(NAME, [tensor]).as_numpy("logits")


def infer_images(client, images: list[bytes]):
    from tritonclient.http import InferInput

    tensor = InferInput("image", [len(images), 1], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_).reshape(-1, 1))
    return client.infer(f"{NAME}_image", [tensor])


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "resnet18_test.pth"
    model = HUBCONF.resnet18_ssl(pretrained=False)
    torch.save(model.state_dict(), path)
    yield path
    path.unlink()


@pytest.mark.start_first
def test_serve_answers_tensors_and_images_survives_garbage_and_stops_on_sigterm(triton_http, weights, tmp_path):
    triton_grpc = pytest.importorskip("tritonclient.grpc", reason="the gRPC requests need tritonclient[grpc] "
                                                                  "(requirements-deploy.txt)")
    http_port, grpc_port, metrics_port = free_ports(3)
    log = tmp_path / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "models", "serve", "--entrypoint", NAME, "--weights", str(weights),
             "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
             "--max-batch-size", "16"], cwd=REPO, stdout=output, stderr=subprocess.STDOUT,
            env={**os.environ, "CONVNETS_HUB_OFFLINE": "1"})
    from tritonclient.utils import InferenceServerException

    client = triton_http.InferenceServerClient(f"127.0.0.1:{http_port}")
    try:
        wait_until_ready(process, client, log)
        model = HUBCONF.resnet18_ssl(weights=str(weights)).eval()

        batch = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected = model(batch)
        logits = infer_tensor(client, batch.numpy())
        assert logits.shape == (3, 1000)
        assert np.allclose(logits, expected.numpy(), rtol=1e-4, atol=1e-4)

        photo = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
        result = infer_images(client, [photo])
        prepared = ConvNetsProcessingUtils().prepare_input_from_uri(photo, model=model)
        with torch.no_grad():
            probabilities, indices = model(prepared).softmax(dim=1).topk(5)
        assert result.as_numpy("class_ids").tolist() == indices.tolist()
        assert [label.decode() for label in result.as_numpy("labels")[0]] == [
            imagenet_labels()[index] for index in indices[0].tolist()]
        assert np.allclose(result.as_numpy("probabilities"), probabilities.numpy(), atol=1e-5)

        with pytest.raises(InferenceServerException) as bad_http:
            infer_images(client, [b"these bytes are no image"])
        assert bad_http.value.status() == "400"
        assert bad_http.value.message() == "input 0 (<24 bytes>): <24 bytes>: not a decodable image (no image format " \
                                           "recognised)"
        garbage = triton_grpc.InferInput("image", [1, 1], "BYTES")
        garbage.set_data_from_numpy(np.array([b"GIF89a, and then nothing"], dtype=np.object_).reshape(1, 1))
        with triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}") as grpc_client, \
                pytest.raises(InferenceServerException) as bad_grpc:
            grpc_client.infer(f"{NAME}_image", [garbage])
        assert bad_grpc.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "\n" not in bad_grpc.value.message() and "not a decodable image" in bad_grpc.value.message()
        with pytest.raises(InferenceServerException, match="unexpected shape"):
            infer_tensor(client, np.zeros((1, 3, 100, 224), dtype=np.float32))
        with pytest.raises(InferenceServerException, match="FP64"):
            infer_tensor(client, np.zeros((1, 3, 224, 224)), datatype="FP64")
        assert np.allclose(infer_tensor(client, batch[:1].numpy()), expected[:1].numpy(), rtol=1e-4, atol=1e-4)

        inputs = [torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(seed)) for seed in range(16)]
        with torch.no_grad():
            wanted = [model(x).numpy() for x in inputs]
        with ThreadPoolExecutor(16) as pool:  # a client per thread: tritonclient's HTTP client is gevent's
            answers = list(pool.map(lambda x: infer_tensor(triton_http.InferenceServerClient(
                f"127.0.0.1:{http_port}"), x.numpy()), inputs))
        for answer, want in zip(answers, wanted, strict=True):
            assert np.allclose(answer, want, rtol=1e-4, atol=1e-4)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
        output = log.read_text()
        assert "Failed to initialize NVML" not in output and "Traceback" not in output, output[-3000:]
        assert "bad input: input 0 (<24 bytes>)" in output  # a client's bad input is one line of the log
        if "CudaDriverHelper has not been initialized" in output:  # a machine without a CUDA driver
            assert output.index("no CUDA driver here") < output.index("CudaDriverHelper has not been initialized")
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", http_port)) != 0, "the HTTP port still answers"
    finally:
        client.close()
        if process.poll() is None:  # a failed assertion: stop it as a user would, so it cleans up
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def test_the_interpreters_libpython_comes_first_for_the_backend_stub(monkeypatch):
    pytest.importorskip("pytriton", reason="the server module needs nvidia-pytriton (requirements-deploy.txt)")
    from convnets_hub.models.deploy.server import use_interpreter_libpython

    library_dir = sysconfig.get_config_var("LIBDIR")
    monkeypatch.setenv("LD_LIBRARY_PATH", os.pathsep.join(["/opt/other", library_dir]))
    use_interpreter_libpython()
    assert os.environ["LD_LIBRARY_PATH"].split(os.pathsep) == [library_dir, "/opt/other"]


def test_the_triton_side_answers_bad_input_as_invalid_argument_and_any_other_failure_in_one_line():
    """The code appended to PyTriton's proxy model, run with stand-ins for Triton's Python backend."""
    pytest.importorskip("pytriton", reason="the proxy code is appended through nvidia-pytriton (requirements-deploy.txt)")
    from convnets_hub.models.deploy.triton_errors import (
        INTERNAL_MESSAGE,
        PROXY_SUFFIX,
        invalid_argument,
    )

    class TritonModelException(Exception):
        pass

    class TritonError:
        INTERNAL, INVALID_ARG = "INTERNAL", "INVALID_ARG"

        def __init__(self, message, code=INTERNAL):
            self.message, self.code = message, code

    class TritonPythonModel:
        def execute(self, requests):
            raise TritonModelException(failure)

    backend = {"pb_utils": SimpleNamespace(TritonModelException=TritonModelException, TritonError=TritonError,
                                           InferenceResponse=lambda error: error),
               "TritonPythonModel": TritonPythonModel}
    exec(PROXY_SUFFIX, backend)  # noqa: S102 -- as Triton runs model.py
    traceback_of = ('Model execute error: Traceback (most recent call last):\n  File "/tmp/x/1/model.py", line 492, '
                    "in execute\npytriton.exceptions.PyTritonBadParameterError: {}\n\nAt:\n  /tmp/x/1/model.py(501)\n")
    failure = traceback_of.format(invalid_argument(ValueError("input 1 (<3 bytes>): not\nan image")))
    answers = TritonPythonModel().execute(["request 1", "request 2"])
    assert [(error.code, error.message) for error in answers] == [("INVALID_ARG", "input 1 (<3 bytes>): not an image")] * 2
    failure = traceback_of.format("RuntimeError: CUDA out of memory")
    answers = TritonPythonModel().execute(["request"])
    assert [(error.code, error.message) for error in answers] == [("INTERNAL", INTERNAL_MESSAGE)]
