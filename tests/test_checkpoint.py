"""Checkpoint reading: safe unpickling, zip members, training-checkpoint layouts, clear mismatch errors."""

import argparse
import io
import os
import pickle
import random
import zipfile

import pytest
import torch
from convnets_hub.models.errors import (
    CheckpointMismatchError,
    NotACheckpointError,
    UnsafeCheckpointError,
)
from convnets_hub.models.weights.checkpoint import (
    extract_state_dict,
    load_into,
    read_checkpoint,
)
from torch import nn

MARKER_NAME = "convnets_hub_pwned"


class _RunsCode:
    """Unpickling this runs code (it sets an environment variable): a stand-in for any payload."""

    def __reduce__(self):
        return (exec, (f"import os; os.environ[{MARKER_NAME!r}] = '1'",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle protocol 2", "pickle protocol 4"])
def test_a_pickle_that_would_run_code_is_refused_and_the_code_does_not_run(tmp_path, monkeypatch, writer):
    monkeypatch.delenv(MARKER_NAME, raising=False)
    path = tmp_path / "evil.pth"
    payload = {"epoch": 1, "payload": _RunsCode()}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=int(writer[-1])))
    with pytest.raises(UnsafeCheckpointError, match="refusing to load") as error:
        read_checkpoint(path)
    assert str(path) in str(error.value)
    assert writer == "pickle protocol 4" or "the global exec" in str(error.value)
    assert MARKER_NAME not in os.environ


def test_timm_training_checkpoint_with_namespace_args_loads_and_prefers_ema(tmp_path):
    ema, raw = {"module.w": torch.ones(2)}, {"module.w": torch.zeros(2)}
    path = tmp_path / "train.pth.tar"
    torch.save({"state_dict": raw, "state_dict_ema": ema, "args": argparse.Namespace(lr=0.1), "epoch": 3}, path)
    state = extract_state_dict(read_checkpoint(path), str(path))
    assert list(state) == ["w"] and torch.equal(state["w"], torch.ones(2))


def _zip_with(path, member, payload):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, payload)
    return path


def test_zip_member_is_read_by_name(tmp_path):
    buffer = io.BytesIO()
    torch.save({"w": torch.full((3,), 7.0)}, buffer)
    archive = _zip_with(tmp_path / "ngc.zip", "0.65ms.pth.tar", buffer.getvalue())
    assert torch.equal(read_checkpoint(archive, "0.65ms.pth.tar")["w"], torch.full((3,), 7.0))
    assert torch.equal(read_checkpoint(archive)["w"], torch.full((3,), 7.0)), "a single checkpoint member is found"
    with pytest.raises(UnsafeCheckpointError, match="no member 'other.pth'"):
        read_checkpoint(archive, "other.pth")


@pytest.mark.parametrize("member", ["../escape.pth", "/abs/path.pth", "a/../../b.pth", "C:/win.pth"])
def test_unsafe_member_names_are_refused(tmp_path, member):
    archive = _zip_with(tmp_path / "bad.zip", member, b"x")
    with pytest.raises(UnsafeCheckpointError, match="refusing archive member"):
        read_checkpoint(archive, member)


def _saved(legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.randn(4096)}, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


@pytest.mark.parametrize(("content", "says"), [
    (b"\x07" + random.Random(0).randbytes(5000), "neither a zip archive nor a pickle"),
    (b"\x00not a checkpoint" * 10, "neither a zip archive nor a pickle"),
    (b"<!DOCTYPE html>\n<html><body>403 Forbidden</body></html>", "HTML"),
    (b"", "empty"),
    (_saved()[:3000], "zip archive ends early or is damaged"),
    (_saved(legacy=True)[:3000], "pickle ends early or is damaged"),
], ids=["random bytes", "zeros and text", "HTML page", "empty", "truncated zip", "truncated legacy file"])
def test_a_file_that_is_not_a_checkpoint_says_so_and_names_the_file(tmp_path, content, says):
    path = tmp_path / "downloaded.pth"
    path.write_bytes(content)
    with pytest.raises(NotACheckpointError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert str(path) in message and says in message
    assert "unsafe" not in message.lower() and "weights_only" not in message


def test_mismatch_names_the_file_and_the_first_missing_and_unexpected_keys():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    state = {"0.weight": torch.zeros(3, 2), "0.bias": torch.zeros(3), "9.weight": torch.zeros(4, 3)}
    with pytest.raises(CheckpointMismatchError) as error:
        load_into(model, state, "/data/ckpt.pth")
    message = str(error.value)
    assert "/data/ckpt.pth" in message and "1.weight" in message and "9.weight" in message


def test_shape_mismatch_is_named():
    model = nn.Sequential(nn.Linear(2, 3))
    with pytest.raises(CheckpointMismatchError, match=r"0.weight: checkpoint \(5, 2\), model \(3, 2\)"):
        load_into(model, {"0.weight": torch.zeros(5, 2), "0.bias": torch.zeros(3)}, "x.pth")


def test_linear_weights_stored_as_1x1_convolutions_are_reshaped():
    model = nn.Sequential(nn.Linear(4, 2))
    load_into(model, {"0.weight": torch.ones(2, 4, 1, 1), "0.bias": torch.zeros(2)}, "x.pth")
    assert torch.equal(model[0].weight, torch.ones(2, 4))
    conv = nn.Sequential(nn.Conv2d(4, 2, 1))
    load_into(conv, {"0.weight": torch.ones(2, 4), "0.bias": torch.zeros(2)}, "x.pth")
    assert torch.equal(conv[0].weight, torch.ones(2, 4, 1, 1)), "and the reverse"


@pytest.mark.parametrize("stored", [(3, 2), (6,), (1, 6)], ids=["transposed", "flattened", "other"])
def test_a_same_size_tensor_of_another_shape_is_refused_not_reshaped(stored):
    """Only trailing singleton dimensions may differ: a transposed or foreign weight is refused."""
    model = nn.Sequential(nn.Linear(3, 2))
    before = model[0].weight.detach().clone()
    with pytest.raises(CheckpointMismatchError) as error:
        load_into(model, {"0.weight": torch.zeros(stored), "0.bias": torch.zeros(2)}, "x.pth")
    assert f"0.weight: checkpoint {stored}, model (2, 3)" in str(error.value)
    assert torch.equal(model[0].weight, before), "nothing is loaded"
