"""torch.hub entrypoints of convnets-hub.

NVIDIA's ResNet-50 v1.5, ResNeXt101-32x4d, SE-ResNeXt101-32x4d and GPUNets, Facebook's
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

dependencies = ["torch", "torchvision", "timm", "requests", "tqdm", "PIL", "filelock"]

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


def _model_entrypoint(name: str, summary: str):
    """A hub entrypoint ``name(pretrained=True, progress=True, weights=None, **kwargs)``."""

    def entrypoint(pretrained=True, progress=True, weights=None, **kwargs):
        return _import("models.hub").create_model(
            name, pretrained=pretrained, progress=progress, weights=weights, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__doc__ = _import("models.docs").entrypoint_doc(name, summary)
    return entrypoint


_NVIDIA_RESNEXT = """ResNeXt101-32x4d from NVIDIA Deep Learning Examples, with NVIDIA's NGC checkpoint.

ResNet-101 layout with grouped 3x3 convolutions (cardinality 32, bottleneck widths 128-1024),
trained on ImageNet-1k (1.28 M images, 1000 classes) by NVIDIA with mixed precision."""

nvidia_resneXt = _model_entrypoint("nvidia_resneXt", _NVIDIA_RESNEXT)
nvidia_resnext101_32x4d = _model_entrypoint("nvidia_resnext101_32x4d", _NVIDIA_RESNEXT)
nvidia_resnet50 = _model_entrypoint("nvidia_resnet50", """
ResNet-50 v1.5 from NVIDIA Deep Learning Examples, with NVIDIA's NGC checkpoint.

v1.5 puts the stride of each downsampling bottleneck on the 3x3 convolution (as torchvision
does); trained on ImageNet-1k by NVIDIA with mixed precision.""")
nvidia_se_resnext101_32x4d = _model_entrypoint("nvidia_se_resnext101_32x4d", """
SE-ResNeXt101-32x4d from NVIDIA Deep Learning Examples, with NVIDIA's NGC checkpoint.

ResNeXt101-32x4d with a squeeze-and-excitation gate (16 hidden channels) on every block
output; trained on ImageNet-1k by NVIDIA with mixed precision.""")

_SSL = """Semi-supervised {arch} of Facebook AI (Yalniz et al., 2019, arXiv:1905.00546).

Pretrained on YFCC100M with a teacher trained on ImageNet-1k, then fine-tuned on ImageNet-1k."""
_SWSL = """Semi-weakly supervised {arch} of Facebook AI (Yalniz et al., 2019, arXiv:1905.00546).

Pretrained on 940 M public images with hashtags, labelled by a teacher, then fine-tuned on
ImageNet-1k."""

resnet18_ssl = _model_entrypoint("resnet18_ssl", _SSL.format(arch="ResNet-18"))
resnet50_ssl = _model_entrypoint("resnet50_ssl", _SSL.format(arch="ResNet-50"))
resnext50_32x4d_ssl = _model_entrypoint("resnext50_32x4d_ssl", _SSL.format(arch="ResNeXt-50 32x4d"))
resnext101_32x4d_ssl = _model_entrypoint("resnext101_32x4d_ssl", _SSL.format(arch="ResNeXt-101 32x4d"))
resnext101_32x8d_ssl = _model_entrypoint("resnext101_32x8d_ssl", _SSL.format(arch="ResNeXt-101 32x8d"))
resnext101_32x16d_ssl = _model_entrypoint("resnext101_32x16d_ssl", _SSL.format(arch="ResNeXt-101 32x16d"))
resnet18_swsl = _model_entrypoint("resnet18_swsl", _SWSL.format(arch="ResNet-18"))
resnet50_swsl = _model_entrypoint("resnet50_swsl", _SWSL.format(arch="ResNet-50"))
resnext50_32x4d_swsl = _model_entrypoint("resnext50_32x4d_swsl", _SWSL.format(arch="ResNeXt-50 32x4d"))
resnext101_32x4d_swsl = _model_entrypoint("resnext101_32x4d_swsl", _SWSL.format(arch="ResNeXt-101 32x4d"))
resnext101_32x8d_swsl = _model_entrypoint("resnext101_32x8d_swsl", _SWSL.format(arch="ResNeXt-101 32x8d"))
resnext101_32x16d_swsl = _model_entrypoint("resnext101_32x16d_swsl", _SWSL.format(arch="ResNeXt-101 32x16d"))


def nvidia_gpunet(pretrained=True, progress=True, weights=None, model_type="GPUNet-0", model_math="fp32", **kwargs):
    return _import("models.hub").create_model(
        "nvidia_gpunet", pretrained=pretrained, progress=progress, weights=weights, model_type=model_type,
        model_math=model_math, **kwargs)


nvidia_gpunet.__doc__ = _import("models.docs").entrypoint_doc("nvidia_gpunet", """
GPUNet from NVIDIA Deep Learning Examples, with NVIDIA's NGC checkpoints.

GPUNets were found by neural architecture search for low GPU inference latency (Wang et al.,
2022, arXiv:2205.00841); the P types are pruned, the D types distilled. Each type has its own
input resolution (``pretrained_cfg["input_size"]``), crop_pct 1.0 and bicubic resizing: pass
``model=`` to ``prepare_input_from_uri`` to feed it its native input.

""" + _import("models.docs").gpunet_types_table(), extra_args="""
    model_type (str): one of the types above, in any case, or NVIDIA's latency key ("0.65ms", ...).
    model_math (str): "fp32", "fp16", "bf16" or "fp64": the precision of the returned model; it
        accepts the float32 batch that prepare_input_from_uri returns and gives logits in its own dtype.
""")
