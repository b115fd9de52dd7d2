"""Layer-by-layer port validation between a PyTorch module and a Keras functional model
(the framework half of comparator/analysis/validation.py): every paired layer compared in
each mode, in a forward pass and an isolated one (each Keras layer fed PyTorch's input),
gradients, BatchNorm's training step and the Dropout layers.

This is the entry point (validate_port, validate_zoo_model, and port_weights re-exported).
The models and inputs as it takes them are checked in checked_models.py, what every pass
of one validation shares in validation_setup.py, one mode's passes in passes.py (one
layer's comparison in layer_comparison.py, the causes a rerun names after a pass in
named_causes.py), and the differences a zoo entry keeps on purpose in zoo_differences.py.
Running the models lives in graph.py (recurrent and attention modules' outputs and a stacked
module's layers in sequences.py), loading and pairing them (and `port_weights`) in pairs.py,
the gradients in gradients.py, the facts that name a difference's cause in causes.py, the
models' output (or each of several that --output chose) in model_outputs.py, and a tensor
held outside any layer that forward() scales a value by (ConvNeXt's layer_scale), which
stands as a layer while validated, in bare_scales.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np
import torch
from torch import nn

from adapters.keras.backend import keras  # fixes the torch backend before Keras is imported
from keras import layers  # noqa: E402

from adapters.own_pair.loader import seed_spec_builders  # noqa: E402
from adapters.port_validation.bare_scales import (  # noqa: E402
    Scale,
    candidates,
    model_outputs,
    scale_uses,
    scales_as_layers,
)
from adapters.port_validation.checked_models import checked_models  # noqa: E402
from adapters.port_validation.gradients import compare_gradients  # noqa: E402
from adapters.port_validation.graph import (  # noqa: E402
    activation_layout,
    channels_move,
    graph_nodes,
    model_failed,
    several,
    shapes_of,
    to_keras_values,
    torch_args,
    torch_trace,
)
from adapters.port_validation.model_outputs import output_note  # noqa: E402
from adapters.port_validation.pairs import (  # noqa: E402
    BARE_REFUSED,
    held_directly,
    plan_pairs,
    port_weights,
    resolve_pairs,
)
from adapters.port_validation.passes import mode_passes  # noqa: E402
from adapters.port_validation.training import (  # noqa: E402
    keras_batchnorm_step,
    keras_dropout_layers,
    keras_step_dropout,
    torch_batches_seen,
    torch_batchnorm_step,
    torch_dropout_layers,
)
from adapters.port_validation.validation_setup import Setup  # noqa: E402
from adapters.port_validation.zoo_differences import zoo_dropout, zoo_momentum  # noqa: E402
from comparator.analysis.layer_pairing import Pair  # noqa: E402
from comparator.analysis.training_side import compare_dropout, compare_statistics  # noqa: E402
from comparator.analysis.validation import (  # noqa: E402
    DEFAULT_GRADIENT_TOLERANCE,
    DEFAULT_TOLERANCE,
    MODES,
    PortValidation,
    check_tolerance,
    spoiled_by_property,
)
from comparator.config.pair import checked_output_keys  # noqa: E402
from comparator.errors import UsageError  # noqa: E402
from comparator.limits import check_seed  # noqa: E402

__all__ = ["port_weights", "validate_port", "validate_zoo_model"]


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
    x, torch_model, torch_name, keras_model, keras_name, fn, checked = checked_models(
        torch_model, keras_model, inputs, pytorch_weights, keras_weights,
        keys if output else [], trains="training" in modes or gradients or train_step,
        chosen=len(keys) if output_chosen else 1)
    checked = dataclasses.replace(checked, leave_out=(*checked.leave_out, *leave_out))
    try:
        with activation_layout(torch_model, checked.keras_as_given), \
                _scales_traced(torch_model, x) as scale_notes:
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
    notes = checked.notes + scale_notes
    if output:
        notes += (output_note(output, keys, checked.leave_out, gradients),)
    return dataclasses.replace(result, notes=(*result.notes, *notes))


_PORTS = {"pytorch-to-keras": "torch_to_keras", "keras-to-pytorch": "keras_to_torch"}


@contextlib.contextmanager
def _scales_traced(torch_model, x):
    """The tensors held outside any layer that can scale a value (bare_scales.py), traced:
    within the block each stands as a layer of its own, or the model is refused, in one
    line, where forward() does something else with one, or computes otherwise with them
    standing so (an owner that runs its children in a loop would run them too). Yields
    the report's note."""
    args = torch_args(x, next(torch_model.parameters(), torch.empty(0)).device)
    try:
        uses, before = scale_uses(torch_model, args)
    except Exception as exc:  # the user's model refused the input
        raise model_failed(torch_model, x, exc) from None
    refused = [_refusal(torch_model, name, words) for name, use in uses.items()
               if (words := _not_a_channel_scale(use))]
    if refused:
        raise UsageError(f"{'; '.join(refused)}: {BARE_REFUSED}")
    with scales_as_layers(torch_model, uses):
        if uses and not _same_outputs(before, model_outputs(torch_model, args)):
            raise UsageError(f"PyTorch's forward() computes something else where the "
                             f"validator stands {', '.join(uses)}, held outside any layer, "
                             "as layers of their own (it runs its children in a loop, say): "
                             f"{BARE_REFUSED}")
        yield (_scales_note(uses),) if uses else ()


