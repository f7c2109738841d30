"""Entrypoint docstrings (what ``torch.hub.help`` prints), completed with the manifest's facts."""

from __future__ import annotations

from .archs.gpunet.types import GPUNET_TYPES
from .registry import ALIASES, DISPATCHERS, SPECS, default_preprocessing
from .repository import GITHUB_REPO
from .weights.manifest import Manifest, WeightsEntry, load_manifest

_COMMON_ARGS = """
Args:
    pretrained (bool): load the default weights listed above (True), or build a randomly
        initialised model without touching the network (False).
    progress (bool): show a download progress bar.
    weights (str | os.PathLike): instead of the default, a weights id listed above, a local
        checkpoint file (.pth, .safetensors...) or an http(s) URL, in any layout the upstream
        files use, a model folder of ``python3 -m models save-pretrained``, or
        "hf-hub:org/name" (that folder on the Hugging Face Hub).
    num_classes (int): classifier size (0: none, the model returns pre-logits). With pretrained
        weights of another size, the backbone is loaded, the classifier is freshly initialised and
        a warning names it.
    features_only (bool), out_indices (int | sequence of int): as timm's, a model returning the
        list of stage feature maps (default: the first five) that ``model.feature_info`` describes.
    in_chans (int): input channels, where the architecture takes it (timm-built models, GPUNet,
        LeNet-5); pretrained weights get their first convolution adapted as timm does.
    model_math (str): "fp32" (default), "fp16", "bf16" or "fp64", in any case: the precision of
        the returned model. It accepts the float32 batch that prepare_input_from_uri returns and
        gives logits in its own dtype. On a CPU without bf16/fp16 instructions (AVX512_BF16,
        AMX) a half precision is emulated and slower than fp32: a warning says so.
    device (str | torch.device): where the model lives, "cpu" or "cuda[:index]" (a ValueError
        where no GPU is present); by default where torch builds tensors, as timm's models: the CPU,
        unless torch.set_default_device or a ``with torch.device("meta"):`` block says otherwise.
        Inputs are cast, never moved: pass them on it.
    optimize (bool): return an inference-only model (eval mode, no gradients) for that device
        and precision: BatchNorm folded into the convolutions, channels_last weights, then
        torch.compile at the first call of each input shape (CUDA graphs on a GPU, frozen
        oneDNN weights on a CPU), falling back to the eager model with a warning where compile
        fails. Outputs equal the eager model's within
        the precision's tolerance; BatchNorm is folded in float32 (float64 for "fp64") before a
        cast to fp16/bf16. Moved or cast later (.to("cuda"), .half(), ...), it compiles anew
        for the new device and dtype; .train() raises InferenceOnlyError.
{extra_args}
Returns:
    torch.nn.Module with ``pretrained_cfg`` (input_size, crop_pct, interpolation, mean, std,
    num_classes, classifier, id), which ``nvidia_convnets_processing_utils`` uses to prepare
    images, and timm's forward_features, forward_head, get_classifier, reset_classifier.

Example:
    model = torch.hub.load("{repo}", "{name}"{pretrained}).eval()
"""


def entrypoint_doc(entrypoint: str) -> str:
    """The docstring of ``entrypoint`` (a spec, an alias or a dispatcher of the registry): its summary
    (and table of variants), every manifest entry it serves, then the common arguments."""
    if entrypoint in DISPATCHERS:
        dispatcher = DISPATCHERS[entrypoint]
        names, summary, extra_args = dispatcher.targets, dispatcher.summary.strip(), dispatcher.extra_args
    else:
        spec = SPECS[ALIASES.get(entrypoint, entrypoint)]
        names, summary, extra_args = (ALIASES.get(entrypoint, entrypoint),), spec.summary.strip(), spec.extra_args
        if entrypoint in _VARIANT_TABLES:
            summary += "\n\n" + _VARIANT_TABLES[entrypoint]()
    entries = [entry for entry in load_manifest().entries if entry.entrypoint in names]
    weights = "\n".join(describe_entry(entry) for entry in entries) or _describe_untrained(names[0])
    return (f"{summary}\n\nPretrained weights (weights_manifest.json):\n{weights}\n"
            + _COMMON_ARGS.format(extra_args=extra_args.strip("\n"), name=entrypoint, repo=GITHUB_REPO,
                                  pretrained=", pretrained=True" if entries else ""))


def _describe_untrained(name: str) -> str:
    """The weights line of an entrypoint without weights in the manifest in use (repo's or env's)."""
    if SPECS[name].canonical_type is not None:
        return "    (no published weights in the manifest in use); input size and resizing follow model_type"
    cfg = default_preprocessing(name, None)
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


