"""The library of convnets-hub: architectures, weights, runtime, batch classification, deployment, CLI.

It is always imported as ``<private package>.models`` (``convnets_hub.models``), the package that
``models/mount.py`` mounts over this checkout so that our ``models`` never collides with another hub
repository's. ``python3 -m models`` and ``import models`` from a clone first import this file as a
top-level ``models``: it then mounts that package and makes ``models`` the very same module, so that
every module, and every exception class, exists once whatever the way in.
"""

if __name__ == "models":
    import importlib.util as _importlib_util
    import sys as _sys
    from pathlib import Path as _Path

    # mount.py by its path, as hubconf.py loads it (the same entry of sys.modules: one module).
    _mount = str(_Path(__file__).resolve().with_name("mount.py"))
    if _mount not in _sys.modules:
        _spec = _importlib_util.spec_from_file_location(_mount, _mount)
        _sys.modules[_mount] = _importlib_util.module_from_spec(_spec)
        _spec.loader.exec_module(_sys.modules[_mount])
    _sys.modules[__name__] = _sys.modules[_mount].import_module("models")
