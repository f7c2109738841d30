"""The images that int8 quantization measures activation ranges on, preprocessed for the model.

``calibration`` is a folder of the user's images (searched recursively), a list of image files, or
an already preprocessed float batch ``[N, C, H, W]``; None means the photos that the installed
packages ship (:func:`bundled_photos`). Each image gives the model's own center crop and, while
there are fewer than :data:`MIN_VIEWS` images, seeded random crops and mirror images of it too, so
that a handful of photos still gives :data:`MIN_VIEWS` views.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from ...processing.decode import to_rgb
from ...processing.transforms import PreprocessConfig, image_to_tensor
from ..errors import InvalidArgumentError

MIN_VIEWS = 32
"""Views calibrated on at least (a few photos give several crops each)."""
MAX_IMAGES = 512
"""Images of a calibration folder used at most (the first ones by path)."""
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# scikit-image's photographs of natural scenes and objects (not its charts, text or test patterns).
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                  "hubble_deep_field.jpg", "retina.jpg", "ihc.png", "brick.png", "grass.png", "gravel.png")

Calibration = str | os.PathLike | Sequence[str | os.PathLike] | torch.Tensor | None


def bundled_photos() -> list[Path]:
    """The default calibration images: matplotlib's ``grace_hopper.jpg`` (matplotlib is a requirement)
    and, where scikit-image is installed, its photographs (:data:`SKIMAGE_PHOTOS`)."""
    import matplotlib

    photos = [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"]
    try:
        import skimage
    except ImportError:
        return photos
    folder = Path(skimage.__file__).parent / "data"
    return photos + [folder / name for name in SKIMAGE_PHOTOS if (folder / name).is_file()]


def calibration_files(calibration: Calibration) -> list[Path]:
    """The image files of ``calibration`` (a folder, a list of files, or None for the bundled photos)."""
    if calibration is None:
        return bundled_photos()
    if isinstance(calibration, (str, os.PathLike)):
        folder = Path(calibration).expanduser()
        if not folder.is_dir():
            raise InvalidArgumentError(f"calibration={str(calibration)!r} is not a folder of images")
        files = sorted(path for path in folder.rglob("*")
                       if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file())
        if not files:
            raise InvalidArgumentError(f"calibration={str(calibration)!r} holds no images "
                                       f"(files ending in {', '.join(IMAGE_EXTENSIONS)})")
        return files[:MAX_IMAGES]
    files = [Path(item).expanduser() for item in calibration]
    if not files:
        raise InvalidArgumentError("calibration=[] holds no images")
    return files


def calibration_batch(calibration: Calibration, cfg: Mapping[str, Any], seed: int = 0) -> torch.Tensor:
    """The calibration views ``[N, C, H, W]`` (float32), preprocessed as ``cfg`` (a ``pretrained_cfg``) says."""
    if isinstance(calibration, torch.Tensor):
        if calibration.dim() != 4 or not calibration.is_floating_point() or len(calibration) == 0:
            raise InvalidArgumentError(f"calibration: a tensor must be a float batch [N, C, H, W], not "
                                       f"{calibration.dtype} {tuple(calibration.shape)}")
        return calibration.detach().to("cpu", torch.float32)
    config = PreprocessConfig.from_mapping(cfg)
    files = calibration_files(calibration)
    views_per_image = math.ceil(MIN_VIEWS / len(files))
    generator = random.Random(seed)
    views = []
    for path in files:
        image = _open(path)
        views.append(image_to_tensor(image, config))
        for index in range(1, views_per_image):
            crop = _random_crop(image, generator)
            views.append(image_to_tensor(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if index % 2 else crop,
                                         config))
    return torch.stack(views)


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image, str(path)).copy()  # still readable once the file is closed
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise InvalidArgumentError(f"calibration image {str(path)!r} cannot be read: {error}") from error


def _random_crop(image: Image.Image, generator: random.Random) -> Image.Image:
    """A crop of 35-100 % of the image's area, of aspect ratio 3/4 to 4/3 (as RandomResizedCrop's)."""
    width, height = image.size
    area = width * height * generator.uniform(0.35, 1.0)
    ratio = math.exp(generator.uniform(math.log(3 / 4), math.log(4 / 3)))
    crop_width = min(width, max(1, round(math.sqrt(area * ratio))))
    crop_height = min(height, max(1, round(math.sqrt(area / ratio))))
    left, top = generator.randint(0, width - crop_width), generator.randint(0, height - crop_height)
    return image.crop((left, top, left + crop_width, top + crop_height))
