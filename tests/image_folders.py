"""A tiny image-folder dataset (three colour classes of noise) and LeNet-5 fine-tuning settings for it."""

import numpy as np
from convnets_hub.models.train.finetune_settings import FinetuneSettings
from PIL import Image

CLASSES = ("blue", "green", "red")


def make_image_folder(root, train=8, val=2, size=36, seed=0):
    """``root/train/<colour>/*.png`` and ``root/val/<colour>/*.png``: noise tinted by its class's colour."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        for channel, name in zip((2, 1, 0), CLASSES, strict=True):
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 100, (size, size, 3)).astype(np.uint8)
                pixels[..., channel] += 120
                Image.fromarray(pixels).save(folder / f"{index}.png")
    return root


def lenet_settings(data, output, **overrides):
    """LeNet-5 from scratch: 24 training images, 3 steps of 8 an epoch, in the main process."""
    return FinetuneSettings(**{"entrypoint": "lenet5", "data": str(data), "output": str(output), "epochs": 2,
                               "batch_size": 8, "lr": 0.01, "workers": 0, "progress": False, **overrides})
