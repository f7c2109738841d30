"""Every hub entrypoint, made from the registry, and found by name.

hubconf.py only exposes :func:`entrypoints`; the command line, the batch engines, fine-tuning and
the benchmarks build models through :func:`create`, which takes the path that the entrypoints take.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .docs import entrypoint_doc
from .errors import InvalidArgumentError, UnknownEntrypointError
from .registry import DISPATCHERS, SPECS
from .repository import GITHUB_REPO

if TYPE_CHECKING:
    from torch import nn

    from ..processing import ConvNetsProcessingUtils

PROCESSING_UTILS = "nvidia_convnets_processing_utils"
"""The one entrypoint that returns no model."""


def _model_entrypoint(name: str, pretrained_default: bool) -> Callable[..., nn.Module]:
    # Unannotated, so that its signature reads as every hub entrypoint's always has.
    def entrypoint(pretrained=pretrained_default, progress=True, weights=None, **kwargs):
        # Imported at the first call (listing the entrypoints imports no model code); called from here, so
        # that warnings point at the user's line.
        from .factory import create_model

        return create_model(name, pretrained=pretrained, progress=progress, weights=weights, **kwargs)

    return entrypoint


def _variants_entrypoint(name: str, default_type: str) -> Callable[..., nn.Module]:
    """An entrypoint serving several variants through ``model_type=`` (NVIDIA's GPUNet signature)."""

    def entrypoint(pretrained=True, progress=True, weights=None, model_type=default_type, model_math="fp32",
                   **kwargs):
        from .factory import create_model

        return create_model(name, pretrained=pretrained, progress=progress, weights=weights,
                            model_type=model_type, model_math=model_math, **kwargs)

    return entrypoint


def _dispatcher_entrypoint(name: str, default_type: str) -> Callable[..., nn.Module]:
    """NVIDIA's ``type=`` entrypoint: the model of the entrypoint serving that type."""

    def entrypoint(type=default_type, pretrained=True, progress=True, weights=None, **kwargs):
        from .factory import create_model

        return create_model(DISPATCHERS[name].target(type), pretrained=pretrained, progress=progress,
                            weights=weights, **kwargs)

    return entrypoint


def nvidia_convnets_processing_utils(**kwargs: Any) -> ConvNetsProcessingUtils:
    """Image preprocessing and prediction decoding, drop-in compatible with NVIDIA's utilities.

    Methods of the returned object:
        prepare_input_from_uri(uri, cuda=False, model=None, config=None) -> 1 x 3 x H x W float32
            uri: http(s) URL, path, bytes, binary file object or PIL image. Without model/config:
            NVIDIA's pipeline (shorter side 256, bilinear, center crop 224, ImageNet mean/std);
            with model= (anything with pretrained_cfg) or config=: that model's input size,
            crop_pct, interpolation, mean and std (GPUNet-0: 320 px, bicubic, no crop margin).
        prepare_inputs(uris, cuda=False, model=None, config=None, workers=None, skip_errors=False)
            -> N x 3 x H x W, decoded in parallel threads.
        pick_n_best(predictions, n=5, labels=None, verbose=True, model=None) -> [[(label, "xx.x%"), ...], ...]
            NVIDIA's output format; the class names are labels=, else model='s own (a fine-tuned
            checkpoint's), else ImageNet-1k's, bundled, never downloaded.
        show(images_or_uris, results) -> matplotlib Figure of thumbnails with their top-k bars.

    Keyword arguments: connect_timeout (10 s), read_timeout (30 s), total_timeout (120 s) for
    URLs, max_bytes (64 MiB) for image files and URLs, max_pixels (120 M) against decompression
    bombs, workers (decoding threads).
    Every bad input raises a ValueError subclass naming the input (URL, path or index) and the cause.

    Example:
        utils = torch.hub.load("{repo}", "nvidia_convnets_processing_utils")
        batch = torch.cat([utils.prepare_input_from_uri(uri) for uri in uris])
        results = utils.pick_n_best(predictions=torch.softmax(model(batch), dim=1), n=5)
    """
    from ..processing import ConvNetsProcessingUtils

    return ConvNetsProcessingUtils(**kwargs)


nvidia_convnets_processing_utils.__doc__ = nvidia_convnets_processing_utils.__doc__.replace("{repo}", GITHUB_REPO)


@functools.cache
def entrypoints() -> dict[str, Callable[..., Any]]:
    """Every hub entrypoint by name, in the order ``torch.hub.list`` shows them: each spec of the
    registry and its aliases, the ``type=`` dispatchers, then the processing utilities."""
    made: dict[str, Callable[..., Any]] = {}
    for target, spec in SPECS.items():
        for name in (target, *spec.aliases):
            made[name] = (_variants_entrypoint(name, spec.default_type) if spec.variant_keyword
                          else _model_entrypoint(name, spec.pretrained_default))
    for name, dispatcher in DISPATCHERS.items():
        made[name] = _dispatcher_entrypoint(name, dispatcher.default_type)
    for name, function in made.items():
        function.__name__ = function.__qualname__ = name
        function.__doc__ = entrypoint_doc(name)
    made[PROCESSING_UTILS] = nvidia_convnets_processing_utils
    return made


def entrypoint_names() -> list[str]:
    """Every entrypoint (what ``torch.hub.list`` shows), in hubconf's order."""
    return list(entrypoints())


def model_entrypoint_names() -> list[str]:
    """The entrypoints that return a model (all but the processing utilities)."""
    return [name for name in entrypoints() if name != PROCESSING_UTILS]


def entrypoint(name: str) -> Callable[..., Any]:
    """The model entrypoint ``name``; an UnknownEntrypointError lists the valid ones."""
    if name not in model_entrypoint_names():
        raise UnknownEntrypointError(f"{name!r} is not a model entrypoint; valid: "
                                     f"{', '.join(model_entrypoint_names())}")
    return entrypoints()[name]


def variant_keyword(name: str) -> str | None:
    """The keyword through which entrypoint ``name`` takes its variant (``model_type``, NVIDIA's ``type``),
    None where it serves one model."""
    if name in DISPATCHERS:
        return DISPATCHERS[name].keyword
    spec = SPECS.get(name) or next((spec for spec in SPECS.values() if name in spec.aliases), None)
    return spec.variant_keyword if spec is not None else None


def create(name: str, *, model_type: str | None = None, **kwargs: Any) -> nn.Module:
    """The model of entrypoint ``name`` (variant ``model_type`` where it serves several), built exactly as
    ``torch.hub.load(repo, name, **kwargs)`` builds it."""
    function = entrypoint(name)
    if model_type is not None:
        keyword = variant_keyword(name)
        if keyword is None:
            raise InvalidArgumentError(f"model_type={model_type!r}: {name} has no variants")
        kwargs[keyword] = model_type
    return function(**kwargs)
