"""torch.hub entrypoints of convnets-hub.

NVIDIA's ResNet-50 v1.5, ResNeXt101-32x4d, SE-ResNeXt101-32x4d, EfficientNets and GPUNets, Facebook's
semi-supervised ResNet/ResNeXt models and the classic CNNs, with pretrained weights resolved
from ``weights_manifest.json``.

Only entrypoints are public here: everything else starts with an underscore, so that
``torch.hub.list`` shows nothing but models and utilities. Our own packages (``models``,
``processing``) are imported under a private parent package (``models/mount.py``), never as
top-level ``models``, so they coexist with other hub repositories that ship packages of the same names.
"""

import importlib.util as _importlib_util
import sys as _sys
from pathlib import Path as _Path

dependencies = ["torch", "torchvision", "timm", "requests", "tqdm", "PIL", "filelock", "numpy", "matplotlib"]


def _mount():
    """``models/mount.py``, loaded by its path (the package that it mounts does not exist yet) and kept in
    ``sys.modules`` under that path, where a clone's ``import models`` finds it too."""
    path = str(_Path(__file__).resolve().parent / "models" / "mount.py")
    if path not in _sys.modules:
        spec = _importlib_util.spec_from_file_location(path, path)
        _sys.modules[path] = _importlib_util.module_from_spec(spec)
        spec.loader.exec_module(_sys.modules[path])
    return _sys.modules[path]


# Every entrypoint (one per model of models/registry.py and per alias, NVIDIA's type= dispatcher, the
# processing utilities) is made by the library; hubconf only exposes them.
globals().update(_mount().import_module("models.hub").entrypoints())
