"""``python3 -m models classify INPUT... --entrypoint E --output OUT``: classify a collection of images."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..batch.decode_kinds import DECODE_KINDS, GPU_BATCH_SIZE
from ..batch.schema import utf8_text
from ..wording import count
from .arguments import CommandError, add_model_arguments, positive_int
from .extras import require
from .model_options import load_model, model_kwargs

EXIT_SOME_FAILED = 3
"""Some inputs could not be classified: their rows hold the cause."""
EXIT_NONE_CLASSIFIED = 4
"""No input could be classified (every row is an error row)."""
FAILURES_SHOWN = 10
"""Failed inputs named on stderr, one line each; the others are counted."""
TABLE_MAX_INPUTS = 20
"""Runs of at most this many inputs print a top-1 table on stdout (unless the rows go there)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "classify", help="classify a collection of images into a Parquet or JSON-lines file",
        description="Classify images (files, directories, globs, lists of paths or URLs, Parquet/CSV "
                    "columns) with a hub model, on this machine or on a Ray cluster. One row per input: "
                    "path, top-k labels, class indices, probabilities, error (empty when all went well), "
                    "entrypoint and weights. Rows are saved as they come; OUT appears atomically at the "
                    "end (also after Ctrl-C, with what was done); --resume goes on where a run stopped.",
        epilog=f"Exit status: 0 when every input was classified, {EXIT_SOME_FAILED} when some could not be "
               f"(their rows hold the cause), {EXIT_NONE_CLASSIFIED} when none could; 2 for bad arguments "
               "or INPUTs (a directory without images, say), 1 when the weights or an optional requirement "
               "are missing, 130 when interrupted.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, directories (recursive), globs, .txt/.lst lists (one path or URL a "
                             "line), .parquet/.csv files (column --input-column), http(s) URLs")
    parser.add_argument("--output", required=True, metavar="OUT",
                        help="the result file: .parquet (or .pq) or .jsonl (or .ndjson); while another run "
                             "writes it, a second one stops at once with exit code 2; '-': JSON lines on "
                             "standard output, as they come")
    parser.add_argument("--input-column", default="path", help="the column of Parquet/CSV inputs (default: path)")
    parser.add_argument("--top-k", type=positive_int, default=5, help="classes kept per image (default 5)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per model call (default 64)")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="decoding threads (local; default: one per core) or decoding tasks at once (ray)")
    parser.add_argument("--decode", choices=DECODE_KINDS, default="auto",
                        help="where JPEGs are decoded: cpu (the hub's exact pixels), gpu (batches on --device "
                             "with nvJPEG; on Ray in the model actors), hybrid (CPU threads and the GPU from one "
                             "queue; on Ray as gpu); auto (default): hybrid when --device is a GPU, else cpu")
    parser.add_argument("--decode-batch-size", type=positive_int, default=GPU_BATCH_SIZE, metavar="N",
                        help=f"JPEGs per GPU decoding call (local engine; default {GPU_BATCH_SIZE})")
    saving = parser.add_mutually_exclusive_group()
    saving.add_argument("--resume", action="store_true", help="skip the inputs already in OUT (or saved by "
                        "an interrupted run) and add the others")
    saving.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--retry-errors", action="store_true", help="with --resume: classify again the inputs "
                        "whose row has an error (e.g. a URL that was down); their new rows replace those")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    ray = parser.add_argument_group("ray engine")
    ray.add_argument("--engine", choices=("local", "ray"), default="local",
                     help="local (default): threads on this machine; ray: a Ray Data pipeline")
    ray.add_argument("--ray-address", metavar="ADDR",
                     help="an existing cluster (auto, ray://host:10001); default: start a local Ray")
    ray.add_argument("--ray-num-cpus", type=positive_int, metavar="N", help="CPUs of a local Ray (default: all)")
    ray.add_argument("--actors", type=positive_int, default=1, help="model actors (the actor pool's concurrency; default 1)")
    ray.add_argument("--threads-per-actor", type=positive_int, metavar="T",
                     help="torch threads of each CPU model actor (default: its machine's cores / --actors)")
    ray.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                     help="GPUs of each model actor (num_gpus; default 0)")
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported when the command runs: --help starts without them (and the engines without torch).
    from ..batch.stdout_rows import StdoutRows
    from ..batch.store import ResultStore

    _check(args)
    _require_extras(args)
    if args.output == "-":
        store = StdoutRows()
    else:
        store = ResultStore(args.output, resume=args.resume, overwrite=args.overwrite,
                            retry_errors=args.retry_errors)
    try:
        return _run(args, store)
    finally:
        store.close()  # the lock file goes, also when the run fails before writing a row


