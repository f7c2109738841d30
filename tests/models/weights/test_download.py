"""The weights resolver against a loopback HTTP server: cache, mirror, URLs, verification, locking."""

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import warnings

import pytest
import torch
from conftest import REPO, Reply, parity_fixture, remove_big_files, seeded_checkpoint
from convnets_hub.models.errors import WeightsUnavailableError, WeightsVerificationError
from convnets_hub.models.factory import create_model
from convnets_hub.models.weights import verify
from convnets_hub.models.weights.manifest import WeightsEntry
from convnets_hub.models.weights.records import read_record, record_path
from convnets_hub.models.weights.sources import download_url, resolve_weights_file
from convnets_hub.models.weights.verify import UnverifiedWeightsWarning, verification_of


def checkpoint_bytes(seed: int, numel: int = 75_000) -> bytes:
    """A small real checkpoint (a torch.save zip) whose tensor differs with ``seed``."""
    buffer = io.BytesIO()
    torch.save({"w": torch.randn(numel, generator=torch.Generator().manual_seed(seed))}, buffer)
    return buffer.getvalue()


PAYLOAD = checkpoint_bytes(0)
OTHER_PAYLOAD = checkpoint_bytes(1)
TRUNCATED = PAYLOAD[: len(PAYLOAD) // 2]  # a download cut short: it still starts as a checkpoint does
SHA = hashlib.sha256(PAYLOAD).hexdigest()
SIZE = len(PAYLOAD)


def entry_for(*urls, sha256=SHA, size=SIZE, hash_prefix=None, file_name="weights-test.pth"):
    return WeightsEntry(id="test", entrypoint="resnet18_ssl", urls=tuple(urls), file_name=file_name,
                        preprocessing={}, license="test", sha256=sha256,
                        size=size, hash_prefix=hash_prefix)


def cache_listing(hub_home):
    """The cache's weights files, without first-use records (every file in it, lock files included)."""
    directory = hub_home / "checkpoints"
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".sha256.json")) if directory.exists() else []


def test_download_lands_verified_in_the_cache_under_the_upstream_name(hub_home, server):
    url = server.serve("/a/weights-test.pth", Reply(body=PAYLOAD))
    path = resolve_weights_file(entry_for(url), progress=False)
    assert path == hub_home / "checkpoints" / "weights-test.pth"
    assert path.read_bytes() == PAYLOAD
    assert cache_listing(hub_home) == ["weights-test.pth"], "no lock file is left behind"
    resolve_weights_file(entry_for(url), progress=False)
    assert server.hits == ["/a/weights-test.pth"], "a verified cached file is not downloaded again"


def test_truncated_body_is_retried_then_refused_and_leaves_nothing(hub_home, server):
    url = server.serve("/t.pth", Reply(body=PAYLOAD, truncate=True))
    with pytest.raises(WeightsUnavailableError, match="truncated") as error:
        resolve_weights_file(entry_for(url), progress=False)
    assert "weights-test.pth" in str(error.value) and url in str(error.value)
    assert str(hub_home / "checkpoints" / "weights-test.pth") in str(error.value)
    assert len(server.hits) == 4  # the first try and three retries
    assert cache_listing(hub_home) == []


def test_wrong_bytes_fail_verification_and_leave_nothing(hub_home, server):
    url = server.serve("/w.pth", Reply(body=os.urandom(len(PAYLOAD))))
    with pytest.raises(WeightsVerificationError, match="sha256") as error:
        resolve_weights_file(entry_for(url), progress=False)
    assert SHA in str(error.value)
    assert cache_listing(hub_home) == []


def test_a_pin_differing_only_in_its_last_hex_digit_is_refused(hub_home, server):
    url = server.serve("/near/weights-test.pth", Reply(body=PAYLOAD))
    near = SHA[:-1] + format((int(SHA[-1], 16) + 1) % 16, "x")
    with pytest.raises(WeightsVerificationError, match=f"sha256 {SHA}, the manifest pins {near}"):
        resolve_weights_file(entry_for(url, sha256=near), progress=False)
    assert cache_listing(hub_home) == []
    (hub_home / "checkpoints").mkdir(parents=True, exist_ok=True)
    (hub_home / "checkpoints" / "weights-test.pth").write_bytes(PAYLOAD)  # nor is a cached copy taken
    with pytest.warns(UserWarning, match="fails verification"), pytest.raises(WeightsVerificationError):
        resolve_weights_file(entry_for(url, sha256=near), progress=False)


