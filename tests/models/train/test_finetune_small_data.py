"""``finetune`` on little data: one class is refused, a batch larger than the data shrinks (saying so), and
the loader workers default to at most the machine's cores."""

import os

import pytest
from convnets_hub.models.cli import build_parser
from convnets_hub.models.errors import DatasetError
from convnets_hub.models.train.data import image_folder_data
from convnets_hub.models.train.trainer import finetune
from image_folders import lenet_settings, make_image_folder
from PIL import Image


def test_a_single_class_is_refused(tmp_path):
    (tmp_path / "cats").mkdir()
    for index in range(10):
        Image.new("RGB", (8, 8)).save(tmp_path / "cats" / f"{index}.png")
    with pytest.raises(DatasetError) as raised:
        image_folder_data(tmp_path, None, 0)
    assert str(raised.value) == (f"--data {tmp_path}: one class folder (cats): a classifier needs at least 2 classes "
                                 f"to tell apart (expected {tmp_path}/<class>/<images>, one folder per class)")


def test_a_batch_larger_than_the_data_becomes_the_data_and_says_so(tmp_path, capsys):
    data = make_image_folder(tmp_path / "data", train=2, val=1)  # 6 training images
    result = finetune(lenet_settings(data, tmp_path / "out", epochs=2, batch_size=32))
    assert len(result.step_losses) == 2, "one step of 6 images an epoch"
    assert (f"--batch-size 32 is more than the 6 training images of {data}: training with batches of 6"
            in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize(("cores", "expected"), [(2, 2), (64, 4), (None, 1)])
def test_workers_default_to_at_most_the_cores(monkeypatch, cores, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    parser = build_parser()
    finetune_args = parser.parse_args(["finetune", "--entrypoint", "lenet5", "--data", "d", "--output", "o"])
    validate_args = parser.parse_args(["validate", "--entrypoint", "lenet5", "--data", "d"])
    assert finetune_args.workers == validate_args.workers == expected
