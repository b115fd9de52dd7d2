"""Naming a diverging layer's cause after an isolated pass, where a rerun measures it
(causes.py gathers the facts known before any pass): the weightless operation before the
layer whose setting differs, or the input preprocessing one model does inside itself
(operation_settings.py, pool_padding.py, softmax_axis.py, preprocessing.py); a conv PyTorch
pads otherwise than with zeros (padding_modes.py); what PyTorch computes between two paired
modules where Keras has no operation, or a Keras activation of another function
(between_operations.py); the paired layers that run in another order (layer_order.py).
Where the model outputs differ and no layer does: the activation Keras's output layer
applies inside itself, or what follows the last paired layers (a softmax over another
axis)."""

from __future__ import annotations

import dataclasses

from adapters.port_validation.between_operations import (
    activation_function,
    candidates,
    keras_function,
    torch_function,
    without_operations,
)
from adapters.port_validation.causes import (
    after_the_pairs,
    keras_after_the_pairs,
    output_activation,
)
from adapters.port_validation.function_calls import called_function, module_kind
from adapters.port_validation.fused_activations import with_fused
from adapters.port_validation.graph import Failed, numpy_of
from adapters.port_validation.layer_comparison import activated
from adapters.port_validation.layer_order import keras_ancestors, order_cause
from adapters.port_validation.model_outputs import at_output
from adapters.port_validation.operation_settings import (
    FusedActivation,
    operation_setting,
    torch_calls,
)
from adapters.port_validation.padding_modes import measured_padding_mode
from adapters.port_validation.pool_padding import pool_padding, pool_rounding
from adapters.port_validation.preprocessing import input_preprocessing
from adapters.port_validation.sequences import split_layer_key
from adapters.port_validation.softmax_axis import softmax_axis
from adapters.port_validation.validation_setup import (
    Setup,
    first_to_run,
    input_shapes,
    paired_modules,
    pads_before_conv,
    run_order,
    running_calls,
    torch_between,
)
from comparator.analysis.port_causes import (
    MissingOperations,
    likely_causes,
    softmax_axis_cause,
)
from comparator.analysis.validation import (
    Finding,
    LayerComparison,
    diverges,
    metrics,
)


def output_activation_found(setup: Setup, apart: list, mode: str,
                            tolerance) -> Finding | None:
    """output_activation at the first output apart (of several, in --output's order) that
    it explains."""
    for keras_value, torch_value, tensor, label in apart:
        found = output_activation(setup.fn, setup.pairs, setup.moves, numpy_of(keras_value),
                                  torch_value, mode, tolerance, tensor)
        if found is not None:
            return at_output(found, label)
    return None


