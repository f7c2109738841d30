"""A fine-tuned checkpoint is first-class weights: entrypoints build its head, preprocessing and class names
from it, and classify, export and serve take it with ``--weights`` and answer with its class names."""

import dataclasses
import functools
import json
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from convnets_hub.models import builder
from convnets_hub.models.archs.classic import build_googlenet, drop_googlenet_aux
from convnets_hub.models.builder import FreshClassifierWarning
from convnets_hub.models.cli import main
from convnets_hub.models.deploy.server import HubModelHandler
from convnets_hub.models.errors import CheckpointMismatchError, InvalidArgumentError
from convnets_hub.models.train.run_files import save_checkpoint
from convnets_hub.models.weights.finetuned import FinetunedCheckpoint

CLASSES = ("cat", "coffee", "rocket")
PREPROCESSING = {"input_size": (3, 32, 32), "crop_pct": 1.0, "interpolation": "bicubic",
                 "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, hubconf):
    """A resnet18_ssl with a three-class head, saved as ``python3 -m models finetune`` saves it."""
    torch.manual_seed(0)
    model = hubconf.resnet18_ssl(pretrained=False, num_classes=3).eval()
    path = tmp_path_factory.mktemp("finetuned") / "best.pth"
    save_checkpoint(path, FinetunedCheckpoint("resnet18_ssl", None, CLASSES, PREPROCESSING, False, model.state_dict()))
    return path, model


def test_weights_builds_its_head_preprocessing_and_class_names(finetuned, hubconf):
    path, original = finetuned
    with warnings.catch_warnings():
        warnings.simplefilter("error", FreshClassifierWarning)
        model = hubconf.resnet18_ssl(weights=str(path)).eval()
    cfg = model.pretrained_cfg
    assert cfg["num_classes"] == 3 and cfg["label_names"] == CLASSES
    assert {key: cfg[key] for key in PREPROCESSING} == PREPROCESSING
    assert cfg["checkpoint"] == str(path) and cfg["id"] is None
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))


def test_another_head_is_fresh_and_nameless(finetuned, hubconf):
    path, original = finetuned
    with pytest.warns(FreshClassifierWarning, match="'fc'"):
        model = hubconf.resnet18_ssl(weights=str(path), num_classes=5)
    assert model.pretrained_cfg["num_classes"] == 5 and "label_names" not in model.pretrained_cfg
    assert torch.equal(model.layer4[1].conv2.weight, original.layer4[1].conv2.weight)


def test_another_entrypoint_is_refused(finetuned, hubconf):
    path, _ = finetuned
    with pytest.raises(InvalidArgumentError, match=r"fine-tuned from resnet18_ssl\(\); load it with that, "
                                                   r"not with resnet50_ssl\(\)"):
        hubconf.resnet50_ssl(weights=str(path))


@pytest.mark.parametrize("pretrained_build", [True, False])
def test_googlenet_is_rebuilt_as_it_was_before_fine_tuning(pretrained_build, tmp_path, hubconf):
    """GoogLeNet's published weights need transform_input=True and auxiliary heads, dropped after loading."""
    torch.manual_seed(0)
    if pretrained_build:
        model = build_googlenet(num_classes=3, aux_logits=True, transform_input=True, init_weights=False)
        drop_googlenet_aux(model, {})
    else:
        model = build_googlenet(num_classes=3)
    path = tmp_path / "googlenet.pth"
    save_checkpoint(path, FinetunedCheckpoint("googlenet", None, CLASSES, {**PREPROCESSING, "input_size": (3, 64, 64)},
                                              pretrained_build, model.state_dict()))
    loaded = hubconf.googlenet(weights=str(path)).eval()
    assert loaded.transform_input is pretrained_build and loaded.aux1 is None
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_classify_answers_with_the_class_names(finetuned, tmp_path):
    path, _ = finetuned
    output = tmp_path / "rows.jsonl"
    assert main(["classify", str(PHOTO), "--entrypoint", "resnet18_ssl", "--weights", str(path), "--output", str(output),
                 "--top-k", "3", "--workers", "1", "--no-progress"]) == 0
    (row,) = [json.loads(line) for line in output.read_text().splitlines()]
    assert row["error"] == "" and row["weights"] == str(path)
    assert row["labels"] == [CLASSES[index] for index in row["class_indices"]] and sorted(row["labels"]) == list(CLASSES)


