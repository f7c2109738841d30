"""The weights manifest: schema, coverage, agreement with the upstream facts, the README's tables.

The pin command is tested through the command line (test_cli.py)."""

import io
import json
import re
from urllib.parse import urlparse

import pytest
import torch
from conftest import REFERENCE, REPO, Reply
from convnets_hub.models.registry import SPECS
from convnets_hub.models.weights import pin as pin_module
from convnets_hub.models.weights.manifest import load_manifest
from convnets_hub.models.weights.pin import pin

RAW = json.loads((REPO / "weights_manifest.json").read_text())
ENTRIES = RAW["entries"]
UPSTREAM = json.loads((REFERENCE / "upstream_weights.json").read_text())
INTERPOLATIONS = {"bilinear", "bicubic", "nearest"}
UNPUBLISHED = {"lenet5"}  # architectures without published weights


def test_the_manifest_loads_and_ids_are_unique():
    manifest = load_manifest(REPO / "weights_manifest.json")
    assert len(manifest.entries) == len(ENTRIES) == len({e["id"] for e in ENTRIES})


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_entry_schema(entry):
    assert entry["entrypoint"] in SPECS
    assert entry["urls"] and all(urlparse(url).scheme == "https" and urlparse(url).netloc for url in entry["urls"])
    assert re.fullmatch(r"[\w.\-]+", entry["file_name"])
    assert entry["sha256"] is None or re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
    assert entry["size"] is None or entry["size"] > 0
    if entry["hash_prefix"] is not None:
        assert re.fullmatch(r"[0-9a-f]{8,}", entry["hash_prefix"])
        assert f"-{entry['hash_prefix']}." in entry["file_name"]
    member = entry["archive_member"]
    assert member is None or (not member.startswith("/") and ".." not in member)
    prep = entry["preprocessing"]
    assert prep["input_size"][0] == 3 and prep["input_size"][1] == prep["input_size"][2]
    assert 32 <= prep["input_size"][1] <= 1024 and 0.5 <= prep["crop_pct"] <= 1.0
    assert prep["interpolation"] in INTERPOLATIONS
    assert all(0 < v < 1 for v in prep["mean"] + prep["std"]) and len(prep["mean"]) == len(prep["std"]) == 3
    assert 0 < entry["metrics"]["imagenet_top1"] < 100 and entry["metrics"]["source"]
    assert entry["license"] and entry["description"] and entry["num_classes"] == 1000
    assert entry.get("num_params") is None or (isinstance(entry["num_params"], int) and entry["num_params"] > 0)
    for source in entry.get("hf_hub_sources", ()):
        assert re.fullmatch(r"[\w.\-]+/[\w.\-]+", source["hf_hub_id"]) and source["key_layout"] in ("timm", "upstream")
        assert source["file_name"].endswith(".safetensors")
        assert source["sha256"] is None or re.fullmatch(r"[0-9a-f]{64}", source["sha256"])
        assert source["size"] is None or source["size"] > 0


def test_the_manifest_lists_every_hugging_face_copy_that_timm_knows_of_our_weights():
    """timm's pretrained configs name, for an upstream URL, the Hub repository holding the same weights."""
    import timm
    from timm.models import get_pretrained_cfg

    hosted = {}
    for name in timm.list_pretrained():
        cfg = get_pretrained_cfg(name)
        if cfg is not None and cfg.url and cfg.hf_hub_id:
            hosted.setdefault(cfg.url, set()).add(cfg.hf_hub_id)
    for entry in ENTRIES:
        expected = set().union(*(hosted.get(url, set()) for url in entry["urls"]))
        listed = {source["hf_hub_id"] for source in entry.get("hf_hub_sources", ())}
        assert listed == expected, entry["id"]
    assert sum(bool(entry.get("hf_hub_sources")) for entry in ENTRIES) == 14  # the 12 of Facebook, torchvision's 2


def test_every_entrypoint_with_published_weights_has_exactly_one_default():
    served = {}
    for entry in ENTRIES:
        key = (entry["entrypoint"], entry.get("model_type"))
        served[key] = served.get(key, 0) + entry["default"]
    assert all(count == 1 for count in served.values()), served
    assert {entrypoint for entrypoint, _ in served} == set(SPECS) - UNPUBLISHED


def _upstream_facts():
    for family in ("nvidia_convnets", "facebook_semi_supervised"):
        yield from UPSTREAM[family].items()


@pytest.mark.parametrize(("entrypoint", "facts"), list(_upstream_facts()))
def test_entries_agree_with_the_upstream_facts(entrypoint, facts):
    entry = next(e for e in ENTRIES if e["entrypoint"] == entrypoint and e["default"])
    assert entry["urls"][0] == facts["url"] and entry["file_name"] == facts["file_name"]
    assert entry["hash_prefix"] == facts.get("hash_prefix")
    assert entry["metrics"]["imagenet_top1"] == facts["published"]["imagenet_top1"]
    for key in ("input_size", "crop_pct", "interpolation", "mean", "std"):
        assert entry["preprocessing"][key] == facts["preprocessing"][key]