def _same_outputs(before: list, after: list) -> bool:
    """Within 1e-6 of the largest value, as a traced Keras graph is held to (tracing.py):
    the same operations, but a device may pick another kernel from call to call."""
    pairs = [(a.double().cpu().numpy(), b.double().cpu().numpy()) for a, b in zip(before, after)]
    return len(before) == len(after) and all(
        a.shape == b.shape and np.max(np.abs(a - b), initial=0.0) <= 1e-6 * max(
            1.0, np.max(np.abs(a), initial=0.0)) for a, b in pairs)


def _refusal(torch_model, name: str, words: str) -> str:
    owner, attribute = candidates(torch_model)[name]
    return f"{held_directly(name.rpartition('.')[0], owner, {attribute})}, and {words}"


def _not_a_channel_scale(use: Scale | str) -> str:
    """Why forward()'s use of a candidate is neither a scale of a value's channels nor an
    offset laid out as Keras's value, in words; "" where it is one of them: one number, or
    numbers along the value's last axis or along axis 1 where the validator moves that axis
    last (a map); or, added, an array over several axes of a value whose layout the two
    frameworks share (positions over a sequence's tokens)."""
    if isinstance(use, str):
        return use
    moves = channels_move(np.empty((1,) * use.rank))
    if use.operation == "prepends":
        return _not_a_class_token(use, moves)
    if sum(d > 1 for d in use.shape) > 1:
        if use.operation == "multiplies":
            return ("forward() multiplies a value by it, and it has more than one axis "
                    "longer than 1 (a scale pairs as one number per channel)")
        return (f"forward() adds it to a {use.rank}-D value that PyTorch holds channels "
                "first and Keras channels last") if moves else ""
    if use.axis is None or use.axis == use.rank - 1 or (use.axis == 1 and moves):
        return ""
    what = f"multiplies a {use.rank}-D value by it" if use.operation == "multiplies" \
        else f"adds it to a {use.rank}-D value"
    return f"forward() {what} along axis {use.axis}, which is not the value's channels"


def _not_a_class_token(use: Scale, moves: bool) -> str:
    """Why a tensor concatenated before a value is not a class token before a sequence's
    tokens (axis 1 of a value the two frameworks lay out alike), in words; "" where it is."""
    if moves:
        return (f"forward() concatenates it before a {use.rank}-D value that PyTorch holds "
                "channels first and Keras channels last")
    if use.axis != 1:
        return (f"forward() concatenates it before a {use.rank}-D value along axis "
                f"{use.axis}, not the tokens' axis 1")
    return ""


# How the note names each operation: the value's relation to it, the verb, the result.
_NOTED = {"multiplies": ("times", "multiplied into", "the product"),
          "adds": ("plus", "added to", "the sum"),
          "prepends": ("before", "concatenated before", "the value with it first")}


