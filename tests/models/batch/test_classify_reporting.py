"""What ``classify`` tells its user: each failed input on stderr, a top-1 table for a small run, JSON lines
on stdout with ``--output -``, the inputs of a list by file and line, the error rows a resume leaves alone;
and that no lock file is left behind."""

import json
import shutil

import pytest
from classify_runs import model_args, run_cli
from photos import GRACE_HOPPER


@pytest.fixture
def mixed(tmp_path):
    """A good photo, a broken one and a list naming a missing file and the photo."""
    shutil.copy(GRACE_HOPPER, tmp_path / "a.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"half a download")
    (tmp_path / "notes.txt").write_text("hello\na.jpg\n")
    return tmp_path


def test_failures_one_line_each_and_a_top1_table(lenet_weights, mixed):
    output = mixed / "o.jsonl"
    result = run_cli(str(mixed / "notes.txt"), str(mixed / "bad.jpg"), *model_args(lenet_weights),
                     "--output", str(output))
    assert result.returncode == 3, result.stderr
    notes, bad = mixed / "notes.txt", mixed / "bad.jpg"
    assert result.stderr.splitlines() == [
        f"reading {notes} as a list of inputs (one path or URL a line): 2 inputs",
        f"failed: {notes} (a list of inputs), line 1 'hello': no such file",
        f"failed: {bad}: not a decodable image (no image format recognised)",
        f"3 inputs: 1 classified, 2 errors; 3 rows in {output}"]
    rows = {row["path"]: row for row in map(json.loads, output.read_text().splitlines())}
    top1 = rows[str(mixed / "a.jpg")]["labels"][0]
    table = [line.split("  ") for line in result.stdout.splitlines()]
    assert [[cell.strip() for cell in line if cell.strip()] for line in table] == [
        ["input", "top-1", "p"],
        [f"{notes} (a list of inputs), line 1 'hello'", "-", "-"],
        [f"{notes} (a list of inputs), line 2 'a.jpg'", top1, f"{rows[str(mixed / 'a.jpg')]['probabilities'][0]:.3f}"],
        [str(bad), "-", "-"]]
    assert list(mixed.glob(".o.jsonl*")) == [], "no lock file, no parts"

    resumed = run_cli(str(notes), str(bad), *model_args(lenet_weights), "--output", str(output), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "skipping 3 inputs already in" in resumed.stderr
    assert "2 of them are error rows: add --retry-errors to classify them again" in resumed.stderr.splitlines()


def test_failures_are_capped_and_a_large_run_prints_no_table(lenet_weights, tmp_path):
    (tmp_path / "images").mkdir()
    for index in range(23):
        (tmp_path / "images" / f"bad{index:02d}.jpg").write_bytes(b"not an image")
    result = run_cli(str(tmp_path / "images"), *model_args(lenet_weights), "--output", str(tmp_path / "o.jsonl"))
    assert result.returncode == 4
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines[:10]] == ["failed"] * 10
    assert lines[10] == f"... and 13 more (every error row in {tmp_path / 'o.jsonl'} holds its cause)"
    assert lines[11] == f"23 inputs: 0 classified, 23 errors; 23 rows in {tmp_path / 'o.jsonl'}"
    assert result.stdout == ""


def test_output_dash_writes_json_lines_to_stdout(lenet_weights, mixed):
    result = run_cli(str(mixed / "a.jpg"), str(mixed / "bad.jpg"), *model_args(lenet_weights), "--output", "-")
    assert result.returncode == 3, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["path"] for row in rows] == [str(mixed / "a.jpg"), str(mixed / "bad.jpg")]
    assert len(rows[0]["labels"]) == 3 and rows[1]["error"].startswith("ImageDecodeError")
    assert result.stderr.splitlines()[-1] == "2 inputs: 1 classified, 1 error; 2 rows written to standard output"
    assert not list(mixed.glob(".*")), "no lock file, no parts"
    refused = run_cli(str(mixed / "a.jpg"), *model_args(lenet_weights), "--output", "-", "--resume")
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "python3 -m models classify: error: --output - (standard output) has nothing to resume"]


def test_a_run_that_fails_before_writing_leaves_no_lock_file(tmp_path):
    """Offline, the default weights of resnet18_ssl cannot be had: the run stops after locking OUT."""
    shutil.copy(GRACE_HOPPER, tmp_path / "a.jpg")
    result = run_cli(str(tmp_path / "a.jpg"), "--entrypoint", "resnet18_ssl", "--output", str(tmp_path / "o.jsonl"),
                     "--no-progress")
    assert result.returncode == 1, result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.jpg"]