def after_the_pairs_found(setup: Setup, apart: list, keras_inputs: dict,
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


def operation_settings_named(setup: Setup, comparisons, keras_inputs: dict,
                             mode: str, trace) -> tuple[LayerComparison, ...]:
    """A layer whose cause is what reaches it (between_layers) gets the weightless operation
    before it whose setting differs, or (the first paired layer) the input preprocessing one
    model does inside itself, where a rerun on the Keras operation's input measures it."""
    named = []
    for c in comparisons:
        if c.diverges and [cause.code for cause in c.causes] in (["between_layers"],
                                                                  ["shape"]):
            facts = setup.facts[c.torch_module]
            between = (torch_between(setup, mode, c.torch_module), *with_fused(
                setup.fused, facts["previous"], [setup.operations[name] for name in
                                                 facts["between"] if name in setup.operations],
                keras_inputs, trace))
            found = operation_setting(*between) or pool_padding(*between) or \
                pool_rounding(*between) or softmax_axis(*between, input_shapes(setup, mode))
            if found is None and first_to_run(setup, mode, c.torch_module):
                found = input_preprocessing(*between, setup.modules[c.torch_module],
                                            setup.by_name[c.keras_layer],
                                            None if isinstance(setup.x, tuple) else setup.x)
            if found is not None:
                c = dataclasses.replace(c, causes=likely_causes(
                    {**facts, "alone_agrees": True, "operation_setting": found}, True, mode))
        named.append(c)
    return tuple(named)


def between_named(setup: Setup, comparisons, recorded: dict, keras_inputs: dict,
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


def _missing_plan(setup: Setup, c: LayerComparison, recorded: dict, mode: str, trace,
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


def _without_value(setup: Setup, c: LayerComparison, recorded: dict, mode: str, trace,
                   between: list, tolerance) -> float | None:
    """How far PyTorch's module is from Keras's value when PyTorch's forward reruns with
    the modules between the paired ones giving back their input, where it then gives
    Keras's; None otherwise (a function call, which no hook can skip, is not rerun)."""
    keras_value = recorded.get(setup.output_of[c.keras_layer])
    if trace[c.torch_module][2] is not None or keras_value is None \
            or isinstance(keras_value, (Failed, list, tuple)) \
            or any(called_function(call.module) for _, call in between):
        return None
    order, skipped = run_order(setup, mode), {}
    for position, call in between:  # the module's calls counted up to this one
        skipped.setdefault(call.name, set()).add(order[:position].count(call.name))
    value = without_operations(setup.torch_model, setup.x, mode, skipped,
                               split_layer_key(c.torch_module)[0])
    if value is None:
        return None
    reference = activated(setup.by_name[c.keras_layer], value, c.kind,
                          setup.moves[c.torch_module])
    keras_value = numpy_of(keras_value)
    if reference.shape != keras_value.shape:
        return None
    found = metrics(keras_value, reference)
    return None if diverges(found, tolerance) else found.max_abs


def _function_plan(setup: Setup, c: LayerComparison, keras_inputs: dict, mode: str,
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


def _keras_after(setup: Setup, previous: str, keras_ops: list) -> list:
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


def _between_calls(setup: Setup, mode: str, torch_key: str) -> tuple[str, list]:
    """PyTorch's previous paired module to run ("" where none) and the (position, call)
    of each module and function call between it and this one, in running order."""
    calls = running_calls(setup, mode)
    order = [call.name for call in calls]
    name = split_layer_key(torch_key)[0]
    if name not in order:
        return "", []
    end, paired = order.index(name), paired_modules(setup)
    start = max((i for i in range(end) if order[i] in paired), default=-1)
    return (order[start] if start >= 0 else ""), [(i, calls[i]) for i in range(start + 1, end)]


def _kept_inputs(setup: Setup, mode: str, positions: list[int]) -> dict:
    """The inputs (PyTorch's layout) of the calls at these positions of the running order,
    from one more forward pass in this mode."""
    keep = dict.fromkeys(positions)
    torch_calls(setup.torch_model, setup.x, mode, paired_modules(setup), keep)
    return keep


def _softmax_after_the_pairs(setup: Setup, keras_inputs: dict, mode: str,
                             outputs: list) -> Finding | None:
    """Where the outputs differ after the last paired layers: a softmax there that
    normalises over another axis in each framework, where the reruns measure it
    (softmax_axis.py). outputs: the graph's output tensors that differ. PyTorch's side is
    what runs after the last paired module, whichever output it feeds."""
    calls, paired = running_calls(setup, mode), paired_modules(setup)
    last = max((i for i, call in enumerate(calls) if call.name in paired), default=len(calls))
    torch_after = [(call.name, call.module) for call in calls[last + 1:]]
    keras_after = [setup.operations[name] for name in
                   keras_after_the_pairs(setup.fn, set(setup.output_of.values()), outputs)]
    found = softmax_axis(torch_after, keras_after, keras_inputs, input_shapes(setup, mode))
    if found is None:
        return None
    return Finding(found.torch_module, found.keras_op, f"{mode}, isolated, output",
                   (softmax_axis_cause(found, after_last_pair=True),))


def layer_order_named(setup: Setup, comparisons, mode: str) -> tuple[LayerComparison, ...]:
    """A layer whose input differs with nothing else to say why (an attention pair, which
    is not rerun alone, or one fed by no Keras operation) gets the paired layers that run
    on the other side of it in the two models, where there are any."""
    named, upstream = [], None
    for c in comparisons:
        codes = [cause.code for cause in c.causes]
        if c.diverges and codes in ([], ["between_layers"]):
            upstream = keras_ancestors(setup.fn) if upstream is None else upstream  # once
            found = order_cause(c.torch_module, c.keras_layer, setup.pairs,
                                run_order(setup, mode), _layer_types(setup), upstream)
            if found is not None:
                c = dataclasses.replace(c, causes=(found, *c.causes))
        named.append(c)
    return tuple(named)


def _layer_types(setup: Setup) -> dict[str, dict[str, str]]:
    return {"torch_module": {p.torch_module: type(setup.modules[p.torch_module]).__name__
                             for p in setup.pairs},
            "keras_layer": {p.keras_layer: type(setup.by_name[p.keras_layer]).__name__
                            for p in setup.pairs}}


def padding_modes_named(setup: Setup, comparisons, keras_inputs: dict, trace,
                        mode: str) -> tuple[LayerComparison, ...]:
    """A conv PyTorch pads otherwise than with zeros gets that mode as its cause, where the
    rerun with zeros gives Keras's output (padding_modes.py)."""
    named = []
    for c in comparisons:
        facts = setup.facts[c.torch_module]
        if c.diverges and facts.get("torch_padding_mode"):
            found = measured_padding_mode(
                setup.modules[c.torch_module], pads_before_conv(setup, c.torch_module),
                trace[c.torch_module], setup.by_name[c.keras_layer],
                keras_inputs.get(c.keras_layer))
            if found is not None:
                c = dataclasses.replace(c, causes=likely_causes(
                    {**facts, "padding_mode": (found[0].max_abs, found[1].max_abs)}, True,
                    mode))
        named.append(c)
    return tuple(named)
