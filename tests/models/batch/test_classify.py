"""``python3 -m models classify``: inputs, rows, error rows, resume, Ctrl-C, the Ray engine, GPU-style decoding."""

import contextlib
import gc
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import skimage
import torch
from classify_runs import model_args, run_cli
from conftest import REPO, Reply, closed_port, parity_fixture, seeded_checkpoint
from convnets_hub.models.batch import ray_engine
from convnets_hub.models.batch.decode_kinds import choose_decoding
from convnets_hub.models.batch.decode_queue import DecodeQueue
from convnets_hub.models.batch.decoding import (
    CpuDecoder,
    GpuJpegDecoder,
    HybridDecoder,
    JpegBytes,
    make_decoder,
)
from convnets_hub.models.batch.inputs import Inputs, expand_inputs
from convnets_hub.models.batch.local import classify_local
from convnets_hub.models.batch.predictor import Predictor
from convnets_hub.models.batch.ray_engine import (
    ModelRecipe,
    RaySettings,
    _ClassifyActor,
    _connect,
    classify_ray,
)
from convnets_hub.models.batch.schema import SCHEMA, to_table
from convnets_hub.models.batch.store import ResultStore, read_results
from convnets_hub.models.cli import main
from convnets_hub.models.errors import InvalidArgumentError
from convnets_hub.models.files import NewFile
from convnets_hub.processing import ConvNetsProcessingUtils
from photos import AGREEMENT_BOUNDS, GRACE_HOPPER, LEVELS, PREPROCESS, agreement_photos
from PIL import Image
from raw_http import half_a_body_then_hang_up, raw_http_server

EXIT_SOME_FAILED, EXIT_NONE_CLASSIFIED = 3, 4  # as README's "Errors and exit codes" and classify --help say


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


# The Ray tests run on one pytest-xdist worker (pyproject.toml sets pytest-xdist's --dist loadgroup). A
# Ray session costs 10-30 s (its processes, Ray Data's helper actors, a decoding worker that imports torch)
# and each run a model actor that imports torch and timm (5-9 s): so every real run joins one Ray,
# ``shared_ray``, started by the engine's own ``_connect`` (as ``--engine ray`` without an address does).
# The engine joins a running Ray and leaves it running; that it stops a Ray of its own at the end is shown
# with a stand-in ``ray`` (test_the_ray_engine_stops_the_ray_it_started_and_leaves_a_joined_one_running).
ON_THE_RAY_WORKER = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def _ray_of_this_module():
    """Stops the shared local Ray (if one is running) when this module's tests end (on this worker)."""
    ray = pytest.importorskip("ray", reason="the Ray engine needs ray[data] (requirements-batch.txt)")
    yield ray
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def shared_ray(_ray_of_this_module, monkeypatch):
    """A local Ray as the engine starts one for ``--ray-num-cpus 2`` offline, started at its first use."""
    ray = _ray_of_this_module
    if not ray.is_initialized():
        with monkeypatch.context() as environment:  # its workers inherit the command line's environment
            environment.setenv("CONVNETS_HUB_OFFLINE", "1")
            assert _connect(ray, RaySettings(num_cpus=2)) is True
    return ray