def _run(args: argparse.Namespace, store: Any) -> int:
    from ..batch.inputs import expand_inputs, first_few

    inputs = expand_inputs(args.inputs, args.input_column)
    for listing, number in inputs.lists.items():
        print(f"reading {listing} as a list of inputs (one path or URL a line): {count(number, 'input')}",
              file=sys.stderr)
    if inputs.skipped:
        what = "is not an image" if len(inputs.skipped) == 1 else "are not images"
        print(f"skipping {count(len(inputs.skipped), 'file')} that {what} (by their extension): "
              f"{first_few(inputs.skipped)}", file=sys.stderr)
    todo = [source for source in inputs.sources if not store.is_done(source)]
    if len(todo) < len(inputs.sources):
        print(f"skipping {count(len(inputs.sources) - len(todo), 'input')} already in {args.output}",
              file=sys.stderr)
        failed_before = store.failed_before(inputs.sources) if not args.retry_errors else 0
        if failed_before:
            rows = "1 of them is an error row" if failed_before == 1 else f"{failed_before} of them are error rows"
            print(f"{rows}: add --retry-errors to classify {'it' if failed_before == 1 else 'them'} again",
                  file=sys.stderr)
    tally = _Tally(store, keep_rows=len(todo) <= TABLE_MAX_INPUTS and args.output != "-")
    try:
        _classify(args, todo, tally)
    except KeyboardInterrupt:
        total = store.finish()
        print(f"python3 -m models classify: interrupted; {count(total, 'row')} kept in {args.output} "
              "(--resume goes on)", file=sys.stderr)
        return 130
    total = store.finish()
    def shown(path: str) -> str:  # a file name that is not UTF-8 printed as \xNN, whatever the terminal's encoding
        return utf8_text(inputs.describe(path))

    if tally.rows:
        print(top1_table(tally.rows, shown))
    _report_failures(tally, shown, args.output)
    skipped = f", {count(len(inputs.skipped), 'file')} skipped (not images)" if inputs.skipped else ""
    where = "written to standard output" if args.output == "-" else f"in {args.output}"
    print(f"{count(len(todo), 'input')}: {tally.classified} classified, {count(tally.failed, 'error')}{skipped}; "
          f"{count(total, 'row')} {where}", file=sys.stderr)
    if tally.failed:
        return EXIT_SOME_FAILED if tally.classified else EXIT_NONE_CLASSIFIED
    return 0


def top1_table(rows: list[dict[str, Any]], describe: Callable[[str], str]) -> str:
    """One line per row: the input, its top-1 label and probability (or "-" for an error row)."""
    lines = [("input", "top-1", "p")] + [
        (describe(row["path"]), row["labels"][0] if row["labels"] else "-",
         f"{row['probabilities'][0]:.3f}" if row["probabilities"] else "-") for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(2)]
    return "\n".join(f"{line[0].ljust(widths[0])}  {line[1].ljust(widths[1])}  {line[2]}".rstrip() for line in lines)


def _report_failures(tally: _Tally, describe: Callable[[str], str], output: str) -> None:
    """One stderr line per failed input, at most FAILURES_SHOWN, then how many more."""
    for path, error in tally.failures:
        cause = re.sub(rf"^(\w+Error: )?{re.escape(path)}: ", "", error)  # the input is named just before
        print(f"failed: {describe(path)}: {utf8_text(' '.join(cause.split()))}", file=sys.stderr)
    if tally.failed > len(tally.failures):
        more = tally.failed - len(tally.failures)
        where = "standard output" if output == "-" else output
        print(f"... and {more} more (every error row in {where} holds its cause)", file=sys.stderr)


