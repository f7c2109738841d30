"""``python3 -m models classify``: inputs, rows, error rows, resume, Ctrl-C, the Ray engine, GPU-style decoding."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import matplotlib
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import skimage
import torch
from conftest import REPO
from convnets_hub.models.batch import decoding
from convnets_hub.models.batch.decoding import CpuDecoder, GpuJpegDecoder, make_decoder
from convnets_hub.models.batch.inputs import expand_inputs
from convnets_hub.models.batch.local import classify_local
from convnets_hub.models.batch.predictor import Predictor
from convnets_hub.models.batch.ray_engine import ModelRecipe, _ClassifyActor
from convnets_hub.models.batch.schema import SCHEMA
from convnets_hub.models.batch.store import ResultStore, read_results
from convnets_hub.models.errors import InvalidArgumentError
from convnets_hub.processing import ConvNetsProcessingUtils
from PIL import Image

GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    environment = {**os.environ, "CONVNETS_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "models", "classify", *args], check=False, cwd=REPO,
                          env=environment, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    """Real photos (JPEG, PNG, a nested directory), a file that is no image and an empty file."""
    root = tmp_path_factory.mktemp("collection")
    shutil.copy(GRACE_HOPPER, root / "grace_hopper.jpg")
    Image.fromarray(skimage.data.astronaut()).save(root / "astronaut.png")
    (root / "nested").mkdir()
    Image.fromarray(skimage.data.coffee()).save(root / "nested" / "coffee.jpg", quality=90)
    Image.fromarray(skimage.data.chelsea()).convert("L").save(root / "nested" / "chelsea_grey.jpg")
    (root / "nested" / "not_an_image.jpg").write_bytes(b"this is text, not a JPEG")
    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not listed: a directory gives only image files")
    return root


@pytest.fixture(scope="module")
def lenet_weights(tmp_path_factory, hubconf) -> Path:
    """A seeded LeNet-5 checkpoint: every process that loads it has the same model."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "lenet5.pth"
    torch.save(hubconf.lenet5(pretrained=False).state_dict(), path)
    return path


def model_args(weights: Path) -> list[str]:
    return ["--entrypoint", "lenet5", "--weights", str(weights), "--top-k", "3", "--no-progress"]