def test_hash_prefix_of_an_unpinned_file_is_checked(hub_home, server):
    url = server.serve("/p.pth", Reply(body=PAYLOAD))
    with pytest.raises(WeightsVerificationError, match="hash prefix"):
        resolve_weights_file(entry_for(url, sha256=None, hash_prefix="00000000"), progress=False)
    with pytest.warns(UnverifiedWeightsWarning, match=SHA):
        resolve_weights_file(entry_for(url, sha256=None, hash_prefix=SHA[:8]), progress=False)


def test_404_on_the_first_url_is_not_retried_and_the_second_url_is_used(hub_home, server):
    missing = server.serve("/missing.pth", Reply(status=404))
    good = server.serve("/good.pth", Reply(body=PAYLOAD))
    assert resolve_weights_file(entry_for(missing, good), progress=False).read_bytes() == PAYLOAD
    assert server.hits == ["/missing.pth", "/good.pth"]


def test_server_errors_are_retried(hub_home, server):
    url = server.serve("/flaky.pth", Reply(status=500), Reply(status=503), Reply(body=PAYLOAD))
    assert resolve_weights_file(entry_for(url), progress=False).read_bytes() == PAYLOAD
    assert server.hits == ["/flaky.pth"] * 3


def test_a_stalled_server_times_out_after_the_configured_timeout_without_a_retry(hub_home, server, monkeypatch):
    monkeypatch.setenv("CONVNETS_HUB_READ_TIMEOUT", "1")
    url = server.serve("/stall.pth", Reply(stall=True))
    with pytest.raises(WeightsUnavailableError, match="(timed out after|stalled for) 1 s"):
        resolve_weights_file(entry_for(url), progress=False)
    assert server.hits == ["/stall.pth"]
    assert cache_listing(hub_home) == []


def test_a_corrupted_cached_file_is_never_loaded(hub_home, server):
    cached = hub_home / "checkpoints" / "weights-test.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"corrupted")
    url = server.serve("/fresh.pth", Reply(body=PAYLOAD))
    with pytest.warns(UserWarning, match="fails verification"):
        assert resolve_weights_file(entry_for(url), progress=False).read_bytes() == PAYLOAD
    assert server.hits == ["/fresh.pth"]


def test_offline_uses_the_cache_and_never_the_network(hub_home, server, monkeypatch):
    url = server.serve("/o.pth", Reply(body=PAYLOAD))
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as error:
        resolve_weights_file(entry_for(url), progress=False)
    message = str(error.value)
    assert "weights-test.pth" in message and url in message
    assert str(hub_home / "checkpoints" / "weights-test.pth") in message
    (hub_home / "checkpoints").mkdir(parents=True)
    (hub_home / "checkpoints" / "weights-test.pth").write_bytes(PAYLOAD)
    assert resolve_weights_file(entry_for(url), progress=False).read_bytes() == PAYLOAD
    assert server.hits == []


def test_mirror_url_is_tried_before_upstream(hub_home, server, monkeypatch):
    upstream = server.serve("/upstream/weights-test.pth", Reply(body=b"wrong"))
    server.serve("/mirror/weights-test.pth", Reply(body=PAYLOAD))
    monkeypatch.setenv("CONVNETS_HUB_MIRROR", server.url("/mirror/"))
    assert resolve_weights_file(entry_for(upstream), progress=False).read_bytes() == PAYLOAD
    assert server.hits == ["/mirror/weights-test.pth"]


def test_mirror_directory_is_used_in_place_even_offline(hub_home, server, tmp_path, monkeypatch):
    upstream = server.serve("/u.pth", Reply(body=PAYLOAD))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "weights-test.pth").write_bytes(PAYLOAD)
    monkeypatch.setenv("CONVNETS_HUB_MIRROR", str(mirror))
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")
    assert resolve_weights_file(entry_for(upstream), progress=False) == mirror / "weights-test.pth"
    assert server.hits == []


