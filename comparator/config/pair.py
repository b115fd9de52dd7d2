"""A user's own model pair: what the comparison runs on instead of a zoo model.

Framework-free: the models are SPEC strings (adapters.own_pair.loader reads them) or the
objects the Python API was given; inputs are numpy arrays in PyTorch's layout.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from comparator.config import LOSS_KINDS, OPTIMIZERS, SCENARIOS, CompareConfig
from comparator.config.flavours import TF_KERAS
from comparator.config.frameworks import resolve_frameworks, runs_in_worker
from comparator.config.recipes import Recipe, select
from comparator.errors import UsageError
from comparator.limits import check_count, check_numbers

PORT_DIRECTIONS = ("pytorch-to-keras", "keras-to-pytorch")
DROPOUT_MODES = ("on", "off")
_STREAM_PAIR_INPUTS = 6  # a seed stream of its own (inputs/batch.py numbers the others)


def both_names(text: str | None) -> tuple[str | None, str | None]:
    """"NAME" for both frameworks, or "TORCH_NAME:KERAS_NAME"."""
    if not text:
        return None, None
    torch_name, sep, keras_name = text.partition(":")
    return torch_name, (keras_name if sep else torch_name)


def output_key_pairs(output: str | None) -> list[tuple[str | None, str | None]]:
    """(TORCH_KEY, KERAS_KEY) of every output an --output value ("KEY", "TORCH_KEY:KERAS_KEY"
    or several such, separated by ',') chooses, in its order; [] for none."""
    return [both_names(part) for part in output.split(",")] if output else []


def checked_output_keys(output: str | None) -> list[tuple[str, str]]:
    """output_key_pairs, refusing in one line a key left empty or one given twice (compare.py
    and the port validator read --output alike)."""
    keys = output_key_pairs(output)
    if output is not None and not all(all(both) for both in keys):
        several = " (several: KEY1,KEY2,...)" if "," in output else ""
        raise UsageError(f"--output takes KEY or TORCH_KEY:KERAS_KEY{several}, not {output!r}")
    for side, chosen in zip(("PyTorch", "Keras"), zip(*keys)):
        twice = sorted({key for key in chosen if chosen.count(key) > 1})
        if twice:
            raise UsageError(f"--output {output}: the {side} key {twice[0]!r} is chosen "
                             "twice; give each output once")
    return keys


@dataclass(frozen=True)
class UserPair:
    """Two models that should compute the same function, and how to compare them."""

    pytorch: object  # SPEC string, torch.nn.Module or torch.export program
    keras: object  # SPEC string or keras.Model
    pytorch_weights: str | None = None
    keras_weights: str | None = None
    freeze: str | None = None  # "NAME" in both, or "TORCH_NAME:KERAS_NAME"
    # The output compared of models that return several: "KEY" in both (a dict's key or a
    # position) or "TORCH_KEY:KERAS_KEY"; several such keys separated by ',', whose losses
    # are summed with loss_weights (default all 1.0), as a model with an auxiliary head trains.
    output: str | None = None
    loss_weights: tuple[float, ...] | None = None
    onnx: str | None = None  # an ONNX file of the model: the referee's inference reference
    port_weights: str | None = None  # None: the user's weights as given
    dropout: str = "on"  # "off": train steps run Dropout in inference mode in both
    inputs: str | None = None  # an .npz file with x (and y)
    # (C, H, W), (C, L) or (F,) of a seeded batch, or a tuple of such shapes for several inputs
    input_shape: tuple | None = None
    x: object = None  # the Python API's inputs, PyTorch layout (a tuple or list: several)
    y: np.ndarray | None = None

    def freeze_names(self) -> tuple[str | None, str | None]:
        return both_names(self.freeze)

    def output_keys(self) -> tuple[str | None, str | None]:
        """(TORCH_KEY, KERAS_KEY) of one output; of several, each side's keys joined by ','."""
        if not self.several_outputs:
            return both_names(self.output)
        torch_keys, keras_keys = zip(*self.output_key_pairs())
        return ",".join(torch_keys), ",".join(keras_keys)

    def output_key_pairs(self) -> list[tuple[str | None, str | None]]:
        """(TORCH_KEY, KERAS_KEY) of every output --output chose, in its order."""
        return output_key_pairs(self.output)

    @property
    def several_outputs(self) -> bool:
        return bool(self.output) and "," in self.output

    def output_weights(self) -> tuple[float, ...] | None:
        """The weight of each chosen output's loss where several are chosen, else None."""
        if not self.several_outputs:
            return None
        return self.loss_weights or (1.0,) * len(self.output_key_pairs())


