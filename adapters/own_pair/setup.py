"""Opening a user's pair for the comparison: both models loaded as given, their outputs
checked against each other, weighted layers paired, the batch and its labels made."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from adapters.devices import require_keras_model_on
from adapters.keras.backend import keras
from adapters.keras.user import KerasUserAdapter
from adapters.pytorch.user import PyTorchUserAdapter
from adapters.own_pair.loader import (
    PT2_NO_MODULES,
    LoadedModel,
    as_keras,
    as_pytorch,
    keras_layer,
    pytorch_submodule,
    seed_spec_builders,
)
from adapters.own_pair.outputs import (
    NotOneOutput,
    choose_outputs,
    keras_off_the_output,
    off_the_output,
    one_output,
)
from adapters.own_pair.pairing import channels_first_sequences, pair_weights
from adapters.own_pair.port_arrays import keras_weights, torch_arrays
from adapters.own_pair.token_ids import token_ids_hint
from adapters.own_pair.workers import keras_side_request
from comparator.config.frameworks import runs_in_worker
from comparator.config.pair import UserPair, pair_inputs, pair_scenario
from comparator.inputs.batch import REGRESSION_SCENARIOS, Batch, class_axis
from comparator.errors import UsageError


@dataclass
class OpenedPair:
    name: str
    adapters: dict
    batch: Batch
    settings: dict = field(default_factory=dict)
    # Recipes this pair cannot represent: {run id: reason}.
    not_representable: dict = field(default_factory=dict)
    # Takes back what the comparison put on the user's objects (--output's hook).
    release: Callable[[], None] = lambda: None
    # The scenario run: the one asked for, or chosen from the outputs (pair_scenario).
    scenario: str = "classify"


def _channels_last(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One sample's shape as Keras takes it: (C, H, W) -> (H, W, C), (C, L) -> (L, C),
    (C, D, H, W) -> (D, H, W, C)."""
    return (*shape[1:], shape[0]) if len(shape) >= 2 else tuple(shape)


def keras_outputs_layout(torch_out: np.ndarray, keras_out: np.ndarray) -> str | None:
    """How Keras's outputs hold PyTorch's (Batch.keras_outputs): "as_given", "channels_last"
    (a map's channel axis moved last), or None where neither fits. Where both fit (one row
    per input, or a map as long as it is wide), the values decide."""
    moved = np.moveaxis(torch_out, 1, -1) if torch_out.ndim >= 3 else torch_out
    fits = {"channels_last": moved.shape == keras_out.shape,
            "as_given": torch_out.shape == keras_out.shape}
    if fits["channels_last"] and fits["as_given"] and torch_out.ndim >= 3:
        far = {"channels_last": np.max(np.abs(moved - keras_out)),
               "as_given": np.max(np.abs(torch_out - keras_out))}
        return min(far, key=far.get)
    return next((layout for layout, fit in fits.items() if fit), None)


def refuse_a_dict_of_inputs(model) -> None:
    """Refuses a Keras model built on a dict of several inputs: its keys say nothing of
    forward()'s order (Keras lists the model's inputs in the keys' sorted order, not the
    dict's, and refuses to call it on a list)."""
    structure = getattr(model, "_inputs_struct", None)
    if isinstance(structure, dict) and len(structure) > 1:
        raise UsageError(f"the Keras model takes a dict of inputs ({', '.join(structure)}); "
                         "the comparison gives its inputs in forward()'s order: build the "
                         "Keras model on a list of inputs in that order")


def _inputs_given(model, x) -> None:
    """Refuses a batch with another number of inputs than the Keras model declares, and a
    model built on a dict of inputs."""
    refuse_a_dict_of_inputs(model)
    declared = len(getattr(model, "inputs", None) or []) or None
    given = len(x) if isinstance(x, tuple) else 1
    if declared is not None and declared != given:
        how = ("--inputs FILE.npz with x0, x1, ... or --input-shape with one shape per input, "
               "separated by ';'" if declared > 1 else "one input")
        raise UsageError(f"the Keras model takes {declared} inputs and the batch has {given}: "
                         f"give {how}")