def test_a_mirror_file_that_fails_verification_is_refused(hub_home, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "weights-test.pth").write_bytes(OTHER_PAYLOAD)
    monkeypatch.setenv("CONVNETS_HUB_MIRROR", str(mirror))
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")
    with pytest.raises(WeightsVerificationError, match=f"the manifest pins {SHA}") as error:
        resolve_weights_file(entry_for("https://example.invalid/weights-test.pth"), progress=False)
    assert str(mirror / "weights-test.pth") in str(error.value)


def write_manifest(path, url, payload, entrypoint="resnet18_ssl", file_name="semi_supervised_resnet18-d92f0530.pth"):
    entry = {"id": f"{entrypoint}.test", "entrypoint": entrypoint, "default": True, "urls": [url],
             "file_name": file_name, "sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload),
             "hash_prefix": None, "archive_member": None,
             "preprocessing": {"input_size": [3, 224, 224], "crop_pct": 0.875, "interpolation": "bilinear",
                               "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
             "license": "test", "metrics": {"imagenet_top1": 72.8}}
    path.write_text(json.dumps({"schema_version": 1, "entries": [entry]}))
    return path


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("resnet18") / "semi_supervised_resnet18-d92f0530.pth"
    torch.save(seeded_checkpoint(parity_fixture("resnet18_ssl_swsl")), path)
    yield path
    remove_big_files(path.parent)


def test_pretrained_model_through_a_pinned_manifest(repo_dir, hub_home, server, tmp_path, monkeypatch, resnet18_file):
    payload = resnet18_file.read_bytes()
    url = server.serve("/fb/semi_supervised_resnet18-d92f0530.pth", Reply(body=payload))
    manifest = write_manifest(tmp_path / "manifest.json", url, payload)
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(manifest))
    model = torch.hub.load(str(repo_dir), "resnet18_ssl", source="local", progress=False)
    assert model.pretrained_cfg["id"] == "resnet18_ssl.test"
    expected = torch.load(resnet18_file, weights_only=True)
    assert torch.equal(model.state_dict()["layer4.1.conv2.weight"], expected["layer4.1.conv2.weight"])
    assert (hub_home / "checkpoints" / "semi_supervised_resnet18-d92f0530.pth").read_bytes() == payload


# What torch.hub.load(..., "resnet18_ssl") does for its weights (models/builder.py), without building the
# model: the processes import torch and the weights layer only, not timm and torchvision (3 s each).
RESOLVE_THE_DEFAULT_WEIGHTS = """
import hashlib, importlib, models
manifest = importlib.import_module(models.__name__ + ".weights.manifest")
sources = importlib.import_module(models.__name__ + ".weights.sources")
path, _ = sources.resolve_any_source(manifest.load_manifest().default("resnet18_ssl"), progress=False)
print(path, hashlib.sha256(path.read_bytes()).hexdigest())
"""


