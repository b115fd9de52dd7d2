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
from comparator.cli.common import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    OneLineParser,
    Terminated,
    handle_sigterm,
    silence_stdout,
    size_argument,
    stdout_is_gone,
)
from comparator.cli.common import csv as _csv
from comparator.interrupts import handled
from comparator.config.frameworks import (diverged_runs, diverged_steps_named,
                                          threads_sleep_beside_workers, worker_problems)


DEFAULTS = dict(scenario="classify", batch_size=8, image_size=None, steps=1, seed=0, lr=0.01,
                recipes=(), device="cpu", optimizer="sgd", validate=False, loss="logits",
                weights="random-calibrated", images=(), labels=(), targets=(),
                frameworks=("pytorch", "keras"), worker_timeout=600.0, max_memory=None)


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
                        help="classify (image models' default): whole network with its "
                             "classifier, cross-entropy; head: frozen backbone plus a new "
                             "regression head, MSE; regress (vector models' default, "
                             "dense_mlp, and a user pair's whose outputs have one unit per "
                             "example: cross-entropy over one class is 0): MSE")
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
                             "as Keras's CategoricalCrossentropy does on torch and JAX (Keras "
                             "on TensorFlow and tf-keras take the softmax's logits instead, "
                             "unclipped)")
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
    parser.add_argument("--max-memory", type=size_argument, metavar="SIZE",
                        help="refuse runs whose estimated peak memory exceeds this (e.g. 16G; "
                             "default: this machine's memory)")
    parser.add_argument("--no-onnx", action="store_true",
                        help="skip the ONNX Runtime referee")
    parser.add_argument("--onnx-exporter", choices=["torchscript", "dynamo"],
                        default="torchscript",
                        help="PyTorch ONNX exporter for the referee (default torchscript)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where ONNX exports and Keras version overlays are cached "
                             "(default $XFRAME_CACHE_DIR or ~/.cache/xframe-compare)")
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
    from comparator.zoo import default_scenario

    values = dict(DEFAULTS)
    scenario_given = args.scenario is not None
    if pair is not None:
        for key in DEFAULTS:
            given = getattr(args, key)
            if given is not None:
                values[key] = tuple(given) if isinstance(given, list) else given
        return CompareConfig(model="user pair", scenario_given=scenario_given, **values)
    if args.preset:
        preset = get_preset(args.preset).settings
        values.update(preset)
        scenario_given |= "scenario" in preset
    for key in DEFAULTS:
        given = getattr(args, key)
        if given is not None:
            values[key] = tuple(given) if isinstance(given, list) else given
    model = args.model or values.pop("model", None)
    values.pop("model", None)
    if not model:
        raise UsageError("give a model (or --preset); see --help")
    if not scenario_given:
        values["scenario"] = default_scenario(model)
    return CompareConfig(model=model, cache_dir=getattr(args, "cache_dir", None), **values)


def _inputs(args, config) -> dict[str, list[str]]:
    """The files a run reads, which no report may overwrite."""
    from comparator.cli.pair import pair_input_files
    from comparator.inputs.images import SAMPLES

    inputs = {}
    if config.weights and os.path.isfile(config.weights):
        inputs["--weights"] = [config.weights]
    images = []
    for item in config.images:
        if item != SAMPLES and os.path.isdir(item):
            images += [os.path.join(item, n) for n in os.listdir(item)]
        elif item != SAMPLES:
            images.append(item)
    if images:
        inputs["--images"] = images
    for flag in ("labels", "targets"):
        source = getattr(getattr(args, flag, None), "source", None)
        if source is not None:
            inputs[f"--{flag}"] = [source]
    return {**inputs, **pair_input_files(args)}


