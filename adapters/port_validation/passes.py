"""One mode's passes of a port validation: PyTorch traced (and its float64 copy, the
rounding reference), then the forward pass (Keras on its own values) and the isolated one
(each Keras layer fed PyTorch's input), every pair compared (layer_comparison.py). After
the isolated pass the causes a rerun measures are named (named_causes.py), and a forward
divergence takes the cause the isolated pass finds in that layer."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from adapters.keras.backend import keras  # noqa: F401 (fixes the torch backend first)
from keras import ops, tree  # noqa: E402

from adapters.port_validation.causes import layer_facts  # noqa: E402
from adapters.port_validation.graph import (  # noqa: E402
    ModelFailed,
    as_float,
    keras_state_kept,
    run_keras,
    to_keras_inputs,
    torch_mode,
    torch_trace,
)
from adapters.port_validation.layer_comparison import (  # noqa: E402
    activated,
    compare,
    in_keras_shape,
)
from adapters.port_validation.model_outputs import outputs_apart, outputs_compared  # noqa: E402
from adapters.port_validation.named_causes import (  # noqa: E402
    after_the_pairs_found,
    between_named,
    layer_order_named,
    operation_settings_named,
    output_activation_found,
    padding_modes_named,
)
from adapters.port_validation.sequences import rerun, split_layer_key  # noqa: E402
from adapters.port_validation.validation_setup import Setup, pads_before_conv  # noqa: E402
from comparator.analysis.port_causes import likely_causes  # noqa: E402
from comparator.analysis.validation import PassResult  # noqa: E402


def _trace64(setup: Setup, mode: str):
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


def mode_passes(setup: Setup, mode: str, isolation: bool, tolerance: float):
    """PyTorch's trace in this mode, and the forward (then isolated) pass results."""
    pairs, by_name = setup.pairs, setup.by_name
    trace, torch_out = torch_trace(setup.torch_model, pairs, setup.x, mode, setup.views)
    trace64, torch_out64 = _trace64(setup, mode)
    if setup.facts is None:
        setup.facts = {p.torch_module: layer_facts(p, setup.modules[p.torch_module],
                                                   by_name[p.keras_layer], trace,
                                                   setup.state, setup.watch,
                                                   setup.croppings.get(p.keras_layer, ()),
                                                   pads_before_conv(setup, p.torch_module),
                                                   setup.fused)
                       for p in pairs}
        # A conv padded otherwise than with zeros: its Keras input is kept to measure it.
        setup.setting_ops |= {p.keras_layer for p in pairs
                              if setup.facts[p.torch_module].get("torch_padding_mode")}
    references = {p.keras_layer: _as_keras_emits(setup, p, trace[p.torch_module][1])
                  for p in pairs}
    passes = []
    for isolated in ([False, True] if isolation else [False]):
        references64 = {}
        if setup.model64 is not None:
            outputs64 = (_isolated64(setup, trace, mode)
                         if isolated else {p.torch_module: trace64[p.torch_module][1]
                                           for p in pairs})
            references64 = {p.keras_layer: _as_keras_emits(setup, p, outputs64[p.torch_module])
                            for p in pairs}
        substitute = ({setup.output_of[name]: ops.convert_to_tensor(v)
                       for name, v in references.items()} if isolated else None)
        inputs_seen = dict.fromkeys(setup.setting_ops) if isolated else None
        with keras_state_kept(setup.fn), torch.no_grad():
            recorded, keras_out = run_keras(setup.fn, to_keras_inputs(setup.x),
                                            mode == "training", setup.watch, substitute,
                                            inputs_seen)
            comparisons = tuple(
                compare(p, by_name[p.keras_layer], recorded.get(setup.output_of[p.keras_layer]),
                        references[p.keras_layer], references64.get(p.keras_layer),
                        setup.facts[p.torch_module], isolated, mode, tolerance, trace,
                        setup.moves[p.torch_module])
                for p in pairs)
        if isolated:
            comparisons = operation_settings_named(setup, comparisons, inputs_seen, mode, trace)
            comparisons = padding_modes_named(setup, comparisons, inputs_seen, trace, mode)
            comparisons = between_named(setup, comparisons, recorded, inputs_seen, mode,
                                        trace, tolerance)
            comparisons = layer_order_named(setup, comparisons, mode)
            # The last paired layer hands PyTorch's value on: the model output says nothing
            # in this pass, but where it differs while no layer does.
            passes.append(PassResult(mode, True, comparisons, None, False))
            passes[-2] = _attribute(passes[-2], passes[-1])
            if passes[-2].output_diverges and setup.output_finding is None and not any(
                    c.diverges for c in (*comparisons, *passes[-2].layers)):
                setup.output_finding = after_the_pairs_found(setup, outputs_apart(
                    setup.output_keys, setup.fn.outputs, keras_out, torch_out, torch_out64,
                    tolerance), inputs_seen, mode)
        else:
            out, bad, noise, each = outputs_compared(setup.output_keys, keras_out, torch_out,
                                                     torch_out64, tolerance)
            passes.append(PassResult(mode, False, comparisons, out, bad, noise, each))
            if bad and not any(c.diverges for c in comparisons) \
                    and setup.output_finding is None:
                setup.output_finding = output_activation_found(setup, outputs_apart(
                    setup.output_keys, setup.fn.outputs, keras_out, torch_out, torch_out64,
                    tolerance, comparable=True), mode, tolerance)
    return trace, passes


def _as_keras_emits(setup, pair, torch_output):
    """PyTorch's output of a pair as its Keras layer emits it: layout, fused activation,
    and shape where the two differ only by axes of length 1."""
    value = activated(setup.by_name[pair.keras_layer], torch_output, pair.kind,
                      setup.moves[pair.torch_module])
    return in_keras_shape(value, setup.by_name[setup.output_of[pair.keras_layer]])


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


def _isolated64(setup: Setup, trace, mode) -> dict:
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