@pytest.mark.start_first
def test_four_processes_download_once_and_build_identical_models(hub_home, server, tmp_path, resnet18_file,
                                                                  monkeypatch):
    """Four processes want the same weights at once: one downloads (slowly), the others wait for its
    lock; each reads the whole verified file, from which one model is built here."""
    payload = resnet18_file.read_bytes()
    url = server.serve("/slow.pth", Reply(body=payload, seconds=4.0))
    manifest = write_manifest(tmp_path / "manifest.json", url, payload)
    env = {**os.environ, "TORCH_HOME": str(hub_home.parent), "CONVNETS_HUB_MANIFEST": str(manifest)}
    processes = [subprocess.Popen([sys.executable, "-c", RESOLVE_THE_DEFAULT_WEIGHTS], env=env, cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [process.communicate(timeout=300) for process in processes]
    assert [p.returncode for p in processes] == [0] * 4, [err[-2000:] for _, err in results]
    cached = hub_home / "checkpoints" / resnet18_file.name
    assert {out.strip() for out, _ in results} == {f"{cached} {hashlib.sha256(payload).hexdigest()}"}
    assert server.hits == ["/slow.pth"]
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(manifest))
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")  # the model is built from the file the processes left
    model = torch.hub.load(str(REPO), "resnet18_ssl", source="local", progress=False)
    expected = torch.load(resnet18_file, weights_only=True)
    assert model.pretrained_cfg["id"] == "resnet18_ssl.test"
    assert all(torch.equal(model.state_dict()[key], value) for key, value in expected.items())


def test_an_unpinned_file_is_recorded_on_first_use_and_later_loads_are_checked_against_it(hub_home, server):
    url = server.serve("/tofu/weights-test.pth", Reply(body=PAYLOAD), Reply(body=OTHER_PAYLOAD))
    unpinned = entry_for(url, sha256=None, size=None)
    assert verification_of(unpinned) == "none"
    with pytest.warns(UnverifiedWeightsWarning, match=f"{SHA}, recorded"):
        cached = resolve_weights_file(unpinned, progress=False)
    record = read_record("weights-test.pth")
    assert (record.sha256, record.size) == (SHA, SIZE) and verification_of(unpinned) == "first-use record"
    cached.write_bytes(OTHER_PAYLOAD)  # the cache is changed, and upstream now serves other bytes too
    with pytest.warns(UserWarning, match="fails verification"), pytest.raises(WeightsVerificationError) as error:
        resolve_weights_file(unpinned, progress=False)
    message = str(error.value)
    assert f"when it was first used ({record.first_seen}) it had sha256 {SHA}" in message
    assert str(record_path("weights-test.pth")) in message
    assert cache_listing(hub_home) == [], "the changed file is neither kept nor replaced"


def test_a_first_use_record_is_replaced_when_the_manifest_pins_another_file(hub_home, server):
    url = server.serve("/pin/weights-test.pth", Reply(body=OTHER_PAYLOAD))
    with pytest.warns(UnverifiedWeightsWarning):
        resolve_weights_file(entry_for(url, sha256=None, size=None), progress=False)
    (hub_home / "checkpoints" / "weights-test.pth").unlink()
    server.serve("/pin/weights-test.pth", Reply(body=PAYLOAD))
    assert resolve_weights_file(entry_for(url), progress=False).read_bytes() == PAYLOAD
    assert read_record("weights-test.pth").sha256 == SHA


def test_an_unchanged_cached_file_that_no_sha256_pins_is_not_hashed_again(hub_home, server, monkeypatch):
    url = server.serve("/quick/weights-test.pth", Reply(body=PAYLOAD))
    unpinned = entry_for(url, sha256=None)
    with pytest.warns(UnverifiedWeightsWarning):
        path = resolve_weights_file(unpinned, progress=False)
    hashed = []
    original = verify.sha256_of
    monkeypatch.setattr(verify, "sha256_of", lambda p: hashed.append(p) or original(p))
    for _ in range(3):
        resolve_weights_file(unpinned, progress=False)
    assert hashed == []
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    resolve_weights_file(unpinned, progress=False)
    assert hashed == [path], "a file whose modification time changed is hashed again"
    path.write_bytes(PAYLOAD[:-1])  # another size: refused, downloaded again
    with pytest.warns(UserWarning, match="fails verification"):
        resolve_weights_file(unpinned, progress=False)
    assert len(hashed) == 2 and server.hits == ["/quick/weights-test.pth"] * 2


def test_a_pinned_file_is_hashed_at_every_load_whatever_its_record_says(hub_home, server, monkeypatch):
    """A writable cache could rewrite a file and its first-use record's size and times: the pin is what counts."""
    url = server.serve("/forged/weights-test.pth", Reply(body=PAYLOAD))
    path = resolve_weights_file(entry_for(url), progress=False)
    hashed = []
    original = verify.sha256_of
    monkeypatch.setattr(verify, "sha256_of", lambda p: hashed.append(p) or original(p))
    resolve_weights_file(entry_for(url), progress=False)
    assert hashed == [path]
    path.write_bytes(PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 1]))  # one bit changed, and the record made to vouch for it
    record = json.loads(record_path("weights-test.pth").read_text())
    stat = path.stat()
    record["copies"][str(path.resolve())] = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
    record_path("weights-test.pth").write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="fails verification"):
        assert resolve_weights_file(entry_for(url), progress=False).read_bytes() == PAYLOAD
    assert server.hits == ["/forged/weights-test.pth"] * 2


