"""The seven published GPUNet architectures: names, latency keys, configs and resolutions."""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ...errors import InvalidArgumentError
from .config import config_resolution


@dataclass(frozen=True)
class GPUNetType:
    """One GPUNet architecture as NVIDIA published it.

    ``latency_key`` is NVIDIA's own name for the architecture (it names the config and the
    checkpoint member); ``resolution`` comes from the config's data layer. The published figures
    (top-1, parameters, latency) live in ``weights_manifest.json``.
    """

    name: str
    latency_key: str
    config_file: str
    resolution: int


def _gpunet_type(name: str, latency_key: str) -> GPUNetType:
    config_file = f"{latency_key}.json"
    return GPUNetType(name=name, latency_key=latency_key, config_file=config_file,
                      resolution=config_resolution(config_file))


GPUNET_TYPES: Mapping[str, GPUNetType] = MappingProxyType(
    {
        t.name: t
        for t in (
            _gpunet_type("GPUNet-0", "0.65ms"),
            _gpunet_type("GPUNet-1", "0.85ms"),
            _gpunet_type("GPUNet-2", "1.75ms"),
            _gpunet_type("GPUNet-P0", "0.5ms-D"),
            _gpunet_type("GPUNet-P1", "0.8ms-D"),
            _gpunet_type("GPUNet-D1", "1.25ms-D"),
            _gpunet_type("GPUNet-D2", "2.25ms-D"),
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
