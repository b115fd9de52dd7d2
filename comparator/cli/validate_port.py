"""`validate_port.py`: validate a zoo backbone's port layer by layer.

Exit codes: 0 every layer agrees, 1 a layer, the output or a gradient diverges,
2 bad input (one line on stderr), 3 a framework is missing.
"""

from __future__ import annotations

import argparse
import sys

from comparator.cli.common import EXIT_INTERRUPTED, OneLineParser
from comparator.errors import EXIT_CHECK_FAILED, EXIT_OK, ComparatorError

PROG = "validate_port.py"


def build_parser() -> argparse.ArgumentParser:
    from comparator.analysis.validation import zoo_models

    parser = OneLineParser(
        prog=PROG,
        description="Build a backbone in PyTorch and Keras 3 (torch backend) with the same "
                    "seeded weights and compare them layer by layer: forward and isolated "
                    "passes in inference and training mode, and every parameter's gradient. "
                    "Names the first layer that differs and its likely cause.")
    parser.add_argument("model", help=f"one of: {', '.join(zoo_models())}")
    parser.add_argument("--naive", action="store_true",
                        help="validate keras.applications' own model under the naive "
                             "same-shape port instead of the zoo's equivalent one "
                             "(resnet50, mobilenet_v2, vgg16)")
    parser.add_argument("--image-size", type=int,
                        help="pixels per side (default: the model's own, 224)")
    parser.add_argument("--batch-size", type=int, default=2, help="default 2")
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument("--tolerance", type=float,
                        help="largest relative difference per layer (default 1e-4)")
    parser.add_argument("--modes", default="inference,training",
                        help="inference, training or both (default)")
    parser.add_argument("--no-gradients", action="store_true", help="skip the backward pass")
    parser.add_argument("--no-float64", action="store_true",
                        help="skip the float64 PyTorch reference that measures rounding")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON here")
    parser.add_argument("--rows", type=int, default=8,
                        help="diverging layers listed per pass (default 8)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from comparator.errors import UsageError
        from comparator import validate_model
        from comparator.analysis.validation import DEFAULT_TOLERANCE

        modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
        if args.tolerance is not None and not args.tolerance > 0:
            raise UsageError(f"--tolerance must be positive, got {args.tolerance}")
        if args.json:
            from comparator.io import check_writable_file

            check_writable_file(args.json, "--json")
        result = validate_model(
            args.model, image_size=args.image_size, batch_size=args.batch_size, seed=args.seed,
            naive=args.naive, modes=modes, gradients=not args.no_gradients,
            reference64=not args.no_float64,
            tolerance=args.tolerance if args.tolerance is not None else DEFAULT_TOLERANCE)
    except ComparatorError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(result.render(max_rows=args.rows))
    if args.json:
        import json

        from comparator.io import write_atomic

        write_atomic(args.json, json.dumps(result.to_dict(), indent=2))
    return EXIT_OK if result.passed else EXIT_CHECK_FAILED
