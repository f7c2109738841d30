"""A fine-tuned checkpoint records which images it was trained on (a content digest each); ``validate`` on data
that overlaps them warns and says how many."""

import json
import shutil

import pytest
from convnets_hub.models.cli import main
from convnets_hub.models.train.file_digests import file_digest, training_digests
from convnets_hub.models.train.trainer import finetune
from image_folders import lenet_settings, make_image_folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("overlap")
    data = make_image_folder(root / "data", train=4, val=1, size=32)  # 12 training images, 3 held out
    result = finetune(lenet_settings(data, root / "run", epochs=1, batch_size=4))
    return data, result.best


def test_the_checkpoint_records_a_digest_of_each_training_image(trained):
    data, best = trained
    assert training_digests(best) == {file_digest(path) for path in (data / "train").rglob("*.png")}


def validate(best, folder, capsys):
    assert main(["validate", "--entrypoint", "lenet5", "--weights", str(best), "--data", str(folder), "--workers",
                 "0", "--no-progress"]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err.splitlines()


def test_validate_warns_on_training_images_and_counts_them(trained, tmp_path, capsys):
    data, best = trained
    result, warnings = validate(best, data / "val", capsys)
    assert result["images"] == 3 and result["trained_on"] == 0 and warnings == []

    result, warnings = validate(best, data / "train", capsys)
    assert result["images"] == 12 and result["trained_on"] == 12
    assert warnings == [(f"warning: all 12 images of {data / 'train'} are among those {best} was trained on: "
                        "these figures are not held-out accuracy")]

    mixed = tmp_path / "mixed"  # the held-out images, and two training images under other names
    shutil.copytree(data / "val", mixed)
    shutil.copy(data / "train" / "red" / "0.png", mixed / "red" / "copy.png")
    shutil.copy(data / "train" / "blue" / "3.png", mixed / "blue" / "renamed.png")
    result, warnings = validate(best, mixed, capsys)
    assert result["images"] == 5 and result["trained_on"] == 2
    assert warnings == [(f"warning: 2 of the 5 images of {mixed} are among those {best} was trained on: "
                        "these figures are not held-out accuracy")]