def gpunet_types_table(manifest: Manifest | None = None) -> str:
    """The GPUNet types with resolution, parameters, published top-1 and batch-1 FP16 latency,
    from the manifest's default entry of each type (types without one show only the resolution)."""
    manifest = manifest or load_manifest()
    rows = ["    type        resolution  params   top-1   latency ms, TensorRT / PyTorch (V100; A100)"]
    for gpunet in GPUNET_TYPES.values():
        entry = manifest.default("nvidia_gpunet", gpunet.name)
        metrics = entry.metrics if entry else {}
        latency = metrics.get("latency_published_ms") or {}
        latency_text = "; ".join(f"{ms[0]:.2f} / {ms[1]:.2f}" if ms else "–"
                                 for ms in (latency.get("V100"), latency.get("A100")))
        params = f"{entry.num_params / 1e6:6.2f} M" if entry and entry.num_params else "     – "
        top1 = f"{metrics['imagenet_top1']:.1f} %" if metrics.get("imagenet_top1") else "  –   "
        rows.append(f"    {gpunet.name:<11} {gpunet.resolution:>4} px   {params}  {top1}  {latency_text}")
    return "Types (NVIDIA's published figures, weights_manifest.json):\n" + "\n".join(rows)


_VARIANT_TABLES = {"nvidia_gpunet": gpunet_types_table}
"""The table of variants that opens the docstring of an entrypoint serving several."""

README_TABLE_BEGIN = ("<!-- entrypoints: generated from weights_manifest.json by "
                      "`python3 -m models readme --write`; edit the manifest, not this table -->")
README_TABLE_END = "<!-- end of the generated entrypoints -->"


def entrypoints_table(manifest: Manifest | None = None) -> str:
    """README's Markdown table: a row per manifest entry (in manifest order), then a row per
    entrypoint without published weights."""
    manifest = manifest or load_manifest()
    aliases = {name: [alias for alias, target in ALIASES.items() if target == name] for name in SPECS}
    rows = ["| entrypoint | weights | input | parameters | ImageNet-1k top-1 / top-5 | weights license |",
            "|---|---|---|---|---|---|"]
    for entry in manifest.entries:
        names = ", ".join(f"`{name}`" for name in [entry.entrypoint, *aliases.get(entry.entrypoint, [])])
        options = [f'`model_type="{entry.model_type}"`'] if entry.model_type else []
        if len(manifest.for_entrypoint(entry.entrypoint, entry.model_type)) > 1:
            options.append(f'`weights="{entry.id}"`' + (", default" if entry.default else ""))
        names += f" ({'; '.join(options)})" if options else ""
        rows.append(f"| {names} | `{entry.id}` | {_input(entry.preprocessing)} | {_millions(entry.num_params)} "
                    f"| {_accuracy(entry.metrics)} | {entry.license} |")
    published = {entry.entrypoint for entry in manifest.entries}
    for name, spec in SPECS.items():
        if name not in published:
            hint = f"; {spec.no_weights_hint}" if spec.no_weights_hint else ""
            cfg = default_preprocessing(name, None) if spec.canonical_type is None else {}
            rows.append(f"| `{name}` | none: pretrained=False{hint} | {_input(cfg) if cfg else '–'} | – | – | – |")
    return "\n".join(rows)


def _input(preprocessing: dict) -> str:
    channels, height, width = preprocessing["input_size"]
    size = f"{height}x{width}" if channels == 3 else f"{channels}x{height}x{width}"
    return f"{size}, {preprocessing['interpolation']}, crop {preprocessing['crop_pct']:.3g}"


def _millions(count: int | None) -> str:
    return f"{count / 1e6:.2f} M" if count else "–"


def _accuracy(metrics: dict) -> str:
    values = [metrics.get(f"imagenet_top{k}") for k in (1, 5)]
    return " / ".join(f"{value:g}" if value is not None else "–" for value in values)


def render_readme(text: str, manifest: Manifest | None = None) -> str:
    """``text`` (README.md) with the generated table between its markers replaced by a fresh one."""
    begin, end = text.find(README_TABLE_BEGIN), text.find(README_TABLE_END)
    if begin < 0 or end < begin:
        raise ValueError(f"README has no generated table between {README_TABLE_BEGIN!r} and {README_TABLE_END!r}")
    start = begin + len(README_TABLE_BEGIN)
    return f"{text[:start]}\n{entrypoints_table(manifest)}\n{text[end:]}"
