"""Every setting that the environment gives the library, read here and nowhere else.

=============================  ==========================================================
``CONVNETS_HUB_MANIFEST``      the weights manifest in use (default: the checkout's)
``CONVNETS_HUB_MIRROR``        a directory or http(s) URL holding weights files by name
``CONVNETS_HUB_OFFLINE``       ``1`` (or true/yes/on): never download, use the cache or mirror
``CONVNETS_HUB_CONNECT_TIMEOUT``  seconds to connect to a weights URL (10)
``CONVNETS_HUB_READ_TIMEOUT``  seconds without a byte from a weights URL (60)
``CONVNETS_HUB_RETRIES``       further tries of one URL on connection errors and 5xx (3)
``CONVNETS_HUB_BACKOFF``       seconds before the first retry, doubled each time (1)
``CONVNETS_HUB_LOCK_TIMEOUT``  seconds to wait for another process's download (3600)
``CONVNETS_HUB_MAX_DOWNLOAD_BYTES``  the most bytes read for a weights file whose size nothing pins (8 GiB)
``CONVNETS_HUB_JPEG_DECODER``  the JPEG library of GPU decoding: torchcodec, nvimgcodec or torchvision
=============================  ==========================================================

Hugging Face's own ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are read here too (``weights="hf-hub:..."``).
Workers of a Ray cluster receive every one of them that is set (:func:`forwarded_environment`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from .errors import InvalidArgumentError

PREFIX = "CONVNETS_HUB_"
MANIFEST_ENV = f"{PREFIX}MANIFEST"
MIRROR_ENV = f"{PREFIX}MIRROR"
OFFLINE_ENV = f"{PREFIX}OFFLINE"
JPEG_DECODER_ENV = f"{PREFIX}JPEG_DECODER"
_TRUE = {"1", "true", "yes", "on"}


def manifest_override() -> Path | None:
    """The manifest that ``CONVNETS_HUB_MANIFEST`` names, if set."""
    value = os.environ.get(MANIFEST_ENV)
    return Path(value).expanduser().resolve() if value else None


def mirror() -> str:
    """``CONVNETS_HUB_MIRROR``: a directory or http(s) URL ("" when unset)."""
    return os.environ.get(MIRROR_ENV, "").strip()


def is_offline() -> bool:
    """``CONVNETS_HUB_OFFLINE`` is set to a true value: nothing may be downloaded."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in _TRUE


def jpeg_decoder() -> str | None:
    """``CONVNETS_HUB_JPEG_DECODER``: the JPEG library asked for GPU decoding (None: chosen by availability)."""
    return os.environ.get(JPEG_DECODER_ENV, "").strip() or None


def hf_endpoint() -> str | None:
    """``HF_ENDPOINT``: the Hugging Face Hub server (None: huggingface_hub's default)."""
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or None


def hf_hub_offline() -> bool:
    """Nothing may be downloaded from the Hugging Face Hub: ``HF_HUB_OFFLINE`` or ``CONVNETS_HUB_OFFLINE``."""
    return is_offline() or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


@dataclass(frozen=True)
class DownloadSettings:
    """How weights are downloaded; each field is set by ``CONVNETS_HUB_<FIELD NAME IN CAPITALS>``."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0
    lock_timeout: float = 3600.0
    max_download_bytes: int = 8 << 30

    @classmethod
    def from_env(cls) -> DownloadSettings:
        """The settings with the environment's values; a value that is not a number is an
        InvalidArgumentError naming the variable."""
        values = {}
        for field in fields(cls):
            name = f"{PREFIX}{field.name.upper()}"
            raw = os.environ.get(name, "").strip()
            if not raw:
                continue
            kind = int if field.type == "int" else float
            try:
                values[field.name] = kind(raw)
            except ValueError:
                raise InvalidArgumentError(f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}") from None
            if values[field.name] < 0:
                raise InvalidArgumentError(f"{name}={raw!r} must not be negative")
        return cls(**values)


ENVIRONMENT = (MANIFEST_ENV, MIRROR_ENV, OFFLINE_ENV, JPEG_DECODER_ENV,
               *(f"{PREFIX}{field.name.upper()}" for field in fields(DownloadSettings)))
"""Every variable of the library's settings."""
SHARED_ENVIRONMENT = ("TORCH_HOME", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HOME", "HF_TOKEN")
"""Other libraries' variables that decide where the weights come from and go."""


def forwarded_environment() -> dict[str, str]:
    """The variables that a worker on another machine needs to behave as this process: every setting
    above that is set, ``TORCH_HOME`` (where the weights cache lives) and Hugging Face's (its endpoint,
    offline switch, cache and token, for ``hf-hub:`` weights)."""
    return {name: os.environ[name] for name in (*ENVIRONMENT, *SHARED_ENVIRONMENT) if name in os.environ}
