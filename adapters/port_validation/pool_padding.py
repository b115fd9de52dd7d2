"""A pooling padded otherwise in each framework before a layer that agrees on PyTorch's
input: PyTorch's MaxPool or AvgPool (1d, 2d, 3d) pads `padding` on both sides, Keras's
MaxPooling or AveragePooling (1D, 2D, 3D) with 'same' pads what the stride leaves over, the
larger half after ((0, 1) for a window of 3, stride 2, on an even size: torchvision's ResNet
stem ported with 'same'). A padding module or F.pad call right before PyTorch's pooling
counts in its padding, and a ZeroPadding layer right before Keras's (then 'same' or
'valid') in Keras's: zeros before a MaxPool2d, against 'same', which leaves its padding
out of a maximum. Named (comparator/analysis/port_causes.py: pool_padding) only where it is
measured: on the Keras input of the first padding (or the pooling), PyTorch's padding and
pooling give another output than Keras's, and the same pooling padded as Keras pads it
gives Keras's. Where 'same' pads one side more, Keras 3.15.1's torch backend repeats the
edge values there (torch's 'replicate' padding) and pools without padding: a maximum as
with PyTorch's -inf padding, an average over the repeated values too; where it pads both
sides alike, it gives the pooling that padding, an average leaving it out (read from
keras/src/backend/torch/nn.py, and measured: equal, tests/test_validate_port_pool_pads.py).
Other backends and versions leave an uneven padding out of an average too, so that rerun
tries both (_uneven_fills)."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adapters.keras.backend import keras  # noqa: F401 (fixes the torch backend first)
from keras import layers  # noqa: E402

from adapters.port_validation.function_calls import (  # noqa: E402
    called_function,
    module_kind,
)
from adapters.port_validation.graph import Failed, numpy_of, to_torch_values  # noqa: E402
from adapters.port_validation.operation_settings import confirmed_apart  # noqa: E402
from adapters.port_validation.padding_modes import (  # noqa: E402
    module_pads,
    pads_before,
    padding_fill,
)
from adapters.port_validation.tracing import inbound  # noqa: E402
from comparator.analysis.port_causes import OperationSetting, PoolRounding  # noqa: E402
from comparator.analysis.tolerances import SETTING_MATCH_TOLERANCE  # noqa: E402
from comparator.analysis.validation import diverges, metrics  # noqa: E402

# Keras's torch backend pads and pools each rank by the same code (max_pool, average_pool).
_POOLS = ((nn.MaxPool1d, layers.MaxPooling1D), (nn.AvgPool1d, layers.AveragePooling1D),
          (nn.MaxPool2d, layers.MaxPooling2D), (nn.AvgPool2d, layers.AveragePooling2D),
          (nn.MaxPool3d, layers.MaxPooling3D), (nn.AvgPool3d, layers.AveragePooling3D))
_ZERO_PADDINGS = (layers.ZeroPadding1D, layers.ZeroPadding2D, layers.ZeroPadding3D)


def pool_padding(torch_modules: list[tuple[str, nn.Module]], keras_ops: list,
                 keras_inputs: dict) -> OperationSetting | None:
    """The first pooling of one kind on both sides (in running order) that Keras pads
    otherwise than PyTorch, where the rerun confirms it. The padding modules and F.pad
    calls that ran right before PyTorch's pooling count in its padding, and the
    ZeroPadding layers right before Keras's in Keras's."""
    order, ran = [n for n, _ in torch_modules], dict(torch_modules)
    for torch_class, keras_class in _POOLS:
        torch_side = [(n, m) for n, m in torch_modules
                      if isinstance(m, torch_class) and _plain(m)]
        keras_side = [op for op in keras_ops if isinstance(op, keras_class)
                      and op.padding in ("same", "valid") and op.data_format == "channels_last"]
        for (name, module), op in zip(torch_side, keras_side):
            torch_chain = _TorchChain(name, module, pads_before(order, ran, name))
            keras_chain = _KerasChain(op, _zero_paddings_before(op, keras_ops))
            found = _measured(torch_chain, keras_chain, keras_inputs.get(keras_chain.first.name))
            if found is not None:
                return found
    return None


def keras_pooling(op) -> bool:
    """Whether pool_padding may measure this Keras operation or the padding before one (its
    input is then kept)."""
    return isinstance(op, (*(keras_class for _, keras_class in _POOLS), *_ZERO_PADDINGS))


def _plain(module: nn.Module) -> bool:
    """A pooling whose output Keras's can have: no ceil_mode, dilation, divisor or indices."""
    return not module.ceil_mode and set(_tuple(getattr(module, "dilation", 1), 1)) == {1} and \
        getattr(module, "divisor_override", None) is None and \
        not getattr(module, "return_indices", False)


