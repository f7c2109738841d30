"""The version of convnets-hub: ``pyproject.toml`` reads it from here, ``python3 -m models --version`` prints it."""

from __future__ import annotations

from importlib import metadata

VERSION = "0.1.0"

_COMPANIONS = ("torch", "torchvision", "timm")


def version_line() -> str:
    """``convnets-hub 0.1.0 (torch 2.14.1, torchvision 0.29.1, timm 1.0.31) at <folder>``, without importing them."""
    installed = []
    for name in _COMPANIONS:
        try:
            installed.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            installed.append(f"{name} not installed")
    from .repository import REPO_ROOT

    return f"convnets-hub {VERSION} ({', '.join(installed)}) at {REPO_ROOT}"
