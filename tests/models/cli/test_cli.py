"""``python3 -m models``: the front door's commands and its one-line errors (run as a user runs them)."""

import argparse
import hashlib
import io
import json

import pytest
import torch
from command_line import run_cli, run_cli_hiding
from conftest import REPO, Reply
from convnets_hub.models.cli import build_parser


def test_help_lists_every_command_with_what_it_does():
    result = run_cli("--help")
    assert result.returncode == 0
    section = result.stdout.split("commands:\n")[1].splitlines()[1:]  # after the "<command>" line
    listed = [line.split()[0] for line in section if line.startswith("    ") and not line.startswith("     ")]
    (commands,) = [action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)]
    summaries = {action.dest: action.help for action in commands._choices_actions}
    assert listed == list(commands.choices) == list(summaries)  # the commands that really run, in order
    assert {"list", "help", "pin-weights", "smoke", "export", "serve", "classify", "readme"} <= set(listed)
    flat = " ".join(result.stdout.split())
    for name, summary in summaries.items():
        assert summary and " ".join(summary.split()) in flat, name


@pytest.mark.parametrize("args", [["no-such-command"], ["help"], ["list", "--bogus"]])
def test_bad_arguments_give_one_line_and_exit_code_2(args):
    result = run_cli(*args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_entrypoint_is_one_line_listing_the_valid_ones():
    result = run_cli("help", "nvidia_resnext")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "'nvidia_resnext' is not an entrypoint" in result.stderr and "nvidia_resneXt" in result.stderr
    assert "Traceback" not in result.stderr


def test_list_shows_entrypoints_and_weights_ids_offline():
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "nvidia_resneXt" in lines and "nvidia_gpunet" in lines and "lenet5" in lines
    assert "nvidia_resnext101_32x4d (alias of nvidia_resneXt)" in lines
    assert "    GPUNet-D2: nvidia_gpunet.gpunet_d2.ngc_amp_21.12.0 (default)" in lines
    resnet50 = lines[lines.index("resnet50") + 1:lines.index("resnet50") + 3]
    assert resnet50 == ["    resnet50.tv_in1k (default)", "    resnet50.tv2_in1k"]


def test_help_prints_what_torch_hub_help_prints(hubconf):
    result = run_cli("help", "nvidia_gpunet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("nvidia_gpunet(pretrained=True")
    assert hubconf.nvidia_gpunet.__doc__.strip().splitlines()[0] in result.stdout
    assert "GPUNet-D2" in result.stdout


def test_pin_weights_pins_through_the_command_line(tmp_path, server):
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(1000.0)}, buffer)  # a first use is recorded only if it loads as a checkpoint
    payload = buffer.getvalue()
    url = server.serve("/pin/file.pth", Reply(body=payload))
    manifest = tmp_path / "manifest.json"
    raw = json.loads((REPO / "weights_manifest.json").read_text())
    entry = {**raw["entries"][0], "id": "x.pin", "urls": [url], "file_name": "file.pth", "sha256": None,
             "size": None, "hash_prefix": None}
    manifest.write_text(json.dumps({**raw, "entries": [entry]}))
    env = {"CONVNETS_HUB_MANIFEST": str(manifest), "TORCH_HOME": str(tmp_path / "torch"), "CONVNETS_HUB_OFFLINE": ""}
    result = run_cli("pin-weights", "x.pin", env=env)
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(payload).hexdigest()
    assert f"x.pin: sha256 {digest}, {len(payload)} bytes" in result.stdout
    pinned = json.loads(manifest.read_text())["entries"][0]
    assert (pinned["sha256"], pinned["size"]) == (digest, len(payload))
    unknown = run_cli("pin-weights", "no-such-id", env=env)
    assert unknown.returncode == 2 and "no-such-id" in unknown.stderr and len(unknown.stderr.splitlines()) == 1


HEAVY_MODULES = ("torch", "timm", "torchvision", "numpy", "PIL", "pyarrow", "ray", "onnx", "pytriton", "requests")


@pytest.mark.parametrize("command", ["", "list", "help", "pin-weights", "smoke", "export", "serve", "classify",
                                     "readme"])
def test_help_imports_neither_torch_nor_any_other_heavy_module(command, tmp_path):
    record = tmp_path / "modules.json"
    result = run_cli_hiding((), *filter(None, [command]), "--help", record=record)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python3 -m models {command}".rstrip())
    imported = {name.split(".")[0] for name in json.loads(record.read_text())}
    assert not imported & set(HEAVY_MODULES), sorted(imported & set(HEAVY_MODULES))


def test_a_misspelled_flag_points_to_the_commands_own_help(tmp_path):
    result = run_cli("classify", "photo.jpg", "--entrypoint", "lenet5", "--output", str(tmp_path / "o.jsonl"),
                     "--top_k", "3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [("python3 -m models classify: error: unrecognized arguments: "
                                                   "--top_k (did you mean --top-k?) (see python3 -m models "
                                                   "classify --help)")]
    top_level = run_cli("--top_k", "3")
    assert top_level.returncode == 2 and "(see python3 -m models --help)" in top_level.stderr


def _requirements(name: str) -> list[str]:
    """The lines of a requirements file of the repository, with those of the files it includes (-r)."""
    lines = (REPO / name).read_text().splitlines()
    return [included for line in lines
            for included in (_requirements(line.split()[1]) if line.startswith("-r ") else [line])]


@pytest.mark.parametrize(("hidden", "package", "args", "requirements"), [
    ("pyarrow", "pyarrow", ["classify", "photo.jpg", "--output", "o.parquet"], "requirements-batch.txt"),
    ("pyarrow", "pyarrow", ["classify", "list.csv", "--output", "o.jsonl"], "requirements-batch.txt"),
    ("ray", "ray", ["classify", "photo.jpg", "--output", "o.jsonl", "--engine", "ray"], "requirements-batch.txt"),
    ("onnx", "onnx", ["export", "--format", "onnx", "--output", "m.onnx"], "requirements-export.txt"),
    ("onnxscript", "onnxscript", ["export", "--format", "onnx", "--dynamo", "--output", "m.onnx"],
     "requirements-export.txt"),
    ("onnx", "onnx", ["export", "--format", "onnx", "--triton-repository", "repo"], "requirements-export.txt"),
    ("pytriton", "nvidia-pytriton", ["serve"], "requirements-deploy.txt"),
])
def test_a_missing_extra_is_one_line_naming_its_requirements_file(hidden, package, args, requirements, tmp_path):
    command, *rest = args
    rest = [str(tmp_path / arg) if "." in arg or arg == "repo" else arg for arg in rest]
    result = run_cli_hiding((hidden,), command, *rest, "--entrypoint", "lenet5", "--no-pretrained")
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"python3 -m models {command}: error: ")
    assert f"needs {hidden}, which is not installed: python3 -m pip install -r {requirements}" in result.stderr
    assert any(line.startswith(package) for line in _requirements(requirements)), "the file installs it"
    assert not any(tmp_path.iterdir()), "nothing is written"