def test_inputs_expand_directories_globs_lists_and_tables(collection, tmp_path):
    images = sorted(str(path) for path in collection.rglob("*") if path.suffix in (".jpg", ".png"))
    assert expand_inputs([str(collection)]) == Inputs(images, skipped=[str(collection / "notes.txt")])
    assert expand_inputs([str(collection / "nested" / "*.jpg")]).sources == [path for path in images
                                                                              if "nested" in path]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# comment\n{GRACE_HOPPER}\n\nrelative.jpg\nhttp://127.0.0.1:9/x.jpg\n{GRACE_HOPPER}\n")
    assert expand_inputs([str(listing)]).sources == [str(GRACE_HOPPER), str(tmp_path / "relative.jpg"),
                                                     "http://127.0.0.1:9/x.jpg"]
    pq.write_table(pa.table({"file": [str(GRACE_HOPPER), "b.png"]}), tmp_path / "table.parquet")
    (tmp_path / "table.csv").write_text(f"file,other\n{GRACE_HOPPER},1\n")
    assert expand_inputs([str(tmp_path / "table.parquet"), str(tmp_path / "table.csv")],
                         input_column="file").sources == [str(GRACE_HOPPER), str(tmp_path / "b.png")]
    with pytest.raises(InvalidArgumentError, match="no column 'path'.*file"):
        expand_inputs([str(tmp_path / "table.csv")])
    with pytest.raises(InvalidArgumentError, match="no such file"):
        expand_inputs([str(tmp_path / "missing.jpg")])
    with pytest.raises(InvalidArgumentError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.webp")])


def test_predictions_are_the_hub_models_own(collection, hubconf, tmp_path):
    torch.manual_seed(1)
    model = hubconf.resnet18_ssl(pretrained=False).eval()
    sources = expand_inputs([str(collection)]).sources
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
    store.close()  # what the crashed process's exit does to its lock
    resumed = ResultStore(output, resume=True)
    assert resumed.is_done("a") and resumed.is_done("b") and not resumed.is_done("c")
    resumed.write([{**row, "path": "b", "error": "again"}, {**row, "path": "c"}])
    assert resumed.finish() == 3
    assert [r["path"] for r in read_results(output).to_pylist()] == ["a", "b", "c"]
    assert read_results(output).to_pylist()[1]["error"] == ""
    assert list(tmp_path.glob(".out.jsonl.*")) == [], "parts, temporary files and the lock file are removed"
    with pytest.raises(InvalidArgumentError, match="resume=True.*overwrite=True"):
        ResultStore(output)
    ResultStore(output, overwrite=True).finish()
    assert read_results(output).num_rows == 0
    with pytest.raises(InvalidArgumentError, match=".parquet"):
        ResultStore(tmp_path / "out.csv")


ROW = {"path": "a", "labels": ["x"], "class_indices": [1], "probabilities": [0.5], "error": "", "entrypoint": "e",
       "weights": "w"}


def test_a_second_run_on_the_same_output_is_refused_at_once_and_no_row_is_lost(lenet_weights, tmp_path):
    output = tmp_path / "out.parquet"
    first = ResultStore(output, resume=True)  # `classify A/ --resume --output out.parquet`, still running
    first.write([{**ROW, "path": "A/1.jpg"}])
    second = run_cli(str(GRACE_HOPPER), *model_args(lenet_weights), "--output", str(output), "--resume")
    assert second.returncode == 2, second.stderr
    assert "is being written by another run" in second.stderr and ".out.parquet.lock" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
    assert not output.exists() and len(list((tmp_path / ".out.parquet.parts").iterdir())) == 1
    first.write([{**ROW, "path": "A/2.jpg"}])
    assert first.finish() == 2
    again = run_cli(str(GRACE_HOPPER), *model_args(lenet_weights), "--output", str(output), "--resume")
    assert again.returncode == 0, again.stderr
    assert read_results(output).column("path").to_pylist() == ["A/1.jpg", "A/2.jpg", str(GRACE_HOPPER)]


def test_part_names_are_unique_per_run(tmp_path):
    output = tmp_path / "out.jsonl"
    crashed = ResultStore(output)
    crashed.write([{**ROW, "path": "a"}])
    crashed.write([{**ROW, "path": "b"}])
    crashed.close()
    parts = sorted((tmp_path / ".out.jsonl.parts").iterdir())
    parts[0].unlink()  # one part of the interrupted run is gone: the next run's numbers must not meet the others
    resumed = ResultStore(output, resume=True)
    resumed.write([{**ROW, "path": "c"}])
    assert resumed.finish() == 2
    assert read_results(output).column("path").to_pylist() == ["b", "c"]


def test_ctrl_c_while_rows_are_written_leaves_no_open_writer_behind(tmp_path, monkeypatch):
    """Ctrl-C during a part's write: the part is discarded, and its Parquet writer is closed with it (its
    garbage collection once printed a traceback below "interrupted"); the rows saved before stay."""
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    store = ResultStore(tmp_path / "out.parquet")
    store.write([ROW])
    monkeypatch.setattr(pq.ParquetWriter, "write_table", lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        store.write([{**ROW, "path": "b"}])
    gc.collect()
    assert [str(hook.exc_value) for hook in unraisable] == []
    monkeypatch.undo()
    assert store.finish() == 1 and read_results(tmp_path / "out.parquet").column("path").to_pylist() == ["a"]


def test_temporary_files_are_created_exclusively_and_never_follow_a_planted_link(tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    output = tmp_path / "out.parquet"
    (tmp_path / ".out.parquet.parts").mkdir()
    for planted in (tmp_path / ".out.parquet.tmp", tmp_path / ".out.parquet.parts" / "part-00000000.tmp"):
        planted.symlink_to(victim)  # where the temporary files used to be written, by name
    store = ResultStore(output)
    store.write([ROW])
    assert store.finish() == 1
    assert victim.read_text() == "precious" and not output.is_symlink()
    assert read_results(output).column("path").to_pylist() == ["a"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(output.stat().st_mode) == 0o666 & ~umask, "OUT has a new file's usual mode"

    names = iter(["planted", "fresh"])  # a link at the first random name drawn: another one is drawn
    monkeypatch.setattr(secrets, "token_hex", lambda size: next(names))
    (tmp_path / ".x.planted.tmp").symlink_to(victim)
    with NewFile(tmp_path / "x") as new:
        new.file.write(b"new")
        assert new.path == tmp_path / ".x.fresh.tmp"
        new.publish()
    assert (tmp_path / "x").read_bytes() == b"new" and victim.read_text() == "precious"


@ON_THE_RAY_WORKER
def test_local_and_ray_engines_write_the_same_rows(collection, lenet_weights, tmp_path, monkeypatch, capsys,
                                                   shared_ray):
    """The engine joins a running Ray and leaves it running. Ray's batches are Arrow tables, whose text
    is UTF-8: the paths of file names that are not UTF-8 travel as bytes, the rows hold \\xNN, as the
    local engine's Parquet rows do."""
    folder = tmp_path / "photos"
    shutil.copytree(collection, folder)
    if sys.platform == "linux":  # file names of any bytes (Linux file systems)
        shutil.copy(GRACE_HOPPER, os.fsdecode(os.fsencode(folder) + b"/caf\xe9.jpg"))
        Path(os.fsdecode(os.fsencode(folder) + b"/\xff.png")).write_bytes(b"not a PNG")
    local = run_cli(str(folder), *model_args(lenet_weights), "--output", str(tmp_path / "local.parquet"),
                    "--batch-size", "2")
    assert local.returncode == EXIT_SOME_FAILED, local.stderr  # some inputs are no images
    ray = run_cli(str(folder), *model_args(lenet_weights), "--output", str(tmp_path / "ray.jsonl"),
                  "--batch-size", "2", "--engine", "ray", "--ray-num-cpus", "2", "--workers", "1")
    assert ray.returncode == EXIT_SOME_FAILED, ray.stderr
    assert shared_ray.is_initialized(), "the engine leaves running a Ray that it joined"
    assert pq.read_schema(tmp_path / "local.parquet").remove_metadata() == SCHEMA
    local_rows = pq.read_table(tmp_path / "local.parquet").to_pylist()
    ray_rows = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text().splitlines()]
    sources = expand_inputs([str(folder)]).sources
    assert [row["path"] for row in local_rows] == [os.fsencode(path).decode("utf-8", "backslashreplace")
                                                   for path in sources]
    assert [row["path"] for row in ray_rows] == [row["path"] for row in local_rows]
    for ours, theirs in zip(local_rows, ray_rows, strict=True):
        assert set(theirs) == set(SCHEMA.names)
        assert {key: ours[key] for key in ("labels", "class_indices", "entrypoint", "weights")} \
            == {key: theirs[key] for key in ("labels", "class_indices", "entrypoint", "weights")}
        assert ours["error"] == theirs["error"]
        assert theirs["probabilities"] == pytest.approx(ours["probabilities"], abs=1e-6)
    errors = {Path(row["path"]).name: row["error"] for row in local_rows if row["error"]}
    not_utf8 = {"\\xff.png"} if sys.platform == "linux" else set()
    assert set(errors) == {"not_an_image.jpg", "empty.png", *not_utf8} and "empty input" in errors["empty.png"]
    assert {row["weights"] for row in local_rows} == {str(lenet_weights)}
    assert all(len(row["labels"]) == 3 for row in local_rows if not row["error"])
    if sys.platform == "linux":
        rows = {row["path"]: row for row in ray_rows}
        assert rows[f"{folder}/caf\\xe9.jpg"]["error"] == "" and len(rows[f"{folder}/caf\\xe9.jpg"]["labels"]) == 3
        assert rows[f"{folder}/\\xff.png"]["error"].startswith(f"ImageDecodeError: {folder}/\\xff.png: ")
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")
    capsys.readouterr()
    assert main(["classify", str(folder), *model_args(lenet_weights), "--output", str(tmp_path / "ray.jsonl"),
                 "--resume"]) == 0
    assert f"skipping {len(sources)} inputs already in" in capsys.readouterr().err, \
        "the local engine's resume finds Ray's rows"


# A terminal starts a command with Ctrl-C's default action; this pytest process's children may not get it:
# after the Ray tests, `python3 -m models` was seen starting with SIGINT and SIGQUIT ignored (SigIgn ...06,
# inherited: what C's system() sets in a process while it runs), and it then ran to its end. So the
# command is started through this, which restores SIGINT's default, then becomes `python3 ARGS`.
AS_FROM_A_TERMINAL = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                      "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


def test_ctrl_c_keeps_what_is_done_and_resume_finishes_without_duplicates(lenet_weights, tmp_path, server):
    """The run is a process (Ctrl-C, its exit code). Its ninth input is a URL whose server answers
    nothing until the test ends: the run cannot end before Ctrl-C comes (a run of 500 photos could, on
    a loaded machine), and what is done when it comes is known: the first two batches of 4."""
    before, after = tmp_path / "before", tmp_path / "after"
    for folder, count in ((before, 8), (after, 3)):
        folder.mkdir()
        for index in range(count):
            (folder / f"{index:04d}.jpg").symlink_to(GRACE_HOPPER)
    url = server.serve("/photo.jpg", Reply(stall=True), Reply(body=GRACE_HOPPER.read_bytes()))
    inputs = [str(before), url, str(after)]
    output = tmp_path / "out.parquet"
    command = [sys.executable, "-c", AS_FROM_A_TERMINAL, "-m", "models", "classify", *inputs,
               *model_args(lenet_weights), "--output", str(output), "--batch-size", "4", "--workers", "1"]
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "CONVNETS_HUB_OFFLINE": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts = tmp_path / ".out.parquet.parts"
    deadline = time.monotonic() + 120
    while not (parts.is_dir() and len(list(parts.glob("part-*.parquet"))) >= 2):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no batch was saved within 120 s"
        time.sleep(0.02)
    signals = "?"  # for the message of a failure: whether the run blocked or ignored SIGINT (Linux)
    with contextlib.suppress(OSError):
        signals = [line for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
                   if line.startswith(("SigBlk", "SigIgn"))]
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, f"{stderr} (when Ctrl-C came: {signals})"
    assert "interrupted" in stderr and "Traceback" not in stderr
    kept = pq.read_table(output).column("path").to_pylist()
    assert kept == sorted(str(path) for path in before.iterdir()), "the two batches done before Ctrl-C, once each"
    refused = run_cli(*inputs, *model_args(lenet_weights), "--output", str(output))
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = run_cli(*inputs, *model_args(lenet_weights), "--output", str(output), "--resume", "--batch-size", "64")
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipping {len(kept)} inputs" in resumed.stderr
    paths = pq.read_table(output).column("path").to_pylist()
    assert paths == [*kept, url, *sorted(str(path) for path in after.iterdir())]


def test_decoding_threads_yield_the_cores_to_the_model(collection, hubconf, tmp_path):
    priorities = []

    class RecordingDecoder(CpuDecoder):
        def load(self, source):
            priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return super().load(source)

    predictor = Predictor(hubconf.resnet18_ssl(pretrained=False).eval(), top_k=1)
    sources = expand_inputs([str(collection)]).sources
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
    assert first.returncode == EXIT_SOME_FAILED, first.stderr
    before = {row["path"]: row for row in read_results(output).to_pylist()}
    assert before[str(folder / "b.jpg")]["error"].startswith("ImageDecodeError: ")
    refused = run_cli(str(folder), *model_args(lenet_weights), "--output", str(output), "--retry-errors",
                      "--overwrite")
    assert refused.returncode == 2 and "--retry-errors goes with --resume" in refused.stderr
    shutil.copy(GRACE_HOPPER, folder / "b.jpg")  # the file is complete now
    resumed = run_cli(str(folder), *model_args(lenet_weights), "--output", str(output), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "skipping 2 inputs" in resumed.stderr and "0 inputs: 0 classified, 0 errors; 2 rows" in resumed.stderr
    assert {row["path"]: row for row in read_results(output).to_pylist()} == before, "the error row is kept"
    # (reading b.jpg again would have classified it: without --retry-errors its input is not read)
    retried = run_cli(str(folder), *model_args(lenet_weights), "--output", str(output), "--resume",
                      "--retry-errors")
    assert retried.returncode == 0, retried.stderr
    assert "skipping 1 input already" in retried.stderr and "1 input: 1 classified, 0 errors; 2 rows" in retried.stderr
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


def test_gpu_decoder_takes_local_jpegs_and_sends_the_rest_the_cpu_way(collection):
    """The GPU path's code, run here with device='cpu' (decode_jpeg's libjpeg-turbo decoder)."""
    cpu, gpu = CpuDecoder(PREPROCESS), GpuJpegDecoder(PREPROCESS, "cpu")
    sources = [str(GRACE_HOPPER), str(collection / "nested" / "coffee.jpg"),
               str(collection / "nested" / "chelsea_grey.jpg"), str(collection / "astronaut.png"),
               str(collection / "nested" / "not_an_image.jpg"), str(collection / "empty.png")]
    loaded = [gpu.read(source) for source in sources]
    assert [type(item).__name__ for item in loaded] == ["JpegBytes", "JpegBytes", "JpegBytes", "Tensor", "str", "str"]
    decoded = gpu.decode(loaded[:3])
    for source, image in zip(sources[:3], decoded, strict=True):
        assert image.shape == (3, 224, 224) and ((image - cpu.load(source)) * LEVELS).abs().max() < 2.5, source
    assert torch.equal(loaded[3], cpu.load(sources[3])), "a PNG goes the CPU way"
    assert loaded[4].startswith("ImageDecodeError: ") and loaded[5].startswith("ImageDecodeError: ")
    truncated = JpegBytes("half.jpg", loaded[0].data[:200].clone())  # decode_jpeg rejects it: the CPU path's error
    assert gpu.decode([truncated])[0].startswith("ImageInputError: half.jpg: no such file")


def test_a_url_that_breaks_off_mid_body_is_an_error_row_not_the_end_of_the_run():
    """urllib3's ProtocolError escaped the decoding thread: a traceback, exit 1, no row kept."""
    with raw_http_server(half_a_body_then_hang_up) as url:
        for decoder in (CpuDecoder(PREPROCESS), GpuJpegDecoder(PREPROCESS, "cpu")):
            row = decoder.load(url) if isinstance(decoder, CpuDecoder) else decoder.read(url)
            assert row.startswith(f"ImageFetchError: {url}: the connection broke off (Connection broken: ")


def test_gpu_decoder_sends_a_thin_jpeg_the_cpu_way_which_resizes_only_the_crop(tmp_path):
    """A 1 x 30000 JPEG resized whole would be 256 x 7.7 M pixels (5.9 GB in uint8): the CPU way
    resizes only the part that the crop reads."""
    thin = tmp_path / "thin.jpg"
    Image.new("RGB", (30_000, 1), (200, 100, 50)).save(thin)
    loaded = GpuJpegDecoder(PREPROCESS, "cpu").read(str(thin))
    assert isinstance(loaded, torch.Tensor) and loaded.shape == (3, 224, 224)
    assert torch.equal(loaded, CpuDecoder(PREPROCESS).load(str(thin)))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_gpu_decoder_turns_photos_upright_as_the_cpu_path_does(tmp_path, orientation, device):
    """torchvision applies EXIF orientation on the CPU only: the decoder does it on any device."""
    exif = Image.Exif()
    exif[0x0112] = orientation  # EXIF Orientation
    path = tmp_path / "turned.jpg"
    Image.fromarray(skimage.data.chelsea()).save(path, exif=exif, quality=90)  # 451 x 300: not square
    gpu = GpuJpegDecoder(PREPROCESS, device)
    (image,) = gpu.finish(gpu.decode([gpu.read(str(path))]))
    difference = ((image.cpu() - CpuDecoder(PREPROCESS).load(str(path))) * LEVELS).abs()
    assert difference.mean() < 1, "a photo turned the wrong way differs by tens of levels"
    if device == "cpu":  # the same JPEG decoder and resize algorithm: rounding only
        assert difference.max() < 1.5


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_gpu_decoding_stays_close_to_the_hub_pixels(hubconf, tmp_path, device):
    """The GPU path against prepare_input_from_uri: absolute pixel differences (8-bit levels) and the
    top-5 classes of a seeded resnet50 whose BatchNorm statistics are those of these photos."""
    paths = agreement_photos(tmp_path)
    cpu, gpu = CpuDecoder(PREPROCESS), GpuJpegDecoder(PREPROCESS, device)
    exact = torch.stack([cpu.load(path) for path in paths])
    ours = torch.stack(gpu.finish(gpu.decode([gpu.read(path) for path in paths]))).cpu()
    difference = ((ours - exact) * LEVELS).abs()
    mean, p99 = difference.mean().item(), torch.quantile(difference.flatten(), 0.99).item()
    weights = tmp_path / "resnet50_seeded.pth"
    torch.save(seeded_checkpoint(parity_fixture("nvidia_resnet50")), weights)
    model = hubconf.nvidia_resnet50(weights=str(weights))
    for norm in (module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)):
        norm.reset_running_stats()
        norm.momentum = None  # the statistics of one batch: these photos
    with torch.no_grad():
        model.train()(exact)
        expected, actual = model.eval()(exact).topk(5).indices, model(ours).topk(5).indices
    top5 = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(expected, actual, strict=True)) / expected.numel()
    top1 = (expected[:, 0] == actual[:, 0]).float().mean().item()
    print(f"{device}: mean {mean:.3f} levels, p99 {p99:.2f}, max {difference.max().item():.0f}; top-5 {top5:.4f}, "
          f"top-1 {top1:.4f}; {len({tuple(sorted(row.tolist())) for row in expected})} distinct top-5 sets")
    bounds = AGREEMENT_BOUNDS[device]
    assert mean <= bounds["mean"] and p99 <= bounds["p99"]
    assert top5 >= bounds["top5"] and top1 >= bounds["top1"]


def test_auto_decoding_is_hybrid_on_a_gpu_and_the_exact_cpu_path_on_a_cpu():
    assert choose_decoding("auto", "cuda:1") == "hybrid" and choose_decoding("auto", "cpu") == "cpu"
    assert [choose_decoding(kind, "cuda") for kind in ("cpu", "gpu", "hybrid")] == ["cpu", "gpu", "hybrid"]
    hybrid = make_decoder("auto", PREPROCESS, "cuda", gpu_batch_size=256)  # builds without touching CUDA
    assert isinstance(hybrid, HybridDecoder) and hybrid.gpu.batch_size == 256 and hybrid.gpu.device.type == "cuda"
    assert type(make_decoder("auto", PREPROCESS, "cpu")) is CpuDecoder
    with pytest.raises(InvalidArgumentError, match="decode='nvjpeg'.*auto, cpu, gpu, hybrid"):
        choose_decoding("nvjpeg", "cpu")


def test_decoders_take_sources_in_order_within_the_window():
    queue = DecodeQueue([f"s{index}" for index in range(10)], window=4)
    assert queue.take(3) == [(0, "s0"), (1, "s1"), (2, "s2")]
    assert queue.take(10) == [(3, "s3")], "no more than 4 ahead of the model"
    queue.put([(1, "b"), (0, "a"), (3, "d"), (2, "c")])
    batches = queue.batches(2)
    assert next(batches) == (["s0", "s1"], ["a", "b"])
    assert queue.take(10) == [(4, "s4"), (5, "s5")], "the model took 2: 2 more may go"
    queue.close()
    assert queue.take(1) == []


def test_hybrid_decoding_shares_one_queue_between_cpu_threads_and_the_gpu_decoder(hubconf, tmp_path):
    sources = make_links(tmp_path, 48) + [str(tmp_path / "missing.jpg")]
    counts = {"cpu": 0, "gpu": 0}

    class CountingCpu(CpuDecoder):
        def load(self, source):
            counts["cpu"] += 1
            return super().load(source)

    class CountingGpu(GpuJpegDecoder):
        def decode(self, jpegs):
            counts["gpu"] += len(jpegs)
            return super().decode(jpegs)

    torch.manual_seed(0)
    predictor = Predictor(hubconf.resnet18_ssl(pretrained=False).eval(), top_k=3)
    decoder = HybridDecoder(CountingCpu(PREPROCESS), CountingGpu(PREPROCESS, "cpu", batch_size=4))
    decoder.gpu.cpu = decoder.cpu  # what the GPU decoder sends the CPU way is counted too
    store = ResultStore(tmp_path / "out.parquet")
    assert classify_local(sources, predictor, decoder, store, batch_size=8, workers=2, progress=False) == 49
    store.finish()
    rows = read_results(tmp_path / "out.parquet").to_pylist()
    assert [row["path"] for row in rows] == sources
    assert rows[-1]["error"].startswith("ImageInputError: ") and not any(row["error"] for row in rows[:-1])
    assert counts["cpu"] >= 2 and counts["gpu"] >= 4, counts
    assert counts["cpu"] + counts["gpu"] == 49, "each image is decoded once, by one of the two"


def make_links(directory: Path, count: int) -> list[str]:
    """``count`` names of the same photo (symbolic links)."""
    links = directory / "links"
    links.mkdir()
    for index in range(count):
        (links / f"{index:04d}.jpg").symlink_to(GRACE_HOPPER)
    return [str(path) for path in sorted(links.iterdir())]


def test_a_decoding_thread_that_dies_stops_the_run_with_its_error(hubconf, tmp_path):
    class Broken(CpuDecoder):
        def load(self, source):
            raise KeyError("a bug in a decoder")

    predictor = Predictor(hubconf.lenet5(pretrained=False), top_k=1)
    with pytest.raises(KeyError, match="a bug in a decoder"):
        classify_local(make_links(tmp_path, 6), predictor, Broken(predictor.preprocess),
                       ResultStore(tmp_path / "o.jsonl"), batch_size=2, workers=2, progress=False)


class StandInRay:
    """What the engine calls of ``ray`` to start, join and stop one, recorded."""

    def __init__(self, running: bool) -> None:
        self.running, self.calls = running, []
        self.cloudpickle = SimpleNamespace(register_pickle_by_value=lambda module: None)

    def is_initialized(self) -> bool:
        return self.running

    def init(self, **settings) -> None:
        self.running = True
        self.calls.append(("init", settings))

    def shutdown(self) -> None:
        self.running = False
        self.calls.append(("shutdown", {}))


@pytest.mark.parametrize("fails", [False, True], ids=["run", "failed-run"])
def test_the_ray_engine_stops_the_ray_it_started_and_leaves_a_joined_one_running(tmp_path, monkeypatch, fails):
    """Without a running Ray the engine starts a local one (on 127.0.0.1, with --ray-num-cpus) and stops
    it at the end, also when the run fails; a running Ray is joined and left running. (The real runs
    above and below join a shared Ray: a Ray session costs 10-30 s.)"""
    def pipeline(*args):
        if fails:
            raise RuntimeError("a Ray Data stage failed")
        return SimpleNamespace(iter_batches=lambda **options: iter([to_table([])]))

    monkeypatch.setattr(ray_engine, "_pipeline", pipeline)
    for running, expected in ((False, ["init", "shutdown"]), (True, [])):
        ray = StandInRay(running)
        monkeypatch.setitem(sys.modules, "ray", ray)
        store = ResultStore(tmp_path / f"{running}.jsonl")
        with pytest.raises(RuntimeError, match="stage failed") if fails else contextlib.nullcontext():
            assert classify_ray([str(GRACE_HOPPER)], ModelRecipe("lenet5"), PREPROCESS, store,
                                RaySettings(num_cpus=2), progress=False) == 0
        store.close()
        assert [name for name, _ in ray.calls] == expected and ray.running is running
        if not running:
            assert {key: ray.calls[0][1][key] for key in ("num_cpus", "_node_ip_address")} \
                == {"num_cpus": 2, "_node_ip_address": "127.0.0.1"}


@ON_THE_RAY_WORKER
def test_ray_engine_decodes_jpegs_in_its_model_actors(collection, hubconf, tmp_path, shared_ray):
    """``--engine ray --decode gpu``: the tasks read the bytes, the actor decodes (here on the CPU),
    with the local engine's GPU decoder's pixels and the CPU path for the rest."""
    torch.manual_seed(2)
    weights = tmp_path / "resnet18.pth"
    torch.save(hubconf.resnet18_ssl(pretrained=False).state_dict(), weights)
    common = ["--entrypoint", "resnet18_ssl", "--weights", str(weights), "--top-k", "3", "--no-progress",
              "--batch-size", "3", "--decode", "gpu"]
    local = run_cli(str(collection), *common, "--output", str(tmp_path / "local.jsonl"))
    assert local.returncode == EXIT_SOME_FAILED, local.stderr  # two inputs are no images
    ray = run_cli(str(collection), *common, "--output", str(tmp_path / "ray.jsonl"), "--engine", "ray",
                  "--ray-num-cpus", "2", "--workers", "1")
    assert ray.returncode == EXIT_SOME_FAILED, ray.stderr
    local_rows, ray_rows = (read_results(tmp_path / name).to_pylist() for name in ("local.jsonl", "ray.jsonl"))
    assert [row["path"] for row in ray_rows] == [row["path"] for row in local_rows] \
        == expand_inputs([str(collection)]).sources
    for ours, theirs in zip(local_rows, ray_rows, strict=True):
        assert (ours["error"], ours["class_indices"]) == (theirs["error"], theirs["class_indices"])
        assert theirs["probabilities"] == pytest.approx(ours["probabilities"], abs=1e-5)


def test_the_summary_counts_predictions_errors_and_skipped_files_and_exits_3(lenet_weights, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(GRACE_HOPPER, folder / "a.jpg")
    (folder / "b.jpg").write_bytes(b"half a download")
    for name in ("notes.txt", "labels.csv", "readme.md", "z.doc"):
        (folder / name).write_text("no image")
    url = f"http://127.0.0.1:{closed_port()}/photo.jpg"
    output = tmp_path / "out.jsonl"
    result = run_cli(str(folder), url, *model_args(lenet_weights), "--output", str(output))
    assert result.returncode == EXIT_SOME_FAILED, result.stderr
    assert (f"skipping 4 files that are not images (by their extension): {folder / 'labels.csv'}, "
            f"{folder / 'notes.txt'}, {folder / 'readme.md'}, ...") in result.stderr.splitlines()
    assert result.stderr.splitlines()[-1] == ("3 inputs: 1 classified, 2 errors, 4 files skipped (not images); "
                                              f"3 rows in {output}")
    errors = {row["path"]: row["error"] for row in map(json.loads, output.read_text().splitlines())}
    assert errors[url] == f"ImageFetchError: {url}: cannot connect: connection refused"
    assert errors[str(folder / "a.jpg")] == "" and errors[str(folder / "b.jpg")].startswith("ImageDecodeError: ")


def test_nothing_classified_exits_4(lenet_weights, tmp_path):
    (tmp_path / "b.jpg").write_bytes(b"half a download")
    result = run_cli(str(tmp_path / "b.jpg"), *model_args(lenet_weights), "--output", str(tmp_path / "o.jsonl"))
    assert result.returncode == EXIT_NONE_CLASSIFIED, result.stderr
    assert result.stderr.splitlines()[-1] == f"1 input: 0 classified, 1 error; 1 row in {tmp_path / 'o.jsonl'}"


def test_classify_help_documents_the_exit_codes():
    result = run_cli("--help")
    text = " ".join(result.stdout.split())
    assert f"{EXIT_SOME_FAILED} when some could not be (their rows hold the cause), {EXIT_NONE_CLASSIFIED} when none " \
           "could; 2 for bad arguments or INPUTs" in text


@pytest.mark.parametrize(("files", "says"), [
    ([], "it is empty"),
    (["notes.txt"], "its 1 file ({folder}/notes.txt) is no images"),
])
def test_a_directory_without_images_is_a_one_line_error(lenet_weights, tmp_path, files, says):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in files:
        (folder / name).write_text("no image")
    result = run_cli(str(folder), *model_args(lenet_weights), "--output", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [(
        f"python3 -m models classify: error: INPUT {str(folder)!r}: no image file (.bmp, .gif, .jpeg, .jpg, .pgm, "
        f".png, .ppm, .tif, .tiff, .webp) in the directory: {says.format(folder=folder)}")]
    assert not (tmp_path / "o.jsonl").exists()


RUNS_WITHOUT_PYARROW = """
import importlib, json, sys
sys.modules["pyarrow"] = None  # `import pyarrow` raises ModuleNotFoundError, as if it were not installed
import models  # what `python3 -m models` imports first
main = importlib.import_module(models.__name__ + ".cli").main
runs = []
for argv in map(json.loads, sys.argv[1:]):
    code = main(argv)
    runs.append([code, open(argv[argv.index("--output") + 1], encoding="utf-8").read()])
print(json.dumps(runs))
"""


def test_json_lines_need_no_pyarrow(lenet_weights, tmp_path):
    """One process without pyarrow runs ``classify`` twice: a first run, then a resumed one with another input."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(GRACE_HOPPER, folder / "a.jpg")
    shutil.copy(GRACE_HOPPER, folder / "b.jpg")
    with_pyarrow = run_cli(str(folder / "a.jpg"), *model_args(lenet_weights), "--output", str(tmp_path / "with.jsonl"))
    assert with_pyarrow.returncode == 0, with_pyarrow.stderr
    without = ["--output", str(tmp_path / "without.jsonl")]
    runs = [["classify", str(folder / "a.jpg"), *model_args(lenet_weights), *without],
            ["classify", str(folder), *model_args(lenet_weights), *without, "--resume"]]
    result = subprocess.run([sys.executable, "-c", RUNS_WITHOUT_PYARROW, *map(json.dumps, runs)], check=False,
                            cwd=REPO, env={**os.environ, "CONVNETS_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr
    (first_code, first), (resumed_code, resumed) = json.loads(result.stdout.splitlines()[-1])
    assert (first_code, resumed_code) == (0, 0), result.stderr
    assert "skipping 1 input already in" in result.stderr
    assert first == (tmp_path / "with.jsonl").read_text()
    rows = [json.loads(line) for line in resumed.splitlines()]
    assert [row["path"] for row in rows] == [str(folder / "a.jpg"), str(folder / "b.jpg")]
    assert rows[1] == {**rows[0], "path": str(folder / "b.jpg")}


def test_the_gpu_decoder_passes_no_torchvision_deprecation_warning_to_the_user(collection):
    """torchvision 0.29 deprecates its decoders (for TorchCodec) with a warning at every call: it is ours to act on."""
    gpu = GpuJpegDecoder(PREPROCESS, "cpu")
    loaded = [gpu.read(str(GRACE_HOPPER)), gpu.read(str(collection / "nested" / "coffee.jpg"))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decoded = gpu.decode(loaded) + gpu.decode([JpegBytes("half.jpg", loaded[0].data[:200].clone())])
    assert [image.shape for image in decoded[:2]] == [(3, 224, 224)] * 2 and isinstance(decoded[2], str)
    assert [str(w.message) for w in caught] == []


@pytest.mark.skipif(sys.platform != "linux", reason="file names of any bytes (Linux file systems)")
@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_file_name_that_is_not_utf8_gets_its_row_and_resume_goes_on(lenet_weights, tmp_path, monkeypatch, capsys,
                                                                      suffix):
    """A name with the Latin-1 byte 0xE9 stopped classify for good: 'utf-8' codec can't encode
    '\\udce9', OUT never published, every --resume failed the same way."""
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")
    folder = tmp_path / "photos"
    folder.mkdir()
    plain = str(folder / "plain.jpg")
    latin1 = os.fsdecode(os.fsencode(folder) + b"/caf\xe9.jpg")
    broken = os.fsdecode(os.fsencode(folder) + b"/\xff.png")
    shutil.copy(GRACE_HOPPER, plain)
    shutil.copy(GRACE_HOPPER, latin1)
    Path(broken).write_bytes(b"not a PNG")
    output = tmp_path / f"out{suffix}"
    command = ["classify", str(folder), *model_args(lenet_weights), "--output", str(output), "--workers", "1"]
    assert main(command) == EXIT_SOME_FAILED
    if suffix == ".jsonl":  # the names as os.fsdecode gives them: os.fsencode gives their bytes back
        rows = {row["path"]: row for row in map(json.loads, output.read_text(encoding="ascii").splitlines())}
        assert set(rows) == {plain, latin1, broken} and os.fsencode(latin1).endswith(b"/caf\xe9.jpg")
        assert rows[broken]["error"] == f"ImageDecodeError: {broken}: not a decodable image (no image format recognised)"
    else:  # Parquet holds UTF-8 only: the byte as \xNN
        rows = {row["path"]: row for row in read_results(output).to_pylist()}
        assert set(rows) == {plain, f"{folder}/caf\\xe9.jpg", f"{folder}/\\xff.png"}
        latin1 = f"{folder}/caf\\xe9.jpg"
    assert rows[latin1]["labels"] == rows[plain]["labels"] and rows[latin1]["error"] == ""
    capsys.readouterr()
    assert main([*command, "--resume"]) == 0
    assert "skipping 3 inputs already in" in capsys.readouterr().err
    assert len(read_results(output)) == 3


def test_resume_compares_local_paths_in_one_canonical_form(lenet_weights, tmp_path, monkeypatch, capsys):
    """dir, ../x/dir and dir/../dir gave 9 rows for 3 files."""
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")
    folder = tmp_path / "x" / "dir"
    folder.mkdir(parents=True)
    for name in ("a", "b", "c"):
        shutil.copy(GRACE_HOPPER, folder / f"{name}.jpg")
    (tmp_path / "x" / "link").symlink_to(folder)
    monkeypatch.chdir(tmp_path / "x")
    output = tmp_path / "out.jsonl"
    command = [*model_args(lenet_weights), "--output", str(output), "--workers", "1"]
    assert main(["classify", "dir", "../x/dir", "dir/../dir", *command]) == 0
    assert [row["path"] for row in read_results(output).to_pylist()] == ["dir/a.jpg", "dir/b.jpg", "dir/c.jpg"]
    capsys.readouterr()
    for spelling in ("../x/dir", "dir/../dir", str(folder), "link", "./dir/b.jpg", "~/../../" + str(folder)):
        assert main(["classify", spelling, *command, "--resume"]) == 0, spelling
        assert "already in" in capsys.readouterr().err, spelling
    assert len(read_results(output)) == 3


@pytest.mark.parametrize(("damage", "says"), [
    ('{"path": "b", "labels": [', "line 2 is not a JSON row (Expecting value at column 27)"),
    ('{"path": "b"}', "line 2 is a row without 'error'"),
    ("[1, 2]", "line 2 is a JSON list, not a row object"),
    ('{"path": 3, "error": ""}', "line 2: 'path' and 'error' must be strings"),
])
def test_a_corrupt_output_on_resume_is_one_line_naming_the_file_and_line(lenet_weights, tmp_path, monkeypatch, capsys,
                                                                         damage, says):
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")
    output = tmp_path / "out.jsonl"
    output.write_text(json.dumps({**ROW, "path": str(GRACE_HOPPER)}) + "\n" + damage + "\n")
    assert main(["classify", str(GRACE_HOPPER), *model_args(lenet_weights), "--output", str(output), "--resume"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"python3 -m models classify: error: --output {str(output)!r} cannot be resumed: "
                            f"{str(output)!r} {says}")
    assert len(error.splitlines()) == 1 and error.endswith("pass --overwrite to start over (or move the file away)")
    assert main(["classify", str(GRACE_HOPPER), *model_args(lenet_weights), "--output", str(output),
                 "--overwrite"]) == 0


def test_a_corrupt_parquet_output_on_resume_is_one_line(lenet_weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVNETS_HUB_OFFLINE", "1")
    output = tmp_path / "out.parquet"
    output.write_bytes(b"PAR1 not really")
    assert main(["classify", str(GRACE_HOPPER), *model_args(lenet_weights), "--output", str(output), "--resume"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"{str(output)!r} is not a Parquet file of classify's rows" in error
    assert "--overwrite" in error
