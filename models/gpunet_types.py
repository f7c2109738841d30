"""The seven published GPUNet architectures: names, configs and NVIDIA's published figures."""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .errors import InvalidArgumentError
from .gpunet_config import config_resolution


@dataclass(frozen=True)
class PublishedLatency:
    """NVIDIA's published batch-1 FP16 inference latency of one GPUNet on one GPU, in milliseconds."""

    gpu: str
    tensorrt_ms: float
    pytorch_ms: float


@dataclass(frozen=True)
class GPUNetType:
    """One GPUNet architecture as NVIDIA published it.

    ``latency_key`` is NVIDIA's own name for the architecture (it names the config and the
    checkpoint member); ``resolution`` comes from the config's data layer; ``top1`` is the published
    ImageNet top-1 accuracy (%) and ``params_m`` the parameter count in millions.
    """

    name: str
    latency_key: str
    config_file: str
    resolution: int
    top1: float
    params_m: float
    published_latency: tuple[PublishedLatency, ...]


def _gpunet_type(
    name: str,
    latency_key: str,
    top1: float,
    params_m: float,
    v100: tuple[float, float],
    a100: tuple[float, float],
) -> GPUNetType:
    config_file = f"{latency_key}.json"
    return GPUNetType(
        name=name,
        latency_key=latency_key,
        config_file=config_file,
        resolution=config_resolution(config_file),
        top1=top1,
        params_m=params_m,
        published_latency=(PublishedLatency("V100", *v100), PublishedLatency("A100", *a100)),
    )


# Latencies: NVIDIA's GPUNet README, "Inference results" (TensorRT8 FP16, PyTorch FP16; batch 1).
GPUNET_TYPES: Mapping[str, GPUNetType] = MappingProxyType(
    {
        t.name: t
        for t in (
            _gpunet_type("GPUNet-0", "0.65ms", 78.9, 11.89, (0.63, 1.82), (0.46, 1.46)),
            _gpunet_type("GPUNet-1", "0.85ms", 80.5, 12.70, (0.82, 2.75), (0.59, 1.81)),
            _gpunet_type("GPUNet-2", "1.75ms", 82.2, 25.80, (1.68, 5.50), (1.25, 4.03)),
            _gpunet_type("GPUNet-P0", "0.5ms-D", 80.3, 22.82, (0.63, 2.11), (0.45, 1.31)),
            _gpunet_type("GPUNet-P1", "0.8ms-D", 81.1, 39.91, (0.96, 2.47), (0.61, 1.64)),
            _gpunet_type("GPUNet-D1", "1.25ms-D", 82.5, 10.59, (1.24, 2.88), (0.94, 2.44)),
            _gpunet_type("GPUNet-D2", "2.25ms-D", 83.6, 19.04, (2.17, 4.22), (1.40, 3.06)),
        )
    }
)

_ALIASES: Mapping[str, str] = {
    alias.lower(): t.name for t in GPUNET_TYPES.values() for alias in (t.name, t.latency_key)
}


def canonical_gpunet_type(model_type: str) -> str:
    """The canonical name ("GPUNet-0" ... "GPUNet-D2") of a GPUNet type.

    Accepts the canonical names and NVIDIA's latency keys ("0.65ms", "0.5ms-D", ...), in any case.
    Anything else raises :class:`InvalidArgumentError` listing the valid types.
    """
    canonical = _ALIASES.get(model_type.lower()) if isinstance(model_type, str) else None
    if canonical is None:
        valid = ", ".join(GPUNET_TYPES)
        keys = ", ".join(t.latency_key for t in GPUNET_TYPES.values())
        raise InvalidArgumentError(
            f"model_type={model_type!r} is not a GPUNet type; valid types: {valid} "
            f"(or NVIDIA's latency keys {keys}, in any case)"
        )
    return canonical
