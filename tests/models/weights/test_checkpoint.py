"""Checkpoint reading: safe unpickling, zip members, training-checkpoint layouts, clear mismatch errors."""

import argparse
import io
import os
import pickle
import random
import re
import struct
import subprocess
import tracemalloc
import zipfile
import zlib

import pytest
import torch
from convnets_hub.models.errors import (
    CheckpointMismatchError,
    NotACheckpointError,
    UnsafeCheckpointError,
)
from convnets_hub.models.weights.loading import (
    MAX_INFLATION,
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
    assert writer == "pickle protocol 4" or re.search(r"the global (builtins\.)?exec,", str(error.value))
    assert MARKER_NAME not in os.environ


class _RunsShell:
    """Unpickling this runs a shell command through ``os.system``, a global of the blocked module posix."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _StartsProcess:
    """Unpickling this starts a process through ``subprocess.Popen``, a global that is merely not allowed."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


@pytest.mark.parametrize("writer", ["torch.save", "pickle protocol 2", "pickle protocol 4"])
@pytest.mark.parametrize(("payload", "named"), [(_RunsShell, "posix.system"), (_StartsProcess, "Popen")],
                         ids=["os.system (blocked module)", "subprocess.Popen (not allow-listed)"])
def test_a_pickle_calling_a_blocked_or_unlisted_global_is_unsafe_and_never_runs(tmp_path, writer, payload, named):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    checkpoint = {"epoch": 1, "hook": payload(marker)}
    if writer == "torch.save":
        torch.save(checkpoint, path)
    else:
        path.write_bytes(pickle.dumps(checkpoint, protocol=int(writer[-1])))
    with pytest.raises(UnsafeCheckpointError, match="refusing to load") as error:
        read_checkpoint(path)
    assert str(path) in str(error.value)
    assert writer == "pickle protocol 4" or named in str(error.value), "the global is named where torch names it"
    assert not marker.exists()


WRAPPED = ("Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` will likely "
           "succeed, but it can result in arbitrary code execution. Do it only if you got the file from a trusted "
           "source.\n\tWeightsUnpickler error: {}\n\nCheck the documentation of torch.load to learn more about "
           "types accepted by default with weights_only https://pytorch.org/docs/stable/generated/torch.load.html.")
# How torch's weights_only unpickler has worded a refusal, release after release (its GLOBAL, reduce, NEWOBJ
# and BUILD checks); torch.load raises each as a pickle.UnpicklingError wrapped as in WRAPPED.
REFUSALS = {
    "class (torch 1.13-2.3)": ("Unsupported class posix.system", "posix.system"),
    "global not allowed (torch 2.4+)": (
        ("Unsupported global: GLOBAL posix.system was not an allowed global by default. Please use "
         "`torch.serialization.add_safe_globals([system])` or the `torch.serialization.safe_globals([system])` "
         "context manager to allowlist this global if you trust this class/function."), "posix.system"),
    "builtin global without a module": ("Unsupported global: GLOBAL slice was not an allowed global by default.",
                                        "slice"),
    "blocked module (torch 2.5+)": ("Trying to load unsupported GLOBAL posix.system whose module posix is blocked.",
                                    "posix.system"),
    "blocked module (issue 19's quote)": ("unsupported GLOBAL posix.system whose module posix is blocked",
                                          "posix.system"),
    "reduce": ("Trying to call reduce for unrecognized function <built-in function system>", None),
    "instantiate (older torch)": ("Trying to instantiate unsupported class <class 'evil.Payload'>", None),
    "newobj": (("Can only create new object for nn.Parameter or classes allowlisted via `add_safe_globals` "
                "but got <class 'evil.Payload'>"), None),
    "build": (("Can only build Tensor, Parameter, OrderedDict or types allowlisted via `add_safe_globals`, "
               "but got <class 'evil.Payload'>"), None),
    "operand (protocol 4's STACK_GLOBAL)": ("Unsupported operand 149", None),
}


@pytest.mark.parametrize("wording", list(REFUSALS))
def test_every_wording_of_a_refused_global_is_unsafe_and_names_the_global(tmp_path, monkeypatch, wording):
    message, named = REFUSALS[wording]
    path = tmp_path / "refused.pth"
    torch.save({"w": torch.zeros(2)}, path)  # harmless: only the wording of the refusal decides

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError(WRAPPED.format(message))

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load") as error:
        read_checkpoint(path)
    assert named is None or f"the global {named}," in str(error.value)


@pytest.mark.parametrize("message", ["pickle data was truncated", "invalid load key, '\\x00'.",
                                     ("A load persistent id instruction was encountered, but no "
                                      "persistent_load function was specified.")])
def test_a_malformed_pickle_is_not_a_checkpoint_rather_than_unsafe(tmp_path, monkeypatch, message):
    path = tmp_path / "damaged.pth"
    torch.save({"w": torch.zeros(2)}, path)

    def fail(*args, **kwargs):
        raise pickle.UnpicklingError(message)

    monkeypatch.setattr(torch, "load", fail)
    with pytest.raises(NotACheckpointError, match="malformed"):
        read_checkpoint(path)


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


def _deflated_zeros_zip(path, member, inflated, claimed=None):
    """A zip whose one deflated member inflates to ``inflated`` zero bytes and whose headers claim ``claimed``
    bytes (default: ``inflated``) and a CRC of 0. The stream repeats one fully flushed deflate block of 1 MiB of
    zeros, so neither the test's memory nor its disk ever holds the inflated bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream = block * (inflated >> 20) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    name, claimed = member.encode(), inflated if claimed is None else claimed
    sizes = (0, len(stream), claimed)  # CRC-32, compressed and uncompressed size
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, zipfile.ZIP_DEFLATED, 0, 33, *sizes, len(name), 0)
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, zipfile.ZIP_DEFLATED, 0, 33, *sizes, len(name),
                          0, 0, 0, 0, 0, 0)
    directory_at = len(local) + len(name) + len(stream)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(name), directory_at, 0)
    path.write_bytes(local + name + stream + central + name + end)
    return path


def _peak_python_memory(function, *args):
    """Run ``function(*args)``; the exception it raised and the peak of Python's allocations meanwhile."""
    tracemalloc.start()
    try:
        function(*args)
    except Exception as exc:  # noqa: BLE001 -- returned for the test to check
        raised = exc
    else:
        raised = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return raised, peak


def test_a_zip_member_that_would_inflate_a_thousandfold_is_refused_without_inflating_it(tmp_path):
    archive = _deflated_zeros_zip(tmp_path / "bomb.zip", "model.pth.tar", 2 << 30)  # 2 MB holding 2 GiB
    assert archive.stat().st_size < 3 << 20
    raised, peak = _peak_python_memory(read_checkpoint, archive, "model.pth.tar")
    assert isinstance(raised, UnsafeCheckpointError), raised
    message = str(raised)
    assert str(archive) in message and "'model.pth.tar'" in message and str(2 << 30) in message
    assert f"{MAX_INFLATION} times" in message
    assert peak < 16 << 20, f"{peak} bytes allocated: the member was inflated"


def test_a_zip_member_inflating_beyond_the_size_its_header_claims_is_cut_at_that_size(tmp_path):
    archive = _deflated_zeros_zip(tmp_path / "liar.zip", "model.pth.tar", 256 << 20, claimed=1 << 20)
    raised, peak = _peak_python_memory(read_checkpoint, archive, "model.pth.tar")
    assert isinstance(raised, NotACheckpointError), raised
    assert f"{archive}:model.pth.tar" in str(raised)
    assert peak < 16 << 20, f"{peak} bytes allocated: the member was inflated beyond its claimed size"


def _deflated_torch_save(path, tensors):
    """``torch.save(tensors)`` rewritten with its members deflated (torch stores them, but reads either)."""
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    with zipfile.ZipFile(buffer) as saved, zipfile.ZipFile(path, "w") as rewritten:
        for info in saved.infolist():
            rewritten.writestr(info.filename, saved.read(info), compress_type=zipfile.ZIP_DEFLATED)
    return path


def test_a_torch_save_file_whose_deflated_tensors_inflate_a_thousandfold_is_refused(tmp_path, hubconf):
    bomb = _deflated_torch_save(tmp_path / "bomb.pth", {"weight": torch.zeros(16 << 20)})  # 64 KB holding 64 MiB
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(UnsafeCheckpointError, match=rf"refusing {bomb}: its members inflate to \d+ bytes .*"
                                                     rf"{MAX_INFLATION} times the file's"):
        read_checkpoint(bomb)
    with pytest.raises(UnsafeCheckpointError, match=r"refusing .*outer\.zip:model\.pth: its members inflate"):
        read_checkpoint(_zip_with(tmp_path / "outer.zip", "model.pth", bomb.read_bytes()), "model.pth")
    with pytest.raises(UnsafeCheckpointError, match="its members inflate"):
        hubconf.lenet5(weights=str(bomb))
    honest = _deflated_torch_save(tmp_path / "honest.pth", {"weight": torch.randn(1000)})  # deflated, not a bomb
    assert torch.equal(read_checkpoint(honest)["weight"], torch.load(honest, weights_only=True)["weight"])


class _NamespaceCalledPositionally:
    """Pickles as ``argparse.Namespace(1, 2)``: an allow-listed global given arguments it does not take."""

    def __reduce__(self):
        return (argparse.Namespace, (1, 2))


def test_an_allow_listed_global_called_with_unexpected_arguments_is_unsafe_not_a_type_error(tmp_path, hubconf):
    path = tmp_path / "odd_args.pth"
    torch.save({"args": _NamespaceCalledPositionally(), "state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(UnsafeCheckpointError, match=rf"refusing to load {path}: it calls an allow-listed global "
                                                     r"with arguments it does not take \(.*Namespace"):
        read_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError, match="allow-listed global"):
        hubconf.lenet5(weights=str(path))


def test_a_state_dict_with_keys_that_are_not_names_is_a_mismatch_naming_the_file(tmp_path, hubconf):
    path = tmp_path / "int_keys.pth"
    torch.save({"state_dict": {0: torch.zeros(2), "fc.weight": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointMismatchError, match=rf"{path} holds a dict of tensors whose keys are not all "
                                                       r"parameter names \(strings\): 1 keys such as 0"):
        hubconf.lenet5(weights=str(path))
