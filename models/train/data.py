"""Image folders (torchvision's ImageFolder layout) as training and validation data, checked before use.

A folder holds one sub-folder per class (``<class>/**/<image>``: links to files are followed, links
to folders inside a class folder are not, and a file reached twice counts once and belongs to one
split only); a training folder is either ``DIR/train`` with ``DIR/val`` beside it, or one folder
whose images are split per class by a validation fraction. Before anything is trained, every problem is found and reported in one line:
no classes, classes without images, validation classes the training set lacks, class folder names
that are not one line of UTF-8 text, files that do not decode. Training images get the model's
preprocessing (size, interpolation, mean/std) with timm's standard augmentation, each sample's
randomness seeded by (seed, epoch, index): the same images
come out whatever the number of workers or processes, and a resumed run sees what an
uninterrupted one saw. Validation images get exactly the hub's own preprocessing
(``prepare_input_from_uri``).
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

# isort: off
from ...processing import torchvision_pair  # noqa: F401 -- first: a mismatched torchvision is one clear line
# isort: on
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension
from tqdm import tqdm

from ...processing import ConvNetsProcessingUtils
from ...processing.decode import load_rgb
from ...processing.fetch import FetchSettings
from ...processing.nvidia_api import DEFAULT_MAX_PIXELS
from ..errors import DatasetError
from ..weights.finetuned import class_name_problem
from ..wording import count
from .finetune_settings import DEFAULT_VAL_FRACTION

Sample = tuple[str, int]
"""An image's path and class index."""
_LISTED = 5  # problems named in an error line; the rest are counted
_FETCH = FetchSettings()


@dataclass(frozen=True)
class ImageFolderData:
    """The classes and the training and validation images of a data folder."""

    classes: tuple[str, ...]
    train: list[Sample]
    val: list[Sample]


def class_folders(folder: Path) -> list[str]:
    """The class names of an ImageFolder: its sub-folders, sorted, without hidden ones (``.ipynb_checkpoints``)."""
    if not folder.is_dir():
        raise DatasetError(f"data={str(folder)!r}: no such directory")
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise DatasetError(f"data={str(folder)!r}: no class folders (expected {folder}/<class>/<images>, or "
                           f"{folder}/train/<class>/... and {folder}/val/<class>/...)")
    for name in classes:
        problem = class_name_problem(name)
        if problem is not None:
            raise DatasetError(f"--data {folder}: the class folder {name!r} cannot name a class: {problem}; "
                               "rename it")
    return classes


def folder_samples(folder: Path, class_to_index: Mapping[str, int],
                   require_every_class: bool = True) -> list[Sample]:
    """Every image under ``folder/<class>/`` (recursively, torchvision's image extensions), with the
    class indices of ``class_to_index``; a class folder without images is an error unless it may be absent."""
    present = {name: index for name, index in class_to_index.items() if (folder / name).is_dir()}
    seen: set[str] = set()
    samples = [(path, index) for name, index in sorted(present.items())
               for path in _image_files(folder / name, seen)]
    counts = np.bincount([label for _, label in samples], minlength=len(class_to_index))
    empty = [name for name, index in present.items() if counts[index] == 0]
    if require_every_class:
        empty += [name for name in class_to_index if name not in present]
    if empty:
        raise DatasetError(f"data={str(folder)!r}: {count(len(empty), 'class folder')} without images: {listing(sorted(empty))} "
                           f"(images are files ending in {', '.join(IMG_EXTENSIONS)})")
    return samples


def _image_files(folder: Path, seen: set[str]) -> list[str]:
    """The image files under ``folder`` (torchvision's extensions), sorted, recursively but not into
    links to folders (a link loop, or ``up -> ..``, would count images again or forever); a file
    whose resolved path is in ``seen`` (another link to it, here or in another class) is left out,
    and those taken are added to ``seen``."""
    files = []
    for root, folders, names in os.walk(folder):  # followlinks=False: a linked folder is listed, not entered
        folders.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            if not has_file_allowed_extension(name, IMG_EXTENSIONS) or not os.path.isfile(path):
                continue
            resolved = os.path.realpath(path)
            if resolved not in seen:
                seen.add(resolved)
                files.append(path)
    return files


def image_folder_data(data: str | os.PathLike, val_fraction: float | None, seed: int) -> ImageFolderData:
    """The classes and images of ``data``: ``train/`` and ``val/`` folders, or one folder of which
    ``val_fraction`` of each class's images (at least one image left for training) is held out."""
    root = Path(data).expanduser()
    train_dir = root / "train" if (root / "train").is_dir() else root
    val_dir = root / "val" if train_dir != root and (root / "val").is_dir() else None
    if val_dir is not None and val_fraction is not None:
        raise DatasetError(f"val_fraction={val_fraction}: {root} has its own val/ folder; drop the option")
    classes = class_folders(train_dir)
    if len(classes) < 2:
        raise DatasetError(f"--data {train_dir}: one class folder ({classes[0]}): a classifier needs at least 2 "
                           f"classes to tell apart (expected {train_dir}/<class>/<images>, one folder per class)")
    class_to_index = {name: index for index, name in enumerate(classes)}
    train = folder_samples(train_dir, class_to_index)
    if val_dir is not None:
        unknown = sorted(set(class_folders(val_dir)) - set(classes))
        if unknown:
            raise DatasetError(f"data={str(val_dir)!r}: {count(len(unknown), 'class', 'classes')} that {train_dir} lacks: {listing(unknown)}")
        val = folder_samples(val_dir, class_to_index, require_every_class=False)
        in_both = sorted({os.path.realpath(path) for path, _ in train} & {os.path.realpath(path) for path, _ in val})
        if in_both:
            raise DatasetError(f"--data {root}: {len(in_both)} images are both in train/ and in val/ (through "
                               f"links): {listing(in_both)}; an image must be in one of them only")
    else:
        train, val = _split(train, DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction, seed)
    if not val:
        raise DatasetError(f"data={str(root)!r}: no validation images (a val/ folder, or a val_fraction that "
                           "leaves some images of a class with two or more)")
    return ImageFolderData(tuple(classes), train, val)


