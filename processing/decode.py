"""Any supported image input to an RGB PIL image: safe decoding, orientation, mode conversion."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageDecodeError, ImageInputError, ImageTooLargeError
from .fetch import FetchSettings, fetch_bytes, is_url

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def describe(source: ImageSource) -> str:
    """A short name of an input for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"<{type(source).__name__}>"


def load_rgb(source: ImageSource, fetch: FetchSettings, max_pixels: int,
             draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode ``source`` into an RGB image, EXIF-oriented, first frame, alpha composited on white.

    ``draft_size`` lets JPEG decoding scale down by a power of two while staying at least that
    large, which is several times faster for large photos.
    """
    if isinstance(source, Image.Image):
        return to_rgb(ImageOps.exif_transpose(source), describe(source))
    name = describe(source)
    data = _read_bytes(source, fetch)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLargeError(f"{name}: {width}x{height} pixels exceed the limit of {max_pixels} "
                                         "(raise max_pixels if the image is trusted)")
            if draft_size is not None and image.format == "JPEG":
                image.draft("RGB", draft_size)
            image.seek(0)
            image.load()
            return to_rgb(ImageOps.exif_transpose(image), name)
    except ImageTooLargeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{name}: {exc}") from exc
    except UnidentifiedImageError as exc:  # PIL's text names the address of a BytesIO object
        raise ImageDecodeError(f"{name}: not a decodable image (no image format recognised)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"{name}: not a decodable image ({exc})") from exc


def to_rgb(image: Image.Image, name: str) -> Image.Image:
    """Every PIL mode to RGB; transparency is composited on white, 16-bit data scaled to 8 bits."""
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 / 65535.0 if values.max(initial=0) > 255 else 1.0
        return Image.fromarray(np.clip(values * scale, 0, 255).astype(np.uint8), "L").convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise ImageDecodeError(f"{name}: cannot convert PIL mode {image.mode!r} to RGB ({exc})") from exc


def _read_bytes(source: ImageSource, fetch: FetchSettings) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, str) and is_url(source):
        data = fetch_bytes(source, fetch)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ImageInputError(f"{source}: no such file")
        if path.stat().st_size > fetch.max_bytes:
            raise ImageInputError(f"{source}: {path.stat().st_size} bytes exceed the limit of {fetch.max_bytes}")
        data = path.read_bytes()
    elif hasattr(source, "read"):
        data = source.read(fetch.max_bytes + 1)
        if not isinstance(data, bytes):
            raise ImageInputError(f"{describe(source)}: a file object must be opened in binary mode")
        if len(data) > fetch.max_bytes:
            raise ImageInputError(f"{describe(source)}: more than {fetch.max_bytes} bytes")
    else:
        raise ImageInputError(f"{describe(source)}: expected a URL, a path, bytes, a binary file object "
                              "or a PIL image")
    if not data:
        raise ImageDecodeError(f"{describe(source)}: empty input (0 bytes)")
    return data
