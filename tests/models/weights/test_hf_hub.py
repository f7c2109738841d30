"""weights="hf-hub:org/name": Hugging Face's cache (offline), a loopback Hub (HF_ENDPOINT, HF_TOKEN), the
manifest's Hub sources, push-to-hub, and the one-line error without huggingface_hub."""

import hashlib
import json
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import huggingface_hub
import numpy as np
import pytest
import torch
from command_line import run_cli, run_cli_hiding
from conftest import Reply, parity_fixture, seeded_checkpoint
from convnets_hub.models.errors import (
    CheckpointMismatchError,
    WeightsUnavailableError,
    WeightsVerificationError,
)
from convnets_hub.models.factory import create_model
from convnets_hub.models.sharing import save_pretrained
from convnets_hub.models.weights.verify import UnverifiedWeightsWarning
from PIL import Image
from safetensors.torch import save

COMMIT = "0123456789abcdef0123456789abcdef01234567"
FIXTURE = parity_fixture("resnet18_ssl_swsl")


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    """A save-pretrained folder of resnet18_ssl with the fixture's seeded weights."""
    root = tmp_path_factory.mktemp("saved")
    torch.save(seeded_checkpoint(FIXTURE), root / "upstream.pth")
    return save_pretrained(create_model("resnet18_ssl", weights=str(root / "upstream.pth")), root / "folder")


def has_seeded_weights(model) -> bool:
    seeded = seeded_checkpoint(FIXTURE)
    return all(torch.equal(value, seeded[key]) for key, value in model.state_dict().items())


@pytest.fixture
def hf_cache(hub_home, tmp_path, monkeypatch):
    """An empty Hugging Face cache, online, with no endpoint or token from the environment."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    for name in ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return cache


class LoopbackHub:
    """Answers HEAD and GET /<org>/<name>/resolve/<revision>/<file> as the Hub's resolve API does."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, body: bool):
                hub.requests.append((self.command, self.path, self.headers.get("Authorization")))
                data = hub.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def loopback_hub(saved_folder):
    files = {f"/org/r18/resolve/main/{name}": (saved_folder / name).read_bytes()
             for name in ("config.json", "model.safetensors")}
    hub = LoopbackHub(files)
    yield hub
    hub.close()


