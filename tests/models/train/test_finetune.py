"""``finetune``: exact resumption, Ctrl-C, frozen backbones, data checks and torchrun data parallelism."""

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import torch
from command_line import run_cli
from conftest import REPO
from convnets_hub.models.errors import DatasetError, InvalidArgumentError
from convnets_hub.models.train import loop
from convnets_hub.models.train.data import image_folder_data
from convnets_hub.models.train.output_folder import LOCK_FILE
from convnets_hub.models.train.run_files import read_run
from convnets_hub.models.train.trainer import amp_dtype, finetune
from convnets_hub.models.train.validation import validate_folder
from image_folders import CLASSES, lenet_settings, make_image_folder
from PIL import Image


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def uninterrupted(image_folder, tmp_path_factory):
    """The reference: a two-epoch run that nothing stops."""
    output = tmp_path_factory.mktemp("uninterrupted")
    return finetune(lenet_settings(image_folder, output)), output


def interrupt_at(monkeypatch, update):
    """Ctrl-C (a real SIGINT to this process) while the optimizer step number ``update`` runs."""
    step = loop.TrainStep.__call__

    def interrupting(self, images, targets, number):
        if number == update:
            os.kill(os.getpid(), signal.SIGINT)
        return step(self, images, targets, number)

    monkeypatch.setattr(loop.TrainStep, "__call__", interrupting)


def final_weights(output):
    return torch.load(output / "last.pth", weights_only=True)["state_dict"]


@pytest.mark.parametrize("update", [2, 3], ids=["within-an-epoch", "at-an-epochs-end"])
def test_ctrl_c_saves_and_resume_gives_the_uninterrupted_run(image_folder, uninterrupted, tmp_path, monkeypatch,
                                                             update):
    reference, reference_output = uninterrupted
    handler = signal.getsignal(signal.SIGINT)
    interrupt_at(monkeypatch, update)
    with pytest.raises(KeyboardInterrupt):
        finetune(lenet_settings(image_folder, tmp_path))
    _, training = read_run(tmp_path / "last.pth")
    assert (training["epoch"], training["step"]) == ((0, 2) if update == 2 else (1, 0))
    assert signal.getsignal(signal.SIGINT) is handler  # the run put Ctrl-C back
    monkeypatch.undo()
    resumed = finetune(lenet_settings(image_folder, tmp_path, resume=True))
    assert len(reference.step_losses) == 6
    assert resumed.step_losses == reference.step_losses
    assert resumed.history == reference.history
    reference_weights, weights = final_weights(reference_output), final_weights(tmp_path)
    assert all(torch.equal(weights[key], reference_weights[key]) for key in reference_weights)


def test_the_loss_curve_does_not_depend_on_the_number_of_loader_workers(image_folder, uninterrupted, tmp_path):
    reference, _ = uninterrupted
    assert finetune(lenet_settings(image_folder, tmp_path, workers=2)).step_losses == reference.step_losses


def test_resume_refuses_other_settings_and_a_run_is_never_overwritten(image_folder, uninterrupted):
    _, output = uninterrupted
    with pytest.raises(InvalidArgumentError, match=r"lr=0\.01 \(now 0\.02\)"):
        finetune(lenet_settings(image_folder, output, lr=0.02, resume=True))
    with pytest.raises(InvalidArgumentError, match="already holds a run"):
        finetune(lenet_settings(image_folder, output))


def test_best_and_last_are_written_and_best_has_the_best_validation_top1(uninterrupted):
    result, output = uninterrupted
    best_epoch = max(result.history, key=lambda row: row["val_top1"])["epoch"]
    assert result.best_epoch == best_epoch and result.best_top1 == result.history[best_epoch - 1]["val_top1"]
    best = torch.load(output / "best.pth", weights_only=True)
    assert "training" not in best and best["class_names"] == list(CLASSES)


def test_a_frozen_backbone_keeps_its_weights_and_batchnorm_statistics(image_folder, tmp_path, hubconf):
    settings = lenet_settings(image_folder, tmp_path, entrypoint="resnet18_ssl", pretrained=False, image_size=32,
                              epochs=1, freeze_backbone=True)
    torch.manual_seed(settings.seed)
    start = hubconf.resnet18_ssl(pretrained=False, num_classes=3).state_dict()
    finetune(settings)
    trained = final_weights(tmp_path)
    changed = {key for key in start if not torch.equal(start[key], trained[key])}
    assert changed == {"fc.weight", "fc.bias"}


