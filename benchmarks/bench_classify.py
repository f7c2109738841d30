"""Images/s of ``python3 -m models classify``: each decoder alone, the model alone, the engines end to end.

Inputs: JPEGs of 1280-2048 px (quality 90) made from scikit-image's and matplotlib's sample photos,
upscaled, in a temporary directory; ``--paths`` names them (symbolic links, more paths than files)
so that a run lasts long enough to measure. The model: ``resnet50`` with random weights (speed does
not depend on them), ``optimize=True`` and ``--model-math``. Rows, all on the same files, each for
about ``--seconds`` (a row stops at the first batch past it) after one warm-up batch:

* decode alone, cpu, W workers: ``CpuDecoder`` (the hub's ``prepare_input_from_uri``) in W threads
  (``--cpu-workers``, default 1, 2, 4, ... up to the cores);
* decode alone, gpu, batch B: ``GpuJpegDecoder`` on ``--device`` (``--gpu-batch-sizes``), with the JPEG
  library that ``models/batch/jpeg_backends.py`` chooses; ``decode alone, gpu NAME, batch B``: with each
  library of ``--jpeg-backends`` (torchcodec, nvimgcodec, torchvision; one that cannot decode there is
  reported, not measured): the figures that decide the libraries' order;
* decode alone, hybrid: both from one queue (``--workers`` CPU threads, GPU batch ``--batch-size``);
* model alone: the model on one decoded batch, called as many times (compiled and warmed up before);
* local engine, decode D: ``classify_local`` end to end, Parquet file written (``--engine-decodes``);
* ray engine: ``classify_ray`` on a local Ray started before the timing (``--ray``), its actor's
  start (model built, compiled from the warm Inductor cache) inside the time.

Decoders and engines run the same code as the command (``DecodeQueue`` and ``start_workers``).

    python3 benchmarks/bench_classify.py [--device cpu] [--model-math fp32] [--paths 1024] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib
import numpy as np
import skimage
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
importlib.import_module("models")  # mounts this checkout's library as convnets_hub.models

importlib.import_module("models")  # mounts convnets_hub over the checkout

from convnets_hub.models.batch.decode_queue import DecodeQueue, start_workers
from convnets_hub.models.batch.decoding import (
    CpuDecoder,
    Decoder,
    GpuJpegDecoder,
    HybridDecoder,
    make_decoder,
)
from convnets_hub.models.batch.jpeg_backends import (
    BACKENDS,
    choose_jpeg_backend,
)
from convnets_hub.models.batch.local import classify_local
from convnets_hub.models.batch.predictor import Predictor
from convnets_hub.models.batch.store import ResultStore
from convnets_hub.models.errors import InvalidArgumentError
from convnets_hub.models.hub import create

SIZES = (1280, 1536, 1792, 2048)


def sample_photos() -> list[np.ndarray]:
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket(),
              skimage.data.retina(), np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data"
                                                           / "grace_hopper.jpg").convert("RGB"))]
    return [photo[..., :3] for photo in photos]


def make_jpegs(directory: Path, count: int, paths: int) -> list[str]:
    """``count`` JPEGs (longer side 1280-2048 px, written in parallel), named ``paths`` times in all
    (the files, then symbolic links to them in turn)."""
    photos = sample_photos()

    def write(index: int) -> Path:
        image = Image.fromarray(photos[index % len(photos)])
        scale = SIZES[index % len(SIZES)] / max(image.size)
        path = directory / f"{index:05d}.jpg"
        image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC) \
            .save(path, quality=90)
        return path

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        files = list(pool.map(write, range(count)))
    sources = list(files)
    for index in range(count, paths):
        link = directory / f"link-{index:06d}.jpg"
        link.symlink_to(files[index % count])
        sources.append(link)
    return [str(path) for path in sources[:max(paths, 1)]]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def decode_alone(decoder: Decoder, sources: list[str], workers: int, batch_size: int, seconds: float,
                 device: torch.device) -> tuple[int, float]:
    """(images, seconds) of ``decoder``'s threads decoding ``sources`` as the local engine runs them,
    the model's batches taken as they come, for about ``seconds`` after one warm-up batch."""
    window = 3 * batch_size + decoder.images_in_flight(workers)
    queue = DecodeQueue(sources, window)
    start_workers(queue, decoder.workers(workers))
    count, started = 0, None
    try:
        for chunk, decoded in queue.batches(batch_size):
            decoder.finish(decoded)
            if started is None:  # the first batch warms up threads, nvJPEG and the resize kernels
                synchronize(device)
                started = time.perf_counter()
                continue
            count += len(chunk)
            if time.perf_counter() - started >= seconds:
                break
        synchronize(device)
    finally:
        queue.close()
    return count, time.perf_counter() - (started or time.perf_counter())


