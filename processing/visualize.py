"""Thumbnails of the classified images beside bars of their top-k predictions."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure
from PIL import Image

from .errors import ProcessingArgumentError


def show_predictions(images: Sequence[Image.Image], results: Sequence[Sequence[tuple[str, str]]],
                     titles: Sequence[str] | None = None) -> Figure:
    """One row per image: the thumbnail, and its predictions as horizontal bars (headless-safe)."""
    if len(images) != len(results):
        raise ProcessingArgumentError(f"{len(images)} images but {len(results)} results")
    figure = Figure(figsize=(10, 2.6 * max(1, len(images))), layout="constrained")
    axes = figure.subplots(max(1, len(images)), 2, squeeze=False, width_ratios=(1, 1.6))
    for row, (image, result) in enumerate(zip(images, results, strict=True)):
        thumbnail = image.copy()
        thumbnail.thumbnail((256, 256))
        axes[row][0].imshow(thumbnail)
        axes[row][0].set_axis_off()
        if titles is not None:
            axes[row][0].set_title(titles[row][-40:], fontsize=8)
        labels = [label.split(",")[0] for label, _ in result][::-1]
        scores = [float(score.rstrip("%")) for _, score in result][::-1]
        axes[row][1].barh(range(len(scores)), scores, color="#76b900")
        axes[row][1].set_yticks(range(len(scores)), labels)
        axes[row][1].set_xlim(0, max([100.0, *scores]))
        axes[row][1].set_xlabel("%")
    return figure
