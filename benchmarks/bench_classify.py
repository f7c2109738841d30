"""End-to-end images/s of ``python3 -m models classify``'s engines against their parts, in one process.

Inputs: JPEGs of 1280-2048 px (quality 90) made from scikit-image's and matplotlib's sample photos,
upscaled, in a temporary directory (``--repeat`` lists each file under several names, for runs
longer than the files are many). The model: ``resnet50`` with random weights (speed does not
depend on them), ``optimize=True`` and ``--model-math`` (bf16). Rows, all on the same files:

* decode, 1 thread: ``CpuDecoder.load`` (the hub's ``prepare_input_from_uri``) one image after another;
* decode, N threads: the same in the local engine's thread pool (or the GPU decoder, ``--decode gpu``);
* model: the model alone on the decoded tensors, in batches (compiled and warmed up before);
* decode then model, 1 thread: the two single-thread times back to back (the goal's yardstick);
* local engine: ``classify_local`` end to end, writing Parquet (model compiled before);
* ray engine: ``classify_ray`` end to end on a local Ray started before the timing, with
  ``--ray-num-cpus`` CPUs; its actor builds the model (Inductor's cache is warm) inside the time.

    python3 benchmarks/bench_classify.py [--device cpu] [--decode cpu] [--images 256] [--json out.json]
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

from convnets_hub.models.batch.decoding import CpuDecoder, make_decoder
from convnets_hub.models.batch.local import classify_local
from convnets_hub.models.batch.predictor import Predictor
from convnets_hub.models.batch.ray_engine import ModelRecipe, RaySettings, classify_ray
from convnets_hub.models.batch.store import ResultStore
from convnets_hub.models.entrypoints import hubconf

SIZES = (1280, 1536, 1792, 2048)


def sample_photos() -> list[np.ndarray]:
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket(),
              skimage.data.retina(), np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data"
                                                           / "grace_hopper.jpg").convert("RGB"))]
    return [photo[..., :3] for photo in photos]


def make_jpegs(directory: Path, count: int, repeat: int) -> list[str]:
    """``count`` JPEGs (longer side 1280-2048 px), each listed ``repeat`` times under its own name."""
    photos = sample_photos()
    sources = []
    for index in range(count):
        image = Image.fromarray(photos[index % len(photos)])
        size = SIZES[index % len(SIZES)]
        scale = size / max(image.size)
        path = directory / f"{index:05d}.jpg"
        image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC) \
            .save(path, quality=90)
        sources.append(path)
    for copy in range(1, repeat):
        for path in sources[:count]:
            link = directory / f"{path.stem}-{copy}.jpg"
            link.symlink_to(path)
            sources.append(link)
    return [str(path) for path in sources]


def timed(name: str, times: dict[str, float], function, *args, **kwargs) -> object:
    """Run ``function``, store its seconds under ``name`` and say so at once."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    times[name] = time.perf_counter() - start
    print(f"{name}: {times[name]:.2f} s", file=sys.stderr, flush=True)
    return result


def run_model(predictor: Predictor, sources: list[str], images: list[torch.Tensor], batch_size: int) -> None:
    for start in range(0, len(images), batch_size):
        predictor.predict(sources[start:start + batch_size], torch.stack(images[start:start + batch_size]))


def decode_batches(decoder, sources: list[str], batch_size: int, workers: int) -> list[torch.Tensor]:
    with ThreadPoolExecutor(workers) as pool:
        loaded = list(pool.map(decoder.load, sources))
    return [image for start in range(0, len(loaded), batch_size)
            for image in decoder.finish(loaded[start:start + batch_size])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=1, help="names per file (symbolic links)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-math", default="bf16")
    parser.add_argument("--decode", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--engines", nargs="+", default=["local", "ray"])
    parser.add_argument("--ray-num-cpus", type=int, default=os.cpu_count())
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    model = hubconf().resnet50(pretrained=False, model_math=args.model_math, optimize=True, device=args.device)
    predictor = Predictor(model, 5, pad_to=args.batch_size, device=args.device)
    cpu_decoder = CpuDecoder(predictor.preprocess)
    decoder = make_decoder(args.decode, predictor.preprocess, args.device)
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        sources = make_jpegs(directory, args.images, args.repeat)
        count = len(sources)
        warm_images = [cpu_decoder.load(source) for source in sources[:args.batch_size]]
        timed("first model call (compilation)", warm := {}, run_model, predictor, sources, warm_images,
              args.batch_size)
        first_call = warm["first model call (compilation)"]
        decode_batches(decoder, sources[:args.batch_size], args.batch_size, args.workers)
        images = timed("decode, 1 thread (CPU)", times, lambda: [cpu_decoder.load(source) for source in sources])
        timed(f"decode, {args.workers} threads ({args.decode})", times, decode_batches, decoder, sources,
              args.batch_size, args.workers)
        timed("model alone", times, run_model, predictor, sources, images, args.batch_size)
        times["decode then model, 1 thread"] = times["decode, 1 thread (CPU)"] + times["model alone"]
        if "local" in args.engines:
            store = ResultStore(directory / "local.parquet")
            timed("local engine", times, classify_local, sources, predictor, decoder, store,
                  batch_size=args.batch_size, workers=args.workers, progress=False)
        if "ray" in args.engines:
            import ray
            ray.init(num_cpus=args.ray_num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False, logging_level=logging.WARNING,
                     runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
            try:
                recipe = ModelRecipe("resnet50", {"pretrained": False, "model_math": args.model_math,
                                                  "optimize": True, "device": args.device})
                settings = RaySettings(gpus_per_actor=1.0 if args.device.startswith("cuda") else 0.0)
                timed("ray engine (actor start included)", times, classify_ray, sources, recipe,
                      predictor.preprocess, ResultStore(directory / "ray.parquet"), settings, batch_size=args.batch_size, pad=True, progress=False)
            finally:
                ray.shutdown()
    rows = {name: count / seconds for name, seconds in times.items()}
    print(f"{count} JPEGs of 1280-2048 px, resnet50 optimize=True {args.model_math}, batch {args.batch_size}, "
          f"device {args.device}, decode {args.decode}, {os.cpu_count()} cores; first model call "
          f"{first_call:.1f} s (compilation)")
    print("| measurement | seconds | img/s |\n|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.2f} | {rows[name]:.1f} |")
    yardstick = times["decode then model, 1 thread"]
    for engine in ("local engine", "ray engine (actor start included)"):
        if engine in times:
            print(f"{engine}: {yardstick / times[engine]:.2f}x the speed of decode then model in one thread")
    if "local engine" in times and "ray engine (actor start included)" in times:
        print(f"ray / local time: {times['ray engine (actor start included)'] / times['local engine']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"images": count, "seconds": times, "images_per_second": rows}, indent=2))


if __name__ == "__main__":
    main()
