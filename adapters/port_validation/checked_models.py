"""The models and inputs of a port validation as validate_port takes them: the inputs as
float32 arrays in PyTorch's layout, both models loaded where given as specs or files, the
inputs checked against the Keras model's declared inputs (in Keras's layout, or in
PyTorch's where the Keras model takes that), a Keras model whose layers hide layers read
as the graph its call() traces, and --output's choice of outputs made (and released after).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from adapters.own_pair.outputs import choose_outputs, off_the_output
from adapters.own_pair.setup import declared_inputs_fit, refuse_a_dict_of_inputs
from adapters.port_validation.graph import (
    activation_layout,
    as_float,
    functional_graph,
    refuse_unchosen_outputs,
    several,
    to_keras_inputs,
)
from adapters.port_validation.pairs import keras_side, torch_side
from adapters.port_validation.tracing import layers_to_open, traced_graph
from comparator.config.pair import same_batch
from comparator.errors import UsageError


def checked_models(torch_model, keras_model, inputs, pytorch_weights, keras_weights,
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
    """What checked_models found besides the models: --output's choice (what takes the
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