def declared_inputs_fit(inputs, keras_inputs, declared) -> None:
    """Refuses an input whose Keras-layout shape does not fit the Keras model's declared
    input at its position; of several inputs, naming which and that their order is
    forward()'s, which must be the Keras model's."""
    several = len(inputs) > 1
    for index, (mine, theirs, symbolic) in enumerate(zip(inputs, keras_inputs, declared)):
        expected, given = tuple(symbolic.shape[1:]), tuple(theirs.shape[1:])
        if len(expected) == len(given) and all(e is None or e == g
                                               for e, g in zip(expected, given)):
            continue
        which = (f" (input {index}, Keras's {symbolic.name!r}: give the inputs in forward()'s "
                 "order, which must be the Keras model's)" if several else "")
        raise UsageError(f"inputs of shape {tuple(mine.shape)} (PyTorch layout, Keras "
                         f"{(mine.shape[0], *given)}) do not fit the Keras model's input "
                         f"{(None, *expected)}{which}")


def _rows(x, count: int):
    """The first rows of every input."""
    return tuple(v[:count] for v in x) if isinstance(x, tuple) else x[:count]


def _layouts(model, x, torch_model):
    """keras_layout of each input (Batch.keras_layout): one, or a tuple for several."""
    if not isinstance(x, tuple):
        return keras_layout(model, x.shape[1:], torch_model)
    return tuple(keras_layout(model, v.shape[1:], torch_model, index)
                 for index, v in enumerate(x))


def _keras_shape(sample: Batch) -> tuple:
    """One sample's shape per input as Keras takes it: a shape, or a tuple of them."""
    shapes = tuple(tuple(v.shape[1:]) for v in sample.keras_inputs)
    return shapes if sample.several else shapes[0]


def keras_layout(model, sample_shape: tuple[int, ...], torch_model, index: int = 0) -> str:
    """How Keras takes the batch: "channels_last" or "as_given". The Keras model's declared
    input shape decides where only one of the two fits it. Where both fit (a square sample,
    or no declared shape), images and volumes go channels-last, and sequences as
    channels_first_sequences says."""
    if len(sample_shape) < 2:
        return "channels_last"
    try:
        declared = tuple(model.inputs[index].shape[1:])
    except (AttributeError, IndexError, TypeError, ValueError):
        declared = None

    def fits(shape):
        return declared is None or len(declared) == len(shape) and all(
            d is None or d == s for d, s in zip(declared, shape))

    last, given = fits(_channels_last(sample_shape)), fits(sample_shape)
    if last != given:
        return "channels_last" if last else "as_given"
    maps = len(sample_shape) >= 3  # images, volumes
    return ("channels_last" if maps or channels_first_sequences(torch_model)
            else "as_given")


# Keras styles parts of its error messages for a terminal (bold): "\x1b[1m...\x1b[0m".
_TERMINAL_STYLE = re.compile(r"\x1b\[[0-9;]*m")


def _chosen(side: str, outputs, several: bool) -> list:
    """The outputs compared: the chosen ones where --output chose several, else the one."""
    return list(outputs) if several else [one_output(side, outputs)]


def _torch_outputs(outputs, several: bool = False) -> list[np.ndarray]:
    return [output.cpu().numpy() for output in _chosen("PyTorch", outputs, several)]


def _keras_outputs(model, batch: Batch, several: bool = False) -> list[np.ndarray]:
    outputs = _chosen("Keras", model(batch.x_channels_last, training=False), several)
    return [np.asarray(keras.ops.convert_to_numpy(output)) for output in outputs]


def _same_labels(side: str, outputs: list[np.ndarray], output: str) -> None:
    """Refuses several chosen outputs of different shapes: their losses take one set of
    labels (or targets), as a model's auxiliary head trains on its main output's."""
    shapes = [output.shape for output in outputs]
    if len(set(shapes)) > 1:
        raise UsageError(f"--output {output}: the chosen outputs must have one shape, to take "
                         f"the same labels; {side}'s are "
                         f"{', '.join(str(tuple(shape)) for shape in shapes)}")


def copy_weights(pairing, torch_model, direction: str) -> None:
    """--port-weights: the structural port of one side's weights into the other."""
    if not pairing.paired:
        raise UsageError(f"--port-weights needs the weighted layers paired, and they are not: "
                         f"{pairing.reason}")
    state = torch_model.state_dict()
    arrays = {name: tensor.cpu().numpy() for name, tensor in state.items()}
    for port, layer in zip(pairing.ports, pairing.keras_layers):
        if direction == "pytorch-to-keras":
            layer.set_weights(keras_weights(port, arrays, layer.get_weights()))
            continue
        with torch.no_grad():
            for name, value in torch_arrays(port, layer.get_weights()).items():
                state[name].copy_(torch.from_numpy(value))


def _pairing_settings(pairing) -> dict:
    if not pairing.paired:
        return {"paired_layers": 0, "reason": pairing.reason}
    settings = {"paired_layers": len(pairing.ports)}
    if pairing.not_compared:
        settings["not_compared"] = list(pairing.not_compared)
    return settings


