"""Running both models for the port validator: activations between the two layouts,
PyTorch traced with forward hooks on its paired modules, and Keras's functional graph
walked node by node, which also lets any layer's output be replaced by PyTorch's value
(the isolated passes)."""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np
import torch
from torch import nn

from adapters.keras.backend import keras  # fixes the torch backend before Keras is imported
from keras import layers, ops, tree  # noqa: E402
from keras.src.models.functional import Functional  # noqa: E402

from adapters.own_pair.keras_layers import (  # noqa: E402
    step_dropping_layers,
    stochastic_depth_layer,
)
from adapters.own_pair.pairing import channels_first_sequences  # noqa: E402
from adapters.own_pair.token_ids import token_ids_hint  # noqa: E402
from adapters.pytorch.drop_path import drops_at_random  # noqa: E402
from adapters.port_validation.sequences import split_layer_key, traced_calls  # noqa: E402
from adapters.port_validation.tracing import inbound  # noqa: E402
from comparator.analysis.layer_pairing import Pair  # noqa: E402
from comparator.errors import UsageError  # noqa: E402

# Layers whose training-mode behaviour is random: off in both frameworks' training passes.
_NOISE = (layers.Dropout, layers.SpatialDropout1D, layers.SpatialDropout2D,
          layers.SpatialDropout3D, layers.GaussianNoise, layers.GaussianDropout,
          layers.AlphaDropout)
def is_noise(module: nn.Module) -> bool:
    """A module that draws random masks in training: a Dropout of any kind, or stochastic
    depth (adapters/pytorch/drop_path.py), which drops whole examples of a residual branch in
    train() and whose masks no Keras layer can draw alike (a correct EfficientNet-B0 port at
    32 px failed the training passes by 6.86 at the output with it left on)."""
    return drops_at_random(module)


# Whether a 3-D activation is channels-first in PyTorch (N, C, L, as Conv1d makes it) or the
# same array in both frameworks (N, L, F: an Embedding's, an LSTM's or attention's output).
_SEQUENCES_CHANNELS_FIRST = contextvars.ContextVar("sequences_channels_first", default=True)
# A Keras model built on PyTorch's own layout (Conv2D(data_format="channels_first")).
_KERAS_AS_GIVEN = contextvars.ContextVar("keras_as_given", default=False)


@contextlib.contextmanager
def activation_layout(torch_model: nn.Module, keras_as_given: bool = False):
    """Within the block 3-D activations are channels-first as channels_first_sequences
    (adapters/own_pair/pairing.py) says of the PyTorch model; with keras_as_given (a Keras
    model that takes PyTorch's layout), no activation moves its channels."""
    tokens = (_SEQUENCES_CHANNELS_FIRST.set(channels_first_sequences(torch_model)),
              _KERAS_AS_GIVEN.set(keras_as_given))
    try:
        yield
    finally:
        _SEQUENCES_CHANNELS_FIRST.reset(tokens[0])
        _KERAS_AS_GIVEN.reset(tokens[1])


def channels_move(array) -> bool:
    """Whether this activation (numpy or torch) has its channels first in PyTorch and last
    in Keras: images always, sequences as activation_layout says, neither where Keras takes
    PyTorch's layout."""
    if _KERAS_AS_GIVEN.get():
        return False
    return array.ndim > 3 or (array.ndim == 3 and _SEQUENCES_CHANNELS_FIRST.get())


def acts_on_last_axis(module: nn.Module) -> bool:
    """Whether a PyTorch module computes along its input's last axis, as the Keras layer it
    pairs with does (a Linear, an Embedding's output, a LayerNorm or RMSNorm over one axis):
    its activations are then laid out as Keras's, whatever their rank (a ConvNeXt block's
    Linear on an N, H, W, C map). A subclass of the norms may move axes in its forward()
    (torchvision's and timm's LayerNorm2d take and give N, C, H, W), so one counts only where
    it gives what its base class gives on a map whose last axis it normalises (timm's
    LayerNorm, in its ConvNeXt blocks)."""
    if type(module) in (nn.Linear, nn.Embedding):
        return True
    for norm in (nn.LayerNorm, nn.RMSNorm):
        if isinstance(module, norm) and len(module.normalized_shape) == 1:
            return type(module) is norm or _computes_as(module, norm)
    return False


