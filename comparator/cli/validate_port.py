"""`validate_port.py`: validate a port layer by layer, a zoo backbone's
(`validate_port.py MODEL [--naive]`) or the user's own pair
(`validate_port.py --pytorch SPEC --keras SPEC --input-shape C,H,W`).

Exit codes: 0 every layer agrees, 1 a layer, the output, a gradient, a BatchNorm's running
statistics or a Dropout rate diverges, 2 bad input (one line on stderr), 3 a framework is
missing.
"""

from __future__ import annotations

import argparse

from comparator.cli.common import (OneLineParser, guarded, handle_sigterm, print_safely,
                                   size_argument)
from comparator.errors import EXIT_CHECK_FAILED, EXIT_OK

PROG = "validate_port.py"


def build_parser() -> argparse.ArgumentParser:
    from comparator.analysis.validation import zoo_models

    parser = OneLineParser(
        prog=PROG,
        description="Build a backbone in PyTorch and Keras 3 (torch backend) with the same "
                    "seeded weights and compare them layer by layer: forward and isolated "
                    "passes in inference and training mode, and every parameter's gradient. "
                    "Names the first layer that differs and its likely cause.")
    parser.add_argument("model", nargs="?",
                        help=f"a zoo model, one of: {', '.join(zoo_models())}; or give your "
                             "own pair with --pytorch and --keras")
    own = parser.add_argument_group(
        "your own pair (instead of MODEL)",
        "SPEC: path/to/file.py:callable or package.module:callable (a model, a class or a "
        "factory), or a .keras file for --keras (loaded with safe_mode)")
    from comparator.cli.pair import add_model_arguments

    add_model_arguments(own, frameworks=False)
    own.add_argument("--port-weights", choices=["pytorch-to-keras", "keras-to-pytorch"],
                     help="copy one side's weights into the other first, as compare.py "
                          "does: validates the Keras architecture, whatever your port of "
                          "the weights (default: both as given)")
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
    parser.add_argument("--no-train-step", action="store_true",
                        help="skip the BatchNorm running-statistics step and the Dropout "
                             "comparison")
    parser.add_argument("--no-float64", action="store_true",
                        help="skip the float64 PyTorch reference that measures rounding")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON here")
    parser.add_argument("--max-memory", type=size_argument, metavar="SIZE",
                        help="refuse runs whose estimated peak memory exceeds this (e.g. 16G; "
                             "default: this machine's memory)")
    parser.add_argument("--rows", type=int, default=8,
                        help="diverging layers listed per pass (default 8)")
    return parser


_OWN_OPTIONS = ("pytorch", "keras", "pytorch_weights", "keras_weights", "input_shape", "inputs",
                "output", "port_weights")


def _own_pair(args) -> bool:
    """True for the --pytorch/--keras form; refuses a mix of the two forms."""
    from comparator.errors import UsageError

    given = [f"--{o.replace('_', '-')}" for o in _OWN_OPTIONS if getattr(args, o)]
    if args.model is None and not given:
        raise UsageError("give a zoo MODEL, or your own pair as --pytorch SPEC --keras SPEC")
    if args.model is not None:
        if given:
            raise UsageError(f"{', '.join(given)} belong to your own pair; a zoo model "
                             f"({args.model}) builds both sides itself")
        return False
    missing = [f for f in ("--pytorch", "--keras") if f not in given]
    if missing:
        raise UsageError(f"your own pair needs {' and '.join(missing)} SPEC")
    if args.naive or args.image_size:
        raise UsageError("--naive and --image-size are for zoo models; give your pair's batch "
                         "with --input-shape or --inputs")
    return True


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from comparator.config.frameworks import keep_worker_backends_out

    # Keras on torch imports TensorFlow and JAX when they are installed; the validator
    # needs neither (as in compare.py).
    keep_worker_backends_out()
    handle_sigterm()
    return guarded(PROG, lambda: _run(args))


def _options(args) -> dict:
    from comparator.analysis.validation import DEFAULT_TOLERANCE, check_tolerance
    from comparator.errors import UsageError

    if args.tolerance is not None:
        check_tolerance(args.tolerance)
    if args.rows < 0:
        raise UsageError(f"--rows must be 0 or more, got {args.rows}")
    return dict(modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()),
                gradients=not args.no_gradients, train_step=not args.no_train_step,
                reference64=not args.no_float64,
                tolerance=args.tolerance if args.tolerance is not None else DEFAULT_TOLERANCE,
                batch_size=args.batch_size, seed=args.seed)


def _run(args) -> int:
    from comparator import validate_model

    options = _options(args)
    if args.json:
        from comparator.cli.pair import pair_input_files
        from comparator.io import check_outputs

        check_outputs({"--json": args.json}, {}, pair_input_files(args))
    if _own_pair(args):
        from comparator import validate_pair
        from comparator.analysis.layer_pairing import without_mapping
        from comparator.config.pair import parse_input_shapes

        with without_mapping():
            result = validate_pair(
                args.pytorch, args.keras, pytorch_weights=args.pytorch_weights,
                keras_weights=args.keras_weights, inputs=args.inputs, port=args.port_weights,
                output=args.output,
                input_shape=parse_input_shapes(args.input_shape) if args.input_shape else None,
                **options)
    else:
        result = validate_model(args.model, image_size=args.image_size,
                                naive=args.naive, max_memory=args.max_memory, **options)
    if args.json:  # first: a stdout whose reader has gone must not cost the file
        import json

        from comparator.io import write_atomic

        write_atomic(args.json, json.dumps(result.to_dict(), indent=2))
    print_safely(result.render(max_rows=args.rows))
    return EXIT_OK if result.passed else EXIT_CHECK_FAILED
