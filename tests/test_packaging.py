"""``pip install .``: the package ``convnets_hub`` (never a top-level ``models``) with the ``convnets-hub`` command,
equivalent to ``python3 -m models`` from any directory; the extras are the requirements files."""

import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile

import pytest
from conftest import REPO
from convnets_hub.models.release import VERSION

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirements(name: str) -> list[str]:
    """The requirements of a requirements file, its ``-r`` includes expanded."""
    lines = []
    for line in (REPO / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("-r "):
            lines += _requirements(line[3:].strip())
        elif line and not line.startswith("#"):
            lines.append(line)
    return lines


def test_the_extras_are_the_requirements_files():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {name: sorted(values) for name, values in extras.items()} == {
        name: sorted(_requirements(f"requirements-{name}.txt")) for name in ("batch", "export", "deploy")}


def test_every_package_of_the_checkout_is_listed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {"convnets_hub." + ".".join(path.parent.relative_to(REPO).parts)
             for top in ("models", "processing") for path in (REPO / top).rglob("__init__.py")}
    assert listed == found | {"convnets_hub"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from the checkout's tracked files, installed into a fresh venv (with this Python's
    packages: nothing is downloaded)."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for name in files:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(work / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (work / "dist").glob("*.whl")
    environment = work / "venv"
    venv.create(environment, system_site_packages=True, with_pip=False)
    python = environment / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    return wheel, environment


def test_the_wheel_holds_convnets_hub_and_no_top_level_models(installed):
    wheel, _ = installed
    assert wheel.name.startswith(f"convnets_hub-{VERSION}-")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"convnets_hub", f"convnets_hub-{VERSION}.dist-info"}
    assert {"convnets_hub/hubconf.py", "convnets_hub/weights_manifest.json", "convnets_hub/models/cli/__init__.py",
            "convnets_hub/processing/__init__.py", "convnets_hub/models/archs/gpunet/configs/0.65ms.json"} <= set(names)
    assert not [name for name in names if "/tests/" in name or name.startswith("convnets_hub/tests")]


def test_the_console_command_is_python3_m_models_from_any_directory(installed, tmp_path):
    _, environment = installed
    (tmp_path / "models").mkdir()  # another project's `models` in the current directory changes nothing
    (tmp_path / "models" / "__init__.py").write_text("raise ImportError('the wrong models')\n")
    env = {**os.environ, "CONVNETS_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    command = str(environment / "bin" / "convnets-hub")
    version = subprocess.run([command, "--version"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=120, check=False)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"convnets-hub {VERSION} (torch ") and "site-packages/convnets_hub" in version.stdout
    listed = subprocess.run([command, "list"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    clone = subprocess.run([sys.executable, "-m", "models", "list"], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=120, check=False)
    assert listed.returncode == 0 and listed.stdout == clone.stdout, listed.stderr
    mistake = subprocess.run([command, "help", "resnet18_sl"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120, check=False)
    assert mistake.returncode == 2 and "did you mean 'resnet18_ssl'" in mistake.stderr