def test_hf_hub_weights_download_into_hugging_faces_cache_with_endpoint_and_token(hf_cache, loopback_hub,
                                                                                   monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", loopback_hub.url)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    with pytest.warns(UnverifiedWeightsWarning, match="hf-hub/org/r18/main/model.safetensors"):
        model = create_model("resnet18_ssl", weights="hf-hub:org/r18")
    assert has_seeded_weights(model)
    assert model.pretrained_cfg["label_names"][0].startswith("tench")
    snapshot = hf_cache / "models--org--r18" / "snapshots" / COMMIT
    assert sorted(path.name for path in snapshot.iterdir()) == ["config.json", "model.safetensors"]
    assert {auth for _, _, auth in loopback_hub.requests} == {"Bearer hf_test_token"}
    # Offline, the cached copy serves; the first-use record catches a changed copy.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hits = len(loopback_hub.requests)
    assert has_seeded_weights(create_model("resnet18_ssl", weights="hf-hub:org/r18"))
    assert len(loopback_hub.requests) == hits
    blob = (snapshot / "model.safetensors").resolve()
    blob.write_bytes(save({k: v + 1 for k, v in seeded_checkpoint(FIXTURE).items()}))
    with pytest.raises(WeightsVerificationError, match="when it was first used"):
        create_model("resnet18_ssl", weights="hf-hub:org/r18")


def _cache_layout(cache, folder, repo="org/r18"):
    """A model repository in Hugging Face's cache layout, as a download leaves it."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((folder / name).read_bytes())
    return snapshot


@pytest.mark.parametrize("offline_variable", ["HF_HUB_OFFLINE", "CONVNETS_HUB_OFFLINE"])
def test_a_model_folder_in_hugging_faces_cache_loads_offline(hf_cache, saved_folder, monkeypatch, offline_variable):
    _cache_layout(hf_cache, saved_folder)
    monkeypatch.setenv(offline_variable, "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # never asked
    with pytest.warns(UnverifiedWeightsWarning):
        model = create_model("resnet18_ssl", weights="hf-hub:org/r18")
    assert has_seeded_weights(model)
    with pytest.raises(WeightsUnavailableError, match="hf-hub/org/other/main/config.json is not in Hugging Face's cache"):
        create_model("resnet18_ssl", weights="hf-hub:org/other")
    with pytest.raises(ValueError, match="not a Hugging Face Hub id"):
        create_model("resnet18_ssl", weights="hf-hub:no-slash")


def test_the_manifest_tries_its_hub_source_after_the_upstream_file(hf_cache, loopback_hub, saved_folder, tmp_path,
                                                                  monkeypatch, server):
    """timm's copy of the weights (its own file name, safetensors, timm's keys) when the upstream URL fails."""
    monkeypatch.setenv("HF_ENDPOINT", loopback_hub.url)
    data = (saved_folder / "model.safetensors").read_bytes()
    entry = {"id": "resnet18_ssl.test", "entrypoint": "resnet18_ssl", "default": True,
             "urls": [server.url("/gone/semi_supervised_resnet18-d92f0530.pth")],
             "hf_hub_sources": [{"hf_hub_id": "org/r18", "file_name": "model.safetensors",
                                 "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "key_layout": "timm"}],
             "file_name": "semi_supervised_resnet18-d92f0530.pth", "preprocessing": {
                 "input_size": [3, 224, 224], "crop_pct": 0.875, "interpolation": "bilinear",
                 "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}, "license": "test"}
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"schema_version": 2, "entries": [entry]}))
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(manifest))
    model = create_model("resnet18_ssl", progress=False)
    assert has_seeded_weights(model) and model.pretrained_cfg["id"] == "resnet18_ssl.test"
    entry["hf_hub_sources"][0]["sha256"] = "0" * 64
    manifest.write_text(json.dumps({"schema_version": 2, "entries": [entry]}))
    with pytest.raises(WeightsVerificationError) as error:
        create_model("resnet18_ssl", progress=False)
    assert "HTTP 404" in str(error.value) and "the manifest pins 0000" in str(error.value)


def test_push_to_hub_uploads_the_folder_and_refuses_other_folders(saved_folder, tmp_path, monkeypatch, capsys):
    from convnets_hub.models.cli import main

    calls = []

    class RecordingApi:
        def __init__(self, endpoint=None):
            calls.append(("endpoint", endpoint))

        def create_repo(self, repo_id, private=False, exist_ok=False):
            calls.append(("create_repo", repo_id, private, exist_ok))

        def upload_folder(self, repo_id, folder_path, commit_message):
            calls.append(("upload_folder", repo_id, folder_path))
            return huggingface_hub.CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/1", commit_message="",
                                              commit_description="", oid="1")

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert main(["push-to-hub", str(saved_folder), "org/r18", "--private"]) == 0
    assert calls == [("endpoint", "http://127.0.0.1:9"), ("create_repo", "org/r18", True, True),
                     ("upload_folder", "org/r18", str(saved_folder))]
    assert "https://huggingface.co/org/r18/commit/1" in capsys.readouterr().out
    assert main(["push-to-hub", str(tmp_path), "org/r18"]) == 2
    assert "is not a model folder" in capsys.readouterr().err


def test_without_huggingface_hub_one_line_says_what_to_install(saved_folder, monkeypatch):
    result = run_cli_hiding(("huggingface_hub",), "push-to-hub", str(saved_folder), "org/r18")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "pip install -r requirements-hub.txt" in result.stderr
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(WeightsUnavailableError, match="pip install -r requirements-hub.txt"):
        create_model("resnet18_ssl", weights="hf-hub:org/r18")


def test_classify_takes_hf_hub_weights(hf_cache, hub_home, tmp_path):
    """``classify --weights hf-hub:org/name``, offline, from Hugging Face's cache (the command line in this
    process: a process would only add huggingface_hub's reading of HF_HUB_CACHE at its import, which
    ``hf_cache`` stands in for as in the tests above)."""
    torch.manual_seed(0)
    folder = save_pretrained(create_model("lenet5", pretrained=False), tmp_path / "lenet")
    _cache_layout(hf_cache, folder, repo="org/lenet")
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(tmp_path / "grey.png")
    result = run_cli("classify", str(tmp_path / "grey.png"), "--entrypoint", "lenet5", "--weights", "hf-hub:org/lenet",
                     "--top-k", "2", "--no-progress", "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert row["error"] == "" and len(row["labels"]) == 2 and "models--org--lenet" in row["weights"]
    assert not any(hub_home.rglob("*.pth*")), "nothing went to torch's cache"


@pytest.mark.parametrize(("key_layout", "loads"), [("upstream", True), ("timm", False)])
def test_a_hub_sources_key_layout_says_whether_the_upstream_key_names_are_mapped(hf_cache, tmp_path, monkeypatch,
                                                                                 server, key_layout, loads):
    """NVIDIA's key names (``layer1.block0...``) in a Hub copy load only where its key layout says so."""
    nvidia = seeded_checkpoint(parity_fixture("nvidia_efficientnet_b0"))
    hub = LoopbackHub({"/org/b0/resolve/main/model.safetensors": save(nvidia)})
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    entry = {"id": "b0.test", "entrypoint": "nvidia_efficientnet_b0", "default": True,
             "urls": [server.url("/gone/b0.pth")], "file_name": "b0.pth", "license": "test",
             "hf_hub_sources": [{"hf_hub_id": "org/b0", "key_layout": key_layout}],
             "preprocessing": {"input_size": [3, 224, 224], "crop_pct": 0.875, "interpolation": "bicubic",
                               "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 2, "entries": [entry]}))
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(tmp_path / "manifest.json"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnverifiedWeightsWarning)  # an unpinned source's first use
            if loads:
                model = create_model("nvidia_efficientnet_b0", progress=False)
                assert torch.equal(model.state_dict()["conv_stem.weight"], nvidia["stem.conv.weight"])
            else:
                with pytest.raises(CheckpointMismatchError, match="missing keys"):
                    create_model("nvidia_efficientnet_b0", progress=False)
    finally:
        hub.close()


def test_pin_weights_pins_the_hub_sources_too(hf_cache, loopback_hub, saved_folder, tmp_path, monkeypatch, server):
    from convnets_hub.models.weights.pin import pin

    monkeypatch.setenv("HF_ENDPOINT", loopback_hub.url)
    upstream = save(seeded_checkpoint(FIXTURE))
    entry = {"id": "r18.pin", "entrypoint": "resnet18_ssl", "urls": [server.serve("/up/r18.safetensors",
                                                                                 Reply(body=upstream))],
             "file_name": "r18.safetensors", "license": "test", "hf_hub_sources": [{"hf_hub_id": "org/r18"}],
             "preprocessing": {"input_size": [3, 224, 224], "crop_pct": 0.875, "interpolation": "bilinear",
                               "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 2, "entries": [entry]}))
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(tmp_path / "manifest.json"))
    pin(progress=False)
    (pinned,) = json.loads((tmp_path / "manifest.json").read_text())["entries"]
    hub_file = (saved_folder / "model.safetensors").read_bytes()
    assert (pinned["sha256"], pinned["size"]) == (hashlib.sha256(upstream).hexdigest(), len(upstream))
    assert pinned["hf_hub_sources"] == [{"hf_hub_id": "org/r18", "sha256": hashlib.sha256(hub_file).hexdigest(),
                                         "size": len(hub_file)}]
