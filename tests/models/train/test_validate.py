"""``python3 -m models validate``: top-1, top-5 and loss on a folder of ImageNet synsets, as computed by hand."""

import json
import shutil
from pathlib import Path

import matplotlib
import pytest
import skimage
import torch
import torch.nn.functional as F
from convnets_hub.models.cli import main
from convnets_hub.processing import ConvNetsProcessingUtils
from convnets_hub.processing.labels import imagenet_labels, imagenet_synsets

PHOTOS = [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
          Path(skimage.data_dir) / "chelsea.png", Path(skimage.data_dir) / "coffee.png"]


def test_synsets_are_the_bundled_labels_order():
    synsets = imagenet_synsets()
    assert len(synsets) == len(imagenet_labels()) == 1000 and len(set(synsets)) == 1000
    assert synsets[0] == "n01440764" and imagenet_labels()[0].startswith("tench")
    assert synsets[281] == "n02123045" and imagenet_labels()[281].startswith("tabby")


@pytest.fixture(scope="module")
def seeded_weights(tmp_path_factory, hubconf):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(hubconf.resnet18_ssl(pretrained=False).state_dict(), path)
    return path


def test_validate_gives_the_directly_computed_top1_top5_and_loss(seeded_weights, hubconf, tmp_path, capsys):
    """Three photos filed under the synsets of their 1st, 3rd and 1000th most likely classes:
    top-1 1/3, top-5 2/3, and the mean cross-entropy of those targets."""
    model = hubconf.resnet18_ssl(weights=str(seeded_weights)).eval()
    utils = ConvNetsProcessingUtils()
    with torch.no_grad():
        logits = torch.cat([model(utils.prepare_input_from_uri(str(photo), model=model)) for photo in PHOTOS])
    ranked = logits.argsort(dim=1, descending=True)
    targets = torch.stack([ranked[0, 0], ranked[1, 2], ranked[2, -1]])
    assert len(set(targets.tolist())) == 3
    for photo, target in zip(PHOTOS, targets.tolist(), strict=True):
        folder = tmp_path / "val" / imagenet_synsets()[target]
        folder.mkdir(parents=True)
        shutil.copy(photo, folder / photo.name)
    assert main(["validate", "--entrypoint", "resnet18_ssl", "--weights", str(seeded_weights), "--data",
                 str(tmp_path / "val"), "--batch-size", "2", "--workers", "0", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 3 and result["weights"] == str(seeded_weights)
    assert result["top1"] == pytest.approx(100 / 3) and result["top5"] == pytest.approx(200 / 3)
    assert result["loss"] == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-5)


def test_folders_that_are_not_the_models_classes_are_one_line_errors(seeded_weights, tmp_path, capsys):
    (tmp_path / "cats").mkdir()
    shutil.copy(PHOTOS[1], tmp_path / "cats" / "chelsea.png")
    assert main(["validate", "--entrypoint", "resnet18_ssl", "--weights", str(seeded_weights), "--data",
                 str(tmp_path), "--workers", "0"]) == 2
    assert "1 folder is not one of ImageNet synset ids (n01440764, ...): cats" in capsys.readouterr().err
    assert main(["validate", "--entrypoint", "lenet5", "--data", str(tmp_path), "--workers", "0"]) == 2
    assert "10-class head has no class names" in capsys.readouterr().err
