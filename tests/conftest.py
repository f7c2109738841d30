"""Shared test setup: our packages are imported the way torch.hub imports them.

``hubconf`` is loaded from the checkout, which registers the private parent package
``convnets_hub``; test modules then import ``convnets_hub.models`` / ``convnets_hub.processing``.
The repository root is never put on ``sys.path``, so nothing here hides a collision with an
unrelated top-level ``models`` package.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"


def _load_hubconf():
    spec = importlib.util.spec_from_file_location("hubconf", REPO / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HUBCONF = _load_hubconf()
HUBCONF._package()  # registers ``convnets_hub`` even before any entrypoint imports through it
sys.modules.setdefault("convnets_hub_hubconf", HUBCONF)


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def hubconf():
    return HUBCONF
