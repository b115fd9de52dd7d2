"""`compare.py`: argument parsing, one library call, an exit code."""

from __future__ import annotations

import argparse
import os
import sys

from comparator.errors import EXIT_CHECK_FAILED, EXIT_OK, ComparatorError, UsageError

EXIT_INTERNAL = 5
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def build_parser() -> argparse.ArgumentParser:
    from comparator.models import known_models

    parser = _Parser(
        prog="compare.py",
        description="Load the same backbone in PyTorch and Keras 3 (torch backend), apply each "
                    "framework's freezing recipes, take a train step on one batch and report "
                    "what every recipe did.")
    parser.add_argument("model", help=f"one of: {', '.join(known_models())}")
    parser.add_argument("--scenario", default="classify", choices=["classify", "head"],
                        help="classify: whole network with its classifier, cross-entropy; "
                             "head: frozen backbone plus a new regression head, MSE")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=None,
                        help="pixels per side (default: the model's own, 224 for DenseNet)")
    parser.add_argument("--steps", type=int, default=1, help="train steps on the same batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.01, help="plain SGD learning rate")
    parser.add_argument("--recipes", type=_csv, default=(),
                        help="comma-separated run ids, e.g. pytorch:eval,keras:trainable_false")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", metavar="PATH", help="write the JSON report here")
    parser.add_argument("--save-artifacts", metavar="DIR",
                        help="write batch.npz, pytorch_state_dict.pt and report.json here")
    parser.add_argument("--quiet", action="store_true", help="print only the verdict line")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return parser


def _config(args):
    from comparator.runner import CompareConfig

    return CompareConfig(model=args.model, scenario=args.scenario, batch_size=args.batch_size,
                         image_size=args.image_size, steps=args.steps, seed=args.seed,
                         lr=args.lr, recipes=args.recipes, device=args.device)


def run(args) -> int:
    from rich.console import Console

    from comparator.artifacts import save_artifacts
    from comparator.display import render
    from comparator.io import check_writable_dir, check_writable_file, write_atomic
    from comparator.progress import progress_display
    from comparator.runner import compare, resolve

    config = _config(args)
    resolve(config)
    if args.json:
        check_writable_file(args.json, "--json")
    if args.save_artifacts:
        check_writable_dir(args.save_artifacts, "--save-artifacts")
    stderr = Console(stderr=True)
    with progress_display(stderr) as progress:
        outcome = compare(config, progress=progress)
    report = outcome.report
    if args.json:
        write_atomic(args.json, report.to_json())
    if args.save_artifacts:
        save_artifacts(outcome, args.save_artifacts)
    stdout = Console()
    if not stdout.is_terminal:
        stdout = Console(width=100)
    render(report, stdout, quiet=args.quiet)
    return EXIT_OK if report.checks_passed else EXIT_CHECK_FAILED


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
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
