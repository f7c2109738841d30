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


def _model_entrypoint(name: str, summary: str, pretrained_default: bool = True):
    """A hub entrypoint ``name(pretrained=pretrained_default, progress=True, weights=None, **kwargs)``."""

    def entrypoint(pretrained=pretrained_default, progress=True, weights=None, **kwargs):
        return _import("models.factory").create_model(
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

_NVIDIA_EFFICIENTNET = """{title} from NVIDIA Deep Learning Examples, with NVIDIA's NGC checkpoint.

EfficientNet (Tan and Le, 2019, arXiv:1905.11946) scaled to width {width} and depth {depth}:
MBConv blocks with SiLU and squeeze-and-excitation, {se},
BatchNorm eps 1e-3, dropout {dropout} before the classifier{drop_path}.
Input {resolution} px (bicubic resize to {resize}, centre crop). Trained on ImageNet-1k by NVIDIA
for 400 epochs with mixed precision."""
_EFFICIENTNET_SCALES = {
    "b0": {"width": 1.0, "depth": 1.0, "dropout": 0.2, "drop_path": ""},
    "b4": {"width": 1.4, "depth": 1.8, "dropout": 0.4, "drop_path": ", stochastic depth (survival 0.8) in training"},
}


def _nvidia_efficientnet_entrypoint(variant: str):
    """The entrypoint ``nvidia_efficientnet_<variant>`` ("b0", "b4", "widese_b0", "widese_b4")."""
    scale = variant.removeprefix("widese_")
    wide = scale != variant
    resolution = _import("models.archs.efficientnet_types").RESOLUTIONS[variant]
    return _model_entrypoint(f"nvidia_efficientnet_{variant}", _NVIDIA_EFFICIENTNET.format(
        title=f"EfficientNet-{'WideSE-' if wide else ''}{scale.upper()}",
        se=("its hidden width a quarter of the expanded width (WideSE)" if wide
            else "its hidden width a quarter of the block's input width"),
        resolution=resolution, resize=resolution + 32, **_EFFICIENTNET_SCALES[scale]))


nvidia_efficientnet_b0 = _nvidia_efficientnet_entrypoint("b0")
nvidia_efficientnet_b4 = _nvidia_efficientnet_entrypoint("b4")
nvidia_efficientnet_widese_b0 = _nvidia_efficientnet_entrypoint("widese_b0")
nvidia_efficientnet_widese_b4 = _nvidia_efficientnet_entrypoint("widese_b4")


def nvidia_efficientnet(type="efficientnet-b0", pretrained=True, **kwargs):
    return _import("models.factory").create_model(
        _import("models.archs.efficientnet_types").entrypoint_of_type(type), pretrained=pretrained, **kwargs)


nvidia_efficientnet.__doc__ = _import("models.docs").entrypoint_doc("nvidia_efficientnet", """
NVIDIA's EfficientNets by NVIDIA's type name, as NVIDIA's hub serves them.

Returns the model of nvidia_efficientnet_<type> (nvidia_efficientnet_b4 for "efficientnet-b4"):
see their own documentation for the architectures.""", extra_args="""
    type (str): "efficientnet-b0", "efficientnet-b4", "efficientnet-widese-b0" or
        "efficientnet-widese-b4", in any case; anything else is a ValueError listing these. The
        quantized types (efficientnet-quant-b0/b4) need NVIDIA's pytorch_quantization and are not
        served (a ValueError says so).
""")


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

alexnet = _model_entrypoint("alexnet", """
AlexNet (Krizhevsky, Sutskever and Hinton, 2012), torchvision's model and ImageNet weights.

Five convolutions with ReLU, max pooling and dropout, then three fully connected layers;
torchvision's single-tower variant ("one weird trick", arXiv:1404.5997).""")
vgg16 = _model_entrypoint("vgg16", """
VGG-16 (Simonyan and Zisserman, 2014, arXiv:1409.1556), torchvision's model and ImageNet weights.

Thirteen 3x3 convolutions in five stages, each closed by max pooling, then three fully
connected layers (138 M parameters).""")
vgg16_bn = _model_entrypoint("vgg16_bn", """
VGG-16 with batch normalization after every convolution, torchvision's model and ImageNet weights.""")
googlenet = _model_entrypoint("googlenet", """
GoogLeNet / Inception v1 (Szegedy et al., 2014, arXiv:1409.4842), torchvision's model and weights.

Nine Inception modules (parallel 1x1, 3x3, 5x5 and pooling branches). Pretrained, it is exactly
torchvision's googlenet(weights=IMAGENET1K_V1): transform_input=True (it takes ImageNet-normalised
input and re-normalises it as the original Caffe training did) and no auxiliary heads.""")
resnet50 = _model_entrypoint("resnet50", """
ResNet-50 (He et al., 2015, arXiv:1512.03385), torchvision's model and ImageNet weights.

Bottleneck residual blocks (1x1, 3x3, 1x1) in four stages of 3, 4, 6 and 3 blocks; the stride
is on the 3x3 convolution (v1.5). Two recipes: torchvision's original weights (default) and its
2021 recipe (weights="resnet50.tv2_in1k", 80.9 % top-1, resize 232).""")
lenet5 = _model_entrypoint("lenet5", """
LeNet-5 (LeCun et al., 1998) for 1x32x32 grey images: three 5x5 convolutions with tanh and
average pooling, then two fully connected layers (61,706 parameters for 10 classes).

It has no published weights: pretrained defaults to False and a small training run such as
notebooks/lenet5_digits.ipynb (scikit-learn's digits, under a minute on a CPU) trains it.""",
                           pretrained_default=False)


def nvidia_gpunet(pretrained=True, progress=True, weights=None, model_type="GPUNet-0", model_math="fp32", **kwargs):
    return _import("models.factory").create_model(
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
""")


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
        pick_n_best(predictions, n=5, labels=None, verbose=True) -> [[(label, "xx.x%"), ...], ...]
            NVIDIA's output format; the ImageNet-1k labels are bundled, never downloaded.
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
