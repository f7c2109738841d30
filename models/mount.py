"""The mount: the private parent package under which a checkout's ``models`` and ``processing`` are imported.

A checkout is imported as ``convnets_hub.models`` / ``convnets_hub.processing``, never as a top-level
``models``, so that it coexists with other hub repositories that ship packages of the same names (and a
second checkout of ours takes ``convnets_hub_<sha1 of its root>``). Everything that needs the package
before it exists mounts it here: ``hubconf.py`` (torch.hub), ``models/__init__.py`` (``python3 -m models``
and ``import models`` from a clone) and the Ray engine's workers (:func:`worker_setup_hook`).

The first two load this file by its path, before any package holds it; so it uses the standard library
only, and lives in ``sys.modules`` under its path (:data:`KEY`), where every way in finds it, and under
``<package>.models.mount`` once it has mounted its checkout: one module, whatever the way in.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from importlib.util import module_from_spec
from pathlib import Path
from types import ModuleType

BASE_NAME = "convnets_hub"
ROOT = Path(__file__).resolve().parents[1]
"""The checkout that this file belongs to."""
KEY = str(ROOT / "models" / "mount.py")
"""This module's entry in ``sys.modules`` whatever name it was first imported under: its file's path."""

sys.modules.setdefault(KEY, sys.modules[__name__])


def mount(root: Path = ROOT, name: str | None = None) -> ModuleType:
    """The package whose ``models`` and ``processing`` are those of the checkout ``root``, created on
    first use: ``convnets_hub``, or ``convnets_hub_<sha1 of root>`` where another checkout holds that
    name; ``name``: that name instead (a Ray worker takes its driver's)."""
    if name is None:
        name = BASE_NAME
        holder = sys.modules.get(name)
        if holder is not None and list(getattr(holder, "__path__", [])) != [str(root)]:
            name = f"{BASE_NAME}_{hashlib.sha1(str(root).encode()).hexdigest()[:10]}"
    package = sys.modules.get(name)
    if package is None:
        spec = ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(root)]
        package = module_from_spec(spec)
        sys.modules[name] = package
    this = sys.modules.get(__name__)  # None in a Ray worker, which runs a copy of this function
    if this is not None and root == ROOT:
        sys.modules.setdefault(f"{name}.models.mount", this)
    return package


def import_module(name: str) -> ModuleType:
    """This checkout's module ``name`` (``models.hub``), imported under its mounted package."""
    return importlib.import_module(f"{mount().__name__}.{name}")


def worker_setup_hook(package: str, root: Path | None = ROOT) -> Callable[[], None]:
    """Ray's ``worker_process_setup_hook``: a function that mounts ``package`` (the driver's name) over
    ``root`` in a worker before it unpickles anything of ours; ``root`` None: the worker's working
    directory, where Ray unpacks the checkout that it ships to a cluster. A worker cannot import this
    module before that mount: the function goes to it by value
    (``ray.cloudpickle.register_pickle_by_value`` on this module)."""

    def mount_convnets_hub() -> None:
        mount(Path.cwd() if root is None else root, package)

    return mount_convnets_hub