def test_an_unresolvable_host_is_not_retried_and_points_to_offline_and_mirror(hub_home, monkeypatch):
    import socket
    lookups = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "nonexistent.invalid":  # never asks a DNS server: .invalid never resolves anyway
            lookups.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(WeightsUnavailableError) as error:
        resolve_weights_file(entry_for("http://nonexistent.invalid/weights-test.pth"), progress=False)
    assert lookups == ["nonexistent.invalid"], "one try: no retry, no backoff"
    message = str(error.value)
    assert "the host nonexistent.invalid cannot be resolved" in message
    assert "CONVNETS_HUB_OFFLINE=1" in message and "CONVNETS_HUB_MIRROR" in message
    assert "Max retries" not in message and "NameResolutionError" not in message and "tries" not in message
    assert cache_listing(hub_home) == [], "no lock file is left behind"


@pytest.mark.parametrize("exists", [True, False])
def test_a_mirror_directory_without_the_file_is_named_and_said_to_exist_or_not(hub_home, tmp_path, monkeypatch,
                                                                                exists):
    mirror = tmp_path / "mirror"
    if exists:
        mirror.mkdir()
    monkeypatch.setenv("CONVNETS_HUB_MIRROR", str(mirror))
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as error:
        resolve_weights_file(entry_for("https://example.invalid/weights-test.pth"), progress=False)
    state = f"not in the mirror directory {mirror}, which exists" if exists else f"{mirror} does not exist"
    assert str(mirror / "weights-test.pth") in str(error.value) and state in str(error.value)


def test_a_failed_download_leaves_no_lock_file(hub_home, server):
    url = server.serve("/missing.pth", Reply(status=404))
    with pytest.raises(WeightsUnavailableError, match="HTTP 404"):
        resolve_weights_file(entry_for(url), progress=False)
    assert sorted(p.name for p in (hub_home / "checkpoints").iterdir()) == []


def test_an_html_page_served_for_an_unpinned_file_is_refused_and_not_recorded(hub_home, server):
    url = server.serve("/login/weights-test.pth", Reply(body=b"<!DOCTYPE html>\n<html>Please sign in</html>"))
    with pytest.raises(WeightsUnavailableError) as error:
        resolve_weights_file(entry_for(url, sha256=None, size=None), progress=False)
    assert f"{url} (not a checkpoint: it is an HTML or XML page" in str(error.value)
    assert read_record("weights-test.pth") is None and cache_listing(hub_home) == []


def test_two_urls_with_the_same_file_name_are_cached_apart(hub_home, server):
    first = server.serve("/a/model.pth", Reply(body=PAYLOAD))
    second = server.serve("/b/model.pth", Reply(body=OTHER_PAYLOAD))
    with pytest.warns(UnverifiedWeightsWarning):
        first_path = download_url(first, progress=False)
    with pytest.warns(UnverifiedWeightsWarning):
        second_path = download_url(second, progress=False)
    assert (first_path.read_bytes(), second_path.read_bytes()) == (PAYLOAD, OTHER_PAYLOAD)
    assert first_path.name == second_path.name == "model.pth" and first_path.parent != second_path.parent
    assert download_url(first, progress=False) == first_path and download_url(second, progress=False) == second_path
    assert server.hits == ["/a/model.pth", "/b/model.pth"], "each URL is downloaded once, then served from the cache"


def test_a_model_loads_the_weights_of_the_url_it_is_given_not_those_of_an_earlier_url_with_its_file_name(
        hub_home, server):
    states = []
    for seed, folder in enumerate(("a", "b")):
        torch.manual_seed(seed)
        states.append(create_model("lenet5", pretrained=False).state_dict())
        buffer = io.BytesIO()
        torch.save(states[-1], buffer)
        server.serve(f"/{folder}/lenet5.pth", Reply(body=buffer.getvalue()))
    with pytest.warns(UnverifiedWeightsWarning):
        models = [create_model("lenet5", weights=server.url(f"/{folder}/lenet5.pth"), progress=False)
                  for folder in ("a", "b")]
    for model, state in zip(models, states, strict=True):
        assert all(torch.equal(model.state_dict()[key], value) for key, value in state.items())
    assert server.hits == ["/a/lenet5.pth", "/b/lenet5.pth"]