@dataclasses.dataclass(frozen=True)
class _TorchChain:
    """PyTorch's pooling and the padding modules (or F.pad calls' stand-ins) that ran right
    before it, in running order, each with its name there."""

    name: str
    module: nn.Module
    pads: tuple

    def run(self, x: torch.Tensor) -> torch.Tensor:
        for _, pad in self.pads:
            x = pad(x)
        return self.module(x)

    def own(self, rank: int):
        return tuple((p, p) for p in _tuple(self.module.padding, rank))

    def amounts(self, rank: int):
        return _summed(*(module_pads(p, rank) for _, p in self.pads), self.own(rank))

    def fills(self, rank: int) -> list[str]:
        """How each padding fills, where it pads: 'zeros', 'constant -inf', 'reflect', ...;
        the pooling's own as PyTorch pools it."""
        fills = [padding_fill(p) for _, p in self.pads
                 if any(any(side) for side in module_pads(p, rank))]
        if any(any(side) for side in self.own(rank)):
            fills.append("zeros" if getattr(self.module, "count_include_pad", False) else
                         "left out" if hasattr(self.module, "count_include_pad") else
                         "constant -inf")
        return fills


@dataclasses.dataclass(frozen=True)
class _KerasChain:
    """Keras's pooling and the ZeroPadding layers right before it, first first."""

    op: object
    paddings: tuple

    @property
    def first(self):
        return self.paddings[0] if self.paddings else self.op

    def run(self, x):
        for padding in self.paddings:
            x = padding(x)
        return self.op(x)

    def zeros(self, rank: int):
        return _summed(*(_zero_padding_pads(p, rank) for p in self.paddings), ((0, 0),) * rank)


def _zero_paddings_before(op, keras_ops: list) -> tuple:
    """The ZeroPadding layers (channels-last) that alone lead into this operation among
    `keras_ops` (the operations between two paired layers), first first."""
    between, chain = {id(o) for o in keras_ops}, []
    current = op
    while True:
        inputs = current._inbound_nodes[0].input_tensors if current._inbound_nodes else []
        before = inbound(inputs[0])[0] if len(inputs) == 1 else None
        if not (isinstance(before, _ZERO_PADDINGS) and id(before) in between
                and before.data_format == "channels_last"):
            return tuple(reversed(chain))
        chain.append(before)
        current = before


def _zero_padding_pads(layer, rank: int):
    padding = layer.padding
    pairs = (tuple(padding),) if isinstance(layer, layers.ZeroPadding1D) else \
        tuple(tuple(pair) for pair in padding)
    return pairs if len(pairs) == rank else ((0, 0),) * rank


def _summed(*pads):
    return tuple((sum(p[axis][0] for p in pads), sum(p[axis][1] for p in pads))
                 for axis in range(len(pads[-1])))


