"""torch.hub entrypoints of convnets-hub.

NVIDIA's ResNet-50 v1.5, ResNeXt101-32x4d, SE-ResNeXt101-32x4d, EfficientNets and GPUNets, Facebook's
semi-supervised ResNet/ResNeXt models and the classic CNNs, with pretrained weights resolved
from ``weights_manifest.json``.

Only entrypoints are public here: everything else starts with an underscore, so that
``torch.hub.list`` shows nothing but models and utilities. Our own packages (``models``,
``processing``) are imported under a private parent package, never as top-level ``models``,
so they coexist with other hub repositories that ship packages of the same names.
"""

import hashlib as _hashlib
import importlib as _importlib
import importlib.machinery as _machinery
import importlib.util as _importlib_util
import sys as _sys
from pathlib import Path as _Path

dependencies = ["torch", "torchvision", "timm", "requests", "tqdm", "PIL", "filelock", "numpy", "matplotlib"]

_ROOT = _Path(__file__).resolve().parent


def _package():
    """The private parent package under which this checkout's ``models`` and ``processing`` live."""
    name = "convnets_hub"
    existing = _sys.modules.get(name)
    if existing is not None and list(getattr(existing, "__path__", [])) != [str(_ROOT)]:
        name = f"convnets_hub_{_hashlib.sha1(str(_ROOT).encode()).hexdigest()[:10]}"
        existing = _sys.modules.get(name)
    if existing is None:
        spec = _machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(_ROOT)]
        existing = _importlib_util.module_from_spec(spec)
        _sys.modules[name] = existing
    return existing


def _import(module: str):
    return _importlib.import_module(f"{_package().__name__}.{module}")


# Every entrypoint (one per model of models/registry.py and per alias, NVIDIA's type= dispatcher, the
# processing utilities) is made by the library; hubconf only exposes them.
globals().update(_import("models.hub").entrypoints())