def test_offline_a_cached_file_that_does_not_load_is_kept_unrecorded_and_its_replacement_is_used(
        hub_home, monkeypatch):
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")
    cached = hub_home / "checkpoints" / "weights-test.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(TRUNCATED)
    unpinned = entry_for("https://example.invalid/weights-test.pth", sha256=None, size=None)
    with pytest.raises(WeightsVerificationError) as error:
        resolve_weights_file(unpinned, progress=False)
    message = str(error.value)
    assert str(cached) in message and "ends early" in message and "left in place" in message
    assert cached.read_bytes() == TRUNCATED, "the file is not deleted"
    assert read_record("weights-test.pth") is None and verification_of(unpinned) == "none"
    cached.write_bytes(PAYLOAD)  # the user copies the genuine file where the error said it is
    with pytest.warns(UnverifiedWeightsWarning, match=f"{SHA}, recorded"):
        assert resolve_weights_file(unpinned, progress=False) == cached
    assert cached.read_bytes() == PAYLOAD and read_record("weights-test.pth").sha256 == SHA


def test_offline_a_cached_file_that_fails_its_pin_is_left_in_place_and_the_error_says_so(hub_home, monkeypatch):
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")
    cached = hub_home / "checkpoints" / "weights-test.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(OTHER_PAYLOAD)
    with pytest.raises(WeightsVerificationError) as error:
        resolve_weights_file(entry_for("https://example.invalid/weights-test.pth", size=None), progress=False)
    message = str(error.value)
    assert str(cached) in message and f"the manifest pins {SHA}" in message and "left in place" in message
    assert cached.read_bytes() == OTHER_PAYLOAD


def _change_ctime(path, stat):
    """Touch ``path`` back to ``stat``'s times until its ctime differs from ``stat``'s (file times tick coarsely)."""
    deadline = time.monotonic() + 5
    while path.stat().st_ctime_ns == stat.st_ctime_ns and time.monotonic() < deadline:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_pinned_file_rewritten_at_the_same_size_with_its_mtime_set_back_is_hashed_and_refused(hub_home, server):
    url = server.serve("/ctime/weights-test.pth", Reply(body=PAYLOAD))
    path = resolve_weights_file(entry_for(url), progress=False)
    before = path.stat()
    path.write_bytes(PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 1]))  # one bit changed
    _change_ctime(path, before)
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.warns(UserWarning, match="fails verification"):
        assert resolve_weights_file(entry_for(url), progress=False).read_bytes() == PAYLOAD
    assert server.hits == ["/ctime/weights-test.pth"] * 2, "the changed file was refused and downloaded again"


def test_a_pinned_file_whose_record_names_another_sha256_is_hashed_again(hub_home, server, monkeypatch):
    url = server.serve("/stale/weights-test.pth", Reply(body=PAYLOAD))
    path = resolve_weights_file(entry_for(url), progress=False)
    record = json.loads(record_path("weights-test.pth").read_text())
    record["sha256"] = hashlib.sha256(OTHER_PAYLOAD).hexdigest()  # a stale record that still lists this copy
    record_path("weights-test.pth").write_text(json.dumps(record))
    hashed = []
    original = verify.sha256_of
    monkeypatch.setattr(verify, "sha256_of", lambda p: hashed.append(p) or original(p))
    assert resolve_weights_file(entry_for(url), progress=False) == path
    assert hashed == [path] and server.hits == ["/stale/weights-test.pth"], "hashed, found pinned, not downloaded"
    assert read_record("weights-test.pth").sha256 == SHA