def test_inputs_expand_directories_globs_lists_and_tables(collection, tmp_path):
    images = sorted(str(path) for path in collection.rglob("*") if path.suffix in (".jpg", ".png"))
    assert expand_inputs([str(collection)]) == images
    assert expand_inputs([str(collection / "nested" / "*.jpg")]) == [path for path in images if "nested" in path]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# comment\n{GRACE_HOPPER}\n\nrelative.jpg\nhttp://127.0.0.1:9/x.jpg\n{GRACE_HOPPER}\n")
    assert expand_inputs([str(listing)]) == [str(GRACE_HOPPER), str(tmp_path / "relative.jpg"),
                                             "http://127.0.0.1:9/x.jpg"]
    pq.write_table(pa.table({"file": [str(GRACE_HOPPER), "b.png"]}), tmp_path / "table.parquet")
    (tmp_path / "table.csv").write_text(f"file,other\n{GRACE_HOPPER},1\n")
    assert expand_inputs([str(tmp_path / "table.parquet"), str(tmp_path / "table.csv")], input_column="file") \
        == [str(GRACE_HOPPER), str(tmp_path / "b.png")]
    with pytest.raises(InvalidArgumentError, match="no column 'path'.*file"):
        expand_inputs([str(tmp_path / "table.csv")])
    with pytest.raises(InvalidArgumentError, match="no such file"):
        expand_inputs([str(tmp_path / "missing.jpg")])
    with pytest.raises(InvalidArgumentError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.webp")])


def test_predictions_are_the_hub_models_own(collection, hubconf, tmp_path):
    torch.manual_seed(1)
    model = hubconf.resnet18_ssl(pretrained=False).eval()
    sources = expand_inputs([str(collection)])
    predictor = Predictor(model, top_k=5)
    store = ResultStore(tmp_path / "out.parquet")
    assert classify_local(sources, predictor, CpuDecoder(predictor.preprocess), store, batch_size=3, workers=2,
                          progress=False) == len(sources)
    store.finish()
    rows = {row["path"]: row for row in read_results(tmp_path / "out.parquet").to_pylist()}
    assert list(rows) == sources
    utils = ConvNetsProcessingUtils()
    labels = utils.get_imgnet_classes()
    for path in sources:
        row = rows[path]
        if Path(path).name in ("not_an_image.jpg", "empty.png"):
            assert row["error"].startswith("ImageDecodeError: ") and path in row["error"]
            assert row["labels"] == [] and row["probabilities"] == []
            continue
        with torch.inference_mode():
            expected = model(utils.prepare_input_from_uri(path, model=model)).softmax(dim=1)[0]
        values, indices = expected.topk(5)
        assert row["error"] == ""
        assert row["class_indices"] == indices.tolist()
        assert row["labels"] == [labels[index] for index in indices.tolist()]
        assert torch.allclose(torch.tensor(row["probabilities"]), values, atol=1e-6)
        assert row["entrypoint"] == "resnet18_ssl" and row["weights"] == ""


def test_rows_are_saved_as_they_come_and_published_once_per_path(tmp_path):
    output = tmp_path / "out.jsonl"
    row = {"path": "a", "labels": ["x"], "class_indices": [1], "probabilities": [0.5], "error": "",
           "entrypoint": "e", "weights": "w"}
    store = ResultStore(output)
    store.write([row, {**row, "path": "b"}])
    assert not output.exists()  # a crash now: the parts hold the rows, OUT is not there half-written
    resumed = ResultStore(output, resume=True)
    assert resumed.done == {"a", "b"}
    resumed.write([{**row, "path": "b", "error": "again"}, {**row, "path": "c"}])
    assert resumed.finish() == 3
    assert [r["path"] for r in read_results(output).to_pylist()] == ["a", "b", "c"]
    assert read_results(output).to_pylist()[1]["error"] == ""
    assert not list(tmp_path.glob(".out.jsonl.*")), "parts and temporary files are removed"
    with pytest.raises(InvalidArgumentError, match="--resume.*--overwrite"):
        ResultStore(output)
    ResultStore(output, overwrite=True).finish()
    assert read_results(output).num_rows == 0
    with pytest.raises(InvalidArgumentError, match=".parquet"):
        ResultStore(tmp_path / "out.csv")


def test_local_and_ray_engines_write_the_same_rows(collection, lenet_weights, tmp_path):
    local = run_cli(str(collection), *model_args(lenet_weights), "--output", str(tmp_path / "local.parquet"),
                    "--batch-size", "2")
    assert local.returncode == 0, local.stderr
    ray = run_cli(str(collection), *model_args(lenet_weights), "--output", str(tmp_path / "ray.jsonl"),
                  "--batch-size", "2", "--engine", "ray", "--ray-num-cpus", "2", "--workers", "1")
    assert ray.returncode == 0, ray.stderr
    assert pq.read_schema(tmp_path / "local.parquet").remove_metadata() == SCHEMA
    local_rows = pq.read_table(tmp_path / "local.parquet").to_pylist()
    ray_rows = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text().splitlines()]
    assert [row["path"] for row in local_rows] == expand_inputs([str(collection)])
    assert [row["path"] for row in ray_rows] == [row["path"] for row in local_rows]
    for ours, theirs in zip(local_rows, ray_rows, strict=True):
        assert set(theirs) == set(SCHEMA.names)
        assert {key: ours[key] for key in ("labels", "class_indices", "entrypoint", "weights")} \
            == {key: theirs[key] for key in ("labels", "class_indices", "entrypoint", "weights")}
        assert ours["error"] == theirs["error"]
        assert theirs["probabilities"] == pytest.approx(ours["probabilities"], abs=1e-6)
    errors = {Path(row["path"]).name: row["error"] for row in local_rows if row["error"]}
    assert set(errors) == {"not_an_image.jpg", "empty.png"} and "empty input" in errors["empty.png"]
    assert {row["weights"] for row in local_rows} == {str(lenet_weights)}
    assert all(len(row["labels"]) == 3 for row in local_rows if not row["error"])


