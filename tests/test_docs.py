"""README, docstrings and notebooks: one repository name, Colab badges, the manifest's table."""

import inspect
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from command_line import run_cli
from conftest import REPO
from convnets_hub.models import errors as model_errors
from convnets_hub.models.docs import entrypoints_table, render_readme
from convnets_hub.models.registry import SPECS
from convnets_hub.models.repository import GITHUB_REPO, colab_badge, colab_url
from convnets_hub.models.weights.manifest import load_manifest
from convnets_hub.processing import errors as processing_errors

README = (REPO / "README.md").read_text()
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
HUB_CALL = re.compile(r"torch\.hub\.(?:load|help|list)\(\s*[\"']([^\"']+)[\"']")


def _notebook_text(path) -> str:
    return "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])


def test_readme_docstrings_and_notebooks_name_the_one_repository(hubconf):
    docstrings = [getattr(hubconf, name).__doc__ for name in dir(hubconf) if not name.startswith("_")
                  and callable(getattr(hubconf, name)) and getattr(hubconf, name).__doc__]
    texts = {"README.md": README, **{p.name: _notebook_text(p) for p in NOTEBOOKS},
             **{f"docstring {i}": doc for i, doc in enumerate(docstrings)}}
    named = {name: set(HUB_CALL.findall(text)) - {".", "REPO", "str(repo_dir)"} for name, text in texts.items()}
    assert set().union(*named.values()) == {GITHUB_REPO}, named
    assert not any("<owner>" in text for text in texts.values())
    for path in NOTEBOOKS:
        assert f'os.environ.get("CONVNETS_HUB_REPO", "{GITHUB_REPO}")' in _notebook_text(path), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_has_its_colab_badge_in_readme_and_its_first_cell(path):
    assert colab_url(path.name) == f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/main/notebooks/{path.name}"
    first = json.loads(path.read_text())["cells"][0]
    assert first["cell_type"] == "markdown" and colab_badge(path.name) in "".join(first["source"])
    assert colab_badge(path.name) in README


def test_readme_table_is_the_one_the_manifest_makes():
    assert render_readme(README) == README, "run python3 -m models readme --write"


def test_the_table_follows_the_manifest_alone(tmp_path):
    """A new entry (as the EfficientNets will be) gets its row with nothing but its manifest fields."""
    raw = json.loads((REPO / "weights_manifest.json").read_text())
    new = {**raw["entries"][0], "id": "nvidia_resnet50.new_recipe", "default": False, "num_params": None,
           "metrics": {"imagenet_top1": 79.25, "source": "test"}, "license": "a new license"}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({**raw, "entries": [*raw["entries"], new]}))
    table = entrypoints_table(load_manifest(path))
    row = next(line for line in table.splitlines() if "`nvidia_resnet50.new_recipe`" in line)
    assert row == ('| `nvidia_resnet50` (`weights="nvidia_resnet50.new_recipe"`) | `nvidia_resnet50.new_recipe` '
                   "| 224x224, bilinear, crop 0.875 | – | 79.25 / – | a new license |")
    assert '| `nvidia_resnet50` (`weights="nvidia_resnet50.ngc_amp_20.06.0"`, default) |' in table
    assert len(table.splitlines()) == 2 + len(raw["entries"]) + 1 + len(set(SPECS) - {e["entrypoint"]
                                                                                    for e in raw["entries"]})


def test_readme_command_checks_and_writes_the_table(tmp_path):
    assert run_cli("readme").returncode == 0
    raw = json.loads((REPO / "weights_manifest.json").read_text())
    raw["entries"][0]["metrics"]["imagenet_top1"] = 12.5
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(raw))
    result = run_cli("readme", env={"CONVNETS_HUB_MANIFEST": str(manifest)})
    assert result.returncode == 1 and "--write" in result.stdout


@pytest.mark.parametrize("entry", load_manifest(REPO / "weights_manifest.json").entries, ids=lambda e: e.id)
def test_num_params_is_the_models_own(entry):
    """The manifest's parameter count (shown in README and help) is that of the model it loads into."""
    from convnets_hub.models.builder import pretrained_kwargs

    spec = SPECS[entry.entrypoint]
    options = {"model_type": entry.model_type} if entry.model_type else {}
    with torch.device("meta"):
        model = spec.build(**pretrained_kwargs(entry.entrypoint, spec, entry, options))
    if spec.to_served_model is not None:
        spec.to_served_model(model, {"num_classes": entry.num_classes})
    assert entry.num_params == sum(p.numel() for p in model.parameters())


def _bash_lines() -> list[str]:
    """The lines of README's bash blocks."""
    return [line for block in re.findall(r"```bash\n(.*?)```", README, re.DOTALL) for line in block.splitlines()]


def test_readme_first_example_has_an_offline_twin_that_runs_offline(tmp_path):
    lines = _bash_lines()
    online = next(line for line in lines if "'nvidia_resneXt', source='local')" in line)
    offline = lines[lines.index(online) + 1]
    assert online.split(" && ", 1)[1].replace("source='local')", "source='local', pretrained=False)", 1) == offline
    assert README.index(online) < README.index(offline) < README.index("## The main jobs, one example each")
    assert len(README[:README.index(online)].splitlines()) < 25, "the first screen shows the first example"
    command = offline.replace("python3 ", f"{sys.executable} ", 1)  # this interpreter, whatever PATH says
    result = subprocess.run(["bash", "-c", command], check=False, cwd=REPO, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "CONVNETS_HUB_OFFLINE": "1", "TORCH_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sample 0: [(") and not any(tmp_path.rglob("*.pth*"))


def test_readme_shows_the_offline_way_of_export_and_smoke():
    exports = [line for line in _bash_lines() if line.startswith("python3 -m models export ")]
    assert any("--no-pretrained" in line for line in exports)
    smoke = README[README.index("## Smoke test and CI"):README.index("## Deploying")]
    assert "`python3 -m models smoke --no-pretrained`" in smoke


def _requirements(name: str) -> list[str]:
    lines = (REPO / name).read_text().splitlines()
    return [included for line in lines
            for included in (_requirements(line.split()[1]) if line.startswith("-r ") else [line])]


def test_readme_puts_the_cpu_only_install_first_and_says_what_the_extras_change():
    assert README.index("--index-url https://download.pytorch.org/whl/cpu") \
        < README.index("python3 -m pip install -r requirements.txt")
    assert "**`requirements-deploy.txt` pins numpy below 2**" in README
    assert any(line.startswith("numpy") and "<2" in line for line in _requirements("requirements-deploy.txt"))
    assert not any(line.startswith("numpy") for line in _requirements("requirements-export.txt")), \
        "export alone leaves numpy as it is"


def test_readme_error_table_names_every_exception_with_its_built_in_base():
    table = README[README.index("## Errors and exit codes"):README.index("## Entrypoints")]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    classes = [value for module in (model_errors, processing_errors) for value in vars(module).values()
               if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == module.__name__]
    assert len(classes) >= 14
    for cls in classes:
        row = next((row for row in rows if f"`{cls.__name__}`" in row), None)
        assert row is not None, f"README's error table lacks {cls.__name__}"
        base = next(base for base in cls.__mro__ if base.__module__ == "builtins")
        assert f"| `{base.__name__}` |" in row, (cls.__name__, row)
    exit_codes = {row.rsplit("|", 2)[1].strip(): row for row in rows[2:]}
    assert "some inputs could not be classified" in exit_codes["3"] and "no input" in exit_codes["4"]