def check_pair(pair: UserPair, frameworks=("pytorch", "keras")) -> None:
    """What can be checked before any framework loads."""
    workers = [name for name in frameworks if runs_in_worker(name)]
    if workers and not isinstance(pair.keras, (str, os.PathLike)):
        raise UsageError(f"{', '.join(workers)} rebuild the Keras model in a worker from its "
                         "SPEC (file.py:callable or a .keras file); a model object cannot be "
                         "sent there")
    if pair.port_weights is not None and pair.port_weights not in PORT_DIRECTIONS:
        raise UsageError(f"--port-weights takes {' or '.join(PORT_DIRECTIONS)}, "
                         f"not {pair.port_weights!r}")
    if pair.dropout not in DROPOUT_MODES:
        raise UsageError(f"--dropout takes on or off, not {pair.dropout!r}")
    given = [name for name, value in (("--inputs", pair.inputs),
                                      ("--input-shape", pair.input_shape),
                                      ("inputs", pair.x)) if value is not None]
    if len(given) > 1:
        raise UsageError(f"give one of {' and '.join(given)}, not both")
    if pair.onnx is not None and not os.path.isfile(pair.onnx):
        raise UsageError(f"--onnx: no such file: {pair.onnx}")
    if pair.freeze is not None and not all(pair.freeze_names()):
        raise UsageError(f"--freeze takes NAME or TORCH_NAME:KERAS_NAME, not {pair.freeze!r}")
    _check_outputs(pair)
    if pair.onnx is not None:  # read now, not after the comparison has run
        from comparator.analysis.referee_file import check_file

        check_file(pair.onnx, pair.output_key_pairs())


def _check_outputs(pair: UserPair) -> None:
    """--output's keys and --loss-weights, before any framework loads."""
    keys = checked_output_keys(pair.output)
    if pair.loss_weights is None:
        return
    if not pair.several_outputs:
        raise UsageError("--loss-weights weighs the losses of several outputs chosen with "
                         "--output KEY1,KEY2,...; one output's loss is its own")
    if len(pair.loss_weights) != len(keys):
        count = len(pair.loss_weights)
        raise UsageError(f"--loss-weights gives {count} weight{'s' * (count != 1)} for the "
                         f"{len(keys)} outputs of --output {pair.output}: give one per output")
    if not all(np.isfinite(w) for w in pair.loss_weights):
        raise UsageError(f"--loss-weights takes finite numbers, not "
                         f"{', '.join(str(w) for w in pair.loss_weights)}")


def parse_loss_weights(text: str) -> tuple[float, ...]:
    """--loss-weights W1,W2,...: one number per output --output chose."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--loss-weights takes numbers separated by ',', one per output, not "
                         f"{text!r}") from None


def parse_input_shape(text: str) -> tuple[int, ...]:
    """C,H,W (images, PyTorch's order), C,D,H,W (volumes or video, as Conv3d takes them),
    C,L (sequences, as Conv1d takes them) or F (vectors)."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--input-shape takes C,H,W, C,D,H,W, C,L or F as integers, not "
                         f"{text!r}") from None
    if len(shape) not in (1, 2, 3, 4) or min(shape) <= 0:
        raise UsageError(f"--input-shape takes C,H,W, C,D,H,W, C,L or F (positive), not "
                         f"{text!r}")
    return shape


