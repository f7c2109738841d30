"""The Ray Data engine: paths -> decoding tasks on CPUs -> the model in an actor pool -> rows -> our store.

With ``gpu_decoding`` the CPU tasks only read the JPEGs' bytes (and decode what nvJPEG cannot take)
and each model actor decodes its batch's JPEGs on its own device (``GpuJpegDecoder``). Ray Data's
tasks and actors are separate stages, not one queue: ``--decode hybrid`` decodes as ``gpu`` there.

Without an address a local Ray starts (on 127.0.0.1, no dashboard) and stops at the end; with
``address`` (``auto``, ``ray://host:10001``) an existing cluster is used and this checkout is
shipped to its workers as the job's working directory.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from .. import mount
from ..hub import create
from ..repository import REPO_ROOT
from ..settings import forwarded_environment
from .decoding import CpuDecoder, GpuJpegDecoder, JpegBytes
from .predictor import Predictor
from .schema import SCHEMA, to_table, utf8_row, utf8_text
from .store import ResultStore

DECODING_WORKER_BYTES = 768 * 1024 * 1024  # a worker with torch imported, and its decoding buffers
SHIPPED_EXCLUDES = [".git", "tests", "notebooks", "benchmarks", "**/__pycache__"]


@dataclass(frozen=True)
class ModelRecipe:
    """How every actor builds the same model: an entrypoint and its keyword arguments (:func:`..hub.create`'s)."""

    entrypoint: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> torch.nn.Module:
        return create(self.entrypoint, **self.kwargs)


@dataclass(frozen=True)
class RaySettings:
    """``address``: None starts a local Ray with ``num_cpus`` CPUs (None: all); ``decode_tasks``
    and ``actors`` bound the decoding tasks and model actors; ``gpus_per_actor`` is each actor's
    ``num_gpus``; ``threads_per_actor`` the torch threads of a CPU model actor (None: its
    machine's cores divided by ``actors``; Ray itself would give it one thread); ``gpu_decoding``:
    the actors decode the JPEGs on their device, the tasks only read them."""

    address: str | None = None
    num_cpus: int | None = None
    decode_tasks: int | None = None
    actors: int = 1
    gpus_per_actor: float = 0.0
    threads_per_actor: int | None = None
    gpu_decoding: bool = False


def classify_ray(sources: Sequence[str], recipe: ModelRecipe, preprocess: Mapping[str, Any], store: ResultStore,
                 settings: RaySettings, *, top_k: int = 5, batch_size: int = 64, pad: bool = False,
                 progress: bool = True) -> int:
    """Classify ``sources`` on Ray; rows are saved in ``store`` as their batches arrive, in input
    order. Returns the number of rows written."""
    import ray

    if not sources:
        return 0
    started = _connect(ray, settings)
    try:
        dataset = _pipeline(ray, sources, recipe, preprocess, settings, top_k, batch_size, pad)
        written = 0
        with tqdm(total=len(sources), unit="img", disable=not progress, desc="classify (ray)") as bar:
            for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                rows = table.select(SCHEMA.names).to_pylist()
                store.write(rows)
                written += len(rows)
                bar.update(len(rows))
        return written
    finally:
        if started:
            ray.shutdown()


def _connect(ray: Any, settings: RaySettings) -> bool:
    """Join the cluster, or start a local Ray; True when this call started it (and must stop it)."""
    if ray.is_initialized():
        return False
    if settings.address is None:  # the local workers inherit this process's environment
        ray.init(num_cpus=settings.num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"worker_process_setup_hook": _worker_setup_hook(ray, REPO_ROOT)})
    else:  # a cluster's workers run this checkout shipped as their working directory
        ray.init(address=settings.address, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"working_dir": str(REPO_ROOT), "excludes": SHIPPED_EXCLUDES,
                              "env_vars": forwarded_environment(),
                              "worker_process_setup_hook": _worker_setup_hook(ray, None)})
    return True


def _worker_setup_hook(ray: Any, root: Path | None) -> Callable[[], None]:
    """Run first in every worker: mounts the package that this module lives in (over ``root``; None: the
    worker's working directory), so that the worker can unpickle our functions and classes."""
    ray.cloudpickle.register_pickle_by_value(mount)
    return mount.worker_setup_hook(__name__.partition(".")[0], root)