def test_data_problems_are_found_before_training(tmp_path):
    with pytest.raises(DatasetError, match="no class folders"):
        image_folder_data(tmp_path, None, 0)
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "notes.txt").write_text("no image")
    Image.new("RGB", (8, 8)).save(tmp_path / "cats" / "a.png")
    with pytest.raises(DatasetError, match=r"1 class folder without images: dogs"):
        image_folder_data(tmp_path, None, 0)
    (tmp_path / "dogs" / "b.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="no validation images"):  # one image a class: none to hold out
        image_folder_data(tmp_path, 0.5, 0)


def test_one_folder_is_split_per_class_by_the_validation_fraction(tmp_path):
    for name in CLASSES:
        (tmp_path / name).mkdir()
        for index in range(10):
            Image.new("RGB", (8, 8)).save(tmp_path / name / f"{index}.png")
    data = image_folder_data(tmp_path, 0.3, 0)
    assert data.classes == CLASSES
    assert [sum(label == c for _, label in data.val) for c in range(3)] == [3, 3, 3]
    assert len(data.train) == 21 and not {p for p, _ in data.train} & {p for p, _ in data.val}
    assert image_folder_data(tmp_path, 0.3, 0) == data


def test_unreadable_images_are_listed_in_one_line_or_skipped(tmp_path):
    data = make_image_folder(tmp_path / "data", train=4, val=1)
    (data / "train" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (data / "val" / "blue" / "empty.jpg").write_bytes(b"")
    result = run_cli("finetune", "--entrypoint", "lenet5", "--data", str(data), "--output", str(tmp_path / "out"),
                     "--workers", "0", "--no-progress")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "2 unreadable images:" in result.stderr and "broken.png" in result.stderr and "empty.jpg" in result.stderr
    assert "--skip-unreadable" in result.stderr and not (tmp_path / "out").exists()
    skipped = finetune(lenet_settings(data, tmp_path / "out", epochs=1, batch_size=4, skip_unreadable=True))
    assert len(skipped.step_losses) == 3  # the 12 readable training images


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.start_first
def test_torchrun_with_two_processes_computes_the_one_process_losses(image_folder, uninterrupted, tmp_path):
    """Two gloo processes on 127.0.0.1, each with half of every global batch of 8."""
    reference, _ = uninterrupted
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(_free_port()), "-m", "models", "finetune", "--entrypoint", "lenet5",
               "--data", str(image_folder), "--output", str(tmp_path), "--epochs", "2", "--batch-size", "8",
               "--lr", "0.01", "--workers", "0", "--no-progress"]
    with tempfile.TemporaryDirectory() as scratch:  # torchrun's log folders (torchelastic_*), deleted afterwards
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
                                env={**os.environ, "CONVNETS_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TMPDIR": scratch})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("epoch 1/2:") == 1  # rank 0 alone prints
    _, training = read_run(tmp_path / "last.pth")
    assert training["world_size"] == 2
    np.testing.assert_allclose(training["step_losses"], reference.step_losses, rtol=1e-5)
    assert [row["val_top1"] for row in training["history"]] == [row["val_top1"] for row in reference.history]


def test_the_best_checkpoint_validates_as_its_epoch_did_with_its_class_names(image_folder, uninterrupted, hubconf):
    result, output = uninterrupted
    model = hubconf.lenet5(weights=str(output / "best.pth"))
    assert model.pretrained_cfg["label_names"] == CLASSES and model.pretrained_cfg["input_size"] == (1, 32, 32)
    metrics = validate_folder(model, image_folder / "val", batch_size=4, workers=0, progress=False)
    best = result.history[result.best_epoch - 1]
    assert metrics.images == 6 and metrics.top1 == pytest.approx(best["val_top1"])
    assert metrics.loss == pytest.approx(best["val_loss"], rel=1e-6)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_and_its_gradient_scaler_is_saved(image_folder, tmp_path, amp):
    result = finetune(lenet_settings(image_folder, tmp_path, epochs=1, amp=amp))
    assert len(result.step_losses) == 3 and all(np.isfinite(result.step_losses))
    scaler = read_run(tmp_path / "last.pth")[1]["scaler"]
    assert (scaler.get("scale") is not None) == (amp == "fp16")  # fp16 alone goes through a scaler


