"""Importing hubconf (what ``torch.hub.list`` and ``torch.hub.help`` do) stays cheap.

timm, torchvision's model zoo and matplotlib are imported only when a model is built or a figure
drawn, so listing the entrypoints costs little more than ``import torch``.
"""

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("matplotlib", "timm", "torchvision.models")


def run_python(script: str, cwd, env_extra: dict[str, str]) -> dict:
    env = {**os.environ, **env_extra}
    result = subprocess.run([sys.executable, "-c", script], check=False, cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def found(repo_dir, tmp_path_factory) -> dict:
    """One fresh interpreter (a process costs seconds of imports) lists the entrypoints, then builds two
    models; it prints what it had imported after each step."""
    directory = tmp_path_factory.mktemp("import_cost")
    script = f"""
import json, sys, torch
# What torch.hub.list and torch.hub.help do once they have the repository (they take only GitHub names).
before = set(sys.modules)
hubconf = torch.hub._import_module("hubconf", {str(repo_dir / "hubconf.py")!r})
imported = sorted(set(sys.modules) - before)
names = [name for name in dir(hubconf) if callable(getattr(hubconf, name)) and not name.startswith("_")]
docs = {{name: getattr(hubconf, name).__doc__ for name in names}}
listed = [m for m in {HEAVY!r} if m in sys.modules]
utils = torch.hub.load({str(repo_dir)!r}, "nvidia_convnets_processing_utils", source="local", trust_repo=True)
utils.pick_n_best(torch.softmax(torch.randn(1, 1000), 1), verbose=False)
listing = {{"names": names, "docs": docs, "loaded": listed, "matplotlib": "matplotlib" in sys.modules,
           "imported": imported, "stdlib": sorted(sys.stdlib_module_names)}}
with torch.device("meta"):  # what a build imports, without initialising vgg16's 138 M parameters
    model = torch.hub.load({str(repo_dir)!r}, "resnet18_ssl", source="local", trust_repo=True, pretrained=False)
    vgg = torch.hub.load({str(repo_dir)!r}, "vgg16", source="local", trust_repo=True, pretrained=False)
building = {{"loaded": [m for m in {HEAVY!r} if m in sys.modules], "classes": model.fc.out_features}}
print(json.dumps({{"listing": listing, "building": building}}))
"""
    return run_python(script, directory, {"TORCH_HOME": str(directory / "torch")})


@pytest.mark.xdist_group("import_cost")  # the tests of one process, on one pytest-xdist worker
def test_listing_imports_no_timm_torchvision_models_or_matplotlib_and_docs_are_complete(repo_dir, found):
    found = found["listing"]
    assert found["loaded"] == []
    mount = str(repo_dir / "models" / "mount.py")  # models/mount.py, kept in sys.modules under its path
    assert mount in found["imported"] and "convnets_hub.models.mount" in found["imported"]
    beyond_ours = [name for name in found["imported"]
                   if name.split(".")[0] not in {"convnets_hub", *found["stdlib"]} and name != mount]
    assert beyond_ours == [], "importing hubconf imports no package beyond torch and the standard library"
    assert "convnets_hub.models.registry" in found["imported"]  # the check sees what hubconf imports
    assert not found["matplotlib"], "the processing utilities imported matplotlib before show()"
    assert "nvidia_resneXt" in found["names"] and "nvidia_gpunet" in found["names"]
    for name, doc in found["docs"].items():
        if name != "nvidia_convnets_processing_utils":
            assert "Pretrained weights" in doc and "Args:" in doc and "model_math" in doc, name
    assert "GPUNet-D2" in found["docs"]["nvidia_gpunet"] and "top-1 80.43 %" in found["docs"]["nvidia_resneXt"]


@pytest.mark.xdist_group("import_cost")
def test_building_a_model_imports_what_it_needs(found):
    """After the listing (which imported none of them), building models imports timm and torchvision's models."""
    assert found["building"] == {"loaded": ["timm", "torchvision.models"], "classes": 1000}