def _measured(torch_chain: _TorchChain, keras_chain: _KerasChain,
              keras_input) -> OperationSetting | None:
    if keras_input is None or isinstance(keras_input, Failed):
        return None
    x = torch.from_numpy(to_torch_values(numpy_of(keras_input)).copy())
    rank, op = x.ndim - 2, keras_chain.op
    zeros = keras_chain.zeros(rank)
    same = _same_pads([n + a + b for n, (a, b) in zip(x.shape[2:], zeros)],
                      _tuple(op.pool_size, rank), _tuple(op.strides, rank)) \
        if op.padding == "same" else ((0, 0),) * rank
    plain = not torch_chain.pads and not keras_chain.paddings
    if plain and (op.padding != "same" or _summed(zeros, same) == torch_chain.amounts(rank)):
        return None  # without padding before either pooling, only 'same' pads otherwise
    try:
        with torch.no_grad():
            keras_out = to_torch_values(numpy_of(keras_chain.run(numpy_of(keras_input))))
            torch_out = torch_chain.run(x).numpy()
            reruns = {fill: _padded_as_keras(torch_chain.module, x, zeros, same, fill).numpy()
                      for fill in _uneven_fills(torch_chain.module, same)}
    except Exception:  # an input of another rank than the pooling's: nothing measured
        return None
    if any(keras_out.shape != out.shape for out in (torch_out, *reruns.values())):
        return None
    fill = min(reruns, key=lambda f: float(np.abs(reruns[f] - keras_out).max()))
    confirmed = confirmed_apart(keras_out, torch_out, reruns[fill])
    if confirmed is None:
        return None
    return _setting(torch_chain, keras_chain, rank, zeros, same, fill, confirmed)


# How Keras fills what 'same' pads on one side more, in an average: Keras 3.15.1 (and 3.10.0)
# on torch repeats the edge values and counts them; on TensorFlow and JAX, and
# keras-nightly 3.16.0.dev2026102704 on torch, the average leaves the padded positions out
# (measured, docs/port-validation.md). The rerun tries both and keeps the one that gives
# Keras's output.
_EDGES, _LEFT_OUT = "edge values repeated", "padded positions left out"


def _uneven_fills(module: nn.Module, same) -> tuple[str, ...]:
    average = hasattr(module, "count_include_pad")
    return (_EDGES, _LEFT_OUT) if average and not _even(same) else (_EDGES,)


def _setting(torch_chain: _TorchChain, keras_chain: _KerasChain, rank: int, zeros, same,
             fill: str, confirmed) -> OperationSetting:
    (apart, left), module, op = confirmed, torch_chain.module, keras_chain.op
    keras_pads = _summed(zeros, same)
    plain = not torch_chain.pads and not keras_chain.paddings
    fix = (f"PyTorch's {torch_chain.name} pads both sides alike, Keras's {op.name} with "
           f"'same' what the stride leaves over, the larger half after: "
           f"{_fix(module, torch_chain.own(rank), hasattr(module, 'count_include_pad'))}"
           if plain else _padded_before_fix(torch_chain, keras_chain, rank, zeros, same, fill))
    return OperationSetting(
        "pool_padding", module_kind(module), "padding", torch_chain.name, module_kind(module),
        _torch_words(torch_chain, rank), False, op.name, type(op).__name__,
        _keras_words(keras_chain, rank, same), False, fix,
        f"{_pads_words(keras_pads)} ({_keras_fill_words(zeros, same, fill)}, as Keras pads)",
        apart.max_abs, left.max_abs, torch_function=called_function(module))


def _torch_words(torch_chain: _TorchChain, rank: int) -> str:
    """'(1, 1)', or with padding before the pooling '0, after (0, 1) of zeros
    (torch.nn.functional.pad in forward(), call 1)'."""
    before = [f"{_pads_words(module_pads(p, rank))} of {padding_fill(p)} "
              f"({name if called_function(p) else f'{name}, {module_kind(p)}'})"
              for name, p in torch_chain.pads]
    own = torch_chain.own(rank)
    if not before:
        return _pads_words(own)
    return f"{_pads_words(own) if any(map(any, own)) else 0}, after {' and '.join(before)}"


def _keras_words(keras_chain: _KerasChain, rank: int, same) -> str:
    op = keras_chain.op
    words = (f"'same' (pads {_pads_words(same)} on this input)" if op.padding == "same"
             else "'valid'")
    before = [f"{p.name} ({type(p).__name__}) {_pads_words(_zero_padding_pads(p, rank))}"
              for p in keras_chain.paddings]
    return f"{words}, after {' and '.join(before)}" if before else words


def _keras_fill_words(zeros, same, fill: str) -> str:
    """How the rerun pads, as Keras does: the ZeroPadding layers' zeros, then 'same''s
    (fill: how, where one side has more)."""
    fills = ["zeros"] if any(any(pair) for pair in zeros) else []
    if any(any(pair) for pair in same):
        fills.append(_LEFT_OUT if _even(same) else fill)
    return ", then ".join(fills) or "none"