class _Tally:
    """The store, counting this run's rows as they are saved: predictions and error rows; it keeps the
    first FAILURES_SHOWN failures and, with ``keep_rows``, every row (for the top-1 table)."""

    def __init__(self, store: Any, keep_rows: bool = False) -> None:
        self.store, self.classified, self.failed = store, 0, 0
        self.keep_rows = keep_rows
        self.rows: list[dict[str, Any]] = []
        self.failures: list[tuple[str, str]] = []

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.store.write(rows)
        failed = [row for row in rows if row["error"]]
        self.failures += [(row["path"], row["error"]) for row in failed][:FAILURES_SHOWN - len(self.failures)]
        self.failed += len(failed)
        self.classified += len(rows) - len(failed)
        if self.keep_rows:
            self.rows += rows


def _classify(args: argparse.Namespace, sources: list[str], store: Any) -> int:
    from ..batch.decode_kinds import choose_decoding
    from ..batch.decoding import make_decoder
    from ..batch.local import classify_local
    from ..batch.predictor import Predictor

    progress = not args.no_progress
    if args.engine == "local":
        model = load_model(args)
        predictor = Predictor(model, args.top_k, pad_to=args.batch_size if args.optimize else None,
                              device=args.device)
        decoder = make_decoder(args.decode, predictor.preprocess, args.device, gpu_batch_size=args.decode_batch_size)
        return classify_local(sources, predictor, decoder, store, batch_size=args.batch_size,
                              workers=args.workers or os.cpu_count() or 1, progress=progress)
    from ..batch.ray_engine import ModelRecipe, RaySettings, classify_ray

    predictor = Predictor(load_model(args, optimize=False), args.top_k)  # checks the arguments and weights here
    settings = RaySettings(address=args.ray_address, num_cpus=args.ray_num_cpus, decode_tasks=args.workers,
                           actors=args.actors, gpus_per_actor=args.gpus_per_worker,
                           threads_per_actor=args.threads_per_actor,
                           gpu_decoding=choose_decoding(args.decode, args.device) != "cpu")
    return classify_ray(sources, ModelRecipe(args.entrypoint, model_kwargs(args)), predictor.preprocess, store,
                        settings, top_k=args.top_k, batch_size=args.batch_size, pad=args.optimize,
                        progress=progress)


def _check(args: argparse.Namespace) -> None:
    if args.output == "-" and (args.resume or args.overwrite):
        raise CommandError(f"--output - (standard output) has nothing to {'resume' if args.resume else 'overwrite'}")
    if args.retry_errors and not args.resume:
        raise CommandError("--retry-errors goes with --resume (it retries the error rows of an existing OUT)")
    if args.gpus_per_worker < 0:
        raise CommandError(f"--gpus-per-worker {args.gpus_per_worker}: must not be negative")
    if args.engine == "local" and (args.ray_address or args.ray_num_cpus or args.gpus_per_worker
                                   or args.threads_per_actor):
        raise CommandError("--ray-address, --ray-num-cpus, --threads-per-actor and --gpus-per-worker need "
                           "--engine ray")
    if args.engine == "ray" and args.device.startswith("cuda") and not args.gpus_per_worker:
        raise CommandError(f"--device {args.device} on Ray needs --gpus-per-worker (e.g. 1)")


def _require_extras(args: argparse.Namespace) -> None:
    """pyarrow for Parquet output and Parquet/CSV inputs, Ray for --engine ray (requirements-batch.txt)."""
    from ..batch.inputs import TABLE_EXTENSIONS
    from ..batch.store import FORMATS

    if FORMATS.get(Path(args.output).suffix.lower()) == "parquet":
        require(f"--output {args.output}", "pyarrow")
    tables = [text for text in args.inputs if Path(text).suffix.lower() in TABLE_EXTENSIONS]
    if tables:
        require(f"INPUT {tables[0]}", "pyarrow")
    if args.engine == "ray":
        require("--engine ray", "ray", "pyarrow")