def _split(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Per class, a seeded random ``fraction`` of the images (rounded, one at least kept for training) held out."""
    by_class: dict[int, list[Sample]] = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    train, val = [], []
    for label, members in sorted(by_class.items()):
        random.Random(seed * 1_000_003 + label).shuffle(members)
        held = min(round(len(members) * fraction), len(members) - 1)
        val += members[:held]
        train += members[held:]
    return sorted(train), sorted(val)


def unreadable_images(paths: Sequence[str], *, workers: int, progress: bool) -> list[tuple[str, str]]:
    """The files of ``paths`` that do not decode as images, with why: every file is decoded in
    threads (JPEGs at an eighth of their size, which still reads all their data)."""
    def problem(path: str) -> str | None:
        try:
            load_rgb(path, _FETCH, DEFAULT_MAX_PIXELS, draft_size=(1, 1))
        except (ValueError, OSError) as error:
            return str(error)
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(tqdm(pool.map(problem, paths), total=len(paths), desc="checking images", unit="img",
                             disable=not progress, leave=False))
    return [(path, reason) for path, reason in zip(paths, outcomes, strict=True) if reason is not None]


def describe_unreadable(problems: Sequence[tuple[str, str]]) -> str:
    """``N unreadable images: path (why), ...`` in one line."""
    return f"{count(len(problems), 'unreadable image')}: " + listing([reason if reason.startswith(path) else f"{path} ({reason})"
                                                             for path, reason in problems])


def listing(items: Sequence[str]) -> str:
    """The first few ``items`` and how many more, for a one-line error."""
    return ", ".join(items[:_LISTED]) + (f" and {len(items) - _LISTED} more" if len(items) > _LISTED else "")


def load_image(path: str, channels: int) -> Any:
    """An image file as a PIL image in the model's mode (RGB, or L for one channel), EXIF-oriented."""
    image = load_rgb(path, _FETCH, DEFAULT_MAX_PIXELS)
    return image.convert("L") if channels == 1 else image


def train_transform(cfg: Mapping[str, Any], augment: bool) -> Callable[[Any], torch.Tensor]:
    """timm's training transform for the model's input size, interpolation, mean and std (random
    resized crop, horizontal flip, colour jitter), or without ``augment`` its evaluation transform."""
    from timm.data import create_transform

    return create_transform(tuple(cfg["input_size"]), is_training=augment, interpolation=cfg["interpolation"],
                            mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), crop_pct=cfg["crop_pct"])


class AugmentedImages(Dataset):
    """Training images; an item is asked for as ``(index, seed)`` and its augmentation drawn from ``seed``."""

    def __init__(self, samples: Sequence[Sample], cfg: Mapping[str, Any], augment: bool = True) -> None:
        self.samples = list(samples)
        self.channels = int(cfg["input_size"][0])
        self.transform = train_transform(cfg, augment)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = item
        path, label = self.samples[index]
        image = load_image(path, self.channels)
        with seeded(seed):
            return self.transform(image), label


class PreprocessedImages(Dataset):
    """Validation images, preprocessed as the hub preprocesses them for the model (``cfg``)."""

    def __init__(self, samples: Sequence[Sample], cfg: Mapping[str, Any]) -> None:
        self.samples = list(samples)
        self.cfg = {key: cfg[key] for key in ("input_size", "crop_pct", "interpolation", "mean", "std")}
        self.processing = ConvNetsProcessingUtils()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return self.processing.prepare_input_from_uri(path, config=self.cfg)[0], label


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Within it, Python's, NumPy's and torch's (CPU) random generators start from ``seed``; after it,
    they are where they were."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


class EpochSampler(DistributedSampler):
    """torch's DistributedSampler (this process's share of a seeded permutation per epoch) yielding
    ``(index, seed)``: the seed of each image's augmentation in this epoch. ``skip`` leaves out the
    first items of the epoch (a run resumed within it)."""

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        seeds = np.random.default_rng([self.seed, self.epoch]).integers(0, 2**62, len(self.dataset))
        indices = list(super().__iter__())[self.skip:]
        return iter([(index, int(seeds[index])) for index in indices])

    def __len__(self) -> int:
        return self.num_samples - self.skip


def ignore_interrupts(_worker: int) -> None:
    """A DataLoader ``worker_init_fn``: Ctrl-C is the main process's to handle (it stops at a step's end)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
