"""Importing hubconf (what ``torch.hub.list`` and ``torch.hub.help`` do) stays cheap.

timm, torchvision's model zoo and matplotlib are imported only when a model is built or a figure
drawn, so listing the entrypoints costs little more than ``import torch``.
"""

import json
import os
import subprocess
import sys

HEAVY = ("matplotlib", "timm", "torchvision.models")


def run_python(script: str, cwd, env_extra: dict[str, str]) -> dict:
    env = {**os.environ, **env_extra}
    result = subprocess.run([sys.executable, "-c", script], check=False, cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_listing_imports_no_timm_torchvision_models_or_matplotlib_and_docs_are_complete(repo_dir, tmp_path):
    script = f"""
import json, sys, time, torch
# What torch.hub.list and torch.hub.help do once they have the repository (they take only GitHub names).
start = time.perf_counter()
hubconf = torch.hub._import_module("hubconf", {str(repo_dir / "hubconf.py")!r})
seconds = time.perf_counter() - start
names = [name for name in dir(hubconf) if callable(getattr(hubconf, name)) and not name.startswith("_")]
docs = {{name: getattr(hubconf, name).__doc__ for name in names}}
listed = [m for m in {HEAVY!r} if m in sys.modules]
utils = torch.hub.load({str(repo_dir)!r}, "nvidia_convnets_processing_utils", source="local", trust_repo=True)
utils.pick_n_best(torch.softmax(torch.randn(1, 1000), 1), verbose=False)
print(json.dumps({{"names": names, "docs": docs, "loaded": listed, "matplotlib": "matplotlib" in sys.modules,
                  "seconds": seconds}}))
"""
    found = run_python(script, tmp_path, {"TORCH_HOME": str(tmp_path / "torch")})
    assert found["loaded"] == []
    assert found["seconds"] < 1.0, "importing hubconf takes at most a second beyond import torch (0.02 s on 2 cores)"
    assert not found["matplotlib"], "the processing utilities imported matplotlib before show()"
    assert "nvidia_resneXt" in found["names"] and "nvidia_gpunet" in found["names"]
    for name, doc in found["docs"].items():
        if name != "nvidia_convnets_processing_utils":
            assert "Pretrained weights" in doc and "Args:" in doc and "model_math" in doc, name
    assert "GPUNet-D2" in found["docs"]["nvidia_gpunet"] and "top-1 80.43 %" in found["docs"]["nvidia_resneXt"]


def test_building_a_model_imports_what_it_needs(repo_dir, tmp_path):
    script = f"""
import json, sys, torch
model = torch.hub.load({str(repo_dir)!r}, "resnet18_ssl", source="local", trust_repo=True, pretrained=False)
vgg = torch.hub.load({str(repo_dir)!r}, "vgg16", source="local", trust_repo=True, pretrained=False)
print(json.dumps({{"loaded": [m for m in {HEAVY!r} if m in sys.modules], "classes": model.fc.out_features}}))
"""
    found = run_python(script, tmp_path, {"TORCH_HOME": str(tmp_path / "torch")})
    assert found == {"loaded": ["timm", "torchvision.models"], "classes": 1000}