def _refused_url():
    """A loopback URL on a port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights-test.pth"


@pytest.mark.parametrize("first", ["HTTP 404", "connection refused", "fails the pinned sha256",
                                   "fails the first-use record", "truncated, unpinned"])
def test_each_url_of_an_entry_is_tried_in_order_and_verified_alike(hub_home, server, first):
    good = server.serve("/second/weights-test.pth", Reply(body=PAYLOAD))
    pinned = first in {"HTTP 404", "connection refused", "fails the pinned sha256"}
    if first == "fails the first-use record":  # an earlier load recorded PAYLOAD's sha256
        server.serve("/earlier/weights-test.pth", Reply(body=PAYLOAD))
        with pytest.warns(UnverifiedWeightsWarning):
            resolve_weights_file(entry_for(server.url("/earlier/weights-test.pth"), sha256=None, size=None), False)
        (hub_home / "checkpoints" / "weights-test.pth").unlink()
    bad = _refused_url() if first == "connection refused" else server.serve("/first/weights-test.pth", {
        "HTTP 404": Reply(status=404), "fails the pinned sha256": Reply(body=OTHER_PAYLOAD),
        "fails the first-use record": Reply(body=OTHER_PAYLOAD), "truncated, unpinned": Reply(body=TRUNCATED),
    }[first])
    entry = entry_for(bad, good) if pinned else entry_for(bad, good, sha256=None, size=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedWeightsWarning)
        assert resolve_weights_file(entry, progress=False).read_bytes() == PAYLOAD
    assert server.hits[-1] == "/second/weights-test.pth"
    assert read_record("weights-test.pth").sha256 == SHA


def test_when_every_url_fails_the_error_names_each_and_why(hub_home, server):
    missing = server.serve("/first/weights-test.pth", Reply(status=404))
    truncated = server.serve("/second/weights-test.pth", Reply(body=TRUNCATED))
    with pytest.raises(WeightsVerificationError) as error:
        resolve_weights_file(entry_for(missing, truncated, sha256=None, size=None), progress=False)
    message = str(error.value)
    assert f"{missing} (HTTP 404)" in message and f"{truncated} (" in message and "ends early" in message
    assert str(hub_home / "checkpoints" / "weights-test.pth") in message
    assert server.hits == ["/first/weights-test.pth", "/second/weights-test.pth"]
    assert read_record("weights-test.pth") is None and cache_listing(hub_home) == []


BIG = 32 << 20  # bytes a misbehaving server offers; a download stops long before their end


def test_a_download_stops_at_the_size_the_manifest_pins(hub_home, server):
    url = server.serve("/huge/weights-test.pth", Reply(body=PAYLOAD + bytes(BIG)))
    with pytest.raises(WeightsVerificationError, match=f"announces {SIZE + BIG} bytes .*more than the {SIZE} bytes "
                                                       "the manifest pins; stopped there"):
        resolve_weights_file(entry_for(url), progress=False)
    assert server.outcomes.get(timeout=30) == ("/huge/weights-test.pth", "cut off")
    assert cache_listing(hub_home) == []


def test_a_download_that_nothing_sizes_stops_at_the_documented_bound(hub_home, server, monkeypatch):
    monkeypatch.setenv("CONVNETS_HUB_MAX_DOWNLOAD_BYTES", str(1 << 20))
    url = server.serve("/unsized/weights-test.pth", Reply(body=PAYLOAD + bytes(BIG)))
    with pytest.raises(WeightsUnavailableError, match=r"more than CONVNETS_HUB_MAX_DOWNLOAD_BYTES \(1048576\)"):
        resolve_weights_file(entry_for(url, sha256=None, size=None), progress=False)
    assert server.outcomes.get(timeout=30) == ("/unsized/weights-test.pth", "cut off")


def test_an_error_page_served_for_an_unpinned_file_is_refused_at_its_first_bytes(hub_home, server):
    page = b"<!DOCTYPE html>\n<html><body>" + b"Please sign in. " * (BIG // 16)
    url = server.serve("/portal/weights-test.pth", Reply(body=page))
    with pytest.raises(WeightsUnavailableError, match="not a checkpoint: it is an HTML or XML page"):
        resolve_weights_file(entry_for(url, sha256=None, size=None), progress=False)
    assert server.outcomes.get(timeout=30) == ("/portal/weights-test.pth", "cut off")


def test_a_download_lock_file_that_is_a_link_is_one_error_line_and_its_target_untouched(hub_home, server, tmp_path):
    url = server.serve("/locked/weights-test.pth", Reply(body=PAYLOAD))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (hub_home / "checkpoints").mkdir(parents=True)
    (hub_home / "checkpoints" / "weights-test.pth.lock").symlink_to(victim)
    with pytest.raises(WeightsUnavailableError, match=r"cannot take the download lock .*weights-test\.pth\.lock"):
        resolve_weights_file(entry_for(url), progress=False)
    assert victim.read_text() == "precious"
