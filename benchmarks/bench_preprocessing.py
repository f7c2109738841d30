"""Images/s of NVIDIA's per-image preprocessing and of ours, side by side in one process.

NVIDIA's pipeline: full PIL decode, torchvision Resize(256) + CenterCrop(224) + ToTensor +
Normalize, one image after another (their hub example's list comprehension). Ours:
``prepare_input_from_uri`` one at a time, and ``prepare_inputs`` for a batch (reduced-scale JPEG
decoding, decoding threads). Inputs: JPEGs of 1280-2048 px made from scikit-image's retina.jpg
and hubble_deep_field.jpg.

    python3 benchmarks/bench_preprocessing.py [--repeats 3] [--json results.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import skimage
import torch
from PIL import Image
from torchvision import transforms

REPO = Path(__file__).resolve().parents[1]
SIZES = (1280, 1536, 1792, 2048)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
NVIDIA_TRANSFORMS = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])


def nvidia_prepare(path: str) -> torch.Tensor:
    """NVIDIA's prepare_input_from_uri for a local file."""
    return NVIDIA_TRANSFORMS(Image.open(path)).float().unsqueeze(0).sub_(MEAN).div_(STD)


def make_jpegs(directory: Path, count: int) -> list[str]:
    sources = [Image.open(Path(skimage.data_dir) / name).convert("RGB") for name in ("retina.jpg", "hubble_deep_field.jpg")]
    paths = []
    for index in range(count):
        source, size = sources[index % 2], SIZES[index % len(SIZES)]
        image = source.resize((size, round(size * source.height / source.width)), Image.Resampling.BICUBIC)
        path = directory / f"photo{index:02d}_{size}.jpg"
        image.save(path, "JPEG", quality=90)
        paths.append(str(path))
    return paths


def images_per_second(run, count: int, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return count / statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    importlib.import_module("models")  # mounts this checkout's library as convnets_hub.models
    from convnets_hub.models.hub import nvidia_convnets_processing_utils


    utils = nvidia_convnets_processing_utils()
    with tempfile.TemporaryDirectory() as directory:
        paths = make_jpegs(Path(directory), 32)
        single = paths[:8]
        results = {
            "nvidia, one at a time": images_per_second(lambda: [nvidia_prepare(p) for p in single], 8, args.repeats),
            "ours, one at a time": images_per_second(lambda: [utils.prepare_input_from_uri(p) for p in single], 8,
                                                     args.repeats),
            "nvidia, batch of 32": images_per_second(lambda: torch.cat([nvidia_prepare(p) for p in paths]), 32,
                                                     args.repeats),
            "ours, batch of 32": images_per_second(lambda: utils.prepare_inputs(paths), 32, args.repeats),
        }
        theirs = torch.cat([nvidia_prepare(p) for p in paths]) * STD + MEAN
        ours = utils.prepare_inputs(paths) * STD + MEAN
        differences = (ours - theirs).abs().mean(dim=(1, 2, 3))
    report = {"machine": f"CPU, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
              "images_per_second": results,
              "ratio_single": results["ours, one at a time"] / results["nvidia, one at a time"],
              "ratio_batch_32": results["ours, batch of 32"] / results["nvidia, batch of 32"],
              "mean_abs_pixel_difference": {"mean": differences.mean().item(), "max": differences.max().item()}}
    print(f"Preprocessing, {report['machine']}; JPEGs of {SIZES[0]}-{SIZES[-1]} px\n")
    print("| pipeline | images/s |\n|---|---|")
    for name, value in results.items():
        print(f"| {name} | {value:.1f} |")
    print(f"\nours / nvidia: {report['ratio_single']:.2f}x one at a time, {report['ratio_batch_32']:.2f}x on a batch of 32")
    print(f"mean absolute pixel difference from nvidia (0-1 units): mean {report['mean_abs_pixel_difference']['mean']:.4f}, "
          f"max {report['mean_abs_pixel_difference']['max']:.4f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
