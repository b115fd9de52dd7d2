"""`compare.py`: argument parsing, one library call, an exit code."""

from __future__ import annotations

import argparse
import os
import sys

from comparator.errors import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_REFEREE_FAILED,
    EXIT_WORKER_FAILED,
    ComparatorError,
    UsageError,
)
from comparator.cli.common import EXIT_INTERNAL, EXIT_INTERRUPTED, OneLineParser
from comparator.cli.common import csv as _csv
from comparator.config.frameworks import diverged_runs, worker_problems



DEFAULTS = dict(scenario="classify", batch_size=8, image_size=None, steps=1, seed=0, lr=0.01,
                recipes=(), device="cpu", optimizer="sgd", validate=False, loss="logits",
                weights="random-calibrated", images=(), labels=(), targets=(),
                frameworks=("pytorch", "keras"), worker_timeout=600.0)


def _values(convert):
    """An argparse type: values inline or in a file (comparator.inputs.images), one-line errors."""
    def parse(value: str):
        from comparator.inputs import images

        try:
            return getattr(images, convert)(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = convert
    return parse


def build_parser() -> argparse.ArgumentParser:
    from comparator.zoo import known_models
    from comparator.config.presets import PRESETS

    parser = OneLineParser(
        prog="compare.py",
        description="Load the same backbone in PyTorch and Keras 3 (torch backend), apply each "
                    "framework's freezing recipes, take a train step on one batch and report "
                    "what every recipe did.")
    # Defaults are None here so that a preset can fill what the user did not give.
    parser.add_argument("model", nargs="?", help=f"one of: {', '.join(known_models())}")
    parser.add_argument("--preset", choices=list(PRESETS),
                        help="a case from the reports behind the project; flags override it")
    parser.add_argument("--scenario", choices=["classify", "head", "regress"],
                        help="classify (default): whole network with its classifier, "
                             "cross-entropy; head: frozen backbone plus a new regression head, "
                             "MSE; regress: vector models (dense_mlp), MSE")
    parser.add_argument("--batch-size", type=int, help="default 8")
    parser.add_argument("--image-size", type=int,
                        help="pixels per side (default: the model's own, 224 for DenseNet)")
    parser.add_argument("--steps", type=int, help="train steps on the same batch (default 1)")
    parser.add_argument("--seed", type=int, help="default 0")
    parser.add_argument("--lr", type=float, help="learning rate (default 0.01)")
    parser.add_argument("--optimizer", choices=["sgd", "adam"],
                        help="sgd (default, no momentum) or adam, each framework's defaults")
    parser.add_argument("--loss", choices=["logits", "probabilities"],
                        help="classify: cross-entropy from logits (default) or on softmax "
                             "probabilities with a one-hot label, clipped to [1e-7, 1-1e-7] "
                             "as Keras's CategoricalCrossentropy does")
    parser.add_argument("--validate", action="store_true", default=None,
                        help="also pass the batch as fit(validation_data=...) in Keras")
    parser.add_argument("--recipes", type=_csv,
                        help="comma-separated run ids, e.g. pytorch:eval,keras:trainable_false")
    parser.add_argument("--device", help="cpu (default) or cuda")
    parser.add_argument("--weights", metavar="SOURCE",
                        help="random-calibrated (default, offline), imagenet (torchvision's "
                             "checkpoint, ported to Keras), imagenet-keras (keras.applications', "
                             "ported to PyTorch), imagenet-both (each its own, not ported), or a "
                             "file: .pt/.pth/.safetensors state_dict, .weights.h5/.keras")
    parser.add_argument("--images", nargs="+", metavar="PATH",
                        help="JPEG/PNG files or folders, or 'samples' (photos shipped in "
                             "installed packages); the batch is these images")
    parser.add_argument("--labels", metavar="INTS|FILE", type=_values("label_values"),
                        help="class indices, comma-separated or in a file: one for every image "
                             "or one per image (default with --images: the reference model's "
                             "own predictions)")
    parser.add_argument("--targets", metavar="FLOATS|FILE", type=_values("target_values"),
                        help="regression targets for --images with --scenario head "
                             "(default: seeded)")
    parser.add_argument("--frameworks", type=_csv,
                        help="comma-separated, among pytorch, keras-torch (alias keras), "
                             "keras-tensorflow, keras-jax (default: pytorch,keras-torch); "
                             "Keras on TensorFlow and JAX run in worker subprocesses")
    parser.add_argument("--worker-timeout", type=float, metavar="SECONDS",
                        help="how long a Keras worker may run before its runs are marked "
                             "failed (default 600)")
    parser.add_argument("--no-onnx", action="store_true",
                        help="skip the ONNX Runtime referee")
    parser.add_argument("--onnx-exporter", choices=["torchscript", "dynamo"],
                        default="torchscript",
                        help="PyTorch ONNX exporter for the referee (default torchscript)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where ONNX exports are cached (default ~/.cache/xframe-compare)")
    parser.add_argument("--json", metavar="PATH", help="write the JSON report here")
    parser.add_argument("--markdown", metavar="PATH",
                        help="write a GitHub-flavoured Markdown report here")
    parser.add_argument("--html", metavar="PATH",
                        help="write a self-contained HTML report with plots here")
    parser.add_argument("--save-artifacts", metavar="DIR",
                        help="write batch.npz, pytorch_state_dict.pt and report.json here")
    parser.add_argument("--quiet", action="store_true", help="print only the verdict line")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    from comparator.cli.pair import add_pair_arguments

    add_pair_arguments(parser)
    return parser


def _config(args, pair=None):
    from comparator.config.presets import get_preset
    from comparator.config import CompareConfig

    values = dict(DEFAULTS)
    if pair is not None:
        for key in DEFAULTS:
            given = getattr(args, key)
            if given is not None:
                values[key] = tuple(given) if isinstance(given, list) else given
        return CompareConfig(model="user pair", **values)
    if args.preset:
        values.update(get_preset(args.preset).settings)
    for key in DEFAULTS:
        given = getattr(args, key)
        if given is not None:
            values[key] = tuple(given) if isinstance(given, list) else given
    model = args.model or values.pop("model", None)
    values.pop("model", None)
    if not model:
        raise UsageError("give a model (or --preset); see --help")
    return CompareConfig(model=model, cache_dir=getattr(args, "cache_dir", None), **values)


def run(args, argv: list[str]) -> int:
    from rich.console import Console

    from comparator.report.artifacts import save_artifacts
    from comparator.report.terminal import render
    from comparator.io import check_writable_dir, check_writable_file, write_atomic
    from comparator.cli.progress import progress_display
    from comparator.config import resolve
    from comparator.pipeline import compare

    from comparator.cli.pair import is_pair, pair_from_args, refuse_pair_options

    pair = pair_from_args(args) if is_pair(args) else None
    if pair is None:
        refuse_pair_options(args)
    config = _config(args, pair)
    if pair is None:
        resolve(config)
    else:
        from comparator.config.pair import check_pair, resolve_pair_config

        resolve_pair_config(config)
        check_pair(pair)
    preset = args.preset
    for flag in ("json", "markdown", "html"):
        if getattr(args, flag):
            check_writable_file(getattr(args, flag), f"--{flag}")
    if args.cache_dir:
        check_writable_dir(args.cache_dir, "--cache-dir")
    if args.save_artifacts:
        check_writable_dir(args.save_artifacts, "--save-artifacts")
    stderr = Console(stderr=True, emoji=False)
    referee = None
    with progress_display(stderr) as progress:
        if pair is None:
            outcome = compare(config, progress=progress, preset=preset)
        else:
            from comparator.pipeline import compare_user_pair

            outcome = compare_user_pair(pair, config, progress=progress)
        if pair is not None and pair.onnx:
            from comparator.analysis.referee import with_referee
            from comparator.pipeline import referee_onnx_file

            progress("ONNX Runtime referee: running the given ONNX file", 1)
            referee = referee_onnx_file(outcome, pair.onnx, device=config.device)
            outcome.report = with_referee(outcome.report, referee)
        elif not args.no_onnx:
            from comparator.analysis.referee import with_referee
            from comparator.pipeline import referee as run_referee

            progress("ONNX Runtime referee: exporting and running", 1)
            referee = run_referee(outcome, cache_dir=args.cache_dir,
                                  exporter=args.onnx_exporter, device=config.device)
            outcome.report = with_referee(outcome.report, referee)
            if outcome.report.settings.get("weights") == "imagenet-both":
                from comparator.inputs.checkpoints import without_cross_training_checks

                outcome.report = without_cross_training_checks(outcome.report)
    report = outcome.report
    command = ["python", "scripts/compare.py", *argv]
    if args.json:
        write_atomic(args.json, report.to_json())
    if args.markdown:
        from comparator.report.markdown import write_markdown

        write_markdown(report, args.markdown, command=command)
    if args.html:
        from comparator.report.html import write_html

        write_html(report, args.html, command=command, bn_deltas=outcome.bn_deltas)
    if args.save_artifacts:
        save_artifacts(outcome, args.save_artifacts)
    stdout = Console(emoji=False)
    if not stdout.is_terminal:
        stdout = Console(width=100, emoji=False)
    render(report, stdout, quiet=args.quiet)
    if worker_problems(report):
        return EXIT_WORKER_FAILED
    diverged_runs(report)  # named on stderr; their failed checks give exit status 1
    if not report.checks_passed:
        return EXIT_CHECK_FAILED
    if referee is not None and referee.failed:
        for reason in referee.reasons:
            print(f"compare.py: referee failed: {reason}", file=sys.stderr)
        return EXIT_REFEREE_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from comparator.config.frameworks import keep_worker_backends_out

    keep_worker_backends_out()
    try:
        return run(args, argv)
    except ComparatorError as exc:
        print(f"compare.py: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("compare.py: interrupted; no report was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so in one line unless asked for details
        if args.debug or os.environ.get("XFRAME_DEBUG"):
            raise
        print(f"compare.py: internal error: {type(exc).__name__}: {exc} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


__all__ = ["main", "build_parser", "UsageError"]