def _scales_note(uses: dict) -> str:
    named = [f"{name} ({_NOTED[use.operation][0]} {use.producer}'s output)" if use.producer
             else name for name, use in uses.items()]
    shown = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
    operations = sorted({_NOTED[use.operation][1] for use in uses.values()})
    results = sorted({_NOTED[use.operation][2] for use in uses.values()})
    return (f"PyTorch's {shown}, held outside any layer and {' or '.join(operations)} a "
            f"value by forward(), each validated as a layer whose input is that value and "
            f"whose output is {' or '.join(results)} (ported by element order)")


def _validated(x, torch_model, torch_name, keras_model, keras_name, fn, mapping, pairs, modes,
               isolation, gradients, tolerance, gradient_tolerance, reference64, seed,
               train_step, leave_out=(), output_keys=()) -> PortValidation:
    pairing = "port plan" if pairs is not None else (
        "explicit mapping" if mapping is not None else "order and shape")
    setup = Setup(torch_model, fn,
                  resolve_pairs(torch_model, keras_model, mapping, pairs, tuple(leave_out)),
                  x, reference64, output_keys)
    passes, traces = [], {}
    for mode in modes:
        traces[mode], found = mode_passes(setup, mode, isolation, tolerance)
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
        settings_differ=tuple(_unseen_epsilons(setup, passes)),
        output_finding=setup.output_finding,
        input_shapes=shapes_of(x) if isinstance(x, tuple) else ())


def _unseen_epsilons(setup, passes) -> list[str]:
    """A normalisation whose epsilon differs between the two layers though every pass found
    the layer within the tolerance on this batch (a ConvNeXt LayerNorm ported with 1e-5 for
    PyTorch's 1e-6: 5.9e-6 at the output): a setting that differs. Within 1e-6 relative they
    are one value written two ways (RMSNorm's eps=None is float32's 1.1920928955078125e-07,
    given to Keras as 1.1920929e-07)."""
    diverged = {c.torch_module for p in passes for c in p.layers if c.diverges}
    notes = []
    for pair in setup.pairs:
        facts = (setup.facts or {}).get(pair.torch_module, {})
        teps, keps = facts.get("torch_eps"), facts.get("keras_eps")
        if pair.torch_module in diverged or teps is None or keps is None or \
                math.isclose(teps, keps, rel_tol=1e-6, abs_tol=0.0):
            continue
        notes.append(f"{facts.get('norm', 'BatchNorm')} epsilon: PyTorch {pair.torch_module} "
                     f"{teps:g}, Keras {pair.keras_layer} {keps:g} (epsilon is added to the "
                     "variance: it matters most where variances are small)")
    return notes


def _gradients(setup: Setup, torch_model, fn, x, seed, tolerance, passes):
    """(comparisons, mode): in training mode, or in inference mode where a training-mode
    pass is spoiled by a framework property and its gradients differ with it (Keras's
    one-pass variance over two values per channel: ResNet18's layer4 at 32 px)."""
    found = compare_gradients(torch_model, setup.model64, fn, setup.pairs, x, seed, tolerance)
    spoiled = any(spoiled_by_property(p) for p in passes if p.mode == "training")
    if not (spoiled and any(g.diverges for g in found)):
        return found, "training"
    return compare_gradients(torch_model, setup.model64, fn, setup.pairs, x, seed, tolerance,
                             "inference"), "inference"


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


# ----- the zoo ---------------------------------------------------------------------------
# validate_zoo_model calls validate_port, so it is defined beside it: in a module of its own
# it would import this one, which re-exports it (an import cycle, tests/test_layering.py).


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
    statistics, momentum_note = zoo_momentum(spec, result.statistics)
    dropout, dropout_note = zoo_dropout(spec, result.dropout)
    notes += [n for n in (momentum_note, dropout_note) if n]
    return dataclasses.replace(result, torch_model=f"torchvision.models.{spec.torchvision_builder}"
                               if spec.torchvision_builder else type(torch_model).__name__,
                               keras_model=keras_name, notes=tuple(notes) + result.notes,
                               statistics=statistics, dropout=dropout)