def _labels(scenario: str, given, config_labels, config_targets, outputs,
            axis: int = 1) -> tuple:
    """Labels (classify) or targets (regress, head) and where they came from. A map's labels
    are one class per position: outputs N,K,H,W take labels N,H,W."""
    if scenario in REGRESSION_SCENARIOS:
        if given is not None:
            y = np.asarray(given, dtype=np.float32).reshape(outputs.shape)
            return y, "given"
        if config_targets:
            y = np.resize(np.asarray(config_targets, dtype=np.float32), outputs.size)
            return y.reshape(outputs.shape), "given"
        return (outputs.astype(np.float32),
                "predicted: the PyTorch model's own outputs (inference mode)")
    if outputs.ndim < 2:
        raise UsageError(f"the classify scenario needs outputs of shape (N, classes); the "
                         f"models give {outputs.shape}: use --scenario regress")
    classes = outputs.shape[axis]
    shape = np.delete(np.array(outputs.shape), axis).tolist()
    source = "given"
    if given is not None:
        y = np.asarray(given)
        if y.dtype.kind not in "iu" or list(y.shape) != shape:
            what = "one per input" if len(shape) == 1 else "one per output position"
            raise UsageError(f"labels must be {' x '.join(map(str, shape))} integers ({what}), "
                             f"got {y.dtype} of shape {y.shape}")
    elif config_labels:
        y = np.resize(np.asarray(config_labels), shape)
    else:
        y, source = (outputs.argmax(axis=axis),
                     "predicted: the PyTorch model's own predictions")
    wrong = [int(v) for v in np.ravel(y) if not 0 <= v < classes]
    if wrong:
        raise UsageError(f"label {wrong[0]} is outside the models' classes 0..{classes - 1}")
    return y.astype(np.int64), source


@dataclass(frozen=True)
class _Loaded:
    """Both models as loaded, and the batch's x as given."""

    torch_side: LoadedModel
    keras_side: LoadedModel
    x: np.ndarray
    given_y: object
    inputs_source: str
    layout: str
    keras_shape: tuple
    # PyTorch modules and Keras layers whose weights do not reach the output --output chose
    # (another output's head): not paired.
    leave_out: tuple[str, ...] = ()
    keras_leave_out: tuple[str, ...] = ()


def open_pair(pair: UserPair, config) -> OpenedPair:
    x, given_y, inputs_source = pair_inputs(pair, config.batch_size, config.seed)
    seed_spec_builders(pair.pytorch, pair.keras, config.seed)
    torch_side = as_pytorch(pair.pytorch, pair.pytorch_weights)
    # The layout is read off the loaded model before a subclassed one is built in it.
    keras_side = as_keras(pair.keras)
    _inputs_given(keras_side.model, x)
    layout = _layouts(keras_side.model, x, torch_side.model)
    sample = Batch(_rows(x, 1), None, layout)  # one row of each input, in Keras's layout
    keras_shape = _keras_shape(sample)
    if getattr(keras_side.model, "inputs", None):
        declared_inputs_fit(Batch(x, None).inputs, sample.keras_inputs, keras_side.model.inputs)
    keras_side = replace(keras_side, weights=as_keras(keras_side.model, pair.keras_weights,
                                                      input_shape=keras_shape).weights)
    require_keras_model_on(keras_side.model, config.device)
    loaded = _Loaded(torch_side, keras_side, x, given_y, inputs_source, layout, keras_shape)
    torch_adapter = PyTorchUserAdapter(device=config.device)
    give_back = torch_adapter.give_back_later(torch_side.model)
    try:
        opened = _open_outputs(pair, config, loaded, torch_adapter)
    except BaseException:
        give_back()
        raise
    release = opened.release

    def release_all() -> None:
        release()
        give_back()
    opened.release = release_all
    return opened


def _open_outputs(pair: UserPair, config, loaded: _Loaded, torch_adapter) -> OpenedPair:
    """The pair opened on the outputs --output chose (a hook on PyTorch's model, a cut of
    Keras's graph, both taken back by the OpenedPair's release)."""
    if not pair.output:
        return _open(pair, config, loaded, torch_adapter)
    torch_side, keras_side = loaded.torch_side, loaded.keras_side
    wrapper, release = choose_outputs(torch_side.model, keras_side.model,
                                      pair.output_key_pairs(), loaded.keras_shape)
    try:
        keras_x = Batch(loaded.x, None, loaded.layout).x_channels_last
        opened = _open(pair, config, replace(
            loaded, keras_side=replace(keras_side, model=wrapper),
            leave_out=tuple(off_the_output(torch_side.model, loaded.x)),
            keras_leave_out=tuple(keras_off_the_output(wrapper, keras_x))), torch_adapter)
    except BaseException:
        release()
        raise
    opened.release = release
    return opened


