"""Real photos from installed packages, and the bounds within which two decoders of a JPEG must agree."""

from pathlib import Path

import matplotlib
import numpy as np
import skimage
import torch
from PIL import Image

GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"

PREPROCESS = {"input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bilinear",
              "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
LEVELS = torch.tensor(PREPROCESS["std"]).view(3, 1, 1) * 255  # a normalized difference times this: 8-bit levels


def agreement_photos(directory: Path) -> list[str]:
    """16 JPEGs (quality 90): 8 sample photos at their own size (300-1411 px) and upscaled to 1536 px."""
    photos = {"astronaut": skimage.data.astronaut(), "coffee": skimage.data.coffee(),
              "chelsea": skimage.data.chelsea(), "rocket": skimage.data.rocket(), "retina": skimage.data.retina(),
              "hubble": skimage.data.hubble_deep_field(), "ihc": skimage.data.immunohistochemistry(),
              "grace_hopper": np.asarray(Image.open(GRACE_HOPPER).convert("RGB"))}
    paths = []
    for name, pixels in photos.items():
        image = Image.fromarray(pixels[..., :3])
        scale = 1536 / max(image.size)
        upscaled = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        for suffix, version in (("", image), ("_1536", upscaled)):
            version.save(directory / f"{name}{suffix}.jpg", quality=90)
            paths.append(str(directory / f"{name}{suffix}.jpg"))
    return paths


# The bound that decoding.py's docstring and the README state (measured with decode_jpeg on the CPU: mean
# 0.22 levels, p99 3, top-5 0.9625, top-1 0.875). nvJPEG (the GPU) is held to the same documented bound;
# it has not run on a GPU yet: benchmarks/gpu/run.sh runs this test there, and it prints the figures.
AGREEMENT_BOUNDS = {"cpu": {"mean": 0.3, "p99": 4.0, "top5": 0.95, "top1": 0.8}}
AGREEMENT_BOUNDS["cuda"] = AGREEMENT_BOUNDS["cpu"]
