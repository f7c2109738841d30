"""Every notebook runs end to end, offline: local checkout, local images, weights from a mirror directory."""

import json
import os
import re
import resource
import shutil
import time
from pathlib import Path

import matplotlib
import pytest
import skimage
from conftest import REPO, parity_fixture, remove_big_files, torch_seeded_state_dict
from upstream_files import fixture_name, write_mirror

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
IMAGES = [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
          Path(skimage.data_dir) / "chelsea.png", Path(skimage.data_dir) / "coffee.png"]
# Papermill-style overrides injected after a notebook's "parameters" cell: the smaller choices, where the
# notebook's code runs the same either way (one timed run per model instead of five; one fine-tuning epoch
# instead of four, on 4 training crops a class instead of 12 (one step of 16 an epoch, 1 validation crop a class):
# what further epochs and steps do is tests/models/train/test_finetune.py's; two GPUNet types in its tables,
# one plain and one distilled, instead of seven: each type's model is tests/models/archs/test_gpunet_arch.py's).
OVERRIDES = {"semi_supervised_resnet_resnext.ipynb": {"ARCH": '"resnet18"'},
             "nvidia_gpunet.ipynb": {"LATENCY_RUNS": "1", "TYPES": '["GPUNet-0", "GPUNet-D1"]'},
             "nvidia_resnext.ipynb": {"LATENCY_RUNS": "1"}, "finetune.ipynb": {"EPOCHS": "1", "IMAGES_PER_CLASS": "4"}}
# The accuracy (in %) a notebook that trains a model must print as "test accuracy: XX.X %".
MIN_ACCURACY = {"lenet5_digits.ipynb": 97.0}
# The pretrained files each notebook loads (entrypoint, model type), written for it alone: under
# `-n 2` the notebooks run on both workers, and a mirror of all of them per worker cost twice the CPU.
PRETRAINED = {"finetune.ipynb": [("resnet18_ssl", None)], "lenet5_digits.ipynb": [],
              "nvidia_efficientnet.ipynb": [("nvidia_efficientnet_b0", None),
                                            ("nvidia_efficientnet_widese_b0", None)],
              "nvidia_gpunet.ipynb": [("nvidia_gpunet", "GPUNet-0")], "nvidia_resnext.ipynb": [("nvidia_resneXt", None)],
              "semi_supervised_resnet_resnext.ipynb": [("resnet18_ssl", None), ("resnet18_swsl", None)]}


@pytest.fixture(scope="module")
def nbformat():
    """nbformat (requirements-test.txt), or the test is skipped where it is not installed."""
    return pytest.importorskip("nbformat", reason="reading notebooks needs nbformat (requirements-test.txt)")


@pytest.fixture(scope="module")
def notebook_client():
    """nbclient's NotebookClient, or the test is skipped where nbclient is not installed."""
    return pytest.importorskip("nbclient", reason="running notebooks needs nbclient (requirements-test.txt)"
                               ).NotebookClient


@pytest.fixture
def mirror(request, tmp_path_factory):
    """A mirror directory with the pretrained files that the test's notebook loads, in upstream layouts.

    The notebooks' outputs are not compared with reference logits: the weights are seeded by torch
    (``torch_seeded_state_dict``), in a third of the time of the parity weights' NumPy draws (ResNeXt101's
    44 M numbers: 0.4 s instead of 1.2 s)."""
    manifest = json.loads((REPO / "weights_manifest.json").read_text())
    wanted = PRETRAINED[request.node.callspec.params["path"].name]
    entries = [e for e in manifest["entries"] if e["default"] and (e["entrypoint"], e.get("model_type")) in wanted]
    states = {e["id"]: torch_seeded_state_dict([(key, shape) for key, shape, _ in
                                                parity_fixture(fixture_name(e))["state_dict"]]) for e in entries}
    directory = tmp_path_factory.mktemp("mirror")
    yield write_mirror(directory, list(states), states), directory
    remove_big_files(directory)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_stored_notebook_has_no_outputs(path, nbformat):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not stripped"