def small_checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(1000.0)}, buffer)
    return buffer.getvalue()


def unpinned_manifest(path, url):
    entry = {**ENTRIES[0], "id": "x.pin", "urls": [url], "file_name": "file.pth", "sha256": None, "size": None}
    path.write_text(json.dumps({"schema_version": 1, "entries": [entry]}, indent=2) + "\n")
    return path


def test_a_pin_that_fails_while_writing_leaves_the_manifest_whole(hub_home, server, tmp_path, monkeypatch):
    manifest = unpinned_manifest(tmp_path / "manifest.json",
                                 server.serve("/pin/file.pth", Reply(body=small_checkpoint())))
    before = manifest.read_text()
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(manifest))
    real_dumps = json.dumps

    def unwritable_manifest(value, *args, **kwargs):  # the manifest's text cannot be encoded: its write fails
        return real_dumps(value, *args, **kwargs) + ("\ud800" if "entries" in value else "")  # as a full disk would

    monkeypatch.setattr(pin_module.json, "dumps", unwritable_manifest)
    with pytest.raises(UnicodeEncodeError):
        pin(progress=False)
    assert manifest.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["manifest.json"], "no temporary file is left"


def test_readme_table_lists_every_entry_with_its_published_accuracy():
    rows = {line.split("|")[1]: line for line in (REPO / "README.md").read_text().splitlines()
            if line.startswith("| `")}
    for entry in ENTRIES:
        candidates = [line for names, line in rows.items() if f"`{entry['entrypoint']}`" in names
                      and (entry.get("model_type") is None or f'"{entry["model_type"]}"' in names)]
        # Entrypoints with several weights without model_type get one row per weights id.
        row = next((line for line in candidates if len(candidates) == 1 or f'"{entry["id"]}"' in line), None)
        assert row is not None, f"README lists no {entry['id']}"
        assert f"{entry['metrics']['imagenet_top1']:g}" in row


@pytest.mark.parametrize(("model_type", "facts"), list(UPSTREAM["nvidia_gpunet"].items()))
def test_gpunet_entries_agree_with_the_upstream_facts(model_type, facts):
    entry = next(e for e in ENTRIES if e.get("model_type") == model_type and e["default"])
    assert entry["entrypoint"] == "nvidia_gpunet" and entry["urls"] == [facts["url"]]
    assert (entry["file_name"], entry["archive_member"]) == (facts["suggested_file_name"], facts["archive_member"])
    assert entry["metrics"]["imagenet_top1"] == facts["published"]["imagenet_top1"]
    for key in ("input_size", "crop_pct", "interpolation", "mean", "std"):
        assert entry["preprocessing"][key] == facts["preprocessing"][key]
    assert entry["metrics"]["latency_published_ms"] == facts["latency_published_ms"]


def test_readme_says_which_entries_are_pinned_hash_prefixed_or_first_use_only():
    readme = (REPO / "README.md").read_text()
    entries = load_manifest(REPO / "weights_manifest.json").entries
    kinds = {"Hash prefix in the upstream file name": {e.entrypoint for e in entries if e.hash_prefix and not e.sha256},
             "First-use record only": {e.entrypoint for e in entries if not e.hash_prefix and not e.sha256}}
    for lead, expected in kinds.items():
        item = readme[readme.index(f"- {lead}"):]
        item = item[:item.index("\n- ") if "\n- " in item else item.index("\n\n")]
        assert set(re.findall(r"`(\w+)`", item)) == expected, lead
    assert ("sha256 pinned in the manifest: none yet" in readme) == (not any(e.sha256 for e in entries))


def test_an_untrained_model_takes_its_preprocessing_from_the_repositorys_manifest(hubconf, monkeypatch, tmp_path):
    """The manifest is the one source of preprocessing: with CONVNETS_HUB_MANIFEST naming a manifest without
    EfficientNet-B4, the untrained model still has the repository manifest's crop_pct (0.9223), not a second
    figure computed elsewhere (380 / 412 = 0.92233 before)."""
    raw = json.loads((REPO / "weights_manifest.json").read_text())
    b4 = next(entry for entry in raw["entries"] if entry["entrypoint"] == "nvidia_efficientnet_b4" and entry.get("default"))
    other = tmp_path / "manifest.json"
    other.write_text(json.dumps({**raw, "entries": [e for e in raw["entries"] if e["entrypoint"] != "nvidia_efficientnet_b4"]}))
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(other))
    cfg = hubconf.nvidia_efficientnet_b4(pretrained=False).pretrained_cfg
    assert cfg["crop_pct"] == b4["preprocessing"]["crop_pct"] == 0.9223
    assert cfg["input_size"] == tuple(b4["preprocessing"]["input_size"])