def test_export_writes_the_class_names_as_triton_labels(finetuned, tmp_path):
    path, _ = finetuned
    assert main(["export", "--entrypoint", "resnet18_ssl", "--weights", str(path), "--format", "onnx",
                 "--triton-repository", str(tmp_path)]) == 0
    folder = tmp_path / "resnet18_ssl"
    assert (folder / "labels.txt").read_text().splitlines() == list(CLASSES)
    assert "dims: [ 3, 32, 32 ]" in (folder / "config.pbtxt").read_text()


def test_the_served_image_model_answers_with_the_class_names(finetuned, hubconf):
    path, _ = finetuned
    handler = HubModelHandler(hubconf.resnet18_ssl(weights=str(path)), top_k=2)
    answer = handler.infer_image(image=np.array([[PHOTO.read_bytes()]], dtype=np.object_))
    assert answer["labels"].shape == (1, 2)
    assert [label.decode() for label in answer["labels"][0]] == [CLASSES[i] for i in answer["class_ids"][0]]


@pytest.mark.parametrize(("change", "message"), [
    ({"class_names": ["cat", "coffee"]}, "names 2 classes but its classifier 'fc' has 3 rows"),
    ({"class_names": [f"class {index}" for index in range(100_000)]}, "names 100000 classes but .* 3 rows"),
    ({"class_names": ["cat", "cat", "rocket"]}, "not unique: 'cat'"),
    ({"class_names": ["cat", "coffee\nzebra", "rocket"]}, "holds a line break"),
    ({"class_names": ["cat", "caf\udce9", "rocket"]}, "not UTF-8"),
    ({"class_names": ["cat", 7, "rocket"]}, "non-empty string"),
    ({"preprocessing": {**PREPROCESSING, "std": [0.25, 0.0, 0.25]}}, "std must be positive"),
    ({"preprocessing": {**PREPROCESSING, "crop_pct": 1e-7}}, "crop_pct in"),
    ({"preprocessing": {**PREPROCESSING, "input_size": [3, 100_000, 100_000]}}, "at most 4096 px"),
], ids=["fewer-names", "huge-list", "repeated", "two-lines", "not-utf8", "not-a-string", "zero-std", "tiny-crop",
        "huge-input"])
def test_a_checkpoint_whose_metadata_does_not_fit_its_weights_is_refused(finetuned, hubconf, tmp_path, change,
                                                                         message):
    """Checked against its own weights before a model is built: no random head with real-looking labels,
    no NaN probabilities, no MemoryError."""
    record = torch.load(finetuned[0], weights_only=True)
    record.update(change)
    torch.save(record, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatchError, match=message):
        hubconf.resnet18_ssl(weights=str(tmp_path / "bad.pth"))


def test_a_head_of_the_names_size_is_not_built_before_the_weights_are_checked(finetuned, hubconf, tmp_path,
                                                                               monkeypatch):
    """A file listing millions of class names is a CheckpointMismatchError, not a MemoryError: the classifier's
    name comes from the architecture built on the meta device (no memory), the model is built after the check."""
    spec = builder.SPECS["resnet18_ssl"]
    builds = []

    @functools.wraps(spec.build)
    def build(**kwargs):
        builds.append((torch.empty(0).device.type, kwargs["num_classes"]))
        return spec.build(**kwargs)

    monkeypatch.setitem(builder.SPECS, "resnet18_ssl", dataclasses.replace(spec, build=build))
    record = torch.load(finetuned[0], weights_only=True)
    record["class_names"] = [f"class {index}" for index in range(100_000)]
    torch.save(record, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatchError, match="names 100000 classes but its classifier 'fc' has 3 rows"):
        hubconf.resnet18_ssl(weights=str(tmp_path / "bad.pth"))
    assert all(device == "meta" for device, _ in builds), builds
