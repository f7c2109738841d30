"""safetensors wherever a checkpoint is accepted: files, URLs, manifest entries, fine-tuned checkpoints; no pickle."""

import json

import pytest
import torch
from conftest import Reply, parity_fixture, reference_error, seeded_checkpoint
from convnets_hub.models.errors import (
    InvalidArgumentError,
    NotACheckpointError,
    WeightsVerificationError,
)
from convnets_hub.models.factory import create_model
from convnets_hub.models.train.run_files import save_checkpoint
from convnets_hub.models.weights.finetuned import FinetunedCheckpoint
from convnets_hub.models.weights.records import read_record
from convnets_hub.models.weights.verify import UnverifiedWeightsWarning
from safetensors.torch import save, save_file

FIXTURE = parity_fixture("resnet18_ssl_swsl")


def has_seeded_weights(model) -> bool:
    """Whether ``model`` holds the fixture's seeded weights (cheaper than its logits)."""
    seeded = seeded_checkpoint(FIXTURE)
    return all(torch.equal(value, seeded[key]) for key, value in model.state_dict().items())


@pytest.fixture
def no_pickle(monkeypatch):
    """torch.load (the only way to a pickle) fails: what loads now loads without it."""
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", refuse)


def test_a_safetensors_file_loads_without_pickle_and_gives_the_reference_logits(tmp_path, no_pickle):
    path = tmp_path / "weights.safetensors"
    save_file(seeded_checkpoint(FIXTURE), str(path))
    model = create_model("resnet18_ssl", weights=str(path))
    assert reference_error(model, FIXTURE) <= 1e-6
    assert model.pretrained_cfg["checkpoint"] == str(path)


def test_a_safetensors_url_is_verified_and_recorded_like_any_checkpoint(hub_home, server):
    body = save(seeded_checkpoint(FIXTURE))
    url = server.serve("/w/resnet18.safetensors", Reply(body=body))
    with pytest.warns(UnverifiedWeightsWarning):
        model = create_model("resnet18_ssl", weights=url, progress=False)
    assert has_seeded_weights(model)
    cached = next(hub_home.glob("checkpoints/by-url/*/resnet18.safetensors"))
    record = read_record(str(cached.relative_to(hub_home / "checkpoints")))
    assert record is not None and record.size == len(body)
    cached.unlink()  # and the publisher changes the file
    server.serve("/w/resnet18.safetensors", Reply(body=save({k: v + 1 for k, v in seeded_checkpoint(FIXTURE).items()})))
    with pytest.raises(WeightsVerificationError, match="when it was first used"):
        create_model("resnet18_ssl", weights=url, progress=False)


def test_a_manifest_entry_may_name_a_safetensors_file(hub_home, server, tmp_path, monkeypatch, no_pickle):
    url = server.serve("/m/resnet18.safetensors", Reply(body=save(seeded_checkpoint(FIXTURE))))
    entry = {"id": "resnet18_ssl.safe", "entrypoint": "resnet18_ssl", "default": True, "urls": [url],
             "file_name": "resnet18.safetensors", "preprocessing": {"input_size": [3, 224, 224], "crop_pct": 0.875,
             "interpolation": "bilinear", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
             "license": "test"}
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"schema_version": 2, "entries": [entry]}))
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(manifest))
    with pytest.warns(UnverifiedWeightsWarning):
        model = create_model("resnet18_ssl", progress=False)
    assert has_seeded_weights(model) and model.pretrained_cfg["id"] == "resnet18_ssl.safe"
    assert (hub_home / "checkpoints" / "resnet18.safetensors").is_file()


def _finetuned(classes=("cat", "dog", "owl")):
    model = create_model("resnet18_ssl", pretrained=False, num_classes=len(classes))
    return model, FinetunedCheckpoint(
        entrypoint="resnet18_ssl", model_type=None, class_names=classes,
        preprocessing={"input_size": (3, 64, 64), "crop_pct": 1.0, "interpolation": "bicubic",
                       "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)},
        pretrained_build=True, state_dict=model.state_dict())


def test_a_fine_tuned_checkpoint_saved_as_safetensors_keeps_its_metadata_in_the_header(tmp_path, no_pickle):
    trained, checkpoint = _finetuned()
    path = tmp_path / "best.safetensors"
    save_checkpoint(path, checkpoint)
    model = create_model("resnet18_ssl", weights=str(path))
    assert model.pretrained_cfg["label_names"] == ("cat", "dog", "owl")
    assert model.pretrained_cfg["input_size"] == (3, 64, 64) and model.pretrained_cfg["interpolation"] == "bicubic"
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(model.eval()(x), trained.eval()(x))
    with pytest.raises(InvalidArgumentError, match="not a training state"):
        save_checkpoint(tmp_path / "last.safetensors", checkpoint, training={"epoch": 1})
    with pytest.raises(InvalidArgumentError, match="fine-tuned from resnet18_ssl"):
        create_model("resnet50_ssl", weights=str(path))


def test_a_truncated_safetensors_file_is_named_as_such(tmp_path):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(save(seeded_checkpoint(FIXTURE))[:-1000])
    with pytest.raises(NotACheckpointError, match="weights.safetensors is not a readable safetensors file"):
        create_model("resnet18_ssl", weights=str(path))