def _outputs(torch_adapter, keras_model, x, layout, pair: UserPair) -> tuple:
    """PyTorch's inference outputs on x (the first chosen, where --output chose several:
    they have one shape), and how Keras's hold them (Batch.keras_outputs)."""
    several = pair.several_outputs
    try:
        torch_outs = _torch_outputs(torch_adapter.predictions(x), several)
        keras_outs = _keras_outputs(keras_model, Batch(x, None, layout), several)
    except NotOneOutput as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:
        hint = token_ids_hint(torch_adapter.model, Batch(x, None).inputs)
        shape = Batch(x, None).input_shapes
        said = " ".join(_TERMINAL_STYLE.sub("", str(exc)).split())[:200]
        raise UsageError(f"the models cannot run on inputs of shape {shape} (PyTorch layout):"
                         f" {type(exc).__name__}: {said}"
                         f"{hint}") from None
    _same_labels("PyTorch", torch_outs, pair.output)
    _same_labels("Keras", keras_outs, pair.output)
    layouts = {keras_outputs_layout(mine, theirs) for mine, theirs in zip(torch_outs, keras_outs)}
    if None in layouts or len(layouts) > 1:
        raise UsageError(f"the two models' outputs differ in shape: PyTorch "
                         f"{torch_outs[0].shape}, Keras {keras_outs[0].shape} (neither the same "
                         "nor with the channel axis moved last)")
    return torch_outs[0], layouts.pop()


def _regularization_note(model) -> str | None:
    """What the Keras model's weight regularizers add to the losses Keras reports, at the
    starting weights. Keras 3.15.1 adds them to fit's and evaluate's losses for trainable
    weights only: a model set trainable=False reported the bare loss (measured)."""
    held = [v for v in model.weights if getattr(v, "regularizer", None) is not None]
    if not held:
        return None
    penalty = sum(float(keras.ops.convert_to_numpy(v.regularizer(v))) for v in held)
    names = ", ".join(v.path for v in held[:4]) + (", ..." if len(held) > 4 else "")
    return (f"the Keras model's regularizers ({names}) add {penalty:.6g} at the starting "
            "weights to the losses Keras reports while those weights are trainable (not to "
            "those of a model set trainable=False), and their gradient to its steps; "
            "PyTorch's loss has no such term")


def _require_trained_weights_on_the_output(torch_model, freeze: str, leave_out: tuple,
                                           output: str | None) -> None:
    """Refuses a --freeze whose trained part lies wholly off the chosen output (another
    output's head): the loss would depend on no weight the step trains."""
    trained = [name for name, module in torch_model.named_modules()
               if any(True for _ in module.parameters(recurse=False))
               and name != freeze and not name.startswith(f"{freeze}.")]
    if trained and all(name in leave_out for name in trained):
        raise UsageError(f"--freeze {freeze} leaves {', '.join(trained)} to train, and no "
                         f"weight of it reaches the output --output {output} chose: the train "
                         "step's loss would depend on nothing it trains")


def _output_settings(pair: UserPair, loaded: _Loaded) -> dict:
    """settings.pair.output: the keys chosen, what is off them and, of several outputs, each
    output's keys and its loss's weight."""
    found = {**dict(zip(("pytorch", "keras"), pair.output_keys())),
             "left_out": list(loaded.leave_out), "keras_left_out": list(loaded.keras_leave_out)}
    if pair.several_outputs:
        found["keys"] = [{"pytorch": mine, "keras": theirs}
                         for mine, theirs in pair.output_key_pairs()]
        found["loss_weights"] = list(pair.output_weights())
    return found


