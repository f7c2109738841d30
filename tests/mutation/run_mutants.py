"""Planted bugs, one at a time: does a test notice each? (run on demand; not part of the suite)

    python3 tests/mutation/run_mutants.py              # every mutant, after a baseline run
    python3 tests/mutation/run_mutants.py --only topk  # the mutants whose name or file contains "topk"
    python3 tests/mutation/run_mutants.py --list       # what would be planted, and which tests run

The working tree (tracked and untracked files that git does not ignore) is copied to a temporary
directory once. First the union of the named tests runs there unchanged: they must pass, or no
verdict means anything. Then each mutant replaces one piece of text in one file of the copy (the
text must occur exactly once; a mutant whose text is gone is reported as stale), its named tests
run, and the file is restored. A mutant is caught when a test fails or errors. The script prints
a table "planted bug | caught by" and the score line "N of M mutants caught"; it exits 1 if a
mutant escaped or went stale.
Python writes no bytecode in the copy, so that a mutant of the same size as the original within
the same second is never hidden by a stale .pyc.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 1200


@dataclass(frozen=True)
class Mutant:
    bug: str  # what a user would see go wrong
    file: str
    old: str
    new: str
    tests: tuple[str, ...]  # pytest node ids (a parametrized test's id without [...] runs every case)


D, P, O, C, X = ("tests/models/weights/test_download.py::", "tests/processing/test_processing.py::", "tests/models/runtime/test_optimize.py::",
                 "tests/models/weights/test_checkpoint.py::", "tests/models/batch/test_classify.py::")
E = "tests/models/test_entrypoints.py::"

MUTANTS = (
    # The seven that went unnoticed in issue 22's review (or, the last, noticed by one test only).
    Mutant("the pinned sha256 is compared on its first 8 hex digits only", "models/weights/verify.py",
           "if pinned is not None and actual != pinned:", "if pinned is not None and actual[:8] != pinned[:8]:",
           (D + "test_a_pin_differing_only_in_its_last_hex_digit_is_refused",
            D + "test_wrong_bytes_fail_verification_and_leave_nothing")),
    Mutant("pick_n_best takes scores above 1 (exp of logits) for probabilities", "processing/topk.py",
           "-PROBABILITY_TOLERANCE <= low and high <= 1 + PROBABILITY_TOLERANCE", "-PROBABILITY_TOLERANCE <= low",
           (P + "test_pick_n_best_warns_when_rows_are_not_probabilities",)),
    Mutant("pick_n_best caps n at 5", "processing/topk.py",
           "min(int(n), classes)", "min(int(n), classes, 5)",
           (P + "test_pick_n_best_gives_the_n_most_probable_in_order_up_to_every_class",
            P + "test_pick_n_best_in_nvidia_format")),
    Mutant("classify --resume without --retry-errors classifies the error rows again", "models/batch/store.py",
           "if not (retry_errors and error):", "if not error:",
           (X + "test_resume_keeps_error_rows_and_retry_errors_classifies_them_again",
            X + "test_rows_are_saved_as_they_come_and_published_once_per_path")),
    Mutant("optimize=True on CUDA compiles without CUDA graphs", "models/runtime/optimize.py",
           'return "reduce-overhead", False', "return None, False",
           (O + "test_on_a_gpu_optimize_compiles_with_cuda_graphs_and_on_a_cpu_with_freezing",)),
    Mutant("the Triton configuration of a GPU model says KIND_CPU", "models/deploy/triton_repository.py",
           "kind: KIND_GPU", "kind: KIND_CPU",
           ("tests/models/deploy/test_export.py::test_triton_repository_of_an_fp16_model_declares_fp16_io_and_its_gpu",)),
    Mutant("a folded BatchNormAct2d loses its activation", "models/runtime/fold.py",
           "return bn.act if isinstance(bn.drop, nn.Identity) else None",
           "return nn.Identity() if isinstance(bn.drop, nn.Identity) else None",
           (O + "test_batchnormact_folds_keep_their_activation_in_a_mobilenetv3",
            "tests/models/archs/test_efficientnet.py::test_optimize_folds_and_matches_eager")),
    # Hash checks and first-use records.
    Mutant("the hash prefix of an unpinned file name is not checked", "models/weights/verify.py",
           "if entry.hash_prefix is not None and not actual", "if False and entry.hash_prefix is not None and not actual",
           (D + "test_hash_prefix_of_an_unpinned_file_is_checked",)),
    Mutant("a cached copy whose modification time changed is not hashed again", "models/weights/records.py",
           "return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]", "return [stat.st_size, 0, 0]",
           (D + "test_an_unchanged_cached_file_that_no_sha256_pins_is_not_hashed_again",)),
    Mutant("a file in the mirror directory is used without verification", "models/weights/sources.py",
           "            verify_file(mirror_dir / entry.file_name, entry, str(mirror_dir / entry.file_name))\n", "",
           (D + "test_mirror_directory_is_used_in_place_even_offline",
            D + "test_a_mirror_file_that_fails_verification_is_refused")),
    Mutant("an unpinned file that changed since its first use is accepted", "models/weights/verify.py",
           "if pinned is None and first_use is not None and actual != first_use.sha256:",
           "if False:",
           (D + "test_an_unpinned_file_is_recorded_on_first_use_and_later_loads_are_checked_against_it",)),
    Mutant("an HTML page served for an unpinned file is recorded as its first use", "models/weights/http.py",
           "        if entry.sha256 is None:  # an error or login page", "        if False:  # an error or login page",
           (D + "test_an_html_page_served_for_an_unpinned_file_is_refused_and_not_recorded",)),
    # Reading checkpoints.
    Mutant("checkpoints are unpickled with weights_only=False", "models/weights/loading.py",
           'map_location="cpu", weights_only=True', 'map_location="cpu", weights_only=False',
           (C + "test_a_pickle_that_would_run_code_is_refused_and_the_code_does_not_run",)),
    Mutant("zip members with '..' in their path are read", "models/weights/loading.py",
           '".." in parts or ', "",
           (C + "test_unsafe_member_names_are_refused",)),
    Mutant("a training checkpoint's raw weights are preferred to its EMA weights", "models/weights/loading.py",
           'STATE_DICT_KEYS = ("state_dict_ema", "state_dict",', 'STATE_DICT_KEYS = ("state_dict", "state_dict_ema",',
           (C + "test_timm_training_checkpoint_with_namespace_args_loads_and_prefers_ema",)),
    # Loading without random initialisation (issue 30, item 8).
    Mutant("a checkpoint that leaves the classifier fresh is loaded into uninitialised memory", "models/builder.py",
           "    if plan.fills(model):", "    if True:",
           (E + "test_a_head_of_another_size_is_initialised_from_the_global_random_stream",
            E + "test_a_buffer_missing_from_the_state_dict_keeps_its_initial_value")),
    Mutant("a non-persistent buffer, in no checkpoint, is left as uninitialised memory", "models/builder.py",
           "all(name in entries for name, _ in model.named_buffers())", "True",
           (E + "test_a_buffer_missing_from_the_state_dict_keeps_its_initial_value",)),
    Mutant("a checkpoint holding every weight is still loaded over a random initialisation", "models/builder.py",
           "    if plan.fills(model):", "    if False:",
           (E + "test_a_checkpoint_holding_every_weight_loads_without_drawing_random_numbers",)),
    # Folding.
    Mutant("half-precision models are folded after the cast, not in float32", "models/runtime/optimize.py",
           "return torch.float64 if dtype == torch.float64 else torch.float32", "return dtype",
           (O + "test_half_precision_is_folded_in_float32_before_the_cast",)),
    Mutant("the last BatchNorm of timm's Bottleneck is not folded", "models/runtime/fold.py",
           "    Bottleneck: _RESNET_BLOCK,", "    Bottleneck: _RESNET_BLOCK[:2],",
           (O + "test_folding_is_exact_in_fp32_and_removes_every_bn_after_a_conv[resnext50]",)),
    # Parity with the upstream models.
    Mutant("NVIDIA's EfficientNet gets BatchNorm eps 1e-5 instead of 1e-3", "models/archs/efficientnet.py",
           "_BN_EPS = 1e-3", "_BN_EPS = 1e-5",
           ("tests/models/archs/test_efficientnet.py::test_parity_with_nvidias_model_through_the_hub[b0-False-False]",)),
    Mutant("NVIDIA's SE-ResNeXt squeeze weights load into the wrong layer", "models/archs/resnet.py",
           '.replace(".squeeze.squeeze.", ".se.fc1.")', '.replace(".squeeze.squeeze.", ".se.fc2.")',
           ("tests/models/archs/test_parity_resnets.py::test_ngc_layout_with_module_prefix_and_conv_shaped_se",)),
    # classify's rows.
    Mutant("classify's top-k rows come least probable first", "models/batch/predictor.py",
           "values, indices = probabilities.topk(self.top_k, dim=1)\n",
           "values, indices = probabilities.topk(self.top_k, dim=1)\n"
           "            values, indices = values.flip(1), indices.flip(1)\n",
           (X + "test_predictions_are_the_hub_models_own",)),
    Mutant("a resumed run names its parts as the interrupted run did, overwriting them", "models/batch/store.py",
           'self._run = f"{time.time_ns():020d}-{secrets.token_hex(4)}"', 'self._run = "run"',
           (X + "test_rows_are_saved_as_they_come_and_published_once_per_path",)),
    Mutant("a truncated or 5xx download is tried once less", "models/weights/http.py",
           "range(settings.retries + 1)", "range(settings.retries)",
           (D + "test_truncated_body_is_retried_then_refused_and_leaves_nothing",
            D + "test_server_errors_are_retried")),
    # Not one of the review's 22: the loading bug it found (load_into reshaped any same-size tensor).
    Mutant("a same-size tensor of another shape (a transposed weight) is reshaped into the model",
           "models/weights/loading.py",
           "not _same_but_trailing_ones(given[k].shape, expected[k].shape)", "given[k].numel() != expected[k].numel()",
           (C + "test_a_same_size_tensor_of_another_shape_is_refused_not_reshaped",)),
    # Issue 25, inputs that ended a run.
    Mutant("a 1 x 100000 image is resized whole (256 x 25.6 M pixels) before its crop is taken",
           "processing/transforms.py",
           "    if not config.resizes_whole(*image.size):\n        return resized_region(image, config)\n", "",
           (P + "test_a_thin_image_costs_memory_in_proportion_to_the_crop",)),
    Mutant("a server dripping header lines holds the client past the total timeout", "processing/fetch_deadline.py",
           "                deadline.watch(sock)", "                pass",
           (P + "test_a_server_dripping_header_lines_is_cut_off_by_the_total_timeout",)),
    Mutant("a file name that is not UTF-8 stops classify for good", "models/batch/store.py",
           "        line = json.dumps(row)\n", "        raise\n",
           (X + "test_a_file_name_that_is_not_utf8_gets_its_row_and_resume_goes_on",)),
    Mutant("--resume compares local paths as spelled (dir and ../x/dir give two rows per file)",
           "models/batch/store.py",
           "    return source_key(utf8_text(path))", "    return utf8_text(path)",
           (X + "test_resume_compares_local_paths_in_one_canonical_form",)),
)


def copy_working_tree(destination: Path) -> None:
    """Tracked files and untracked ones that git does not ignore (no caches, no build outputs)."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listing):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[int | None, list[str], str]:
    """(pytest's exit code or None on timeout, the failed or erroring tests, the output's tail)."""
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", *tests]
    try:
        result = subprocess.run(command, cwd=copy, env=environment, capture_output=True, text=True,
                                timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return None, [], ""
    output = result.stdout + result.stderr
    failed = sorted({match.group(1) for match in re.finditer(r"^(?:FAILED|ERROR) (\S+?)(?: - |$)", output, re.MULTILINE)})
    return result.returncode, failed, output[-3000:]


def short(node: str) -> str:
    """``tests/test_x.py::test_y[case]`` as ``test_x::test_y``."""
    path, _, name = node.partition("::")
    return f"{Path(path).stem}::{name.split('[')[0]}" if name else Path(path).stem


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", metavar="TEXT", help="only the mutants whose bug or file contains TEXT")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests, run nothing")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the unchanged tests")
    args = parser.parse_args()
    mutants = [m for m in MUTANTS if not args.only or args.only in m.bug or args.only in m.file]
    if not mutants:  # else the baseline would name no test, and pytest would run the whole suite
        parser.error(f"--only {args.only!r} matches no mutant's bug or file (--list shows them)")
    if args.list:
        for mutant in mutants:
            print(f"{mutant.bug}\n    {mutant.file}: {mutant.old!r} -> {mutant.new!r}\n    "
                  + "\n    ".join(mutant.tests))
        return 0
    with tempfile.TemporaryDirectory(prefix="convnets-hub-mutants-") as scratch:
        copy = Path(scratch)
        copy_working_tree(copy)
        if not args.no_baseline:
            union = tuple(dict.fromkeys(test for mutant in mutants for test in mutant.tests))
            code, failed, tail = run_tests(copy, union)
            if code != 0:
                print(f"the unchanged tests do not pass (exit {code}): {failed}\n{tail}", file=sys.stderr)
                return 2
        rows, caught = [], 0
        for mutant in mutants:
            path = copy / mutant.file
            original = path.read_text(encoding="utf-8")
            if original.count(mutant.old) != 1:
                rows.append((mutant, f"STALE: the text occurs {original.count(mutant.old)} times in {mutant.file}"))
                continue
            path.write_text(original.replace(mutant.old, mutant.new), encoding="utf-8")
            try:
                code, failed, tail = run_tests(copy, mutant.tests)
            finally:
                path.write_text(original, encoding="utf-8")
            if code is None:
                verdict = f"timed out after {TIMEOUT_S} s"
            elif code == 0:
                verdict = "**not caught**"
            elif failed:
                verdict = ", ".join(dict.fromkeys(short(node) for node in failed))
            else:
                verdict = f"pytest exit {code}: {tail.strip().splitlines()[-1] if tail.strip() else ''}"
            caught += code != 0
            rows.append((mutant, verdict))
            print(f"{mutant.bug}: {verdict}", file=sys.stderr, flush=True)
    print("| planted bug | file | caught by |\n|---|---|---|")
    for mutant, verdict in rows:
        print(f"| {mutant.bug} | `{mutant.file}` | {verdict} |")
    print(f"\n{caught} of {len(mutants)} mutants caught")
    return 0 if caught == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