def _check_targets(args, config) -> None:
    from comparator.io import check_outputs

    files = {f"--{flag}": getattr(args, flag) for flag in ("json", "markdown", "html")
             if getattr(args, flag) is not None}
    folders = {"--save-artifacts": args.save_artifacts} if args.save_artifacts is not None \
        else {}
    check_outputs(files, folders, _inputs(args, config))
    if args.cache_dir is not None:
        check_outputs({}, {"--cache-dir": args.cache_dir})


def _cache_dir(args, stderr) -> tuple[str | None, str | None]:
    """(the ONNX cache folder, a temporary folder to remove at the end or None). The
    default cache under HOME falls back to a folder for this run only when HOME cannot
    hold it (read-only, missing), and says so in one line."""
    import tempfile

    from comparator.io import default_cache_dir, shown

    if args.no_onnx or args.cache_dir is not None:
        return args.cache_dir, None
    default = default_cache_dir()
    try:
        os.makedirs(default, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".xframe-probe-", dir=default)
        os.close(fd)
        os.unlink(probe)
        return None, None
    except OSError as exc:
        temporary = tempfile.mkdtemp(prefix="xframe-cache-")
        print(f"compare.py: note: the default ONNX cache {shown(default)} is not writable "
              f"({exc.strerror or exc}); exports are kept in {temporary} for this run only "
              "(--cache-dir DIR keeps them)", file=stderr)
        return temporary, temporary


def _write_reports(args, outcome, command, state: dict) -> list[str]:
    """Every requested report, staged and then renamed into place as one set."""
    from comparator.report.artifacts import write_artifacts
    from comparator.io import ReportSet

    report = outcome.report
    with ReportSet() as reports:
        if args.json:
            reports.add(args.json, report.to_json())
        if args.markdown:
            from comparator.report.markdown import render_markdown

            reports.add(args.markdown, render_markdown(report, command=command))
        if args.html:
            from comparator.report.html import render_html

            reports.add(args.html, render_html(report, command=command,
                                               bn_deltas=outcome.bn_deltas))
        if args.save_artifacts:
            write_artifacts(outcome, reports.directory(args.save_artifacts))
        state["written"] = reports.written  # filled as renames land, for an interrupt
        return reports.commit()


def _show(report, quiet: bool) -> None:
    """The terminal summary; a closed or broken stdout (`>&-`, `| head`) is not an error:
    the reports are written and the exit code stays the comparison's."""
    from rich.console import Console

    from comparator.report.terminal import render

    if sys.stdout is None:
        return
    try:
        stdout = Console(emoji=False)
        if not stdout.is_terminal:
            stdout = Console(width=100, emoji=False)
        render(report, stdout, quiet=quiet)
        sys.stdout.flush()
    except SystemExit:  # rich's answer to a broken pipe: stdout to /dev/null, then exit 1
        silence_stdout()
    except (ValueError, OSError) as exc:
        if not stdout_is_gone(exc):
            raise
        silence_stdout()


def _referee(args, pair, outcome, config, cache_dir, progress):
    """ONNX Runtime's verdict, written into the outcome's report: on the user's own ONNX
    file when one was given, else on the exports of both models (unless --no-onnx)."""
    from comparator.analysis.referee import with_referee

    if pair is not None and pair.onnx:
        from comparator.pipeline import referee_onnx_file

        progress("ONNX Runtime referee: running the given ONNX file", 1)
        referee = referee_onnx_file(outcome, pair.onnx, device=config.device)
    elif not args.no_onnx:
        from comparator.pipeline import referee as run_referee

        progress("ONNX Runtime referee: exporting and running", 1)
        referee = run_referee(outcome, cache_dir=cache_dir, exporter=args.onnx_exporter,
                              device=config.device)
    else:
        return None
    outcome.report = with_referee(outcome.report, referee)
    if outcome.report.settings.get("weights") == "imagenet-both":
        from comparator.inputs.checkpoints import without_cross_training_checks

        outcome.report = without_cross_training_checks(outcome.report)
    return referee