def test_ctrl_c_keeps_what_is_done_and_resume_finishes_without_duplicates(lenet_weights, tmp_path):
    links = tmp_path / "links"
    links.mkdir()
    for index in range(1500):
        (links / f"{index:04d}.jpg").symlink_to(GRACE_HOPPER)
    output = tmp_path / "out.parquet"
    command = [sys.executable, "-m", "models", "classify", str(links), *model_args(lenet_weights),
               "--output", str(output), "--batch-size", "4", "--workers", "1"]
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "CONVNETS_HUB_OFFLINE": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts = tmp_path / ".out.parquet.parts"
    deadline = time.monotonic() + 120
    while not (parts.is_dir() and len(list(parts.glob("part-*.parquet"))) >= 2):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no batch was saved within 120 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    kept = pq.read_table(output).column("path").to_pylist()
    assert 8 <= len(kept) < 1500 and len(set(kept)) == len(kept)
    refused = run_cli(str(links), *model_args(lenet_weights), "--output", str(output))
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = run_cli(str(links), *model_args(lenet_weights), "--output", str(output), "--resume",
                      "--batch-size", "64")
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipping {len(kept)} inputs" in resumed.stderr
    paths = pq.read_table(output).column("path").to_pylist()
    assert paths[:len(kept)] == kept
    assert sorted(paths) == sorted(str(path) for path in links.iterdir())


def test_decoding_threads_yield_the_cores_to_the_model(collection, hubconf, tmp_path):
    priorities = []

    class RecordingDecoder(CpuDecoder):
        def load(self, source):
            priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return super().load(source)

    predictor = Predictor(hubconf.resnet18_ssl(pretrained=False).eval(), top_k=1)
    sources = expand_inputs([str(collection)])
    classify_local(sources, predictor, RecordingDecoder(predictor.preprocess), ResultStore(tmp_path / "o.jsonl"),
                   batch_size=2, workers=2, progress=False)
    assert len(priorities) == len(sources)
    assert set(priorities) == {min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)}  # 10 nicer than the model