def parse_input_shapes(text: str):
    """--input-shape: one shape, or several inputs' shapes separated by ';' (forward()'s
    positional arguments, in order), each as parse_input_shape takes it."""
    shapes = tuple(parse_input_shape(part.strip()) for part in text.split(";"))
    return shapes if len(shapes) > 1 else shapes[0]


def _npz_arrays(path: str) -> dict:
    if not os.path.isfile(path):
        raise UsageError(f"--inputs: no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except Exception as exc:
        raise UsageError(f"--inputs: cannot read {path} as .npz ({type(exc).__name__}: "
                         f"{exc})") from None


def same_batch(inputs, what: str) -> None:
    """Refuses several inputs that do not hold the same number of rows."""
    if len({len(v) for v in inputs}) > 1:
        raise UsageError(f"{what} hold different batches: "
                         f"{', '.join(str(len(v)) for v in inputs)} rows")


def _numbered_inputs_in_order(arrays: dict, path: str) -> None:
    """Refuses an .npz file whose inputs are not x alone or x0, x1, ... with no gap: the
    arrays beside x, or after the gap, would otherwise be left out without a word."""
    numbered = sorted(int(name[1:]) for name in arrays if re.fullmatch(r"x(0|[1-9]\d*)", name))
    if "x" in arrays and numbered:
        raise UsageError(f"--inputs: {path} has both x and x{numbered[0]}: give one input as x, "
                         "or several as x0, x1, ...")
    missing = next((i for i, number in enumerate(numbered) if number != i), None)
    if missing is not None:
        raise UsageError(f"--inputs: {path} has x{numbered[missing]} but no x{missing}: name "
                         "several inputs x0, x1, ... with no gap")


def _several_inputs(arrays: dict, path: str) -> tuple[np.ndarray, ...]:
    inputs, index = [], 0
    while f"x{index}" in arrays:
        check_x(arrays[f"x{index}"], f"--inputs: {path}'s x{index}")
        inputs.append(arrays[f"x{index}"])
        index += 1
    same_batch(inputs, f"--inputs: {path}'s x0, x1, ...")
    return tuple(inputs)


def load_inputs(path: str) -> tuple[object, np.ndarray | None]:
    """x (float32, N,C,H,W, N,C,D,H,W, N,C,L or N,F: as PyTorch takes it; or x0, x1, ... for
    a model that takes several inputs: forward()'s positional arguments, the Keras model's
    inputs, in order, returned as a tuple) and the optional y of an .npz file."""
    arrays = _npz_arrays(path)
    _numbered_inputs_in_order(arrays, path)
    if "x" in arrays or "x0" not in arrays:
        if "x" not in arrays:
            raise UsageError(f"--inputs: {path} has no array named x (it has: "
                             f"{', '.join(arrays) or 'nothing'})")
        x = arrays["x"]
        check_x(x, f"--inputs: {path}'s x")
    else:
        inputs = _several_inputs(arrays, path)
        x = inputs if len(inputs) > 1 else inputs[0]
    y, rows = arrays.get("y"), len(x[0] if isinstance(x, tuple) else x)
    if y is not None and (y.ndim == 0 or len(y) != rows):
        raise UsageError(f"--inputs: {path}'s y has shape {y.shape}; it needs one entry per "
                         f"row of x ({rows})")
    return x, y


def load_validator_inputs(path: str):
    """The port validator's inputs of an .npz file: x, or a tuple of x0, x1, ...."""
    return load_inputs(path)[0]


def check_x(x: np.ndarray, what: str) -> None:
    if x.dtype != np.float32 and x.dtype.kind not in "iu":
        raise UsageError(f"{what} is {x.dtype}; it must be float32 (or integers: token ids)")
    if x.dtype.kind in "iu" and x.ndim != 2:
        raise UsageError(f"{what} is {x.dtype} of shape {x.shape}; integers are taken as token "
                         "ids, N,L: give images and sequences as float32 (uint8 pixels "
                         "normalised as the model expects)")
    if x.ndim not in (2, 3, 4, 5):
        raise UsageError(f"{what} has shape {x.shape}; it must be N,C,H,W (images, as PyTorch "
                         "takes them), N,C,D,H,W (volumes or video, as Conv3d takes them), "
                         "N,C,L (sequences, as Conv1d takes them) or N,F (vectors)")
    if len(x) == 0:
        raise UsageError(f"{what} is empty")
    if not np.all(np.isfinite(x)):
        raise UsageError(f"{what} contains NaN or infinite values")


def seeded_inputs(shape: tuple[int, ...], batch_size: int, seed: int,
                  index: int = 0) -> np.ndarray:
    """A standard-normal batch (the scale of normalised images) of the given shape; index: a
    model's input after its first, each drawn from a stream of its own."""
    if batch_size <= 0:
        raise UsageError(f"batch size must be positive, got {batch_size}")
    rng = np.random.default_rng([seed, _STREAM_PAIR_INPUTS, *([index] if index else [])])
    return rng.standard_normal((batch_size, *shape)).astype(np.float32)


def seeded_batch(input_shape: tuple, batch_size: int, seed: int):
    """seeded_inputs of one shape, or a tuple of them for several inputs' shapes."""
    if input_shape and isinstance(input_shape[0], tuple):
        return tuple(seeded_inputs(shape, batch_size, seed, index)
                     for index, shape in enumerate(input_shape))
    return seeded_inputs(tuple(input_shape), batch_size, seed)


def _given_inputs(x):
    """The Python API's inputs as numpy: one array or tensor, or a tuple or list of them."""
    def as_numpy(value, what):
        value = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
        check_x(value, what)
        return value

    if isinstance(x, (tuple, list)):
        inputs = tuple(as_numpy(v, f"inputs[{i}]") for i, v in enumerate(x))
        same_batch(inputs, "inputs")
        return inputs if len(inputs) > 1 else inputs[0]
    return as_numpy(x, "inputs")


def pair_inputs(pair: UserPair, batch_size: int, seed: int) -> tuple[object, object, str]:
    """(x, y or None, where they came from); x is a tuple for several inputs."""
    if pair.inputs is not None:
        x, y = load_inputs(pair.inputs)
        return x, y, f"file {pair.inputs}"
    if pair.x is not None:
        return _given_inputs(pair.x), pair.y, "given"
    if pair.input_shape is None:
        raise UsageError("give --inputs FILE.npz or --input-shape C,H,W for the batch")
    return seeded_batch(pair.input_shape, batch_size, seed), None, "seeded standard normal"


PAIR_FRAMEWORKS = ("pytorch", "keras")


def _pair_frameworks(names) -> tuple[str, ...]:
    """PyTorch and Keras on torch in this process, which open the pair, and any other Keras 3
    backend or version, which runs the Keras model again in a worker; not Keras 2."""
    frameworks = resolve_frameworks(names)
    if TF_KERAS in frameworks:
        raise UsageError("tf-keras runs Keras 2, which cannot load a user pair's Keras 3 model; "
                         "a user pair runs on Keras 3 backends and versions (keras-tensorflow, "
                         "keras-jax, keras-torch@VERSION)")
    missing = [name for name in PAIR_FRAMEWORKS if name not in frameworks]
    if missing:
        raise UsageError(f"a user pair is opened by PyTorch and Keras on torch in this process: "
                         f"--frameworks must include {' and '.join(missing)} (it has "
                         f"{', '.join(frameworks)})")
    return frameworks


def resolve_pair_config(config: CompareConfig) -> tuple[CompareConfig, list[Recipe]]:
    """The CompareConfig a user pair takes (no zoo model, no image size; Keras on other
    backends and versions in workers), and its recipes."""

    if config.scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {config.scenario!r}; known: {', '.join(SCENARIOS)}")
    for label, value in (("batch size", config.batch_size), ("steps", config.steps)):
        check_count(value, label)
    check_numbers(config)  # seed, learning rate, worker timeout, as resolve checks them
    if config.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {config.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    if config.loss not in LOSS_KINDS:
        raise UsageError(f"unknown loss {config.loss!r}; known: {', '.join(LOSS_KINDS)}")
    if config.loss != "logits" and config.scenario != "classify":
        raise UsageError(f"the {config.loss} loss is for the classify scenario")
    if config.labels and config.scenario != "classify":  # else left unread by the targets
        raise UsageError(f"--labels are for the classify scenario, not {config.scenario}: "
                         "give regression targets with --targets")
    if config.device != "cpu" and not config.device.startswith("cuda"):
        raise UsageError(f"unknown device {config.device!r}; use cpu or cuda")
    frameworks = _pair_frameworks(config.frameworks)
    # Feature extraction needs the model cut into a backbone and a head that takes its
    # features, which a user's model does not offer.
    recipes = [r for r in select(list(config.recipes), list(frameworks), config.scenario)
               if not r.feature_extraction]
    return CompareConfig(**{**config.__dict__, "frameworks": frameworks}), recipes


# F.cross_entropy and Keras's SparseCategoricalCrossentropy on N,1 logits gave exactly 0.0 and
# a zero gradient for any values (torch 2.14.1, Keras 3.15.1): the softmax of one unit is 1.
# The probabilities loss, clipped to 1 - 1e-7, gave the constant 1.19e-7 and a zero gradient.
def one_class_refusal(shape: tuple, loss: str) -> str:
    """Why classify is refused on outputs with one unit, and what to use instead."""
    where = "position" if len(shape) > 2 else "example"
    value = "1.2e-7 (-log of its clip, 1 - 1e-7)" if loss == "probabilities" else "0"
    return (f"the models give one output unit per {where} (outputs {shape}): cross-entropy "
            f"over one class is {value} whatever the weights, so no weight would move; use "
            "--scenario regress (compare_pair's loss='mse'), mean squared error")


def _asks_for_classes(config: CompareConfig, given_y) -> str | None:
    """What asked for the classify scenario, or None where it is only the default: --scenario,
    a cross-entropy --loss, --labels, or integer labels y."""
    if config.scenario_given:
        return "given" if config.scenario == "classify" else None
    if config.loss != "logits":
        return f"the {config.loss} loss"
    if config.labels:
        return "--labels"
    if given_y is not None and np.asarray(given_y).dtype.kind in "iu":
        return "integer labels y"
    return None


def pair_scenario(config: CompareConfig, given_y, outputs_shape, axis: int) -> tuple[str, str]:
    """The scenario a user pair runs, and why (settings.scenario_source). Where nothing asked
    for one, outputs with one value per example (one unit on the class axis, per position of
    a map or a sequence) regress; where classify was asked for, one unit is refused."""
    shape = tuple(int(n) for n in outputs_shape)
    asked = _asks_for_classes(config, given_y)
    if asked and len(shape) >= 2 and shape[axis] == 1:
        raise UsageError(one_class_refusal(shape, config.loss))
    if config.scenario_given:
        return config.scenario, "given"
    if asked:  # outputs without a class axis are refused by the labels, in their words
        return "classify", f"asked for by {asked}"
    if len(shape) < 2 or shape[axis] == 1:
        axis_is = "no class axis" if len(shape) < 2 else "one unit on the class axis"
        return "regress", (f"default: the outputs {shape} have {axis_is}, and cross-entropy "
                           "over one class is 0 whatever the weights")
    return "classify", f"default: the outputs {shape} have {shape[axis]} units on the class axis"