def _with_overrides(nbformat, notebook, overrides):
    """``notebook`` with a cell after its "parameters" cell that sets ``overrides``, each one of its parameters."""
    index = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    for name in overrides:
        assert re.search(rf"^{name} = ", notebook.cells[index].source, re.MULTILINE), f"no parameter {name}"
    source = "\n".join(f"{name} = {value}" for name, value in overrides.items())
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return notebook


def _inductor_dirs() -> tuple[Path, Path]:
    """The Inductor cache directory of this process's (and the suite's) compiles, and Inductor's directory under
    this process's temporary directory, where torch keeps its precompiled C++ headers (``precompiled_headers``)
    whatever TORCHINDUCTOR_CACHE_DIR says; they are one directory unless TORCHINDUCTOR_CACHE_DIR is set."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    temporary = Path(default_cache_dir())
    return Path(os.environ.get("TORCHINDUCTOR_CACHE_DIR") or temporary).absolute(), temporary


def _cpu_seconds() -> float:
    """CPU time (user + sys) of this process and of its finished child processes (a notebook's kernel)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.mark.start_first
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_end_to_end(path, nbformat, notebook_client, mirror, tmp_path, monkeypatch):
    manifest, mirror_directory = mirror
    inductor_cache_dir, inductor_temporary_dir = _inductor_dirs()  # before TMPDIR changes
    for name, value in {"CONVNETS_HUB_REPO": str(REPO), "CONVNETS_HUB_SOURCE": "local",
                        "CONVNETS_HUB_IMAGES": ",".join(map(str, IMAGES)), "CONVNETS_HUB_MANIFEST": str(manifest),
                        "CONVNETS_HUB_MIRROR": str(mirror_directory), "CONVNETS_HUB_OFFLINE": "1",
                        "TORCH_HOME": str(tmp_path / "torch"),
                        # the kernel's temporary files (finetune.ipynb's 215 MB run folder) go with the test
                        "TMPDIR": str(tmp_path / "tmp"),
                        # but Inductor's cache stays the suite's (it defaults to TMPDIR's): into an empty one,
                        # Inductor first compiles its probes of the CPU's vector instructions (6-13 s CPU)
                        "TORCHINDUCTOR_CACHE_DIR": str(inductor_cache_dir),
                        "MPLBACKEND": "Agg"}.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "tmp").mkdir()
    # Inductor's precompiled C++ headers stay the suite's too: torch keeps them under TMPDIR whatever
    # TORCHINDUCTOR_CACHE_DIR says, and nvidia_efficientnet.ipynb's kernel built a 150 MB one anew (~8 s CPU)
    inductor_temporary_dir.mkdir(parents=True, exist_ok=True)
    (tmp_path / "tmp" / inductor_temporary_dir.name).symlink_to(inductor_temporary_dir, target_is_directory=True)
    notebook = nbformat.read(path, as_version=4)
    if path.name in OVERRIDES:
        notebook = _with_overrides(nbformat, notebook, OVERRIDES[path.name])
    start, cpu_start = time.monotonic(), _cpu_seconds()
    notebook_client(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"{path.name}: {time.monotonic() - start:.1f} s wall, {_cpu_seconds() - cpu_start:.1f} s CPU")
    outputs = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "Traceback" not in outputs
    # optimize=True falls back to the eager model with this warning where torch.compile fails
    assert "CompileUnavailableWarning" not in outputs
    if path.name in MIN_ACCURACY:
        (accuracy,) = re.findall(r"test accuracy: ([\d.]+) %", outputs)
        assert float(accuracy) >= MIN_ACCURACY[path.name], outputs
    assert {p.name for p in tmp_path.iterdir()} <= {"torch", "tmp"}, "a notebook wrote into its working directory"
    assert not list((tmp_path / "tmp").rglob("*.gch")), "the kernel's Inductor built precompiled headers of its own"
    shutil.rmtree(tmp_path / "tmp")
