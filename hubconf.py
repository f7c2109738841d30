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


# One entrypoint per model of models/registry.py and per alias (nvidia_resneXt, ..., lenet5); the
# entrypoints with variants and NVIDIA's type= dispatcher are written out below.
globals().update(_import("models.hub").registry_entrypoints())


def nvidia_gpunet(pretrained=True, progress=True, weights=None, model_type="GPUNet-0", model_math="fp32", **kwargs):
    return _import("models.factory").create_model(
        "nvidia_gpunet", pretrained=pretrained, progress=progress, weights=weights, model_type=model_type,
        model_math=model_math, **kwargs)


def nvidia_efficientnet(type="efficientnet-b0", pretrained=True, **kwargs):
    return _import("models.factory").create_model(
        _import("models.archs.efficientnet_types").entrypoint_of_type(type), pretrained=pretrained, **kwargs)


nvidia_gpunet.__doc__ = _import("models.docs").entrypoint_doc("nvidia_gpunet")
nvidia_efficientnet.__doc__ = _import("models.docs").entrypoint_doc("nvidia_efficientnet")


def nvidia_convnets_processing_utils(**kwargs):
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
    return _import("processing").ConvNetsProcessingUtils(**kwargs)


nvidia_convnets_processing_utils.__doc__ = nvidia_convnets_processing_utils.__doc__.replace(
    "{repo}", _import("models.repository").GITHUB_REPO)