def _open(pair: UserPair, config, loaded: _Loaded, torch_adapter) -> OpenedPair:
    torch_side, keras_side, x, layout = (loaded.torch_side, loaded.keras_side, loaded.x,
                                         loaded.layout)
    torch_freeze, keras_freeze = pair.freeze_names()
    if torch_freeze:
        pytorch_submodule(torch_side.model, torch_freeze)
        keras_layer(keras_side.model, keras_freeze)
        _require_trained_weights_on_the_output(torch_side.model, torch_freeze, loaded.leave_out,
                                               pair.output)
    if pair.port_weights and torch_side.inference_only:
        raise UsageError(f"--port-weights cannot port into or from {torch_side.source}: "
                         f"{PT2_NO_MODULES}")
    pairing = pair_weights(torch_side.model, keras_side.model, x, loaded.leave_out,
                           loaded.keras_leave_out, loaded.keras_shape)
    if pair.port_weights:
        copy_weights(pairing, torch_side.model, pair.port_weights)

    torch_adapter.output_weights = pair.output_weights()
    torch_adapter.adopt(torch_side, torch_freeze, config.scenario, config.seed,
                        dropout_off=pair.dropout == "off")
    torch_out, outputs_layout = _outputs(torch_adapter, keras_side.model, x, layout, pair)
    axis = class_axis(outputs_layout)
    scenario, scenario_source = pair_scenario(config, loaded.given_y, torch_out.shape, axis)
    # The scenario follows the outputs, which only the adopted model gives.
    config = replace(config, scenario=scenario)
    torch_adapter.scenario = scenario
    y, labels_source = _labels(config.scenario, loaded.given_y, config.labels, config.targets,
                               torch_out, axis)
    classes = torch_out.shape[axis] if torch_out.ndim >= 2 else None
    keras_adapter = KerasUserAdapter(device=config.device)
    keras_adapter.output_weights = pair.output_weights()
    keras_adapter.adopt(keras_side, keras_freeze, config.scenario, config.seed,
                        loaded.keras_shape, pairing, pair.dropout == "off", classes)
    name = f"{torch_side.name} (PyTorch) vs {keras_side.name} (Keras)"
    settings = {
        "pair": {
            "pytorch": {"source": torch_side.source, "name": torch_side.name,
                        "weights": torch_side.weights},
            "keras": {"source": keras_side.source, "name": keras_side.name,
                      "weights": keras_side.weights},
            "weights": (f"ported {pair.port_weights}" if pair.port_weights
                        else "as given (not ported)"),
            "freeze": ({"pytorch": torch_freeze, "keras": keras_freeze} if torch_freeze
                       else "the whole model"),
            "pairing": _pairing_settings(pairing),
            "dropout": pair.dropout,
            **({"output": _output_settings(pair, loaded)} if pair.output else {}),
        },
        "inputs": {"source": loaded.inputs_source, "shape": Batch(x, None).input_shapes,
                   "keras_layout": list(layout) if isinstance(layout, tuple) else layout,
                   "outputs_shape": list(torch_out.shape), "keras_outputs": outputs_layout},
        "labels_source": labels_source,
        "scenario_source": scenario_source,
        "conventions": {"pytorch": torch_adapter.conventions(),
                        "keras": keras_adapter.conventions(),
                        "momentum_convention": "PyTorch's: the weight of the new batch value "
                                               "(Keras's momentum m is 1 - m here)"},
    }
    if pairing.not_compared:
        settings["notes"] = [f"the weights after a step are compared across the frameworks "
                             f"on every paired array but {'; '.join(pairing.not_compared)}"]
    penalty = _regularization_note(keras_side.model)
    if penalty:
        settings.setdefault("notes", []).append(penalty)
    batch = Batch(x=x, y=y, keras_layout=layout, keras_outputs=outputs_layout)
    workers = _worker_sides(pair, config, keras_adapter, (loaded.keras_shape, classes, batch))
    blocked = {}
    if torch_side.inference_only:
        blocked["pytorch"] = torch_side.inference_only
    if keras_adapter.training_false_problem:
        for keras_name in ("keras", *workers):  # the same model's graph, on every backend
            blocked[f"{keras_name}:training_false"] = keras_adapter.training_false_problem
    return OpenedPair(name, {"pytorch": torch_adapter, "keras": keras_adapter, **workers},
                      batch, settings, blocked, scenario=scenario)


def _worker_sides(pair: UserPair, config, keras_adapter, opened: tuple) -> dict:
    """The pair's Keras model on each other Keras backend or version asked for, in a worker
    that rebuilds it (adapters/own_pair/workers.py) holding the in-process model's weights.
    opened: the Keras input shape, the number of classes and the batch."""
    from adapters import load_adapter

    names = [name for name in config.frameworks if runs_in_worker(name)]
    if not names:
        return {}
    sides = {}
    request = keras_side_request(pair, keras_adapter, *opened)
    weights = keras_adapter.positional_arrays()
    for name in names:
        side = load_adapter(name, device=config.device, worker_timeout=config.worker_timeout,
                            cache_dir=config.cache_dir)
        side.adopt_user_model(request, weights, config.scenario, config.seed,
                              keras_adapter.canonical_from_positions)
        sides[name] = side
    return sides