def _even(pads) -> bool:
    return all(before == after for before, after in pads)


def _tuple(value, rank: int) -> tuple[int, ...]:
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _same_pads(size, window, strides) -> tuple[tuple[int, int], ...]:
    """What Keras's 'same' pads on each spatial axis: what the stride leaves over, the
    larger half after."""
    pads = []
    for n, k, s in zip(size, window, strides):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def _padded_as_keras(module: nn.Module, x: torch.Tensor, zeros, same,
                     fill: str) -> torch.Tensor:
    """PyTorch's pooling without its own padding on `x` padded as Keras pads it: the
    ZeroPadding layers' zeros, then 'same''s as Keras 3.15.1's torch backend pads
    (keras/src/backend/torch/nn.py): where even, as the pooling's padding, an average
    leaving it out; where one side has more, as `fill` says."""
    x = F.pad(x, _flat(zeros))
    unpadded = copy.deepcopy(module)
    unpadded.padding = 0
    if _even(same):
        unpadded.padding = tuple(before for before, _ in same)
        if hasattr(unpadded, "count_include_pad"):
            unpadded.count_include_pad = False
    elif fill == _LEFT_OUT:
        # zeros add nothing to a window's sum; the same pooling of ones counts the rest
        ones = torch.ones_like(x[:1, :1])
        return unpadded(F.pad(x, _flat(same))) / unpadded(F.pad(ones, _flat(same)))
    else:
        x = F.pad(x, _flat(same), mode="replicate")
    return unpadded(x)


def _flat(pads) -> tuple[int, ...]:
    """As F.pad takes them: the last axis's pair first."""
    return tuple(p for pair in reversed(pads) for p in pair)


def _pads_words(pads) -> str:
    return str(pads[0]) if len(set(pads)) == 1 else str(tuple(pads))


def _fix(module: nn.Module, torch_pads, average: bool) -> str:
    padding = torch_pads[0][0] if len(set(torch_pads)) == 1 else \
        tuple(p for p, _ in torch_pads)
    if average and not module.count_include_pad:
        return "no Keras pooling layer pads both sides and averages only the values inside"
    exact = "" if average else (" (zeros stand for PyTorch's -inf padding where the input is "
                                "not negative, as after a ReLU)")
    return (f"pad with ZeroPadding{len(torch_pads)}D({padding!r}){exact} and pool with "
            f"padding='valid'")


def _padded_before_fix(torch_chain: _TorchChain, keras_chain: _KerasChain, rank: int,
                       zeros, same, fill: str) -> str:
    """Why the windows differ where a padding runs before either pooling, and the ports
    that give PyTorch's (in Keras) or keep Keras's 'same' (in PyTorch, a maximum)."""
    torch_pads, keras_pads = torch_chain.amounts(rank), _summed(zeros, same)
    maximum = not hasattr(torch_chain.module, "count_include_pad")
    fills = " and ".join(dict.fromkeys(torch_chain.fills(rank))) or "nothing"
    keras_fills = _keras_fill_words(zeros, same, fill) + (
        " (in a maximum, as padding with -inf)" if maximum and any(map(any, same)) else "")
    why = (f"PyTorch pads {_pads_words(torch_pads)} in all, Keras {_pads_words(keras_pads)}: "
           "the windows sit otherwise" if torch_pads != keras_pads else
           f"both pad {_pads_words(torch_pads)}, PyTorch with {fills}, Keras with "
           f"{keras_fills}")
    fix = _keras_side_fix(torch_chain.fills(rank), torch_pads)
    if maximum and keras_chain.op.padding == "same" and not keras_chain.paddings:
        fix += (f"; or keep Keras's 'same' and pad in PyTorch as it does: "
                f"F.pad(x, {_flat(keras_pads)}, value=float('-inf')) before a pooling "
                "without padding of its own, as timm's MaxPool2dSame pads")
    return f"{why}: {fix}"


