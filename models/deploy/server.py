"""A Triton Inference Server (NVIDIA's PyTriton) serving one hub model as two Triton models.

* ``<name>``: FP32 ``input`` ``[N, C, H, W]`` in, ``logits`` ``[N, classes]`` out;
* ``<name>_image``: encoded image bytes ``image`` (BYTES ``[N, 1]``) in, the ``top_k`` best ``labels``
  (BYTES), ``probabilities`` (FP32) and ``class_ids`` (INT64) out, each ``[N, top_k]``; the
  server decodes and preprocesses as the model's ``pretrained_cfg`` says (``processing``), so
  clients need neither torch nor PIL.

The tensor model batches dynamically across clients. The image model runs each request on its own
(a request may carry up to ``max_batch_size`` images): PyTriton answers a failed call with one error
for every request in it, and one client's bytes that are no image must not fail another's request.
Its images decode within the processing's pixel budget (``max_pixels`` per image, and at most that
many decoded at once), so a request of huge images waits its turn instead of multiplying memory.
Triton itself rejects a wrong shape or dtype; bytes that are no image get INVALID_ARG (HTTP 400,
gRPC INVALID_ARGUMENT) with one line naming the input and the cause (``triton_errors``). Either way
the server keeps serving.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import NoReturn

import numpy as np
import torch
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig
from torch import nn

from ...processing import ConvNetsProcessingUtils, ImageInputError
from .names import INPUT_NAME, OUTPUT_NAME, class_labels, deployed_name
from .triton_errors import invalid_argument, one_line_errors

DEFAULT_TOP_K = 5
IMAGE_SUFFIX = "_image"
# How long the batcher may hold a request for more to arrive: one batch-1 forward of a small model.
MAX_QUEUE_DELAY_US = 2000


@dataclass(frozen=True)
class ServerSettings:
    """Where the server listens and how it batches."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch_size: int = 64
    top_k: int = DEFAULT_TOP_K