def test_gpu_defaults_are_decided_by_the_device(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert amp_dtype("auto", cpu) is None and amp_dtype("bf16", cpu) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert amp_dtype("auto", gpu) is torch.bfloat16 and amp_dtype("off", gpu) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # V100, T4
    assert amp_dtype("auto", gpu) is torch.float16


@pytest.mark.cuda
def test_a_gpu_run_uses_autocast_channels_last_and_resumes_exactly(image_folder, tmp_path, monkeypatch):
    settings = lenet_settings(image_folder, tmp_path / "a", device="cuda", entrypoint="resnet18_ssl", pretrained=False,
                              image_size=32)
    reference = finetune(settings)
    interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        finetune(dataclasses.replace(settings, output=str(tmp_path / "b")))
    monkeypatch.undo()
    resumed = finetune(dataclasses.replace(settings, output=str(tmp_path / "b"), resume=True))
    np.testing.assert_allclose(resumed.step_losses, reference.step_losses, rtol=1e-3)


def test_checkpoints_replace_planted_links_and_never_write_through_them(image_folder, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in (".last.pth.partial", ".best.pth.partial", "best.pth"):
        (output / name).symlink_to(victim)
    finetune(lenet_settings(image_folder, output, epochs=1))
    assert victim.read_text() == "precious"
    assert not (output / "last.pth").is_symlink() and not (output / "best.pth").is_symlink()
    read_run(output / "last.pth")


def test_a_second_run_is_refused_in_one_line_while_the_first_goes_on_and_ctrl_c_stops_it_with_130(image_folder,
                                                                                                    tmp_path):
    """The first run is a process (Ctrl-C, its exit code); the second, refused by the first's lock, runs here."""
    output = tmp_path / "run"
    arguments = ["finetune", "--entrypoint", "lenet5", "--data", str(image_folder), "--output", str(output),
                 "--epochs", "100000", "--batch-size", "8", "--workers", "0", "--no-progress"]
    with (tmp_path / "stdout").open("w") as stdout, (tmp_path / "stderr").open("w") as stderr:
        first = subprocess.Popen([sys.executable, "-m", "models", *arguments], cwd=REPO, stdout=stdout,
                                 stderr=stderr, env={**os.environ, "CONVNETS_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 240
        while not (output / "last.pth").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (output / "last.pth").exists(), (tmp_path / "stderr").read_text()
        second = run_cli(*arguments, "--resume")
        assert second.returncode == 2, second.stderr
        assert len(second.stderr.strip().splitlines()) == 1 and "being written by another finetune run" in second.stderr
        assert first.poll() is None, "the first run goes on"
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=120)
    stdout, stderr = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    assert first.returncode == 130, stderr
    assert "interrupted" in stdout and "--resume" in stdout and "Traceback" not in stderr
    _, training = read_run(output / "last.pth")
    assert training["epoch"] >= 1 and training["settings"]["epochs"] == 100000


def test_an_output_that_cannot_be_written_is_refused_before_the_data_is_read(tmp_path, monkeypatch):
    read = []
    monkeypatch.setattr("convnets_hub.models.train.trainer.image_folder_data", lambda *args: read.append(args))
    (tmp_path / "a_file").write_text("")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    cases = {tmp_path / "a_file": "is a file, not a folder", tmp_path / "a_file" / "run": "a_file is not a folder",
             tmp_path / "dangling": "is a link to .*nowhere, which does not exist"}
    for output, message in cases.items():
        with pytest.raises(InvalidArgumentError, match=message):
            finetune(lenet_settings(tmp_path / "no_data", output))
    planted = tmp_path / "planted"  # its lock file a link to someone's file: never opened through the link
    planted.mkdir()
    (planted / LOCK_FILE).symlink_to(tmp_path / "a_file")
    with pytest.raises(InvalidArgumentError, match=f"cannot write there .*{LOCK_FILE}"):
        finetune(lenet_settings(tmp_path / "no_data", planted))
    assert read == [] and not (tmp_path / "nowhere").exists() and (tmp_path / "a_file").stat().st_size == 0


@pytest.mark.parametrize("bad", ["cat\nzebra", "tab\tbed", os.fsdecode(b"caf\xe9")], ids=["two-lines", "control", "latin-1"])
def test_class_folders_that_are_not_one_line_of_utf8_are_refused_in_one_line(tmp_path, bad):
    for name in ("blue", bad):
        (tmp_path / name).mkdir()
        for index in range(3):
            Image.new("RGB", (8, 8)).save(tmp_path / name / f"{index}.png")
    with pytest.raises(DatasetError, match="cannot name a class") as refused:
        image_folder_data(tmp_path, None, 0)
    assert "\n" not in str(refused.value) and repr(bad) in str(refused.value)
    str(refused.value).encode("utf-8")


def test_links_in_a_data_folder_count_each_image_once_and_in_one_split(tmp_path):
    data = make_image_folder(tmp_path / "data", train=4, val=1, size=8)
    (data / "train" / "blue" / "up").symlink_to("..")  # a loop: train/blue/up/blue/up/...
    (data / "train" / "red" / "again.png").symlink_to(data / "train" / "red" / "0.png")
    (data / "train" / "green" / "also_red.png").symlink_to(data / "train" / "red" / "1.png")
    found = image_folder_data(data, None, 0)
    assert (len(found.train), len(found.val)) == (12, 3)
    split = image_folder_data(data / "train", 0.25, 0)
    resolved = [{os.path.realpath(path) for path, _ in part} for part in (split.train, split.val)]
    assert len(split.train) + len(split.val) == 12 and not resolved[0] & resolved[1]
    (data / "val" / "green" / "leak.png").symlink_to(data / "train" / "green" / "1.png")
    with pytest.raises(DatasetError, match=r"1 images are both in train/ and in val/ .*1\.png"):
        image_folder_data(data, None, 0)
