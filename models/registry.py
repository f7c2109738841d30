"""Every model entrypoint declared once: builder, summary, aliases, checkpoint conventions, defaults.

hubconf's entrypoints, their docstrings, ``python3 -m models list`` and the README table are all
derived from :data:`SPECS` (and the weights manifest); nothing else names a model's facts.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .archs.efficientnet_types import VARIANTS as EFFICIENTNET_VARIANTS
from .archs.efficientnet_types import EfficientNetVariant
from .archs.gpunet.types import canonical_gpunet_type
from .errors import InvalidArgumentError
from .repository import MANIFEST_FILE, REPO_ROOT
from .weights.manifest import load_manifest

if TYPE_CHECKING:
    from torch import nn



class Lazy:
    """A function of this package, named by its module and name, imported at the first call (with leading
    positional ``args`` bound).

    The registry names the builders this way, so that listing the entrypoints (``torch.hub.list``,
    ``torch.hub.help``) does not import timm or torchvision's model zoo. Each reference is checked when it
    is declared: the module's file must define the function (read with :mod:`ast`, nothing imported), so
    a rename fails at hubconf's import, not at a model's first build. ``inspect.signature`` sees the
    function's own signature, less the bound arguments; ``tests/test_layout.py`` counts each reference as
    an import of its module.
    """

    def __init__(self, module: str, name: str, *args: Any) -> None:
        if name not in _top_level_names(module):
            raise ImportError(f"registry: {__package__}.{module} defines no {name!r}")
        self.module = module
        self.name = name
        self.args = args

    @cached_property
    def function(self) -> Callable[..., Any]:
        resolved = getattr(importlib.import_module(f"{__package__}.{self.module}"), self.name)
        return partial(resolved, *self.args) if self.args else resolved

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Lazy({', '.join(map(repr, (self.module, self.name, *self.args)))})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lazy) and (self.module, self.name, self.args) == (other.module, other.name, other.args)

    def __hash__(self) -> int:
        return hash((self.module, self.name, self.args))


@functools.cache
def _top_level_names(module: str) -> frozenset[str]:
    """The functions and classes that the file of ``module`` (of this package) defines at its top level."""
    path = Path(__file__).parent.joinpath(*module.split(".")).with_suffix(".py")
    if not path.is_file():
        raise ImportError(f"registry: {__package__}.{module} does not exist ({path})")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(node.name for node in tree.body
                     if isinstance(node, (ast.FunctionDef, ast.ClassDef)))


@dataclass(frozen=True)
class ModelSpec:
    """How to build one entrypoint's model, document it and read its upstream checkpoints.

    ``build`` (usually a :class:`Lazy` reference) takes ``num_classes`` and the architecture's own
    keyword options; ``summary`` opens the entrypoint's docstring (the manifest's weights and the
    common arguments follow it); ``aliases`` are further entrypoint names of the same model.
    ``key_map`` renames upstream checkpoint keys to the model's keys; ``canonical_type`` normalises
    the ``model_type`` keyword of entrypoints that serve several variants (their manifest entries
    are looked up per variant), ``default_type`` is that keyword's default; ``default_cfg`` is the
    preprocessing of an architecture that the repository's manifest has no weights for (elsewhere
    the manifest is the one source of preprocessing: :func:`default_preprocessing`); ``no_weights_hint`` marks an architecture without published weights
    (``pretrained`` then defaults to False) and completes the error of ``pretrained=True``.
    ``pretrained_build_kwargs`` are build options that the checkpoints need (used, and fixed, only
    when weights are loaded) and ``to_served_model(model, options)`` turns the model so built into the
    one served, given the user's build options (GoogLeNet drops its auxiliary heads: their weights in
    the checkpoints are then not loaded). ``extra_args`` documents the entrypoint's own keywords
    for its docstring.
    The classifier is the built model's own (``archs.timm_api.classifier_name``): with pretrained weights
    of another number of classes, it is re-initialised, and so are ``aux_classifiers``, other classifiers
    the checkpoints hold.
    ``timm_architecture`` is timm's name of exactly this architecture, whose state dict keys are the
    model's own (``timm.create_model(name, **timm_model_args)`` computes the same logits); empty where
    timm has no such model: a saved model folder (``save-pretrained``) names it for timm to load.
    ``first_conv`` is the qualified name of the input convolution (timm's ``first_conv``, likewise),
    whose pretrained weights ``in_chans`` adapts; ``fixed_input_size`` marks a model that takes only
    its ``input_size`` (timm's field).
    """

    build: Callable[..., nn.Module]
    summary: str
    first_conv: str | Callable[[str], str]
    aliases: tuple[str, ...] = ()
    key_map: Callable[[str], str] | None = None
    canonical_type: Callable[[str], str] | None = None
    default_type: str | None = None
    default_cfg: dict[str, Any] | None = None
    no_weights_hint: str = ""
    pretrained_build_kwargs: dict[str, Any] = field(default_factory=dict)
    to_served_model: Callable[[nn.Module, dict[str, Any]], None] | None = None
    extra_args: str = ""
    aux_classifiers: tuple[str, ...] = ()
    timm_architecture: str = ""
    timm_model_args: dict[str, Any] = field(default_factory=dict)
    fixed_input_size: bool = False

    @property
    def variant_keyword(self) -> str | None:
        """The keyword through which the entrypoint takes its variant (None: it serves one model)."""
        return "model_type" if self.canonical_type is not None else None

    def first_conv_name(self, model_type: str | None) -> str:
        return self.first_conv(model_type) if callable(self.first_conv) else self.first_conv

    @property
    def pretrained_default(self) -> bool:
        """``pretrained``'s default: False only for an architecture without published weights."""
        return not self.no_weights_hint



_NVIDIA_RESNEXT = """ResNeXt101-32x4d from NVIDIA Deep Learning Examples, with NVIDIA's NGC checkpoint.

ResNet-101 layout with grouped 3x3 convolutions (cardinality 32, bottleneck widths 128-1024),
trained on ImageNet-1k (1.28 M images, 1000 classes) by NVIDIA with mixed precision."""
_NVIDIA_RESNET50 = """
ResNet-50 v1.5 from NVIDIA Deep Learning Examples, with NVIDIA's NGC checkpoint.

v1.5 puts the stride of each downsampling bottleneck on the 3x3 convolution (as torchvision
does); trained on ImageNet-1k by NVIDIA with mixed precision."""
_NVIDIA_SE_RESNEXT = """
SE-ResNeXt101-32x4d from NVIDIA Deep Learning Examples, with NVIDIA's NGC checkpoint.

ResNeXt101-32x4d with a squeeze-and-excitation gate (16 hidden channels) on every block
output; trained on ImageNet-1k by NVIDIA with mixed precision."""
_NVIDIA_EFFICIENTNET = """{title} from NVIDIA Deep Learning Examples, with NVIDIA's NGC checkpoint.

EfficientNet (Tan and Le, 2019, arXiv:1905.11946) scaled to width {width} and depth {depth}:
MBConv blocks with SiLU and squeeze-and-excitation, {se},
BatchNorm eps 1e-3, dropout {dropout} before the classifier{drop_path}.
Input {resolution} px (bicubic resize to {resize}, centre crop). Trained on ImageNet-1k by NVIDIA
for 400 epochs with mixed precision."""
_NVIDIA_EFFICIENTNET_QUANT = """Quantized {title} (8-bit quantization-aware training) from NVIDIA Deep Learning Examples, with NGC's checkpoint.

NVIDIA's EfficientNet-{scale} (width {width}, depth {depth}, SiLU, dropout {dropout}) fine-tuned by
NVIDIA with pytorch_quantization's fake quantization: every convolution, the classifier and the
poolings see 8-bit inputs (one amax per tensor) and 8-bit weights (one amax per output channel),
and so do the squeeze-and-excitation product and the residual additions. Runs here in floating
point with the same arithmetic (no pytorch_quantization needed); export --format onnx writes the
QuantizeLinear/DequantizeLinear graph that TensorRT and ONNX Runtime run in int8.
Input {resolution} px (bicubic resize to {resize}, centre crop)."""
_SUMMARIES = {
    "ssl": """Semi-supervised {arch} of Facebook AI (Yalniz et al., 2019, arXiv:1905.00546).

Pretrained on YFCC100M with a teacher trained on ImageNet-1k, then fine-tuned on ImageNet-1k.""",
    "swsl": """Semi-weakly supervised {arch} of Facebook AI (Yalniz et al., 2019, arXiv:1905.00546).

Pretrained on 940 M public images with hashtags, labelled by a teacher, then fine-tuned on
ImageNet-1k.""",
}
_FACEBOOK_ARCHITECTURES = {"resnet18": "ResNet-18", "resnet50": "ResNet-50", "resnext50_32x4d": "ResNeXt-50 32x4d",
                           "resnext101_32x4d": "ResNeXt-101 32x4d", "resnext101_32x8d": "ResNeXt-101 32x8d",
                           "resnext101_32x16d": "ResNeXt-101 32x16d"}


def _nvidia_efficientnet(variant: str, scaling: EfficientNetVariant) -> ModelSpec:
    """NVIDIA's EfficientNet ``variant``: evaluated with a bicubic resize to resolution + 32, then a centre crop."""
    resolution = scaling.resolution
    drop_path = f", stochastic depth (survival {1 - scaling.drop_path:g}) in training" if scaling.drop_path else ""
    template = _NVIDIA_EFFICIENTNET_QUANT if scaling.quantized else _NVIDIA_EFFICIENTNET
    summary = template.format(
        title=f"EfficientNet-{'WideSE-' if scaling.wide_se else ''}{scaling.scale}", scale=scaling.scale,
        se=("its hidden width a quarter of the expanded width (WideSE)" if scaling.wide_se
            else "its hidden width a quarter of the block's input width"),
        width=scaling.width, depth=scaling.depth, dropout=scaling.dropout, drop_path=drop_path,
        resolution=resolution, resize=resolution + 32)
    # timm's efficientnet_b0/_b4 are NVIDIA's B0/B4 with BatchNorm eps 1e-3; timm has no WideSE nor
    # NVIDIA's quantized form.
    timm_name = "" if scaling.wide_se or scaling.quantized else f"efficientnet_{variant}"
    timm_args = {"bn_eps": 1e-3, "drop_rate": scaling.dropout, "drop_path_rate": scaling.drop_path}
    return ModelSpec(Lazy("archs.efficientnet", "build_nvidia_efficientnet", variant), summary,
                     first_conv="conv_stem", key_map=Lazy("archs.efficientnet", "nvidia_efficientnet_key"),
                     timm_architecture=timm_name, timm_model_args=timm_args if timm_name else {})


SPECS: dict[str, ModelSpec] = {
    "nvidia_resneXt": ModelSpec(Lazy("archs.resnet", "build_resnet", "resnext101_32x4d"), _NVIDIA_RESNEXT,
                                first_conv="conv1", aliases=("nvidia_resnext101_32x4d",),
                                timm_architecture="resnext101_32x4d"),
    "nvidia_resnet50": ModelSpec(Lazy("archs.resnet", "build_resnet", "resnet50"), _NVIDIA_RESNET50,
                                 first_conv="conv1", timm_architecture="resnet50"),
    # No timm_architecture: timm's seresnext101_32x4d sizes its SE layers by a ratio, NVIDIA's have 16 channels.
    "nvidia_se_resnext101_32x4d": ModelSpec(Lazy("archs.resnet", "build_resnet", "se_resnext101_32x4d"),
                                            _NVIDIA_SE_RESNEXT, first_conv="conv1",
                                            key_map=Lazy("archs.resnet", "nvidia_se_key")),
    **{f"nvidia_efficientnet_{variant}": _nvidia_efficientnet(variant, scaling)
       for variant, scaling in EFFICIENTNET_VARIANTS.items()},
    **{f"{arch}_{kind}": ModelSpec(Lazy("archs.resnet", "build_resnet", arch), summary.format(arch=title),
                                   first_conv="conv1", timm_architecture=arch)
       for kind, summary in _SUMMARIES.items() for arch, title in _FACEBOOK_ARCHITECTURES.items()},
    "alexnet": ModelSpec(Lazy("archs.classic", "build_alexnet"), """
AlexNet (Krizhevsky, Sutskever and Hinton, 2012), torchvision's model and ImageNet weights.

Five convolutions with ReLU, max pooling and dropout, then three fully connected layers;
torchvision's single-tower variant ("one weird trick", arXiv:1404.5997).""",
                         first_conv="features.0"),
    "vgg16": ModelSpec(Lazy("archs.classic", "build_vgg16"), """
VGG-16 (Simonyan and Zisserman, 2014, arXiv:1409.1556), torchvision's model and ImageNet weights.

Thirteen 3x3 convolutions in five stages, each closed by max pooling, then three fully
connected layers (138 M parameters).""", first_conv="features.0"),
    "vgg16_bn": ModelSpec(Lazy("archs.classic", "build_vgg16_bn"), """
VGG-16 with batch normalization after every convolution, torchvision's model and ImageNet weights.""",
                           first_conv="features.0"),
    # As torchvision.models.googlenet(weights=...): built with the auxiliary heads that the
    # checkpoint holds and the input transform it was trained with, then the heads are dropped.
    "googlenet": ModelSpec(Lazy("archs.classic", "build_googlenet"), """
GoogLeNet / Inception v1 (Szegedy et al., 2014, arXiv:1409.4842), torchvision's model and weights.

Nine Inception modules (parallel 1x1, 3x3, 5x5 and pooling branches). Pretrained, it is exactly
torchvision's googlenet(weights=IMAGENET1K_V1): transform_input=True (it takes ImageNet-normalised
input and re-normalises it as the original Caffe training did) and no auxiliary heads.""",
                           first_conv="conv1.conv", aux_classifiers=("aux1.fc2", "aux2.fc2"),
                           to_served_model=Lazy("archs.classic", "drop_googlenet_aux"),
                           pretrained_build_kwargs={"aux_logits": True, "transform_input": True,
                                                    "init_weights": False}),
    "resnet50": ModelSpec(Lazy("archs.classic", "build_resnet50"), """
ResNet-50 (He et al., 2015, arXiv:1512.03385), torchvision's model and ImageNet weights.

Bottleneck residual blocks (1x1, 3x3, 1x1) in four stages of 3, 4, 6 and 3 blocks; the stride
is on the 3x3 convolution (v1.5). Two recipes: torchvision's original weights (default) and its
2021 recipe (weights="resnet50.tv2_in1k", 80.9 % top-1, resize 232).""", first_conv="conv1",
                         timm_architecture="resnet50"),
    "lenet5": ModelSpec(Lazy("archs.classic", "build_lenet5"), """
LeNet-5 (LeCun et al., 1998) for 1x32x32 grey images: three 5x5 convolutions with tanh and
average pooling, then two fully connected layers (61,706 parameters for 10 classes).

It has no published weights: pretrained defaults to False and a small training run such as
notebooks/lenet5_digits.ipynb (scikit-learn's digits, under a minute on a CPU) trains it.""",
                        first_conv="features.0", fixed_input_size=True,
                        no_weights_hint="train it as notebooks/lenet5_digits.ipynb does",
                        default_cfg={"input_size": (1, 32, 32), "crop_pct": 1.0, "interpolation": "bilinear",
                                     "mean": (0.5,), "std": (0.5,)}),
    # Several variants, chosen by model_type= (NVIDIA's keyword and default).
    "nvidia_gpunet": ModelSpec(Lazy("archs.gpunet.model", "build_gpunet"), """
GPUNet from NVIDIA Deep Learning Examples, with NVIDIA's NGC checkpoints.

GPUNets were found by neural architecture search for low GPU inference latency (Wang et al.,
2022, arXiv:2205.00841); the P types are pruned, the D types distilled. Each type has its own
input resolution (``pretrained_cfg["input_size"]``), crop_pct 1.0 and bicubic resizing: pass
``model=`` to ``prepare_input_from_uri`` to feed it its native input.""",
                               first_conv=Lazy("archs.gpunet.model", "gpunet_first_conv"),
                               canonical_type=canonical_gpunet_type, default_type="GPUNet-0",
                               extra_args="""
    model_type (str): one of the types above, in any case, or NVIDIA's latency key ("0.65ms", ...).
"""),
}

def default_preprocessing(name: str, model_type: str | None) -> dict[str, Any]:
    """The preprocessing of model ``name`` (a spec) when no weights describe it: that of its default weights
    in the repository's own manifest, else its spec's ``default_cfg``."""
    entry = load_manifest(REPO_ROOT / MANIFEST_FILE).default(name, model_type)
    if entry is not None:
        return entry.preprocessing
    if SPECS[name].default_cfg is None:
        raise LookupError(f"{name} has neither weights in {MANIFEST_FILE} nor a default_cfg")
    return SPECS[name].default_cfg


ALIASES = {alias: name for name, spec in SPECS.items() for alias in spec.aliases}
"""Further entrypoint names of a spec's model: alias -> the spec's name."""


@dataclass(frozen=True)
class Dispatcher:
    """An entrypoint that takes NVIDIA's ``type=`` and returns the model of the entrypoint of that type.

    ``types`` maps each type name (matched in any case) to its entrypoint.
    """

    types: dict[str, str]
    default_type: str
    summary: str
    extra_args: str
    keyword: str = "type"

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.types.values())

    def target(self, model_type: Any) -> str:
        """The entrypoint serving ``type=model_type``; an InvalidArgumentError lists the valid types."""
        key = model_type.strip().lower() if isinstance(model_type, str) else None
        valid = ", ".join(self.types)
        if key not in self.types:
            raise InvalidArgumentError(f"{self.keyword}={model_type!r} is not a type of this entrypoint; valid: {valid}")
        return self.types[key]


DISPATCHERS: dict[str, Dispatcher] = {
    "nvidia_efficientnet": Dispatcher(
        types={f"efficientnet-{variant.replace('_', '-')}": f"nvidia_efficientnet_{variant}"
               for variant in EFFICIENTNET_VARIANTS},
        default_type="efficientnet-b0",
        summary="""
NVIDIA's EfficientNets by NVIDIA's type name, as NVIDIA's hub serves them.

Returns the model of nvidia_efficientnet_<type> (nvidia_efficientnet_b4 for "efficientnet-b4"):
see their own documentation for the architectures.""", extra_args="""
    type (str): "efficientnet-b0", "efficientnet-b4", "efficientnet-widese-b0",
        "efficientnet-widese-b4", or the quantization-aware "efficientnet-quant-b0" and
        "efficientnet-quant-b4", in any case; anything else is a ValueError listing these.
"""),
}
