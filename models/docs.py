"""Entrypoint docstrings (what ``torch.hub.help`` prints), completed with the manifest's facts."""

from __future__ import annotations

from .gpunet_types import GPUNET_TYPES
from .manifest import WeightsEntry, load_manifest
from .registry import ALIASES, SPECS
from .repository import GITHUB_REPO

_COMMON_ARGS = """
Args:
    pretrained (bool): load the default weights listed above (True), or build a randomly
        initialised model without touching the network (False).
    progress (bool): show a download progress bar.
    weights (str | os.PathLike): instead of the default, a weights id listed above, a local
        checkpoint file or an http(s) URL, in any layout the upstream files use.
    num_classes (int): classifier size. With pretrained weights of another size, the backbone
        is loaded, the classifier is freshly initialised and a warning says so.
    model_math (str): "fp32" (default), "fp16", "bf16" or "fp64", in any case: the precision of
        the returned model. It accepts the float32 batch that prepare_input_from_uri returns and
        gives logits in its own dtype.
    device (str | torch.device): where the model lives, "cpu" (default) or "cuda[:index]"
        (a ValueError where no GPU is present). Inputs are cast, never moved: pass them on it.
    optimize (bool): return an inference-only model (eval mode, no gradients) for that device
        and precision: BatchNorm folded into the convolutions, channels_last weights, then
        torch.compile at the first call of each input shape (CUDA graphs on a GPU, frozen
        oneDNN weights on a CPU; about 15 s for a ResNeXt-101 on 2 cores), falling back to the
        eager model with a warning where compile fails. Outputs equal the eager model's within
        the precision's tolerance.
{extra_args}
Returns:
    torch.nn.Module with ``pretrained_cfg`` (input_size, crop_pct, interpolation, mean, std,
    num_classes, id), which ``nvidia_convnets_processing_utils`` uses to prepare images.

Example:
    model = torch.hub.load("{repo}", "{name}"{pretrained}).eval()
"""


def entrypoint_doc(entrypoint: str, summary: str, extra_args: str = "") -> str:
    """``summary``, then every manifest entry of ``entrypoint``, then the common arguments."""
    name = ALIASES.get(entrypoint, entrypoint)
    entries = [entry for entry in load_manifest().entries if entry.entrypoint == name]
    weights = "\n".join(describe_entry(entry) for entry in entries) or _describe_untrained(name)
    return (f"{summary.strip()}\n\nPretrained weights (weights_manifest.json):\n{weights}\n"
            + _COMMON_ARGS.format(extra_args=extra_args.strip("\n"), name=entrypoint, repo=GITHUB_REPO,
                                  pretrained=", pretrained=True" if entries else ""))


def _describe_untrained(name: str) -> str:
    """The weights line of an entrypoint without weights in the manifest in use (repo's or env's)."""
    spec = SPECS[name]
    if callable(spec.default_cfg):
        return "    (no published weights in the manifest in use); input size and resizing follow model_type"
    cfg = spec.default_cfg
    size = "x".join(str(v) for v in cfg.get("input_size", ()))
    return (f"    (no published weights in the manifest in use); input {size}, crop_pct {cfg.get('crop_pct')}, "
            f"{cfg.get('interpolation')}, mean {cfg.get('mean')}, std {cfg.get('std')}")


def describe_entry(entry: WeightsEntry) -> str:
    metrics = entry.metrics
    accuracy = ", ".join(f"top-{k} {metrics[f'imagenet_top{k}']:g} %" for k in (1, 5)
                         if metrics.get(f"imagenet_top{k}") is not None)
    size = "x".join(str(v) for v in entry.preprocessing["input_size"])
    default = " (default)" if entry.default else ""
    return (f"    {entry.id}{default}: {entry.description}\n"
            f"        ImageNet-1k {accuracy} ({metrics.get('source', 'published')}); input {size}, "
            f"crop_pct {entry.preprocessing['crop_pct']}, {entry.preprocessing['interpolation']}; "
            f"license: {entry.license}")


def gpunet_types_table() -> str:
    """The GPUNet types with resolution, parameters, published top-1 and batch-1 FP16 latency."""
    rows = ["    type        resolution  params   top-1   latency ms, TensorRT / PyTorch (V100; A100)"]
    for gpunet in GPUNET_TYPES.values():
        latency = "; ".join(f"{p.tensorrt_ms:.2f} / {p.pytorch_ms:.2f}" for p in gpunet.published_latency)
        rows.append(f"    {gpunet.name:<11} {gpunet.resolution:>4} px   {gpunet.params_m:6.2f} M  "
                    f"{gpunet.top1:.1f} %  {latency}")
    return "Types (NVIDIA's published figures):\n" + "\n".join(rows)