def _computes_as(module: nn.Module, base: type) -> bool:
    """Whether the module gives what `base`'s own forward gives with its weights, on a
    seeded map (2, 3, 5, C) whose last axis C it normalises."""
    reference = next(iter(module.parameters()), None)
    device = reference.device if reference is not None else "cpu"
    dtype = reference.dtype if reference is not None else torch.float32
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(2, 3, 5, module.normalized_shape[0], generator=generator)
    probe = probe.to(device=device, dtype=dtype)
    with torch.no_grad():
        try:
            given = module(probe)
        except Exception:  # noqa: BLE001 - a forward that moves axes fails on this map
            return False
        expected = base.forward(module, probe)
    return isinstance(given, torch.Tensor) and given.shape == expected.shape and \
        bool(torch.allclose(given, expected, rtol=1e-5, atol=1e-6))


def to_keras_values(array: np.ndarray, moves: bool = True) -> np.ndarray:
    """An activation in PyTorch's layout (N, C, ...) in Keras's (N, ..., C); as it is where
    not `moves` (a module that acts_on_last_axis)."""
    if not (moves and channels_move(array)):
        return array
    return np.ascontiguousarray(np.moveaxis(array, 1, -1))


def to_torch_values(array: np.ndarray) -> np.ndarray:
    if not channels_move(array):
        return array
    return np.ascontiguousarray(np.moveaxis(array, -1, 1))


def as_float(array, dtype):
    """An activation or input in this float precision; token ids (integers) stay as they are,
    since an Embedding takes nothing else. A model's several inputs (a tuple) each so."""
    if isinstance(array, tuple):
        return tuple(as_float(a, dtype) for a in array)
    return array if array.dtype.kind in "iu" else array.astype(dtype)


def several(x) -> tuple:
    """The model's inputs as a tuple: one array, or the tuple of a model that takes several
    (forward's positional arguments, the Keras model's inputs, in the same order)."""
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def torch_args(x, device) -> list[torch.Tensor]:
    """The inputs as the PyTorch model's positional arguments, on its device."""
    return [torch.from_numpy(v).to(device) for v in several(x)]


def to_keras_inputs(x):
    """The inputs in Keras's layout, each as to_keras_values moves it: one array, or a list."""
    return to_keras_values(x) if not isinstance(x, tuple) else [to_keras_values(v) for v in x]


def shapes_of(x) -> tuple:
    """The input's shape, or a tuple of the shapes of several inputs."""
    return tuple(x.shape) if not isinstance(x, tuple) else tuple(tuple(v.shape) for v in x)