def _request(args):
    """The user's pair (or None for a zoo model) and the checked configuration."""
    from comparator.cli.pair import is_pair, pair_from_args, refuse_pair_options
    from comparator.config import resolve

    pair = pair_from_args(args) if is_pair(args) else None
    if pair is None:
        refuse_pair_options(args)
    config = _config(args, pair)
    if pair is None:
        resolve(config)
    else:
        from comparator.config.pair import check_pair, resolve_pair_config

        check_pair(pair, resolve_pair_config(config)[0].frameworks)
    return pair, config


def _measure(args, pair, config):
    """The comparison and its referee, with a progress display on stderr."""
    import shutil

    from rich.console import Console

    from comparator.cli.progress import progress_display
    from comparator.memory import long_lived_objects_frozen
    from comparator.pipeline import compare

    cache_dir, temporary_cache = _cache_dir(args, sys.stderr)
    threads_sleep_beside_workers(config.frameworks)  # before torch is imported
    if args.cache_dir:  # Keras version overlays (adapters/keras/overlays.py) are kept there too
        os.environ["XFRAME_CACHE_DIR"] = os.path.abspath(args.cache_dir)
    try:
        # The models stay frozen out of collections through the referee (comparator.memory).
        with progress_display(Console(stderr=True, emoji=False)) as progress, \
                long_lived_objects_frozen():
            if pair is None:
                outcome = compare(config, progress=progress, preset=args.preset)
            else:
                from comparator.pipeline import compare_user_pair

                outcome = compare_user_pair(pair, config, progress=progress)
            referee = _referee(args, pair, outcome, config, cache_dir, progress)
    finally:
        if temporary_cache:
            shutil.rmtree(temporary_cache, ignore_errors=True)
    return outcome, referee


def run(args, argv: list[str], state: dict) -> int:
    pair, config = _request(args)
    _check_targets(args, config)
    outcome, referee = _measure(args, pair, config)
    report = outcome.report
    _write_reports(args, outcome, ["python", "scripts/compare.py", *argv], state)
    _show(report, args.quiet)
    diverged_steps_named(report)  # finite numbers, measured: a warning, not a failure
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


def _interrupted(exc: KeyboardInterrupt, written: list[str]) -> int:
    from comparator.io import shown

    what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
    done = (f"the reports were written before it: {', '.join(shown(p) for p in written)}"
            if written else "no report was written")
    print(f"compare.py: {what}; {done}", file=sys.stderr)
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def _capture_warnings() -> list[str]:
    """Library warnings (torch on a legacy pickle, Keras on a checkpoint of another model)
    span many lines: each is kept as one line, shown once after a finished run and left
    out when the run ends in an error, so that an error stays one line."""
    import warnings

    from comparator.io import shown

    captured: list[str] = []

    def keep(message, category, *_args, **_kwargs):
        lines = [line.strip() for line in str(message).splitlines() if line.strip()]
        text = f"{category.__name__}: {shown(lines[0] if lines else '')}"
        if text not in captured:
            captured.append(text)

    warnings.showwarning = keep
    return captured


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    handle_sigterm()
    state: dict = {"written": []}
    captured = _capture_warnings()
    try:
        args = build_parser().parse_args(argv)
        from comparator.config.frameworks import keep_worker_backends_out

        keep_worker_backends_out()
        code = run(args, argv, state)
        for warning in captured:
            print(f"compare.py: warning: {warning}", file=sys.stderr)
        return code
    except ComparatorError as exc:
        from comparator.io import shown

        print(f"compare.py: error: {shown(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        handled()
        return _interrupted(exc, state["written"])
    except Exception as exc:  # a bug: say so in one line unless asked for details
        if "--debug" in argv or os.environ.get("XFRAME_DEBUG"):
            raise
        from comparator.io import shown

        print(f"compare.py: internal error: {type(exc).__name__}: {shown(exc)} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


__all__ = ["main", "build_parser", "UsageError"]
