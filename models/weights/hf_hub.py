"""Weights on the Hugging Face Hub: ``weights="hf-hub:org/name[@revision]"``, the manifest's Hub sources, uploads.

Files come through ``huggingface_hub`` (an optional requirement: ``requirements-hub.txt``) into Hugging
Face's own cache, shared with timm and transformers. Its settings are read at each call, so that
they may be set after import: ``HF_ENDPOINT`` (another Hub, or a mirror), ``HF_TOKEN`` (private
repositories), ``HF_HUB_OFFLINE=1`` or ``CONVNETS_HUB_OFFLINE=1`` (the cache only). Every weights
file is verified as any other (:func:`.verify.verify_file`): the manifest's sha256 and size where it
pins them, else the first-use record kept under the name ``hf-hub/<org>/<name>/<revision>/<file>``.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path
from types import ModuleType

from ..errors import InvalidArgumentError, WeightsUnavailableError
from ..settings import hf_endpoint, hf_hub_offline
from .manifest import HF_PREFIX, HubSource, WeightsEntry
from .model_folder import CONFIG_FILE, WEIGHTS_FILE, is_model_folder
from .verify import verify_file

REQUIREMENTS_FILE = "requirements-hub.txt"
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def huggingface_hub() -> ModuleType:
    """The ``huggingface_hub`` module; a WeightsUnavailableError saying how to install it when it is absent."""
    try:
        return importlib.import_module("huggingface_hub")
    except ImportError as exc:
        raise WeightsUnavailableError(f"Hugging Face Hub weights need huggingface_hub, which is not installed: "
                                      f"python3 -m pip install -r {REQUIREMENTS_FILE}") from exc


def parse_hub_id(text: str) -> tuple[str, str | None]:
    """``org/name`` and the revision (or None) of ``hf-hub:org/name[@revision]``; an InvalidArgumentError
    names the input otherwise."""
    repo_id, _, revision = text.removeprefix(HF_PREFIX).partition("@")
    if not _REPO_ID.match(repo_id) or (_ and not revision):
        raise InvalidArgumentError(f"weights={text!r} is not a Hugging Face Hub id: expected "
                                   f"{HF_PREFIX}<org>/<name> or {HF_PREFIX}<org>/<name>@<revision>")
    return repo_id, revision or None


def record_name(repo_id: str, revision: str | None, file_name: str) -> str:
    """The name of a Hub file's first-use record (and of the file in error messages)."""
    return f"hf-hub/{repo_id}/{revision or 'main'}/{file_name}"


def hub_url(repo_id: str, revision: str | None, file_name: str) -> str:
    endpoint = hf_endpoint() or "https://huggingface.co"
    return f"{endpoint}/{repo_id}/resolve/{revision or 'main'}/{file_name}"


def download_hub_file(repo_id: str, revision: str | None, file_name: str) -> Path:
    """``file_name`` of the Hub repository in Hugging Face's cache (downloaded unless offline)."""
    hub = huggingface_hub()
    url = hub_url(repo_id, revision, file_name)
    offline = hf_hub_offline()
    try:
        return Path(hub.hf_hub_download(repo_id, file_name, revision=revision, local_files_only=offline,
                                        endpoint=hf_endpoint()))
    except hub.errors.LocalEntryNotFoundError as exc:
        if offline:
            raise WeightsUnavailableError(
                f"{record_name(repo_id, revision, file_name)} is not in Hugging Face's cache "
                f"({hub.constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE or CONVNETS_HUB_OFFLINE forbids downloading "
                f"it from {url}; download it once online, or copy a cache that holds it") from exc
        raise WeightsUnavailableError(f"could not download {url}: {_reason(exc)}") from exc
    except Exception as exc:  # the Hub's HTTP errors, and requests' or httpx's network errors by version
        raise WeightsUnavailableError(f"could not download {url}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def resolve_hub_file(repo_id: str, revision: str | None, file_name: str, sha256: str | None = None,
                     size: int | None = None) -> Path:
    """The verified local copy of a Hub weights file (sha256 and size where given, else its first-use record)."""
    path = download_hub_file(repo_id, revision, file_name)
    entry = WeightsEntry(id=f"{HF_PREFIX}{repo_id}", entrypoint="", urls=(hub_url(repo_id, revision, file_name),),
                         file_name=record_name(repo_id, revision, file_name), preprocessing={}, license="unknown",
                         sha256=sha256, size=size)
    verify_file(path, entry, f"the Hugging Face cache ({path})")
    return path


def resolve_hub_folder(text: str) -> Path:
    """The local model folder of ``hf-hub:org/name[@revision]``: its config.json and verified model.safetensors."""
    repo_id, revision = parse_hub_id(text)
    download_hub_file(repo_id, revision, CONFIG_FILE)
    return resolve_hub_file(repo_id, revision, WEIGHTS_FILE).parent


def resolve_hub_source(entry: WeightsEntry, source: HubSource) -> tuple[Path, WeightsEntry]:
    """The verified file of one of ``entry``'s Hub sources, and the entry describing that file."""
    repo_id, revision = parse_hub_id(source.hf_hub_id)
    path = resolve_hub_file(repo_id, revision, source.file_name, source.sha256, source.size)
    described = dataclasses.replace(entry, urls=(hub_url(repo_id, revision, source.file_name),),
                                    file_name=record_name(repo_id, revision, source.file_name), sha256=source.sha256,
                                    size=source.size, hash_prefix=None, archive_member=None,
                                    key_layout=source.key_layout, hf_hub_sources=())
    return path, described


def push_model_folder(directory: Path, repo_id: str, *, private: bool = False,
                      commit_message: str = "Upload model (convnets-hub save-pretrained)") -> str:
    """Upload a folder of ``save-pretrained`` to the Hub repository ``repo_id`` (created if need be, with
    ``HF_TOKEN`` or the stored login); returns the URL of the commit."""
    directory = Path(directory)
    if not is_model_folder(directory) or not (directory / WEIGHTS_FILE).is_file():
        raise InvalidArgumentError(f"{directory} is not a model folder: it needs {CONFIG_FILE} and {WEIGHTS_FILE} "
                                   "(python3 -m models save-pretrained writes one)")
    parse_hub_id(repo_id)
    hub = huggingface_hub()
    api = hub.HfApi(endpoint=hf_endpoint())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(directory), commit_message=commit_message)
    except (hub.errors.HfHubHTTPError, OSError, ValueError) as exc:
        raise WeightsUnavailableError(f"could not upload {directory} to {repo_id}: {_reason(exc)}") from exc
    return str(getattr(commit, "commit_url", commit))