def numpy_of(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(ops.convert_to_numpy(value))


def functional_graph(model) -> Functional:
    if isinstance(model, keras.Sequential):
        inner = getattr(model, "_functional", None)
        if inner is None:
            raise UsageError(f"cannot trace Keras Sequential model {model.name!r}: it has no "
                             "input yet; start it with keras.Input(shape) or build it")
        return inner
    if isinstance(model, Functional):
        return model
    refuse_subclassed(model)


def refuse_unchosen_outputs(fn: Functional) -> None:
    """A graph of several outputs that --output has not chosen among: which ones the
    validation follows is the user's choice (a dict's keys, a list's positions)."""
    if len(fn.outputs) != 1:
        raise UsageError(f"cannot trace Keras model {fn.name!r}: it has "
                         f"{len(fn.outputs)} outputs; --output chooses the one or several "
                         "validated (KEY or KEY1,KEY2,...)")


def refuse_subclassed(model) -> None:
    """Refuses, saying why, a Keras model that is neither functional nor Sequential: the
    validator walks a graph, which a subclassed model's call() makes only when traced on an
    input (validate_port does that: tracing.py)."""
    if isinstance(model, (Functional, keras.Sequential)):
        return
    held = [layer.name for layer in getattr(model, "layers", [])]
    raise UsageError(f"cannot trace Keras model {getattr(model, 'name', model)!r} "
                     f"({type(model).__name__}, subclassed): layer-by-layer validation needs "
                     "the graph of a functional or Sequential model, and a subclassed "
                     "model's call() hides how its layers"
                     + (f" ({', '.join(held[:6])}{', ...' if len(held) > 6 else ''})"
                        if held else "")
                     + " connect; rebuild it with the functional API, or port it with "
                     "validate_port(..., port=...), which traces its call() on the inputs "
                     "(compare.py still compares it as a whole)")


def graph_nodes(fn: Functional):
    for depth in sorted(fn._nodes_by_depth, reverse=True):
        for node in fn._nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                yield node


_CROPPINGS = (layers.Cropping1D, layers.Cropping2D, layers.Cropping3D)


def croppings_after(fn: Functional, layer) -> list:
    """The cropping layers (1-D, 2-D or 3-D) that alone take a layer's output in fn, one after
    another: how a Keras port crops a transposed conv's output where PyTorch's padding does."""
    chain, current = [], layer
    while True:
        takers = [node.operation for node in graph_nodes(fn)
                  if any(inbound(t)[0] is current for t in node.input_tensors)]
        if len(takers) != 1 or not isinstance(takers[0], _CROPPINGS):
            return chain
        current = takers[0]
        chain.append(current)


class ModelFailed(UsageError):
    """The PyTorch model raised on the validator's input; `cause` is its error in one line."""

    def __init__(self, shape: tuple, cause: str, hint: str = ""):
        super().__init__(f"the PyTorch model failed on input {shape}: {cause}{hint}")
        self.cause = cause


def model_failed(model: nn.Module, x, exc: Exception) -> ModelFailed:
    """The PyTorch model's failure on the validator's input, in one line."""
    return ModelFailed(shapes_of(x), f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
                       token_ids_hint(model, several(x)))


class Failed:
    def __init__(self, message: str):
        self.message = message


@contextlib.contextmanager
def torch_mode(model: nn.Module, mode: str):
    """eval() or train() with noise layers off; the module's state and modes restored."""
    flags = {m: m.training for m in model.modules()}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # Off so that a TransformerEncoderLayer runs its attention and Dropout modules, whose
    # hooks see them, rather than one fused operation (eval mode without gradients).
    torch.backends.mha.set_fastpath_enabled(False)
    # A forward pass changes buffers only (BatchNorm running statistics), never parameters.
    saved = ({n: b.detach().clone() for n, b in model.named_buffers()}
             if mode == "training" else None)
    model.train(mode == "training")
    for module in model.modules():
        if is_noise(module):
            module.eval()
    # A stacked recurrent module's Dropout between its layers is a setting, not a module.
    between = {m: m.dropout for m in model.modules() if isinstance(m, nn.RNNBase)}
    for module in between:
        module.dropout = 0.0
    try:
        yield
    finally:
        for module, rate in between.items():
            module.dropout = rate
        torch.backends.mha.set_fastpath_enabled(fastpath)
        if saved is not None:
            with torch.no_grad():
                for name, buffer in model.named_buffers():
                    buffer.copy_(saved[name])
        for module, flag in flags.items():
            module.training = flag


def torch_trace(model: nn.Module, pairs: list[Pair], x: np.ndarray, mode: str,
                views: dict | None = None):
    """Each paired module's (input, output, call) and the model's output, as numpy. A module
    with a view (output_view) records its output through it, and its call (positional and
    keyword arguments, as tensors) for rerunning it; others record their call as None."""
    modules = dict(model.named_modules())
    views = views or {}
    records: dict[str, list] = {p.torch_module: [] for p in pairs}
    keys_by_module: dict[str, list[str]] = {}  # a stacked recurrent module's layers share one
    for pair in pairs:
        keys_by_module.setdefault(split_layer_key(pair.torch_module)[0], []).append(
            pair.torch_module)
    hooks = []
    for name, keys in keys_by_module.items():
        def hook(module, args, kwargs, output, keys=keys):
            for key, record in traced_calls(module, args, kwargs, output, keys, views):
                records[key].append(record)
        hooks.append(modules[name].register_forward_hook(hook, with_kwargs=True))
    try:
        with torch_mode(model, mode), torch.no_grad():
            device = next(model.parameters()).device
            output = _numpy_outputs(model(*torch_args(x, device)))
    except UsageError:
        raise
    except Exception as exc:  # the user's model refused the input
        raise model_failed(model, x, exc) from None
    finally:
        for h in hooks:
            h.remove()
    for name, calls in records.items():
        if len(calls) != 1:
            raise UsageError(f"cannot trace PyTorch module {name}: it ran {len(calls)} times in "
                             "one forward pass; the validator pairs modules that run exactly "
                             "once with one Keras layer")
    return {name: calls[0] for name, calls in records.items()}, output


def _numpy_outputs(output):
    """PyTorch's output as numpy: one array, or a tuple of them where the model returns
    several (--output's hook returns the chosen ones as a tuple)."""
    if isinstance(output, (tuple, list)):
        return tuple(value.detach().cpu().numpy() for value in output)
    return output.detach().cpu().numpy()


def outputs_of(value) -> tuple:
    """One output or several (a tuple or list of them) as a tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def training_of(op, training: bool) -> bool:
    """The training flag a Keras operation is called with in a pass: off for the random
    layers (keras.applications' ConvNeXt's StochasticDepth among them), and for a recurrent
    layer that drops within its steps (its training flag does nothing else), since their masks
    cannot match PyTorch's; the Dropout comparison names their rates."""
    return training and not (isinstance(op, _NOISE) or stochastic_depth_layer(op)
                             or step_dropping_layers(op))


def run_keras(fn: Functional, x, training: bool, watch: set[str],
              substitute: dict | None = None, inputs_seen: dict | None = None):
    """Run the graph node by node. Returns (outputs of watched layers, model output); the
    model output is a list where the graph has several (--output chose several).

    `substitute` maps layer names to values that flow on instead of what the layer
    computed (which is still recorded): the isolated pass. `inputs_seen`, where given, gets
    the first input of each operation it has as a key (an activation whose setting may
    be measured on it: operation_settings.py).
    """
    given = x if isinstance(x, (list, tuple)) else [x]
    values = {id(tensor): ops.convert_to_tensor(v) for tensor, v in zip(fn.inputs, given)}
    recorded = {}
    for node in graph_nodes(fn):
        op = node.operation
        inputs = [values.get(id(t)) for t in node.input_tensors]
        failed = next((v for v in inputs if isinstance(v, Failed) or v is None), False)
        if failed is not False:
            cause = failed.message if isinstance(failed, Failed) else "input missing"
            result = Failed(cause if cause.startswith("not computed") else
                            f"not computed, an earlier Keras operation failed ({cause})")
        else:
            args, kwargs = node.arguments.fill_in(values)
            if "training" in getattr(op, "_call_context_args", ()):
                kwargs["training"] = training_of(op, training)
            try:
                result = op(*args, **kwargs)
            except Exception as exc:
                result = Failed(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
        if op.name in watch:
            recorded[op.name] = result
        if inputs_seen is not None and op.name in inputs_seen:
            inputs_seen[op.name] = inputs[0]
        if substitute is not None and op.name in substitute:
            result = substitute[op.name]
        outputs = [result] * len(node.outputs) if isinstance(result, Failed) \
            else tree.flatten(result)
        for tensor, value in zip(node.outputs, outputs):
            values[id(tensor)] = value
    if len(fn.outputs) > 1:
        return recorded, [values.get(id(tensor)) for tensor in fn.outputs]
    return recorded, values.get(id(fn.outputs[0]))


@contextlib.contextmanager
def keras_state_kept(fn: Functional):
    """Restores what a forward pass may change: BatchNormalization's moving statistics."""
    variables = [v for layer in fn.layers if isinstance(layer, layers.BatchNormalization)
                 for v in (layer.moving_mean, layer.moving_variance)]
    saved = [ops.convert_to_numpy(v).copy() for v in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)