def _pipeline(ray: Any, sources: Sequence[str], recipe: ModelRecipe, preprocess: Mapping[str, Any],
              settings: RaySettings, top_k: int, batch_size: int, pad: bool) -> Any:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # Paths as bytes: Arrow's text is UTF-8, and a file name need not be (os.fsencode/os.fsdecode).
    paths = ray.data.from_items([{"path": os.fsencode(source)} for source in sources],
                                override_num_blocks=math.ceil(len(sources) / batch_size))
    # Each decoding task reserves the memory of its worker and output batch (twice).
    # Requirements unlike the actors' also keep Ray Data from fusing the decoding into the actors,
    # which would then decode and classify in turn instead of side by side.
    batch_bytes = batch_size * math.prod(preprocess["input_size"]) * 4
    decode = _read_batch if settings.gpu_decoding else _decode_batch
    decoded = paths.map_batches(decode, fn_kwargs={"preprocess": dict(preprocess)}, batch_size=batch_size,
                                batch_format="numpy", num_cpus=1, memory=2 * batch_bytes + DECODING_WORKER_BYTES,
                                compute=ray.data.TaskPoolStrategy(size=settings.decode_tasks))
    return decoded.map_batches(_ClassifyActor, fn_constructor_kwargs={"recipe": recipe, "top_k": top_k,
                                                                      "pad_to": batch_size if pad else None,
                                                                      "threads": settings.threads_per_actor,
                                                                      "actors": settings.actors,
                                                                      "gpu_decoding": settings.gpu_decoding},
                               batch_size=batch_size, batch_format="numpy",
                               compute=ray.data.ActorPoolStrategy(size=settings.actors),
                               num_gpus=settings.gpus_per_actor)

def _decode_batch(batch: dict[str, np.ndarray], preprocess: dict[str, Any]) -> dict[str, np.ndarray]:
    """A Ray task: the paths' preprocessed images (zeros where decoding failed) and error texts."""
    decoder = CpuDecoder(preprocess)
    decoded = [decoder.load(os.fsdecode(path)) for path in batch["path"]]
    blank = np.zeros(tuple(preprocess["input_size"]), dtype=np.float32)
    return {"path": batch["path"],
            "image": np.stack([item.numpy() if isinstance(item, torch.Tensor) else blank for item in decoded]),
            "error": np.array(["" if isinstance(item, torch.Tensor) else utf8_text(item) for item in decoded],
                              dtype=object)}


def _read_batch(batch: dict[str, np.ndarray], preprocess: dict[str, Any]) -> dict[str, np.ndarray]:
    """A Ray task for GPU decoding: each path's JPEG bytes and EXIF orientation, else its
    CPU-preprocessed pixels (float32 bytes) or error text."""
    reader = GpuJpegDecoder(preprocess, "cpu")
    loaded = [reader.read(os.fsdecode(path)) for path in batch["path"]]
    return {"path": batch["path"],
            "jpeg": np.array([item.data.numpy().tobytes() if isinstance(item, JpegBytes) else b""
                              for item in loaded], dtype=object),
            "orientation": np.array([item.orientation if isinstance(item, JpegBytes) else 1 for item in loaded]),
            "pixels": np.array([item.numpy().tobytes() if isinstance(item, torch.Tensor) else b""
                                for item in loaded], dtype=object),
            "error": np.array([utf8_text(item) if isinstance(item, str) else "" for item in loaded], dtype=object)}


class _ClassifyActor:
    """A Ray actor holding one model; each call classifies a batch of decoded images."""

    def __init__(self, recipe: ModelRecipe, top_k: int, pad_to: int | None, threads: int | None,
                 actors: int, gpu_decoding: bool = False) -> None:
        # Ray sets OMP_NUM_THREADS to the actor's one reserved CPU; the decoding tasks beside it
        # take little of the machine, so the model gets its share of the cores (as in the local engine).
        torch.set_num_threads(threads or max(1, len(os.sched_getaffinity(0)) // actors))
        device = recipe.kwargs.get("device", "cpu")
        self.predictor = Predictor(recipe.build(), top_k, pad_to=pad_to, device=device)
        self.decoder = GpuJpegDecoder(self.predictor.preprocess, device) if gpu_decoding else None

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        if self.decoder is not None:
            decoded = self._decode_jpegs(batch)
        else:
            decoded = [str(error) if error else torch.from_numpy(np.ascontiguousarray(image))
                       for image, error in zip(batch["image"], batch["error"], strict=True)]
        rows = self.predictor.classify([os.fsdecode(path) for path in batch["path"]], decoded)
        return to_table([utf8_row(row) for row in rows])

    def _decode_jpegs(self, batch: dict[str, np.ndarray]) -> list[torch.Tensor | str]:
        """``_read_batch``'s rows as images: the JPEGs decoded here in one batch, the rest as read."""
        jpegs = [JpegBytes(os.fsdecode(path), torch.frombuffer(bytearray(data), dtype=torch.uint8), int(orientation))
                 for path, data, orientation in zip(batch["path"], batch["jpeg"], batch["orientation"], strict=True)
                 if data]
        on_device = iter(self.decoder.finish(self.decoder.decode(jpegs)))
        shape = tuple(self.predictor.preprocess["input_size"])
        return [next(on_device) if data else str(error) if error
                else torch.from_numpy(np.frombuffer(pixels, dtype=np.float32).reshape(shape).copy())
                for data, pixels, error in zip(batch["jpeg"], batch["pixels"], batch["error"], strict=True)]
