"""Mistakes on the command line are reported at once: before torch, timm or torchvision are imported,
with a "did you mean" for misspelled commands, flags, entrypoints, variants and weights ids."""

import json
import subprocess
import sys
import time

import pytest
from command_line import run_cli, run_cli_hiding

HEAVY = ("torch", "timm", "torchvision")


def run_recorded(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, list[str], float]:
    """The run, the heavy modules it had imported when it ended, and its duration in seconds."""
    record = tmp_path / "modules.json"
    start = time.perf_counter()
    result = run_cli_hiding((), *args, record=record)
    seconds = time.perf_counter() - start
    imported = json.loads(record.read_text())
    return result, [name for name in HEAVY if name in imported], seconds


@pytest.fixture
def photo(tmp_path):
    from PIL import Image

    path = tmp_path / "photo.jpg"
    Image.new("RGB", (32, 24), "red").save(path)
    return str(path)


def test_misspelled_entrypoint_is_found_before_torch_with_a_suggestion(tmp_path, photo):
    result, heavy, seconds = run_recorded(tmp_path, "classify", photo, "--entrypoint", "resnet18_sl",
                                          "--output", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2 and heavy == [], result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("python3 -m models classify: error: --entrypoint 'resnet18_sl' is not a model "
                           "entrypoint; did you mean 'resnet18_ssl', 'resnet18_swsl' or 'resnet50_ssl'? (valid: "), line
    assert seconds < 5, f"{seconds:.1f} s"  # a bare interpreter start and argparse: ~0.4 s on this CPU


@pytest.mark.parametrize(("args", "line"), [
    (["clasify", "x"], ("python3 -m models: error: 'clasify' is not a command; did you mean 'classify'? "
                       "(see python3 -m models --help)")),
    (["classify", "x", "--entrypoint", "lenet5", "--top_k", "3", "--output", "o.jsonl"],
     ("python3 -m models classify: error: unrecognized arguments: --top_k (did you mean --top-k?) "
     "(see python3 -m models classify --help)")),
    (["finetune", "--entrypoint", "lenet5", "--data", "nodata", "--output", "out"],
     "python3 -m models finetune: error: --data nodata: no such directory"),
    (["validate", "--entrypoint", "resnet50", "--weights", "resnet50.tv2_in1", "--data", "."],
     ("python3 -m models validate: error: --weights 'resnet50.tv2_in1' is neither a weights id of resnet50 in "
     "{manifest} nor an existing file or an http(s) URL; valid ids: ['resnet50.tv_in1k', 'resnet50.tv2_in1k']; "
     "did you mean 'resnet50.tv2_in1k' or 'resnet50.tv_in1k'?")),
    (["validate", "--entrypoint", "resnet50", "--weights", "out/best.pth", "--data", "."],
     "python3 -m models validate: error: --weights out/best.pth: no such file (nor a weights id of resnet50)"),
    (["export", "--entrypoint", "nvidia_gpunet", "--model-type", "GPUNet-O", "--format", "onnx", "--output", "m"],
     ("python3 -m models export: error: --model-type 'GPUNet-O' is not a GPUNet type; valid types: GPUNet-0, "
     "GPUNet-1, GPUNet-2, GPUNet-P0, GPUNet-P1, GPUNet-D1, GPUNet-D2 (or NVIDIA's latency keys 0.65ms, 0.85ms, "
     "1.75ms, 0.5ms-D, 0.8ms-D, 1.25ms-D, 2.25ms-D, in any case); did you mean 'GPUNet-2', 'GPUNet-1' or "
     "'GPUNet-0'?")),
    (["export", "--entrypoint", "lenet5", "--model-type", "x", "--format", "onnx", "--output", "m"],
     "python3 -m models export: error: --model-type 'x': lenet5 has no variants"),
    (["validate", "--entrypoint", "lenet5", "--device", "gpu", "--data", "."],
     "python3 -m models validate: error: --device 'gpu' is not a device: cpu, cuda or cuda:N; did you mean 'cpu'?"),
    (["smoke", "--entrypoint", "vgg61"], ("python3 -m models smoke: error: --entrypoint 'vgg61' is not a model "
                                         "entrypoint; did you mean 'vgg16' or 'vgg16_bn'? (valid: ")),
    (["help", "resnet18_sl"], ("python3 -m models help: error: ENTRYPOINT 'resnet18_sl' is not an entrypoint; "
                              "did you mean 'resnet18_ssl', 'resnet18_swsl' or 'resnet50_ssl'? (valid: ")),
])
def test_each_mistake_is_one_line_before_torch(tmp_path, args, line):
    from conftest import REPO

    result, heavy, _ = run_recorded(tmp_path, *args)
    assert result.returncode == 2 and heavy == [], result.stderr
    (printed,) = result.stderr.splitlines()
    expected = line.format(manifest=REPO / "weights_manifest.json")
    assert printed == expected or (expected.endswith("(valid: ") and printed.startswith(expected)), printed


def test_cuda_device_with_a_cpu_only_torch_is_refused_before_importing_it(tmp_path):
    """A CPU-only torch is recognised from its version file: a stand-in torch that fails on import proves it
    is never imported."""
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('imported')\n")
    (fake / "version.py").write_text("__version__ = '2.14.1+cpu'\ncuda: Optional[str] = None\nhip = None\n")
    from conftest import REPO

    result = subprocess.run([sys.executable, "-m", "models", "validate", "--entrypoint", "lenet5", "--device",
                             "cuda:0", "--data", "."], check=False, cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [("python3 -m models validate: error: --device cuda:0: CUDA is not "
                                          "available on this machine (torch 2.14.1+cpu is a CPU-only build)")]


def test_version_names_the_release_and_its_companions_without_importing_them(tmp_path):
    from importlib import metadata

    from convnets_hub.models.release import VERSION

    result, heavy, _ = run_recorded(tmp_path, "--version")
    assert result.returncode == 0 and heavy == []
    assert result.stdout.startswith(f"convnets-hub {VERSION} (torch {metadata.version('torch')}, torchvision "
                                    f"{metadata.version('torchvision')}, timm {metadata.version('timm')}) at ")


def test_correct_arguments_still_run(tmp_path, photo):
    result = run_cli("classify", photo, "--entrypoint", "lenet5", "--top-k", "2", "--output",
                     str(tmp_path / "o.jsonl"), "--no-progress")
    assert result.returncode == 0, result.stderr
