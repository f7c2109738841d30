"""``python3 -m models smoke`` against a loopback mirror: the table, and failures named by entrypoint."""

import json
import shutil

import pytest
from command_line import run_cli
from conftest import Reply, parity_fixture, seeded_checkpoint
from convnets_hub.models.hub import model_entrypoint_names
from convnets_hub.models.hub_check import plan
from convnets_hub.models.weights.manifest import load_manifest
from upstream_files import write_mirror

SSL, SWSL = "resnet18_ssl.fb_ssl_yfcc100m_ft_in1k", "resnet18_swsl.fb_swsl_ig1b_ft_in1k"


@pytest.fixture
def mirror(tmp_path, server):
    """resnet18_ssl (unpinned: first use) and resnet18_swsl (weights with a NaN) served on 127.0.0.1.

    Upstream URLs and the Hugging Face Hub (the entries' further sources) point at the loopback server too
    (404), so nothing leaves the machine (nor waits for huggingface_hub's retries of an unreachable host).
    """
    nan_state = seeded_checkpoint(parity_fixture("resnet18_ssl_swsl"))
    nan_state["fc.bias"][3] = float("nan")
    files = tmp_path / "files"
    manifest_path = write_mirror(files, [SSL, SWSL], states={SWSL: nan_state})
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["entries"]:
        if entry["id"] in (SSL, SWSL):
            server.serve(f"/mirror/{entry['file_name']}", Reply(body=(files / entry["file_name"]).read_bytes()))
        entry["urls"] = [server.url(f"/upstream/{entry['file_name']}")]
        if entry["id"] == SSL:
            ssl_sha256 = entry["sha256"]
            entry.update(sha256=None, size=None, hash_prefix=None)
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    shutil.rmtree(files)  # served from memory
    env = {"CONVNETS_HUB_MANIFEST": str(manifest_path), "CONVNETS_HUB_MIRROR": server.url("/mirror"),
           "CONVNETS_HUB_OFFLINE": "", "TORCH_HOME": str(tmp_path / "torch"), "HF_ENDPOINT": server.url("/hub")}
    yield env, ssl_sha256, manifest
    shutil.rmtree(tmp_path / "torch", ignore_errors=True)  # about 100 MB of cached weights


def failure_lines(stderr: str) -> list[str]:
    """The failure report: its heading, then one line per failed load."""
    lines = stderr.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("python3 -m models smoke:"))
    return lines[start:]


def test_smoke_tables_each_load_and_names_every_failed_entrypoint(mirror, server, tmp_path):
    env, ssl_sha256, manifest = mirror
    first = run_cli("smoke", "--entrypoint", "resnet18_ssl", "--entrypoint", "resnet18_swsl", "--entrypoint",
                    "lenet5", "--check-predictions", "--markdown", env=env, timeout=300)
    assert first.returncode == 1, first.stderr
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in first.stdout.splitlines()}
    assert rows["entrypoint"][:4] == ["| entrypoint", "weights id", "verified", "sha256"]
    ssl = rows["resnet18_ssl"]
    assert ssl[1:4] == [SSL, "first use (recorded now)", ssl_sha256] and float(ssl[4]) > 0
    assert "top-5 lacks military uniform" in ssl[7], "seeded weights do not recognise Grace Hopper's uniform"
    assert rows["resnet18_swsl"][2] == "sha256 pinned" and "non-finite output" in rows["resnet18_swsl"][7]
    assert rows["lenet5"][1:4] == ["-", "-", "-"] and rows["lenet5"][7] == "ok |"
    failures = failure_lines(first.stderr)
    assert failures[0] == "python3 -m models smoke: 2 of 3 loads failed:"
    assert failures[1].startswith("    resnet18_ssl: top-5 lacks military uniform")
    assert failures[2] == "    resnet18_swsl: non-finite output (NaN or infinite logits)"
    assert len(failures) == 3

    swsl = next(entry for entry in manifest["entries"] if entry["id"] == SWSL)
    (tmp_path / "torch" / "hub" / "checkpoints" / swsl["file_name"]).unlink()
    server.serve(f"/mirror/{swsl['file_name']}", Reply(body=b"corrupt" * 1000))
    second = run_cli("smoke", "--entrypoint", "resnet18_ssl", "--entrypoint", "resnet18_swsl", env=env, timeout=300)
    assert second.returncode == 1, second.stderr
    lines = second.stdout.splitlines()
    assert lines[0].split() == ["entrypoint", "weights", "id", "verified", "sha256", "load", "s", "top-1", "p",
                                "result"]
    ssl_line = next(line for line in lines if line.startswith("resnet18_ssl "))
    assert f"first-use record  {ssl_sha256}" in ssl_line and ssl_line.endswith("ok")
    failures = failure_lines(second.stderr)
    assert failures[0] == "python3 -m models smoke: 1 of 2 loads failed:" and len(failures) == 2
    assert failures[1].startswith("    resnet18_swsl: could not load") and "has 7000 bytes, the manifest expects" \
        in failures[1]


