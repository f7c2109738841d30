"""The model entrypoints that hubconf exports, derived from the registry: one per spec and alias."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .docs import entrypoint_doc
from .registry import SPECS

if TYPE_CHECKING:
    from torch import nn


def model_entrypoint(name: str, pretrained_default: bool) -> Callable[..., nn.Module]:
    """The hub entrypoint ``name(pretrained=pretrained_default, progress=True, weights=None, **kwargs)``
    of a registry spec or alias, documented as :func:`.docs.entrypoint_doc` says."""

    # Unannotated, so that its signature reads as every hubconf entrypoint's always has.
    def entrypoint(pretrained=pretrained_default, progress=True, weights=None, **kwargs):
        # Imported at the first call: listing the entrypoints imports no model code.
        from .factory import create_model

        return create_model(name, pretrained=pretrained, progress=progress, weights=weights, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__doc__ = entrypoint_doc(name)
    return entrypoint


def registry_entrypoints() -> dict[str, Callable[..., nn.Module]]:
    """Every spec that serves one model, and its aliases, as hub entrypoints, in registry order.

    Specs with variants (``canonical_type``) are written by hand in hubconf.py, as its dispatchers are.
    """
    return {name: model_entrypoint(name, spec.pretrained_default)
            for target, spec in SPECS.items() if spec.canonical_type is None
            for name in (target, *spec.aliases)}
