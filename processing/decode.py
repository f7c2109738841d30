"""Any supported image input to an RGB PIL image: safe decoding, orientation, mode conversion."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import ImageDecodeError, ImageInputError, ImageTooLargeError
from .fetch import FetchSettings, fetch_bytes, is_url

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image

_HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def describe(source: ImageSource) -> str:
    """A short name of an input for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"<{type(source).__name__}>"


def open_image(source: ImageSource, fetch: FetchSettings, max_pixels: int) -> tuple[Image.Image, str]:
    """An encoded ``source`` (not a PIL image) opened with its header only read, and its name for messages.

    Its canvas is checked against ``max_pixels`` here, per call: Pillow's process-wide limit
    (``PIL.Image.MAX_IMAGE_PIXELS``) is neither changed nor turned into an error (above it, Pillow
    warns); beyond twice that limit Pillow refuses to open an image whatever ``max_pixels`` says
    (an ImageTooLargeError too).
    """
    name = describe(source)
    data = _read_bytes(source, fetch)
    with _decoding(name):
        image = Image.open(io.BytesIO(data))
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(f"{name}: {width}x{height} pixels exceed the limit of {max_pixels} "
                                 "(raise max_pixels if the image is trusted)")
    return image, name


def decode_rgb(image: Image.Image, name: str, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """The pixels of an ``open_image`` image in RGB: EXIF-oriented, first frame, alpha composited on
    white, high bit depths reduced to 8 bits.

    ``draft_size`` lets JPEG decoding scale down by a power of two while staying at least that
    large, which is several times faster for large photos.
    """
    with _decoding(name):
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", draft_size)
        image.seek(0)
        image.load()
        return to_rgb(_oriented(image), name)


def load_rgb(source: ImageSource, fetch: FetchSettings, max_pixels: int,
             draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Any input in RGB: ``decode_rgb(*open_image(...))``, or a PIL image oriented and converted (a copy
    where that changes it)."""
    if isinstance(source, Image.Image):
        return to_rgb(_oriented(source), describe(source))
    return decode_rgb(*open_image(source, fetch, max_pixels), draft_size)


def to_rgb(image: Image.Image, name: str) -> Image.Image:
    """Every PIL mode to RGB; transparency is composited on white, 16-bit data scaled to 8 bits."""
    if image.mode == "RGB":
        return image
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        return _eight_bit(image).convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise ImageDecodeError(f"{name}: cannot convert PIL mode {image.mode!r} to RGB ({exc})") from exc


def _eight_bit(image: Image.Image) -> Image.Image:
    """A 16- or 32-bit greyscale image in mode "L", made by Pillow without a float64 copy: values
    above 255 mean the 16-bit range (scaled by 255/65535, rounded down), others are kept; then
    clipped to 0-255."""
    if image.mode not in ("I;16", "I", "F"):  # I;16B, I;16L, I;16N: Pillow scales these in mode I
        image = image.convert("I")
    if image.getextrema()[1] > 255:
        image = image.point(lambda value: value / 257)
    return image.convert("L")


def _oriented(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says (a new image only where it asks for a turn)."""
    if image.getexif().get(ExifTags.Base.Orientation) not in range(2, 9):  # 1 or none: as stored
        return image
    return ImageOps.exif_transpose(image)


@contextmanager
def _decoding(name: str) -> Iterator[None]:
    """Pillow's and the codecs' exceptions as ImageInputErrors naming the input."""
    try:
        yield
    except ImageInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: {exc} (Pillow's own limit: PIL.Image.MAX_IMAGE_PIXELS)") from exc
    except UnidentifiedImageError as exc:  # PIL's text names the address of a BytesIO object
        raise ImageDecodeError(f"{name}: not a decodable image (no image format recognised)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"{name}: not a decodable image ({exc})") from exc


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