def _keras_side_fix(fills: list[str], torch_pads) -> str:
    """The Keras padding that gives PyTorch's windows and values, or why none does."""
    layer = f"ZeroPadding{len(torch_pads)}D({_zero_padding_argument(torch_pads)!r})"
    kinds = set(fills)
    if kinds <= {"zeros"}:
        return f"in Keras pad with {layer} and pool with padding='valid'"
    if kinds <= {"zeros", "constant -inf"}:
        return (f"in Keras pad with {layer} (zeros stand for PyTorch's -inf where the input "
                "is not negative, as after a ReLU) and pool with padding='valid'")
    if "left out" in kinds:
        return "no Keras pooling layer pads both sides and averages only the values inside"
    return (f"in Keras pad {_pads_words(torch_pads)} as PyTorch does ({', '.join(kinds)}: "
            "keras.ops.pad in a layer of your own) and pool with padding='valid'")


def _zero_padding_argument(pads):
    """ZeroPaddingND's argument for these pads: 1, (1, 2), ((0, 1), (0, 1))."""
    if _even(pads):
        return pads[0][0] if len(set(pads)) == 1 else tuple(before for before, _ in pads)
    return pads[0] if len(pads) == 1 else tuple(pads)


def pool_rounding(torch_modules: list[tuple[str, nn.Module]], keras_ops: list,
                  keras_inputs: dict) -> PoolRounding | None:
    """The first pooling of one kind that PyTorch rounds up (ceil_mode=True: GoogLeNet's and
    SqueezeNet's) where Keras's, with 'valid', rounds down, where the rerun confirms it: on
    the Keras pooling's input, PyTorch's module gives another output size, and given
    ceil_mode=False it gives Keras's output."""
    for torch_class, keras_class in _POOLS:
        torch_side = [(n, m) for n, m in torch_modules
                      if isinstance(m, torch_class) and m.ceil_mode]
        keras_side = [op for op in keras_ops if isinstance(op, keras_class)
                      and op.padding == "valid" and op.data_format == "channels_last"]
        for (name, module), op in zip(torch_side, keras_side):
            found = _rounding_measured(name, module, op, keras_inputs.get(op.name))
            if found is not None:
                return found
    return None


def _rounding_measured(name: str, module: nn.Module, op, keras_input) -> PoolRounding | None:
    if keras_input is None or isinstance(keras_input, Failed):
        return None
    x = torch.from_numpy(to_torch_values(numpy_of(keras_input)).copy())
    floor = copy.deepcopy(module)
    floor.ceil_mode = False
    try:
        with torch.no_grad():
            keras_out = to_torch_values(numpy_of(op(numpy_of(keras_input))))
            torch_out, redone = module(x).numpy(), floor(x).numpy()
    except Exception:  # an input of another rank than the pooling's: nothing measured
        return None
    if torch_out.shape == keras_out.shape or redone.shape != keras_out.shape:
        return None
    left = metrics(keras_out, redone)
    if diverges(left, SETTING_MATCH_TOLERANCE):
        return None
    rank = x.ndim - 2
    window, strides = _tuple(module.kernel_size, rank), _tuple(module.stride, rank)
    pads = _tuple(module.padding, rank)
    extra = tuple((out - 1) * s + k - (n + 2 * p) for out, s, k, n, p in
                  zip(torch_out.shape[2:], strides, window, x.shape[2:], pads))
    return PoolRounding(name, module_kind(module), op.name, type(op).__name__,
                        tuple(torch_out.shape[2:]), tuple(keras_out.shape[2:]), left.max_abs,
                        _rounding_fix(module, pads, extra))


def _rounding_fix(module: nn.Module, pads, extra) -> str:
    """Keras's pooling has no ceil_mode: the padding that gives PyTorch's windows."""
    if hasattr(module, "count_include_pad"):
        return ("no Keras pooling layer pads the end of an axis and averages a window there "
                "over the values inside only")
    sides = tuple((p, p + e) for p, e in zip(pads, extra))
    padding = sides[0] if len(sides) == 1 else sides
    return (f"pad with ZeroPadding{len(sides)}D({padding!r}) (zeros stand for PyTorch's -inf "
            "where the input is not negative, as after a ReLU) and pool with padding='valid'")