def test_offline_without_weights_says_so_once_and_names_each_missing_file_once(tmp_path):
    result = run_cli("smoke", "--entrypoint", "alexnet", "--entrypoint", "lenet5", "--entrypoint", "nvidia_resneXt",
                     "--entrypoint", "nvidia_resnext101_32x4d", env={"TORCH_HOME": str(tmp_path)})
    assert result.returncode == 1, result.stderr
    manifest = load_manifest()
    resnext, alexnet = (manifest.default(name).file_name for name in ("nvidia_resneXt", "alexnet"))
    assert failure_lines(result.stderr) == [
        ("python3 -m models smoke: 3 of 4 loads failed: this machine is offline (CONVNETS_HUB_OFFLINE=1) and their "
        f"weights are not in {tmp_path / 'hub' / 'checkpoints'}; put the files there, or run python3 -m models "
        "smoke --no-pretrained to check every model without weights. The missing files:"),
        f"    nvidia_resneXt, nvidia_resnext101_32x4d: {resnext}",
        f"    alexnet: {alexnet}"]
    results = [line.split("  ")[-1] for line in result.stdout.splitlines()[1:]]
    assert sorted(results) == ["FAILED: weights unavailable"] * 3 + ["ok"], "the table does not repeat the causes"


def test_no_pretrained_builds_and_runs_every_entrypoint_offline(tmp_path):
    result = run_cli("smoke", "--no-pretrained", "--entrypoint", "lenet5", "--entrypoint", "alexnet",
                     "--entrypoint", "nvidia_gpunet", "--model-type", "GPUNet-0", "--markdown",
                     env={"TORCH_HOME": str(tmp_path)}, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in result.stdout.splitlines()[2:]]
    assert [row[0] for row in rows] == ["alexnet", "lenet5", "nvidia_gpunet (GPUNet-0)"]
    for row in rows:  # no weights; loaded, a forward pass with finite logits
        assert row[1:4] == ["-", "-", "-"] and float(row[4]) >= 0 and row[5] != "-" and row[7] == "ok", row
    assert not list(tmp_path.rglob("*.pth*")), "nothing was downloaded"


def test_no_pretrained_plans_each_entrypoint_and_variant_once(hubconf):
    manifest = load_manifest()
    names = model_entrypoint_names()
    cases = plan(names, manifest, pretrained=False)
    gpunet_types = [entry.model_type for entry in manifest.entries if entry.entrypoint == "nvidia_gpunet"]
    expected = [(name, model_type) for name in names
                for model_type in (gpunet_types if name == "nvidia_gpunet" else [None])]
    assert [(case.entrypoint, case.model_type) for case in cases] == expected
    assert len(gpunet_types) == 7 and all(not case.pretrained and case.weights is None for case in cases)


@pytest.mark.parametrize(("args", "says"), [
    (["--entrypoint", "nvidia_resnext"], "--entrypoint 'nvidia_resnext' is not a model entrypoint; did you mean 'nvidia_resneXt'"),
    (["--entrypoint", "lenet5", "--model-type", "GPUNet-0"], "--model-type GPUNet-0: no such variant"),
    (["--repo", "not a repo"], "--repo 'not a repo' is not OWNER/NAME"),
])
def test_bad_smoke_arguments_are_one_line_errors(args, says):
    result = run_cli("smoke", *args)
    assert result.returncode == 2 and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
