"""Layer-by-layer port validation between a PyTorch module and a Keras functional model
(the framework half of comparator/analysis/validation.py): every paired layer compared in
each mode, in a forward pass and an isolated one (each Keras layer fed PyTorch's input),
gradients, BatchNorm's training step and the Dropout layers.

Running the models lives in graph.py (recurrent and attention modules' outputs and a stacked
module's layers in sequences.py), loading and pairing them (and `port_weights`) in pairs.py,
the gradients in gradients.py, the facts that name a difference's cause in causes.py, and
the models' output (or each of several that --output chose) in model_outputs.py.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from torch import nn

from adapters.keras.backend import keras  # fixes the torch backend before Keras is imported
from keras import layers, ops, tree  # noqa: E402

from adapters.own_pair.loader import seed_spec_builders  # noqa: E402
from adapters.own_pair.outputs import choose_outputs, off_the_output  # noqa: E402
from adapters.own_pair.port_arrays import LAYER_LEVEL_KINDS  # noqa: E402
from adapters.port_validation.operation_settings import (  # noqa: E402
    FusedActivation,
    TorchCall,
    keras_setting,
    operation_setting,
    ran_between,
    torch_calls,
)
from adapters.port_validation.padding_modes import (  # noqa: E402
    measured_padding_mode,
    pads_before,
)
from adapters.port_validation.pool_padding import (  # noqa: E402
    keras_pooling,
    pool_padding,
    pool_rounding,
)
from adapters.port_validation.preprocessing import (  # noqa: E402
    input_preprocessing,
    keras_preprocessing,
)
from adapters.port_validation.causes import (  # noqa: E402
    TORCH_CONVS,
    after_the_pairs,
    flatten_order_explains,
    keras_after_the_pairs,
    layer_facts,
    one_pass_variance_explains,
    output_activation,
)
from adapters.port_validation.fused_activations import fused_activations, with_fused  # noqa: E402
from adapters.port_validation.between_operations import (  # noqa: E402
    activation_function,
    candidates,
    keras_function,
    torch_function,
    without_operations,
)
from adapters.port_validation.function_calls import called_function, module_kind  # noqa: E402,E501
from adapters.port_validation.gradients import compare_gradients  # noqa: E402
from adapters.port_validation.layer_order import keras_ancestors, order_cause  # noqa: E402
from adapters.port_validation.model_outputs import (  # noqa: E402
    at_output,
    output_note,
    outputs_apart,
    outputs_compared,
)
from adapters.port_validation.graph import (  # noqa: E402
    Failed,
    ModelFailed,
    activation_layout,
    acts_on_last_axis,
    as_float,
    croppings_after,
    functional_graph,
    graph_nodes,
    keras_state_kept,
    numpy_of,
    refuse_unchosen_outputs,
    run_keras,
    several,
    shapes_of,
    to_keras_inputs,
    to_keras_values,
    torch_mode,
    torch_trace,
    training_of,
)
from adapters.port_validation.pairs import (  # noqa: E402
    keras_side,
    plan_pairs,
    port_weights,
    resolve_pairs,
    torch_side,
    torch_state,
)
from adapters.own_pair.setup import declared_inputs_fit, refuse_a_dict_of_inputs  # noqa: E402
from adapters.port_validation.sequences import output_view, rerun, split_layer_key  # noqa: E402
from adapters.port_validation.softmax_axis import keras_softmax, softmax_axis  # noqa: E402
from adapters.port_validation.tracing import layers_to_open, traced_graph  # noqa: E402
from adapters.port_validation.training import (  # noqa: E402
    keras_batchnorm_step,
    keras_dropout_layers,
    keras_step_dropout,
    torch_batches_seen,
    torch_batchnorm_step,
    torch_dropout_layers,
)
from comparator.analysis.training_side import compare_dropout, compare_statistics  # noqa: E402
from comparator.errors import UsageError  # noqa: E402
from comparator.limits import check_seed  # noqa: E402
from comparator.config.pair import checked_output_keys, same_batch  # noqa: E402
from comparator.analysis.layer_pairing import Pair  # noqa: E402
from comparator.analysis.port_causes import (  # noqa: E402
    MissingOperations,
    likely_causes,
    softmax_axis_cause,
)
from comparator.analysis.validation import (  # noqa: E402
    DEFAULT_GRADIENT_TOLERANCE,
    DEFAULT_TOLERANCE,
    MODES,
    check_tolerance,
    Finding,
    LayerComparison,
    PassResult,
    PortValidation,
    diverges,
    judge,
    metrics,
    spoiled_by_property,
)

__all__ = ["port_weights", "validate_port", "validate_zoo_model"]


# ----- comparing ---------------------------------------------------------------------------


def _activated(layer, torch_output: np.ndarray, kind: str, moves: bool = True) -> np.ndarray:
    """PyTorch's value as the Keras layer emits it: in Keras's layout (as it is where not
    `moves`), through the activation Keras fuses into the layer (Conv2D(activation="relu"),
    ...; a recurrent layer's activation is inside its steps, and PyTorch's output has been
    through it)."""
    value = to_keras_values(torch_output, moves)
    activation = None if kind in LAYER_LEVEL_KINDS else getattr(layer, "activation", None)
    if activation is None or getattr(activation, "__name__", "") == "linear":
        return value
    return numpy_of(activation(torch.from_numpy(value)))  # keeps float64 references float64


def _compare(pair, layer, keras_value, reference, reference64, facts, isolated, mode,
             tolerance, trace, moves=True) -> LayerComparison:
    """Keras's value of one layer against PyTorch's (both in Keras's layout here)."""
    torch_shape = tuple(trace[pair.torch_module][1].shape)
    if isinstance(keras_value, (list, tuple)):  # a layer's output and states: the output
        keras_value = keras_value[0]
    if isinstance(keras_value, Failed) or keras_value is None:
        message = keras_value.message if keras_value is not None else "not computed"
        causes = likely_causes({**facts, "failed": message}, isolated, mode)
        return LayerComparison(pair.torch_module, pair.keras_layer, pair.kind, torch_shape, (),
                               None, True, causes, note=message)
    value = numpy_of(keras_value)
    keras_shape = tuple(value.shape)
    if value.shape != reference.shape:
        causes = likely_causes({**facts, "shape": (torch_shape, keras_shape)}, isolated, mode)
        return LayerComparison(pair.torch_module, pair.keras_layer, pair.kind, torch_shape,
                               keras_shape, None, True, causes)
    m = metrics(value, reference)
    m64 = noise = None
    if reference64 is not None:
        m64, noise = metrics(value, reference64), metrics(reference, reference64)
    bad, unsure = judge(m64, noise, m, tolerance)
    causes = ()
    if bad:
        more = dict(facts)
        if isolated and flatten_order_explains(pair, layer, trace, tolerance):
            more["flatten_order"] = True
        if isolated and pair.kind != "attention":  # attention takes more than one input
            more["alone_agrees"] = _alone_agrees(layer, to_keras_values(
                trace[pair.torch_module][0], moves), reference,
                training_of(layer, mode == "training"), tolerance)
        if isolated and mode == "training" and one_pass_variance_explains(
                layer, trace[pair.torch_module][0], value,
                reference if reference64 is None else reference64, facts.get("torch_eps")):
            more["one_pass_variance"] = True
        causes = likely_causes(more, isolated, mode)
    return LayerComparison(pair.torch_module, pair.keras_layer, pair.kind, torch_shape,
                           keras_shape, m, bad, causes,
                           float64_rel=m64.max_rel if m64 else None,
                           noise_rel=noise.max_rel if noise else None, inconclusive=unsure)


def _alone_agrees(layer, keras_input: np.ndarray, reference, training: bool,
                  tolerance) -> bool:
    """Does the Keras layer, on the input PyTorch's module was given (in Keras's layout),
    give PyTorch's output? Then what differs is what reaches the layer, not the layer."""
    try:
        value = layer(ops.convert_to_tensor(keras_input), training=training)
    except Exception:  # the layer takes another input than PyTorch's module: not this
        return False
    value = numpy_of(value[0] if isinstance(value, (list, tuple)) else value)
    return value.shape == reference.shape and not diverges(metrics(value, reference), tolerance)


def validate_port(torch_model: nn.Module, keras_model, inputs, *, mapping: dict | None = None,
                  pairs: list[Pair] | None = None, modes=MODES, isolation: bool = True,
                  gradients: bool = True, tolerance: float = DEFAULT_TOLERANCE,
                  gradient_tolerance: float = DEFAULT_GRADIENT_TOLERANCE,
                  reference64: bool = True, seed: int = 0, train_step: bool = True,
                  pytorch_weights: str | None = None, keras_weights: str | None = None,
                  port: str | None = None, output: str | None = None,
                  leave_out: tuple[str, ...] = (),
                  output_chosen: str | None = None) -> PortValidation:
    """Compare a PyTorch module and a Keras functional model layer by layer on `inputs`
    (PyTorch's layout: N, C, H, W for images; Keras gets them channels-last). A model that
    takes several inputs takes a tuple or list of arrays: forward()'s positional arguments,
    the Keras model's inputs in the same order, each moved to Keras's layout on its own.

    Either model may be given as a SPEC instead (adapters/own_pair/loader.py: file.py:callable,
    package.module:callable, a .keras file for Keras), with a state_dict file as
    pytorch_weights and a .weights.h5 file as keras_weights.

    Layers are paired by `pairs` (a zoo port plan), else by `mapping` ({torch module name:
    Keras layer name}, which must name every layer with weights), else in order by kind
    and weight shape. With reference64, a float64 copy of the PyTorch model measures
    PyTorch's own float32 error at every layer, so rounding is not mistaken for a
    difference. With train_step, every BatchNorm pair takes one training-mode step on the
    input PyTorch's module saw and their running statistics are compared (momentum, kept
    variance), and the Dropout layers' rates and kinds are compared in the order they run.
    Both models keep their weights, modes and statistics, unless `port` ("pytorch-to-keras"
    or "keras-to-pytorch") first copies one side's weights into the other along the pairs
    (as port_weights does, in place): then what is validated is the architecture, whatever
    the weights were. Where the models return several outputs, `output` names the one
    validated ("KEY", a dict's key or a position, or "TORCH_KEY:KERAS_KEY"), or several
    ("KEY1,KEY2,...": the layers that feed any of them are walked, and each output is
    compared at the end); the PyTorch modules whose weights reach none of them are left out
    of the pairs, as are those named in `leave_out` (compare.py's models, whose output was
    chosen before: `output_chosen` is then compare.py's --output where it chose several,
    which its models already return, a tuple in PyTorch and a list in Keras, in its order).
    """
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise UsageError(f"modes must be among {', '.join(MODES)}, got {list(modes)}")
    if port not in (None, *_PORTS):
        raise UsageError(f"port must be one of {', '.join(_PORTS)}, not {port!r}")
    if output and output_chosen:
        raise UsageError("give output (the outputs to choose) or output_chosen (those the "
                         "models already return), not both")
    keys = checked_output_keys(output or output_chosen)
    check_seed(seed, "seed")
    check_tolerance(tolerance, "tolerance")
    check_tolerance(gradient_tolerance, "gradient_tolerance")
    seed_spec_builders(torch_model, keras_model, seed)
    x, torch_model, torch_name, keras_model, keras_name, fn, checked = _checked_models(
        torch_model, keras_model, inputs, pytorch_weights, keras_weights,
        keys if output else [], trains="training" in modes or gradients or train_step,
        chosen=len(keys) if output_chosen else 1)
    checked = dataclasses.replace(checked, leave_out=(*checked.leave_out, *leave_out))
    try:
        with activation_layout(torch_model, checked.keras_as_given):
            if port is not None:
                port_weights(torch_model, keras_model, direction=_PORTS[port], mapping=mapping,
                             pairs=pairs, leave_out=checked.leave_out)
                keras_name += f" (weights ported {port} by the validator)"
            result = _validated(x, torch_model, torch_name, keras_model, keras_name, fn,
                                mapping, pairs, modes, isolation, gradients, tolerance,
                                gradient_tolerance, reference64, seed, train_step,
                                checked.leave_out, keys)
    finally:
        checked.release()
    notes = checked.notes
    if output:
        notes += (output_note(output, keys, checked.leave_out, gradients),)
    return dataclasses.replace(result, notes=(*result.notes, *notes))


_PORTS = {"pytorch-to-keras": "torch_to_keras", "keras-to-pytorch": "keras_to_torch"}


def _validated(x, torch_model, torch_name, keras_model, keras_name, fn, mapping, pairs, modes,
               isolation, gradients, tolerance, gradient_tolerance, reference64, seed,
               train_step, leave_out=(), output_keys=()) -> PortValidation:
    pairing = "port plan" if pairs is not None else (
        "explicit mapping" if mapping is not None else "order and shape")
    setup = _Setup(torch_model, fn,
                   resolve_pairs(torch_model, keras_model, mapping, pairs, tuple(leave_out)),
                   x, reference64, output_keys)
    passes, traces = [], {}
    for mode in modes:
        traces[mode], found = _mode_passes(setup, mode, isolation, tolerance)
        passes += found
    grads, gradient_mode = (_gradients(setup, torch_model, fn, x, seed, gradient_tolerance,
                                       passes) if gradients else ((), None))
    statistics, dropout = ((), ())
    if train_step:
        training_trace = traces.get("training") or torch_trace(
            torch_model, setup.pairs, x, "training", setup.views)[0]
        statistics = _statistics(setup.modules, setup.by_name, setup.pairs, training_trace,
                                 tolerance)
        operations = [node.operation for node in graph_nodes(fn)]
        dropout = compare_dropout(torch_dropout_layers(torch_model, x),
                                  keras_dropout_layers(operations)) + tuple(
            keras_step_dropout(operations))
    notes = [setup.note64] if setup.note64 else []
    if gradient_mode == "inference":
        notes.append("gradients compared in inference mode: in training mode a framework "
                     "property (below) makes them differ, and so would judge nothing of the "
                     "port")
    if "training" in modes or gradients:
        notes.append("training mode: BatchNorm on batch statistics, Dropout off in both "
                     "frameworks (their random masks cannot match); weights and running "
                     "statistics restored afterwards")
    return PortValidation(
        torch_model=torch_name, keras_model=keras_name,
        input_shape=tuple(several(x)[0].shape), pairing=pairing, pairs=len(setup.pairs),
        tolerance=tolerance, gradient_tolerance=gradient_tolerance, passes=tuple(passes),
        gradients=grads, gradient_mode=gradient_mode, notes=tuple(notes),
        float64_reference=setup.model64 is not None, statistics=statistics, dropout=dropout,
        output_finding=setup.output_finding,
        input_shapes=shapes_of(x) if isinstance(x, tuple) else ())


def _gradients(setup: _Setup, torch_model, fn, x, seed, tolerance, passes):
    """(comparisons, mode): in training mode, or in inference mode where a training-mode
    pass is spoiled by a framework property and its gradients differ with it (Keras's
    one-pass variance over two values per channel: ResNet18's layer4 at 32 px)."""
    found = compare_gradients(torch_model, setup.model64, fn, setup.pairs, x, seed, tolerance)
    spoiled = any(spoiled_by_property(p) for p in passes if p.mode == "training")
    if not (spoiled and any(g.diverges for g in found)):
        return found, "training"
    return compare_gradients(torch_model, setup.model64, fn, setup.pairs, x, seed, tolerance,
                             "inference"), "inference"


def _checked_models(torch_model, keras_model, inputs, pytorch_weights, keras_weights,
                    keys: list, trains: bool, chosen: int = 1):
    """The inputs as float32 (PyTorch's layout; token ids stay integers) and both models,
    loaded where given as specs or files, with the inputs checked against the Keras model's
    input shape; a Keras model whose layers hide layers (subclassed, nested, a block of the
    user's own) as the graph its call() traces (checked in training mode too where the
    validation `trains`); with `keys` (--output's (TORCH_KEY, KERAS_KEY)), both give those
    outputs only (a tuple in PyTorch and a list in Keras where several) until `release()`.
    chosen: how many outputs the models give already (compare.py's, chosen before)."""
    x = _as_inputs(inputs)
    torch_model, torch_name = torch_side(torch_model, pytorch_weights)
    with activation_layout(torch_model):
        keras_x = to_keras_inputs(x)
    first = several(x)[0]
    keras_model, keras_name = keras_side(keras_model, keras_weights, several(keras_x)[0])
    refuse_a_dict_of_inputs(keras_model)
    # Only where PyTorch's layout is not Keras's own already (a sequence of features).
    moved = [index for index, (mine, theirs) in enumerate(zip(several(x), several(keras_x)))
             if mine is not theirs]
    as_given = _takes_pytorch_layout(keras_model, x, torch_model, moved)
    notes = ()
    if as_given:
        keras_x = x if not isinstance(x, tuple) else list(x)
        notes = (f"Keras model {keras_name!r} takes PyTorch's layout {tuple(first.shape[1:])}: "
                 "activations are compared as they are",)
    if getattr(keras_model, "inputs", None):  # before a trace runs the model on them
        _check_fits(x, keras_x, keras_model)
    if layers_to_open(keras_model):
        keras_model, note = traced_graph(keras_model, keras_x, trains)
        notes += (note,)
    if not keys:
        fn = functional_graph(keras_model)
        if chosen == 1:
            refuse_unchosen_outputs(fn)
        _check_fits(x, keras_x, fn)
        return (x, torch_model, torch_name, keras_model, keras_name, fn,
                _Checked(notes=notes, keras_as_given=as_given))
    keras_model, release = choose_outputs(torch_model, keras_model, keys,
                                          several(keras_x)[0].shape[1:])
    try:
        fn = functional_graph(keras_model)
        leave_out = off_the_output(torch_model, x)
    except BaseException:
        release()
        raise
    return (x, torch_model, torch_name, keras_model, keras_name, fn,
            _Checked(release, tuple(leave_out), notes, as_given))


@dataclasses.dataclass(frozen=True)
class _Checked:
    """What _checked_models found besides the models: --output's choice (what takes the
    PyTorch hook off, and the PyTorch modules with weights that do not reach the chosen
    output, not paired), the notes on how the Keras model was read (traced, or taking
    PyTorch's layout), and whether it takes PyTorch's layout."""

    release: object = lambda: None
    leave_out: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    keras_as_given: bool = False


def _takes_pytorch_layout(keras_model, x, torch_model, moved: list[int]) -> bool:
    """Whether the Keras model takes the batch in PyTorch's layout, as compare.py decides
    (adapters/own_pair/setup.py: keras_layout): a declared input that fits it and not the
    channels-last one (Conv2D(data_format="channels_first")); of several inputs, any of those
    that channels-last would move (`moved`: their positions). An input that stays as it is
    (a sequence of features beside an image) says nothing of the others."""
    from adapters.own_pair.setup import keras_layout

    inputs = several(x)
    return any(keras_layout(keras_model, tuple(inputs[index].shape[1:]), torch_model, index)
               == "as_given" for index in moved)


def _check_fits(x, keras_x, model) -> None:
    """Each input against the Keras model's declared input at its position."""
    if len(model.inputs) != len(several(x)):
        raise UsageError(f"the Keras model takes {len(model.inputs)} inputs and "
                         f"{len(several(x))} were given (a model with several takes a tuple of "
                         "arrays, in forward()'s order)")
    declared_inputs_fit(several(x), several(keras_x), model.inputs)


def _as_inputs(inputs):
    """The inputs as float32 numpy (token ids stay integers): one array, or a tuple of them
    for a model that takes several (a list or tuple given), each with the same batch."""
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise UsageError("no inputs given")
        x = tuple(_as_inputs(v) for v in inputs)
        same_batch(x, "the inputs")
        return x if len(x) > 1 else x[0]
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.detach().cpu().numpy()
    return np.ascontiguousarray(as_float(np.asarray(inputs), np.float32))


class _Setup:
    """What every pass of one validation shares: the pairs, both models' layers by name,
    PyTorch's state and its float64 copy (the rounding reference)."""

    def __init__(self, torch_model, fn, pairs, x, reference64: bool, output_keys=()):
        self.fn, self.pairs, self.x = fn, _in_running_order(pairs, fn), x
        pairs = self.pairs
        # (TORCH_KEY, KERAS_KEY) of each output, where --output chose several: each is
        # compared on its own at the end of a pass, in fn.outputs' order.
        self.output_keys = list(output_keys) if len(output_keys) > 1 else []
        self.torch_model = torch_model
        self.modules = dict(torch_model.named_modules())
        # A stacked recurrent module's layers (`lstm[1]`) are that module's.
        self.modules.update({p.torch_module: self.modules[split_layer_key(p.torch_module)[0]]
                             for p in pairs})
        self.by_name = {layer.name: layer for layer in fn.layers}
        # A transposed conv is compared after the cropping layers that alone take its
        # output: a Keras port crops there what PyTorch's padding crops inside the layer.
        self.croppings = {p.keras_layer: croppings_after(fn, self.by_name[p.keras_layer])
                          for p in pairs if p.kind.startswith("conv_transpose")}
        self.output_of = {p.keras_layer: (self.croppings.get(p.keras_layer) or
                                          [self.by_name[p.keras_layer]])[-1].name
                          for p in pairs}
        self.watch = {p.keras_layer for p in pairs} | set(self.output_of.values())
        self.state = torch_state(torch_model)
        self.model64 = copy.deepcopy(torch_model).double() if reference64 else None
        self.modules64 = dict(self.model64.named_modules()) if self.model64 is not None else {}
        self.note64 = ""
        # Whether each pair's activations change layout between the frameworks.
        self.moves = {p.torch_module: not acts_on_last_axis(self.modules[p.torch_module])
                      for p in pairs}
        self.fused = fused_activations(pairs, self.by_name, self.moves)
        self.views = {p.torch_module: view for p in pairs if (view := output_view(
            self.modules[p.torch_module], self.by_name[p.keras_layer])) is not None}
        self.facts = None
        self.output_finding = None
        self.operations = {node.operation.name: node.operation for node in graph_nodes(fn)}
        # Operations whose setting can be read (or that Keras computes one way): their inputs
        # are kept in the isolated passes, to measure a setting that differs
        # (operation_settings.py).
        self.setting_ops = {name for name, op in self.operations.items()
                            if keras_setting(op) is not None or keras_pooling(op)
                            or keras_preprocessing(op) or keras_softmax(op)
                            or keras_function(op) is not None}
        # PyTorch's modules in running order with their input shapes, by mode, when needed
        self.torch_calls = {}


def _in_running_order(pairs, fn) -> list:
    """The pairs in the order Keras's graph runs them, so that a pass's first diverging
    layer is the first to run: pairing by order and shape leaves them in PyTorch's order
    of registration, which a ModuleList of Linears beside one of BatchNorms does not run
    in. A layer traced as parts (a SeparableConv2D's `sep.depthwise`) runs where its layer
    does."""
    ran = dict.fromkeys(node.operation.name for node in graph_nodes(fn))
    order = {name: i for i, name in enumerate(ran)}

    def position(pair) -> int:
        name = pair.keras_layer
        return order.get(name, order.get(name.split(".")[0], len(order)))
    return sorted(pairs, key=position)


def _trace64(setup: _Setup, mode: str):
    """The float64 copy's trace, the rounding reference; ({}, None) without one. A model that
    makes float32 tensors of its own in forward() (an initial state, say) cannot run in
    float64 (its float32 trace has just run): it is then validated without the reference."""
    if setup.model64 is None:
        return {}, None
    try:
        return torch_trace(setup.model64, setup.pairs, as_float(setup.x, np.float64), mode,
                           setup.views)
    except ModelFailed as exc:
        setup.model64, setup.modules64 = None, {}
        setup.note64 = (f"no float64 rounding reference: PyTorch's float64 copy of the model "
                        f"failed ({exc.cause}); float32 values are compared as they are")
        return {}, None


def _mode_passes(setup: _Setup, mode: str, isolation: bool, tolerance: float):
    """PyTorch's trace in this mode, and the forward (then isolated) pass results."""
    pairs, by_name = setup.pairs, setup.by_name
    trace, torch_out = torch_trace(setup.torch_model, pairs, setup.x, mode, setup.views)
    trace64, torch_out64 = _trace64(setup, mode)
    if setup.facts is None:
        setup.facts = {p.torch_module: layer_facts(p, setup.modules[p.torch_module],
                                                   by_name[p.keras_layer], trace,
                                                   setup.state, setup.watch,
                                                   setup.croppings.get(p.keras_layer, ()),
                                                   _pads_before(setup, p.torch_module),
                                                   setup.fused)
                       for p in pairs}
        # A conv padded otherwise than with zeros: its Keras input is kept to measure it.
        setup.setting_ops |= {p.keras_layer for p in pairs
                              if setup.facts[p.torch_module].get("torch_padding_mode")}
    references = {p.keras_layer: _activated(by_name[p.keras_layer], trace[p.torch_module][1],
                                            p.kind, setup.moves[p.torch_module])
                  for p in pairs}
    passes = []
    for isolated in ([False, True] if isolation else [False]):
        references64 = {}
        if setup.model64 is not None:
            outputs64 = (_isolated64(setup, trace, mode)
                         if isolated else {p.torch_module: trace64[p.torch_module][1]
                                           for p in pairs})
            references64 = {p.keras_layer: _activated(by_name[p.keras_layer],
                                                      outputs64[p.torch_module], p.kind,
                                                      setup.moves[p.torch_module])
                            for p in pairs}
        substitute = ({setup.output_of[name]: ops.convert_to_tensor(v)
                       for name, v in references.items()} if isolated else None)
        inputs_seen = dict.fromkeys(setup.setting_ops) if isolated else None
        with keras_state_kept(setup.fn), torch.no_grad():
            recorded, keras_out = run_keras(setup.fn, to_keras_inputs(setup.x),
                                            mode == "training", setup.watch, substitute,
                                            inputs_seen)
            comparisons = tuple(
                _compare(p, by_name[p.keras_layer], recorded.get(setup.output_of[p.keras_layer]),
                         references[p.keras_layer], references64.get(p.keras_layer),
                         setup.facts[p.torch_module], isolated, mode, tolerance, trace,
                         setup.moves[p.torch_module])
                for p in pairs)
        if isolated:
            comparisons = _operation_settings_named(setup, comparisons, inputs_seen, mode, trace)
            comparisons = _padding_modes_named(setup, comparisons, inputs_seen, trace, mode)
            comparisons = _between_named(setup, comparisons, recorded, inputs_seen, mode,
                                         trace, tolerance)
            comparisons = _layer_order_named(setup, comparisons, mode)
            # The last paired layer hands PyTorch's value on: the model output says nothing
            # in this pass, but where it differs while no layer does.
            passes.append(PassResult(mode, True, comparisons, None, False))
            passes[-2] = _attribute(passes[-2], passes[-1])
            if passes[-2].output_diverges and setup.output_finding is None and not any(
                    c.diverges for c in (*comparisons, *passes[-2].layers)):
                setup.output_finding = _after_the_pairs_found(setup, outputs_apart(
                    setup.output_keys, setup.fn.outputs, keras_out, torch_out, torch_out64,
                    tolerance), inputs_seen, mode)
        else:
            out, bad, noise, each = outputs_compared(setup.output_keys, keras_out, torch_out,
                                                     torch_out64, tolerance)
            passes.append(PassResult(mode, False, comparisons, out, bad, noise, each))
            if bad and not any(c.diverges for c in comparisons) \
                    and setup.output_finding is None:
                setup.output_finding = _output_activation_found(setup, outputs_apart(
                    setup.output_keys, setup.fn.outputs, keras_out, torch_out, torch_out64,
                    tolerance, comparable=True), mode, tolerance)
    return trace, passes


def _output_activation_found(setup: _Setup, apart: list, mode: str,
                             tolerance) -> Finding | None:
    """output_activation at the first output apart (of several, in --output's order) that
    it explains."""
    for keras_value, torch_value, tensor, label in apart:
        found = output_activation(setup.fn, setup.pairs, setup.moves, numpy_of(keras_value),
                                  torch_value, mode, tolerance, tensor)
        if found is not None:
            return at_output(found, label)
    return None


def _after_the_pairs_found(setup: _Setup, apart: list, keras_inputs: dict,
                           mode: str) -> Finding | None:
    """Where the isolated pass's outputs differ while no layer does: what follows the last
    paired layers of the first output apart (of several, in --output's order), a softmax
    over another axis where the reruns measure it."""
    substituted = {setup.output_of[p.keras_layer]: p for p in setup.pairs}
    for _, _, tensor, label in apart:
        found = (_softmax_after_the_pairs(setup, keras_inputs, mode, [tensor])
                 or after_the_pairs(setup.fn, substituted, mode, [tensor]))
        if found is not None:
            return at_output(found, label)
    return None


def _operation_settings_named(setup: _Setup, comparisons, keras_inputs: dict,
                               mode: str, trace) -> tuple[LayerComparison, ...]:
    """A layer whose cause is what reaches it (between_layers) gets the weightless operation
    before it whose setting differs, or (the first paired layer) the input preprocessing one
    model does inside itself, where a rerun on the Keras operation's input measures it."""
    named = []
    for c in comparisons:
        if c.diverges and [cause.code for cause in c.causes] in (["between_layers"],
                                                                  ["shape"]):
            facts = setup.facts[c.torch_module]
            between = (_torch_between(setup, mode, c.torch_module), *with_fused(
                setup.fused, facts["previous"], [setup.operations[name] for name in
                                                 facts["between"] if name in setup.operations],
                keras_inputs, trace))
            found = operation_setting(*between) or pool_padding(*between) or \
                pool_rounding(*between) or softmax_axis(*between, _input_shapes(setup, mode))
            if found is None and _first_to_run(setup, mode, c.torch_module):
                found = input_preprocessing(*between, setup.modules[c.torch_module],
                                            setup.by_name[c.keras_layer],
                                            None if isinstance(setup.x, tuple) else setup.x)
            if found is not None:
                c = dataclasses.replace(c, causes=likely_causes(
                    {**facts, "alone_agrees": True, "operation_setting": found}, True, mode))
        named.append(c)
    return tuple(named)


def _between_named(setup: _Setup, comparisons, recorded: dict, keras_inputs: dict,
                   mode: str, trace, tolerance) -> tuple[LayerComparison, ...]:
    """A layer whose cause is still what reaches it (between_layers) gets what PyTorch
    computes there where Keras has no operation, or the Keras activation of another
    function than PyTorch's, each with what a rerun measures (between_operations.py).
    The PyTorch values they need are kept in one more forward pass for all layers."""
    plans = {}
    for index, c in enumerate(comparisons):
        if c.diverges and [cause.code for cause in c.causes] == ["between_layers"]:
            facts = setup.facts[c.torch_module]
            plan = (_function_plan(setup, c, keras_inputs, mode, trace)
                    if facts["between"] or facts["fused_before"] else
                    _missing_plan(setup, c, recorded, mode, trace, tolerance))
            if plan is not None:
                plans[index] = plan
    kept = _kept_inputs(setup, mode, [p for positions, _ in plans.values()
                                      for p in positions]) if plans else {}
    named = list(comparisons)
    for index, (_, finish) in plans.items():
        found, c = finish(kept), comparisons[index]
        if found is not None:
            named[index] = dataclasses.replace(c, causes=likely_causes(
                {**setup.facts[c.torch_module], "alone_agrees": True, **found}, True, mode))
    return tuple(named)


def _missing_plan(setup: _Setup, c: LayerComparison, recorded: dict, mode: str, trace,
                  tolerance):
    """(no positions to keep, what names the missing operations): what PyTorch ran between
    the paired modules, where Keras has no operation."""
    previous, between = _between_calls(setup, mode, c.torch_module)
    if not between:
        return None
    missing = MissingOperations(tuple(f"{call.name} ({module_kind(call.module)})"
                                      for _, call in between), previous, c.torch_module)

    def finish(kept: dict) -> dict:
        without = _without_value(setup, c, recorded, mode, trace, between, tolerance)
        return {"missing": missing if without is None else dataclasses.replace(
            missing, without_max_abs=without, with_max_abs=c.metrics.max_abs)}
    return [], finish


def _without_value(setup: _Setup, c: LayerComparison, recorded: dict, mode: str, trace,
                   between: list, tolerance) -> float | None:
    """How far PyTorch's module is from Keras's value when PyTorch's forward reruns with
    the modules between the paired ones giving back their input, where it then gives
    Keras's; None otherwise (a function call, which no hook can skip, is not rerun)."""
    keras_value = recorded.get(setup.output_of[c.keras_layer])
    if trace[c.torch_module][2] is not None or keras_value is None \
            or isinstance(keras_value, (Failed, list, tuple)) \
            or any(called_function(call.module) for _, call in between):
        return None
    order, skipped = _run_order(setup, mode), {}
    for position, call in between:  # the module's calls counted up to this one
        skipped.setdefault(call.name, set()).add(order[:position].count(call.name))
    value = without_operations(setup.torch_model, setup.x, mode, skipped,
                               split_layer_key(c.torch_module)[0])
    if value is None:
        return None
    reference = _activated(setup.by_name[c.keras_layer], value, c.kind,
                           setup.moves[c.torch_module])
    keras_value = numpy_of(keras_value)
    if reference.shape != keras_value.shape:
        return None
    found = metrics(keras_value, reference)
    return None if diverges(found, tolerance) else found.max_abs


def _function_plan(setup: _Setup, c: LayerComparison, keras_inputs: dict, mode: str,
                   trace):
    """(the positions whose inputs to keep, what measures it): a Keras activation of
    another function than PyTorch's at the same position among the activations since
    PyTorch's previous paired module."""
    facts = setup.facts[c.torch_module]
    previous, between = _between_calls(setup, mode, c.torch_module)
    torch_acts = [(i, call.name, call.module) for i, call in between
                  if torch_function(call.module)]
    keras_ops, inputs = with_fused(setup.fused, facts["previous"], [
        setup.operations[name] for name in facts["between"] if name in setup.operations],
        keras_inputs, trace)
    keras_acts = [(op, found) for op in _keras_after(setup, previous, keras_ops)
                  if (found := keras_function(op)) is not None]
    wanted = candidates(torch_acts, keras_acts)
    if not wanted:
        return None

    def finish(kept: dict) -> dict | None:
        found = activation_function(torch_acts, keras_acts, inputs, kept,
                                    setup.moves[c.torch_module])
        return None if found is None else {"operation_setting": found}
    return wanted, finish


def _keras_after(setup: _Setup, previous: str, keras_ops: list) -> list:
    """The Keras operations that run after the layer paired with PyTorch's previous paired
    module: Keras's operations between the layers reach back to every paired layer that
    feeds them (a squeeze-excitation's multiply reaches the activation before the
    pooling), PyTorch's running order only to the module that ran last."""
    partner = next((p.keras_layer for p in setup.pairs
                    if split_layer_key(p.torch_module)[0] == previous), None)
    if partner is None:
        return keras_ops
    order = {name: i for i, name in enumerate(setup.operations)}
    return [op for op in keras_ops if (
        split_layer_key(op.input_of)[0] == previous if isinstance(op, FusedActivation)
        else order.get(op.name, -1) > order.get(partner, len(order)))]


def _between_calls(setup: _Setup, mode: str, torch_key: str) -> tuple[str, list]:
    """PyTorch's previous paired module to run ("" where none) and the (position, call)
    of each module and function call between it and this one, in running order."""
    calls = _calls(setup, mode)
    order = [call.name for call in calls]
    name = split_layer_key(torch_key)[0]
    if name not in order:
        return "", []
    end, paired = order.index(name), _paired_modules(setup)
    start = max((i for i in range(end) if order[i] in paired), default=-1)
    return (order[start] if start >= 0 else ""), [(i, calls[i]) for i in range(start + 1, end)]


def _kept_inputs(setup: _Setup, mode: str, positions: list[int]) -> dict:
    """The inputs (PyTorch's layout) of the calls at these positions of the running order,
    from one more forward pass in this mode."""
    keep = dict.fromkeys(positions)
    torch_calls(setup.torch_model, setup.x, mode, _paired_modules(setup), keep)
    return keep


def _softmax_after_the_pairs(setup: _Setup, keras_inputs: dict, mode: str,
                             outputs: list) -> Finding | None:
    """Where the outputs differ after the last paired layers: a softmax there that
    normalises over another axis in each framework, where the reruns measure it
    (softmax_axis.py). outputs: the graph's output tensors that differ. PyTorch's side is
    what runs after the last paired module, whichever output it feeds."""
    calls, paired = _calls(setup, mode), _paired_modules(setup)
    last = max((i for i, call in enumerate(calls) if call.name in paired), default=len(calls))
    torch_after = [(call.name, call.module) for call in calls[last + 1:]]
    keras_after = [setup.operations[name] for name in
                   keras_after_the_pairs(setup.fn, set(setup.output_of.values()), outputs)]
    found = softmax_axis(torch_after, keras_after, keras_inputs, _input_shapes(setup, mode))
    if found is None:
        return None
    return Finding(found.torch_module, found.keras_op, f"{mode}, isolated, output",
                   (softmax_axis_cause(found, after_last_pair=True),))


def _layer_order_named(setup: _Setup, comparisons, mode: str) -> tuple[LayerComparison, ...]:
    """A layer whose input differs with nothing else to say why (an attention pair, which
    is not rerun alone, or one fed by no Keras operation) gets the paired layers that run
    on the other side of it in the two models, where there are any."""
    named = []
    for c in comparisons:
        codes = [cause.code for cause in c.causes]
        if c.diverges and codes in ([], ["between_layers"]):
            found = order_cause(c.torch_module, c.keras_layer, setup.pairs,
                                _run_order(setup, mode), _layer_types(setup),
                                keras_ancestors(setup.fn))
            if found is not None:
                c = dataclasses.replace(c, causes=(found, *c.causes))
        named.append(c)
    return tuple(named)


def _layer_types(setup: _Setup) -> dict[str, dict[str, str]]:
    return {"torch_module": {p.torch_module: type(setup.modules[p.torch_module]).__name__
                             for p in setup.pairs},
            "keras_layer": {p.keras_layer: type(setup.by_name[p.keras_layer]).__name__
                            for p in setup.pairs}}


def _pads_before(setup: _Setup, torch_key: str) -> tuple:
    """The PyTorch padding modules and F.pad calls (their stand-ins) that ran right before
    this paired conv, named, if any: only a conv's input padding is looked at. An F.pad
    call is found in the running order alone, which costs the conv's model one more forward
    pass (torch_calls)."""
    if not isinstance(setup.modules[torch_key], TORCH_CONVS):  # what layer_facts pads
        return ()
    return pads_before(_run_order(setup, "inference"), _ran(setup, "inference"),
                       split_layer_key(torch_key)[0])


def _padding_modes_named(setup: _Setup, comparisons, keras_inputs: dict, trace,
                         mode: str) -> tuple[LayerComparison, ...]:
    """A conv PyTorch pads otherwise than with zeros gets that mode as its cause, where the
    rerun with zeros gives Keras's output (padding_modes.py)."""
    named = []
    for c in comparisons:
        facts = setup.facts[c.torch_module]
        if c.diverges and facts.get("torch_padding_mode"):
            found = measured_padding_mode(
                setup.modules[c.torch_module], _pads_before(setup, c.torch_module),
                trace[c.torch_module], setup.by_name[c.keras_layer],
                keras_inputs.get(c.keras_layer))
            if found is not None:
                c = dataclasses.replace(c, causes=likely_causes(
                    {**facts, "padding_mode": (found[0].max_abs, found[1].max_abs)}, True,
                    mode))
        named.append(c)
    return tuple(named)


def _paired_modules(setup: _Setup) -> set[str]:
    return {split_layer_key(p.torch_module)[0] for p in setup.pairs}


def _calls(setup: _Setup, mode: str) -> list[TorchCall]:
    """PyTorch's modules without children (and the paired ones) and the softmax functions
    forward() calls, in running order, each with its input's shape, traced once per mode."""
    if mode not in setup.torch_calls:
        setup.torch_calls[mode] = torch_calls(setup.torch_model, setup.x, mode,
                                              _paired_modules(setup))
    return setup.torch_calls[mode]


def _run_order(setup: _Setup, mode: str) -> list[str]:
    return [call.name for call in _calls(setup, mode)]


def _ran(setup: _Setup, mode: str) -> dict[str, nn.Module]:
    """Each entry of the running order's module: a softmax function's is its stand-in,
    which setup.modules (PyTorch's own) does not hold."""
    return {call.name: call.module for call in _calls(setup, mode)}


def _input_shapes(setup: _Setup, mode: str) -> dict[str, tuple | None]:
    """The shape of the input each of those modules was first given."""
    shapes = {}
    for call in _calls(setup, mode):
        shapes.setdefault(call.name, call.input_shape)
    return shapes


def _first_to_run(setup: _Setup, mode: str, torch_key: str) -> bool:
    """Whether this paired module is the first paired module to run."""
    paired = _paired_modules(setup)
    first = next((name for name in _run_order(setup, mode) if name in paired), None)
    return first == split_layer_key(torch_key)[0]


def _torch_between(setup: _Setup, mode: str, torch_key: str) -> list[tuple[str, nn.Module]]:
    """The PyTorch modules (without children) and softmax functions that ran between this
    paired module and the paired module that ran before it."""
    names = ran_between(_run_order(setup, mode), _paired_modules(setup),
                        split_layer_key(torch_key)[0])
    ran = _ran(setup, mode)
    return [(name, ran[name]) for name in names]


def _statistics(modules, keras_layers, pairs, trace, tolerance):
    """Each BatchNorm pair after one training-mode step on PyTorch's recorded input, both
    from PyTorch's running statistics."""
    results = []
    for pair in pairs:
        module, layer = modules[pair.torch_module], keras_layers[pair.keras_layer]
        if not (isinstance(module, nn.modules.batchnorm._BatchNorm)
                and isinstance(layer, layers.BatchNormalization)
                and module.track_running_stats):
            continue
        x = trace[pair.torch_module][0]
        torch_step = torch_batchnorm_step(pair.torch_module, module, x)
        keras_step = keras_batchnorm_step(layer, to_keras_values(x), torch_step)
        results.append(compare_statistics(torch_step, keras_step, x, tolerance,
                                          torch_batches_seen(module)))
    return tuple(results)


def _attribute(forward: PassResult, isolated: PassResult) -> PassResult:
    """A forward divergence has the cause the isolated pass finds in that layer, or else
    it was carried over from an earlier layer."""
    upstream = likely_causes({}, isolated=False, mode=forward.mode)
    layers_ = []
    for f, i in zip(forward.layers, isolated.layers):
        if f.diverges and not f.note:
            f = dataclasses.replace(f, causes=i.causes if i.diverges else upstream)
        layers_.append(f)
    return dataclasses.replace(forward, layers=tuple(layers_))


def _isolated64(setup: _Setup, trace, mode) -> dict:
    """Each paired module of the float64 copy, run on PyTorch float32's recorded input (a
    recurrent or attention module on its whole recorded call, read through its view)."""
    outputs = {}
    with torch_mode(setup.model64, mode), torch.no_grad():
        for pair in setup.pairs:
            name, layer = split_layer_key(pair.torch_module)
            module = setup.modules64[name]
            x, _, call = trace[pair.torch_module]
            if call is None:
                value = module(torch.from_numpy(as_float(x, np.float64)))
            else:
                value = setup.views[pair.torch_module](
                    rerun(module, layer, tree.map_structure(_in_float64, call)))
            outputs[pair.torch_module] = value.numpy().copy()
    return outputs


def _in_float64(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.double()
    return value


# ----- the zoo ---------------------------------------------------------------------------


def validate_zoo_model(spec, image_size: int, batch_size: int, seed: int, naive: bool = False,
                       **options) -> PortValidation:
    """Build a zoo entry in both frameworks with seeded, calibrated weights, port them and
    validate. With naive, the Keras side is keras.applications' own model under the naive
    same-shape port (no row permutation; Keras biases PyTorch lacks set to zero)."""
    from adapters import load_adapter
    from adapters.keras.models import build_application, build_base
    from comparator.inputs.batch import make_batch
    from comparator.inputs.sources import random_calibrated

    torch_adapter = load_adapter("pytorch")
    random_calibrated(spec, "classify", seed, image_size, torch_adapter)
    torch_model = torch_adapter.model
    keras.utils.set_random_seed(seed)
    if naive:
        keras_model = build_application(spec.naive_keras_builder, image_size, include_top=True)
        keras_name = f"keras.applications.{spec.naive_keras_builder} (naive same-shape port)"
    else:
        keras_model = build_base(spec, image_size, include_top=True)
        builder = spec.keras_builder or spec.name
        keras_name = (f"keras.applications.{builder}" if builder[0].isupper() else
                      f"{builder} (adapters/keras/models.py)")
    pairs = plan_pairs(spec.layer_names, torch_model)
    port_weights(torch_model, keras_model, pairs=pairs, naive=naive)
    batch = make_batch(spec, "classify", batch_size, image_size, seed)
    result = validate_port(torch_model, keras_model, batch.x, pairs=pairs, seed=seed, **options)
    notes = [f"{spec.name}: seeded random weights (BatchNorm statistics, if any, calibrated "
             f"on data), "
             f"{image_size} px, batch {batch_size}"]
    if naive:
        notes.append(f"naive port: each torchvision array copied into the keras.applications "
                     f"layer of the same name and shape; the zoo's equivalent Keras model is "
                     f"{spec.keras_builder}")
    statistics, momentum_note = _zoo_momentum(spec, result.statistics)
    dropout, dropout_note = _zoo_dropout(spec, result.dropout)
    notes += [n for n in (momentum_note, dropout_note) if n]
    return dataclasses.replace(result, torch_model=f"torchvision.models.{spec.torchvision_builder}"
                               if spec.torchvision_builder else type(torch_model).__name__,
                               keras_model=keras_name, notes=tuple(notes) + result.notes,
                               statistics=statistics, dropout=dropout)


def _zoo_dropout(spec, dropout):
    """A Dropout difference the zoo entry keeps on purpose (its known differences say so:
    torchvision's classifier Dropout that keras.applications lacks) is noted, not failed."""
    known = next((d for d in spec.known_differences if d.startswith("Dropout:")), None)
    differing = [d for d in dropout if d.diverges]
    if known is None or not differing:
        return dropout, ""
    kept = tuple(dataclasses.replace(d, diverges=False) if d.diverges else d for d in dropout)
    return kept, (f"Dropout differs in {len(differing)} of {len(dropout)} pairs "
                  f"({'; '.join(d.text for d in differing)}), as the zoo entry states: "
                  f"{known} Not counted as a divergence")


def _zoo_momentum(spec, statistics):
    """The zoo keeps each framework's default BatchNorm momentum on purpose (compare.py
    studies it): a momentum difference that is the spec's own is noted, not failed."""
    wanted = spec.bn_momentum
    if not wanted or "keras" not in wanted:
        return statistics, ""
    expected = (wanted.get("pytorch"), 1.0 - wanted["keras"])
    kept, deliberate = [], 0
    for s in statistics:
        if s.cause == "momentum" and np.allclose((s.torch_momentum, s.keras_momentum),
                                                 expected, rtol=0, atol=1e-9):
            s = dataclasses.replace(s, diverges=False)
            deliberate += 1
        kept.append(s)
    if not deliberate:
        return statistics, ""
    return tuple(kept), (
        f"BatchNorm momentum differs in {deliberate} layers after a training step (PyTorch "
        f"{expected[0]:g}, Keras {expected[1]:g} in PyTorch's convention; Keras states "
        f"momentum={wanted['keras']:g}): the zoo keeps each framework's default on purpose, "
        "so this is not counted as a divergence")