def model_alone(predictor: Predictor, sources: list[str], batch: list[torch.Tensor], seconds: float,
                device: torch.device) -> tuple[int, float]:
    """(images, seconds) of the predictor on one decoded batch (already on the device), called for about ``seconds``."""
    images = torch.stack(batch).to(device)
    paths = sources[:len(batch)]
    predictor.predict(paths, images)  # warm: compiled before, this call settles CUDA graphs
    synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        predictor.predict(paths, images)
        count += len(paths)
    synchronize(device)
    return count, time.perf_counter() - started


def engine_run(run: Callable[[list[str], ResultStore], int], sources: list[str], output: Path,
               device: torch.device) -> tuple[int, float]:
    """(images, seconds) of one engine over ``sources``, the final Parquet file written."""
    synchronize(device)
    started = time.perf_counter()
    store = ResultStore(output, overwrite=True)
    run(sources, store)
    count = store.finish()
    synchronize(device)
    return count, time.perf_counter() - started


class Rows:
    """Measured rows: name -> (images, seconds), printed as they come."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, float]] = {}
        self.notes: dict[str, str] = {}  # what was not measured, and why

    def add(self, name: str, measured: tuple[int, float]) -> float:
        images, seconds = measured
        self.rows[name] = measured
        rate = images / seconds if seconds else 0.0
        print(f"{name}: {images} images in {seconds:.2f} s = {rate:.1f} img/s", file=sys.stderr, flush=True)
        return rate

    def rate(self, name: str) -> float:
        images, seconds = self.rows[name]
        return images / seconds if seconds else 0.0

    def markdown(self) -> str:
        lines = ["| measurement | images | seconds | img/s |", "|---|---|---|---|"]
        lines += [f"| {name} | {images} | {seconds:.2f} | {images / seconds if seconds else 0:.1f} |"
                  for name, (images, seconds) in self.rows.items()]
        return "\n".join(lines)


def default_cpu_workers(cores: int) -> list[int]:
    """1, 2, 4, ... and the number of cores."""
    counts, count = [], 1
    while count < cores:
        counts.append(count)
        count *= 2
    return counts + [cores]


def measure(args: argparse.Namespace, predictor: Predictor, sources: list[str], directory: Path) -> Rows:
    """Every row of the module docstring on ``sources``."""
    device = torch.device(args.device)
    rows = Rows()
    preprocess = predictor.preprocess
    for workers in args.cpu_workers:
        rows.add(f"decode alone, cpu, {workers} workers",
                 decode_alone(CpuDecoder(preprocess), sources, workers, args.batch_size, args.seconds, device))
    for batch in args.gpu_batch_sizes:
        rows.add(f"decode alone, gpu, batch {batch}",
                 decode_alone(GpuJpegDecoder(preprocess, device, batch), sources, args.workers, batch,
                              args.seconds, device))
    rows.notes["default JPEG library"] = choose_jpeg_backend(device).name
    for name in args.jpeg_backends:
        try:
            choose_jpeg_backend(device, name)
        except InvalidArgumentError as error:
            rows.notes[f"decode alone, gpu {name}"] = str(error)
            print(f"decode alone, gpu {name}: not measured: {error}", file=sys.stderr, flush=True)
            continue
        for batch in args.gpu_batch_sizes:
            rows.add(f"decode alone, gpu {name}, batch {batch}",
                     decode_alone(GpuJpegDecoder(preprocess, device, batch, jpeg_backend=name), sources,
                                  args.workers, batch, args.seconds, device))
    hybrid = HybridDecoder(CpuDecoder(preprocess), GpuJpegDecoder(preprocess, device, args.batch_size))
    rows.add(f"decode alone, hybrid ({args.workers} cpu workers + gpu batch {args.batch_size})",
             decode_alone(hybrid, sources, args.workers, args.batch_size, args.seconds, device))
    batch = [CpuDecoder(preprocess).load(source) for source in sources[:args.batch_size]]
    rows.add("model alone", model_alone(predictor, sources, batch, args.seconds, device))
    for kind in args.engine_decodes:
        decoder = make_decoder(kind, preprocess, device, gpu_batch_size=args.batch_size)
        expected = {"cpu": f"decode alone, cpu, {max(args.cpu_workers)} workers",
                    "gpu": f"decode alone, gpu, batch {args.batch_size}"}.get(kind, "decode alone, hybrid")
        rate = next((rows.rate(name) for name in rows.rows if name.startswith(expected)), 0.0)
        count = min(len(sources), max(2 * args.batch_size, int(rate * args.seconds)))

        def run(chunk: list[str], store: ResultStore, decoder: Decoder = decoder) -> int:
            return classify_local(chunk, predictor, decoder, store, batch_size=args.batch_size,
                                  workers=args.workers, progress=False)

        rows.add(f"local engine, decode {kind} (Parquet written)",
                 engine_run(run, sources[:count], directory / f"local-{kind}.parquet", device))
    if args.ray:
        rows.add("ray engine (actor start included)", ray_run(args, predictor, sources, directory, device))
    return rows


def ray_run(args: argparse.Namespace, predictor: Predictor, sources: list[str], directory: Path,
            device: torch.device) -> tuple[int, float]:
    import ray
    from convnets_hub.models.batch.ray_engine import (
        ModelRecipe,
        RaySettings,
        classify_ray,
    )

    ray.init(num_cpus=args.ray_num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        recipe = ModelRecipe("resnet50", {"pretrained": False, "model_math": args.model_math,
                                          "optimize": True, "device": args.device})
        settings = RaySettings(gpus_per_actor=1.0 if device.type == "cuda" else 0.0,
                               gpu_decoding=device.type == "cuda")

        def run(chunk: list[str], store: ResultStore) -> int:
            return classify_ray(chunk, recipe, predictor.preprocess, store, settings, batch_size=args.batch_size,
                                pad=True, progress=False)

        return engine_run(run, sources, directory / "ray.parquet", device)
    finally:
        ray.shutdown()


def build_predictor(args: argparse.Namespace) -> Predictor:
    model = create("resnet50", pretrained=False, model_math=args.model_math, optimize=True, device=args.device)
    return Predictor(model, 5, pad_to=args.batch_size, device=args.device)


def parser() -> argparse.ArgumentParser:
    cores = os.cpu_count() or 1
    result = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    result.add_argument("--images", type=int, default=256, help="JPEG files made (default 256)")
    result.add_argument("--paths", type=int, default=None, help="paths naming them (default: --images)")
    result.add_argument("--batch-size", type=int, default=64, help="model batch and hybrid/engine GPU batch")
    result.add_argument("--workers", type=int, default=cores, help="CPU decoding threads of hybrid and the engines")
    result.add_argument("--cpu-workers", type=int, nargs="+", default=default_cpu_workers(cores))
    result.add_argument("--gpu-batch-sizes", type=int, nargs="+", default=[16, 64, 128, 256])
    result.add_argument("--jpeg-backends", nargs="*", default=[], choices=tuple(BACKENDS),
                        help="also GPU decoding with each of these JPEG libraries")
    result.add_argument("--engine-decodes", nargs="+", default=["cpu", "hybrid"],
                        choices=("cpu", "gpu", "hybrid"))
    result.add_argument("--seconds", type=float, default=3.0, help="about this long per row")
    result.add_argument("--device", default="cpu")
    result.add_argument("--model-math", default="fp32")
    result.add_argument("--ray", action="store_true", help="also the Ray engine on all the paths")
    result.add_argument("--ray-num-cpus", type=int, default=cores)
    result.add_argument("--json", type=Path)
    return result


def main() -> None:
    args = parser().parse_args()
    predictor = build_predictor(args)
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        sources = make_jpegs(directory, args.images, args.paths or args.images)
        started = time.perf_counter()
        warm = [CpuDecoder(predictor.preprocess).load(source) for source in sources[:args.batch_size]]
        predictor.predict(sources[:len(warm)], torch.stack(warm))
        first_call = time.perf_counter() - started
        rows = measure(args, predictor, sources, directory)
    print(f"{args.images} JPEGs of 1280-2048 px under {len(sources)} paths, resnet50 optimize=True "
          f"{args.model_math}, batch {args.batch_size}, device {args.device}, {os.cpu_count()} cores; "
          f"first model call {first_call:.1f} s (decode and compilation)")
    print(rows.markdown())
    for name, note in rows.notes.items():
        print(f"{name}: {note}")
    if args.json:
        args.json.write_text(json.dumps({"paths": len(sources), "first_call_s": first_call, "notes": rows.notes,
                                         "rows": {name: {"images": images, "seconds": seconds}
                                                  for name, (images, seconds) in rows.rows.items()}}, indent=2))


if __name__ == "__main__":
    main()