class HubModelHandler:
    """The inference callables of the two Triton models, around one hub model."""

    def __init__(self, model: nn.Module, top_k: int = DEFAULT_TOP_K) -> None:
        self.model = model.eval()
        self.cfg = model.pretrained_cfg
        self.top_k = max(1, min(top_k, self.cfg["num_classes"]))
        self.labels = np.array([label.encode() for label in class_labels(model)], dtype=np.object_)
        self.processing = ConvNetsProcessingUtils()
        self.device = next(model.parameters()).device

    def logits(self, batch: torch.Tensor) -> np.ndarray:
        """The model's float32 logits of a batch."""
        with torch.inference_mode():
            return self.model(batch.to(self.device)).float().cpu().numpy()

    def infer_tensor(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """``input`` [N, C, H, W] -> ``logits`` [N, classes]."""
        return {OUTPUT_NAME: self.logits(torch.from_numpy(inputs[INPUT_NAME]))}

    def infer_image(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """``image`` [N, 1] encoded bytes -> ``labels``, ``probabilities``, ``class_ids`` [N, top_k]."""
        images = [bytes(item) for item in inputs["image"].reshape(-1)]
        try:
            batch = self.processing.prepare_inputs(images, config=self.cfg)
        except ImageInputError as error:
            raise invalid_argument(error) from None
        probabilities = torch.from_numpy(self.logits(batch)).softmax(dim=1)
        values, indices = probabilities.topk(self.top_k, dim=1)
        return {"labels": self.labels[indices.numpy()], "probabilities": values.numpy().astype(np.float32),
                "class_ids": indices.numpy().astype(np.int64)}


def use_interpreter_libpython() -> None:
    """Put this interpreter's library folder first in ``LD_LIBRARY_PATH`` (inherited by the server).

    PyTriton's Python backend stub links ``libpython3.X.so``: under a pyenv (or any non-system)
    interpreter it would otherwise load the system's libpython with this interpreter's standard
    library and die (``'_thread.RLock' object has no attribute '_recursion_count'``).
    """
    library_dir = sysconfig.get_config_var("LIBDIR")
    current = [part for part in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if part]
    if library_dir:
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([library_dir, *(p for p in current if p != library_dir)])


def serve(model: nn.Module, settings: ServerSettings, on_ready: Callable[[str], None] = print) -> None:
    """Serve ``model`` until SIGTERM or Ctrl-C, then shut the server down; blocks.

    ``on_ready`` gets one line naming the models and addresses once both models are loaded. Before
    Triton's own log, one line on stderr says which of its error lines are expected here.
    """
    use_interpreter_libpython()
    cuda = cuda_driver_usable()

    logging.getLogger("pytriton").setLevel(logging.WARNING)
    handler = HubModelHandler(model, settings.top_k)
    handler.logits(torch.zeros(1, *handler.cfg["input_size"]))  # compiles an optimize=True model before serving
    name = deployed_name(model)
    tensor_config = ModelConfig(max_batch_size=settings.max_batch_size,
                                batcher=DynamicBatcher(max_queue_delay_microseconds=MAX_QUEUE_DELAY_US))
    image_config = ModelConfig(max_batch_size=settings.max_batch_size, batcher=None)
    triton_config = TritonConfig(http_address=settings.host, http_port=settings.http_port,
                                 grpc_address=settings.host, grpc_port=settings.grpc_port,
                                 metrics_address=settings.host, metrics_port=settings.metrics_port,
                                 allow_gpu_metrics=cuda, exit_timeout_secs=5, log_verbose=0)
    print(expected_log_errors(cuda), file=sys.stderr, flush=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with one_line_errors(), Triton(config=triton_config) as triton:
            triton.bind(model_name=name, infer_func=batch(handler.infer_tensor),
                        inputs=[Tensor(name=INPUT_NAME, dtype=np.float32, shape=tuple(handler.cfg["input_size"]))],
                        outputs=[Tensor(name=OUTPUT_NAME, dtype=np.float32, shape=(handler.cfg["num_classes"],))],
                        config=tensor_config, strict=True)
            triton.bind(model_name=name + IMAGE_SUFFIX, infer_func=batch(handler.infer_image),
                        inputs=[Tensor(name="image", dtype=np.bytes_, shape=(1,))],
                        outputs=[Tensor(name="labels", dtype=np.bytes_, shape=(handler.top_k,)),
                                 Tensor(name="probabilities", dtype=np.float32, shape=(handler.top_k,)),
                                 Tensor(name="class_ids", dtype=np.int64, shape=(handler.top_k,))],
                        config=image_config, strict=True)
            triton.run()
            on_ready(f"serving {name} and {name}{IMAGE_SUFFIX} on http://{settings.host}:{settings.http_port} "
                     f"(gRPC {settings.host}:{settings.grpc_port}, metrics :{settings.metrics_port}); "
                     "Ctrl-C or SIGTERM stops")
            sys.stdout.flush()
            triton.serve()
    finally:
        signal.signal(signal.SIGTERM, previous)


def cuda_driver_usable() -> bool:
    """Whether Triton will find a CUDA driver with a device (it loads ``libcuda.so.1`` and calls ``cuInit``)."""
    try:
        return ctypes.CDLL("libcuda.so.1").cuInit(0) == 0
    except OSError:
        return False


def expected_log_errors(cuda: bool) -> str:
    """One line naming the error lines of Triton's start-up log that are expected, and why."""
    note = ("Triton's 'Failed to set config modification time' errors are expected (PyTriton hands it each "
            "model's configuration directly)")
    if cuda:
        return f"python3 -m models serve: {note}"
    return (f"python3 -m models serve: no CUDA driver here, the model runs on the CPU: {note}, as are its "
            "lines 'Unable to allocate pinned system memory' and 'CudaDriverHelper has not been initialized' "
            "(GPU metrics are off)")


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    """SIGTERM as Ctrl-C: PyTriton's serve loop then stops the server and cleans its workspace."""
    raise KeyboardInterrupt
