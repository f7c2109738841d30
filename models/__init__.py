"""The library of convnets-hub: architectures, weights, runtime, batch classification, deployment, CLI.

It is always imported as ``<private package>.models`` (``convnets_hub.models``), the package that
``hubconf.py`` mounts over this checkout so that our ``models`` never collides with another hub
repository's. ``python3 -m models`` and ``import models`` from a clone first import this file as a
top-level ``models``: it then mounts that package and makes ``models`` the very same module, so that
every module, and every exception class, exists once whatever the way in.
"""

if __name__ == "models":
    import runpy as _runpy
    import sys as _sys
    from pathlib import Path as _Path

    _sys.modules[__name__] = _runpy.run_path(str(_Path(__file__).resolve().parents[1] / "hubconf.py"))[
        "_import"]("models")
