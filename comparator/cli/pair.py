"""compare.py's options for a user's own pair (--pytorch SPEC --keras SPEC ...)."""

from __future__ import annotations

import argparse
import os

from comparator.errors import UsageError

PAIR_ONLY = ("pytorch_weights", "keras_weights", "onnx", "input_shape", "inputs", "freeze",
             "output", "loss_weights", "port_weights", "dropout")
ZOO_ONLY = ("preset", "image_size", "weights", "images")


def add_model_arguments(group, frameworks: bool = True) -> None:
    """The options that name a user's pair and its batch, shared by compare.py and
    validate_port.py (frameworks=False: a parser without --frameworks)."""
    group.add_argument("--pytorch", metavar="SPEC", help="the PyTorch model")
    group.add_argument("--keras", metavar="SPEC",
                       help="its Keras 3 counterpart (run on the torch backend in this "
                            "process" + ("; --frameworks adds other Keras 3 backends and "
                                         "versions, each rebuilding it in a worker)"
                                         if frameworks else ")"))
    group.add_argument("--pytorch-weights", metavar="FILE",
                       help="a state_dict loaded into the PyTorch model: .pt/.pth "
                            "(read with weights_only=True) or .safetensors")
    group.add_argument("--keras-weights", metavar="FILE",
                       help="a .weights.h5 file loaded into the Keras model")
    group.add_argument("--input-shape", metavar="C,H,W",
                       help="a seeded standard normal batch of this shape (PyTorch's order; "
                            "C,D,H,W for volumes, C,L for sequences, F for vectors; Keras gets "
                            "it channels-last; several inputs' shapes separated by ';', in "
                            "forward()'s order)")
    group.add_argument("--inputs", metavar="FILE.npz",
                       help="the batch: x float32 in PyTorch's layout (N,C,H,W, N,C,D,H,W, "
                            "N,C,L or N,F), or x0, x1, ... for several inputs, optional y "
                            "(labels or targets)")
    group.add_argument("--output", metavar="KEY",
                       help="the output compared, where the models return several (a dict's "
                            "key, or a position in a tuple or a list); compare.py computes "
                            "the loss on it alone. TORCH_KEY:KERAS_KEY when they differ. "
                            "Several, KEY1,KEY2,...: compare.py's every loss is then the "
                            "weighted sum of theirs (--loss-weights), and validate_port.py "
                            "walks the layers that feed any of them and compares each")


def add_pair_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "your own models (instead of MODEL)",
        "SPEC: path/to/file.py:callable or package.module:callable (a class or a factory "
        "returning the model), or a model file: .keras (Keras, loaded with safe_mode) or .pt2 "
        "(PyTorch, torch.export; inference only). The models' weights are tested as given.")
    add_model_arguments(group)
    group.add_argument("--onnx", metavar="FILE",
                       help="an ONNX file of the model: ONNX Runtime runs it as the referee "
                            "instead of exporting the models")
    group.add_argument("--freeze", metavar="NAME",
                       help="the submodule (PyTorch) and layer (Keras) that play the frozen "
                            "backbone; the rest trains (default: the whole model is frozen). "
                            "TORCH_NAME:KERAS_NAME when the names differ")
    group.add_argument("--loss-weights", metavar="W1,W2,...",
                       help="with --output KEY1,KEY2,...: the weight of each output's loss in "
                            "the sum every pass computes, as Keras's compile(loss_weights=...) "
                            "(default 1 each)")
    group.add_argument("--port-weights", choices=["pytorch-to-keras", "keras-to-pytorch"],
                       help="copy one side's weights into the other first (structural port; "
                            "default: both as given)")
    group.add_argument("--dropout", choices=["on", "off"],
                       help="off: train steps run Dropout in inference mode in both "
                            "frameworks, for exact step comparisons (default on)")


def is_pair(args) -> bool:
    return bool(args.pytorch or args.keras)


def pair_from_args(args):
    """The UserPair the arguments describe; mixing zoo and pair options is refused."""
    from comparator.config.pair import UserPair, parse_input_shapes, parse_loss_weights

    if not (args.pytorch and args.keras):
        raise UsageError("give both --pytorch SPEC and --keras SPEC")
    if args.model:
        raise UsageError(f"give either a zoo model ({args.model}) or --pytorch/--keras, not both")
    mixed = [f"--{name.replace('_', '-')}" for name in ZOO_ONLY
             if getattr(args, name, None) not in (None, False)]
    if mixed:
        raise UsageError(f"{', '.join(mixed)} is for zoo models; a user pair takes --inputs or "
                         "--input-shape")
    return UserPair(
        pytorch=args.pytorch, keras=args.keras, pytorch_weights=args.pytorch_weights,
        keras_weights=args.keras_weights, freeze=args.freeze, output=args.output,
        loss_weights=parse_loss_weights(args.loss_weights) if args.loss_weights else None,
        onnx=args.onnx,
        port_weights=args.port_weights, dropout=args.dropout or "on", inputs=args.inputs,
        input_shape=parse_input_shapes(args.input_shape) if args.input_shape else None)


def pair_input_files(args) -> dict[str, list[str]]:
    """The files a user pair is read from (model files, weights, the batch, the ONNX
    graph), which no report may overwrite; a module:callable SPEC names no file here."""
    inputs = {}
    for flag in ("pytorch", "keras", "pytorch_weights", "keras_weights", "inputs", "onnx"):
        value = getattr(args, flag, None)
        if not value:
            continue
        where = value.rpartition(":")[0]  # file.py:callable names file.py
        path = where if flag in ("pytorch", "keras") and where.endswith(".py") else value
        if os.path.isfile(path):
            inputs[f"--{flag.replace('_', '-')}"] = [path]
    return inputs


def refuse_pair_options(args) -> None:
    """Pair options given with a zoo model."""
    given = [f"--{name.replace('_', '-')}" for name in PAIR_ONLY
             if getattr(args, name, None) is not None]
    if given:
        raise UsageError(f"{', '.join(given)} goes with --pytorch SPEC --keras SPEC")