def test_resume_keeps_error_rows_and_retry_errors_classifies_them_again(lenet_weights, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(GRACE_HOPPER, folder / "a.jpg")
    (folder / "b.jpg").write_bytes(b"half a download")
    output = tmp_path / "out.jsonl"
    first = run_cli(str(folder), *model_args(lenet_weights), "--output", str(output))
    assert first.returncode == 0, first.stderr
    before = {row["path"]: row for row in read_results(output).to_pylist()}
    assert before[str(folder / "b.jpg")]["error"].startswith("ImageDecodeError: ")
    refused = run_cli(str(folder), *model_args(lenet_weights), "--output", str(output), "--retry-errors",
                      "--overwrite")
    assert refused.returncode == 2 and "--retry-errors goes with --resume" in refused.stderr
    shutil.copy(GRACE_HOPPER, folder / "b.jpg")  # the file is complete now
    resumed = run_cli(str(folder), *model_args(lenet_weights), "--output", str(output), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "skipping 2 inputs" in resumed.stderr and "0 inputs classified; 2 rows" in resumed.stderr
    assert {row["path"]: row for row in read_results(output).to_pylist()} == before, "the error row is kept"
    # (reading b.jpg again would have classified it: without --retry-errors its input is not read)
    retried = run_cli(str(folder), *model_args(lenet_weights), "--output", str(output), "--resume",
                      "--retry-errors")
    assert retried.returncode == 0, retried.stderr
    assert "skipping 1 inputs" in retried.stderr and "1 inputs classified; 2 rows" in retried.stderr
    after = {row["path"]: row for row in read_results(output).to_pylist()}
    assert len(read_results(output)) == 2
    assert after[str(folder / "a.jpg")] == before[str(folder / "a.jpg")]
    assert after[str(folder / "b.jpg")]["error"] == ""
    assert after[str(folder / "b.jpg")]["labels"] == after[str(folder / "a.jpg")]["labels"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--threads-per-actor", "2"], "need --engine ray"),
    (["--engine", "ray", "--threads-per-actor", "0"], "--threads-per-actor: must be at least 1, not 0"),
    (["--top-k", "0"], "--top-k: must be at least 1, not 0"),
    (["--batch-size", "many"], "--batch-size: 'many' is not a whole number"),
])
def test_bad_classify_arguments_give_one_line_and_exit_code_2(lenet_weights, tmp_path, extra, message):
    result = run_cli(str(GRACE_HOPPER), *model_args(lenet_weights), "--output", str(tmp_path / "o.jsonl"), *extra)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize(("threads", "actors", "expected"), [
    (None, 1, len(os.sched_getaffinity(0))), (None, 64, 1), (3, 1, 3)])
def test_a_ray_model_actor_takes_its_share_of_the_cores_not_rays_one_thread(lenet_weights, threads, actors,
                                                                            expected):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # what Ray's OMP_NUM_THREADS=1 gives an actor
    try:
        recipe = ModelRecipe("lenet5", {"weights": str(lenet_weights)})
        _ClassifyActor(recipe, top_k=3, pad_to=None, threads=threads, actors=actors)
        assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)


def test_gpu_jpeg_decoder_matches_the_cpu_pixels_on_the_cpu(collection):
    """The GPU path's code, run here with device='cpu' (no GPU in CI): torchvision's JPEG decoder and
    torch's resize stay within the preprocessing tests' tolerance of the hub's CPU pixels."""
    preprocess = {"input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bilinear",
                  "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    cpu, gpu = CpuDecoder(preprocess), GpuJpegDecoder(preprocess, "cpu")
    sources = [str(GRACE_HOPPER), str(collection / "nested" / "coffee.jpg"),
               str(collection / "nested" / "chelsea_grey.jpg"), str(collection / "astronaut.png"),
               str(collection / "nested" / "not_an_image.jpg")]
    loaded = [gpu.load(source) for source in sources]
    assert [isinstance(item, torch.Tensor) for item in loaded] == [False, False, False, True, False]
    decoded = gpu.finish(loaded)
    std = torch.tensor(preprocess["std"]).view(3, 1, 1)
    for source, image in zip(sources[:3], decoded[:3], strict=True):
        difference = ((image - cpu.load(source)) * std).abs().mean().item()
        assert image.shape == (3, 224, 224) and 0 < difference <= 0.02, (source, difference)
    assert torch.equal(decoded[3], cpu.load(sources[3])), "a PNG goes the CPU way"
    assert decoded[4].startswith("ImageDecodeError: ")


@pytest.mark.parametrize(("kind", "device", "decoder"), [
    ("auto", "cuda", "gpu"), ("auto", "cuda:1", "gpu"), ("auto", "cpu", "cpu"), ("gpu", "cuda:0", "gpu"),
    ("gpu", "cpu", "gpu"), ("cpu", "cuda", "cpu")])
def test_decode_auto_decodes_jpegs_on_the_gpu_when_the_device_is_one(monkeypatch, kind, device, decoder):
    """``--decode``'s choice, taken without a GPU: a stand-in records what the GPU decoder would be given."""
    built = []
    monkeypatch.setattr(decoding, "GpuJpegDecoder", lambda preprocess, on: built.append(on) or "the GPU decoder")
    preprocess = {"input_size": (3, 224, 224), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    chosen = make_decoder(kind, preprocess, device)
    if decoder == "gpu":
        assert chosen == "the GPU decoder" and built == [device]
    else:
        assert isinstance(chosen, CpuDecoder) and built == []
