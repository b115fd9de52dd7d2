"""A weightless operation set otherwise in each framework before a layer that agrees on
PyTorch's input: an activation (LeakyReLU's negative_slope, ELU's alpha, GELU's
approximate, ReLU6's clip against Keras's ReLU and a plain ReLU's against ReLU(6.0),
Softplus's beta, Hardtanh's min_val and max_val against keras.ops.hard_tanh), an
upsampling's mode (UpSampling2D's interpolation; UpSampling1D and 3D only repeat) and a bilinear
one's align_corners, an average pooling's count_include_pad (1-D, 2-D, 3-D; a pooling
padded otherwise: pool_padding.py). Found from the weightless
PyTorch modules that ran between two paired modules (forward hooks; a function forward()
calls, F.leaky_relu(x, 0.2) or F.interpolate, stands in as the module that computes the
same: function_calls.py), the Keras
operations between the paired layers, their settings where they can be read (or what Keras
computes where it has no such setting), and a rerun that measures whether the setting is
what differs. Only a measured difference is named (comparator/analysis/port_causes.py:
activation_setting, upsample_align_corners, upsample_interpolation,
avgpool_count_include_pad); otherwise the cause stays between_layers."""

from __future__ import annotations

import collections
import copy
import dataclasses
import functools
import inspect
import math
from typing import NamedTuple

import torch
from torch import nn

from adapters.keras.backend import keras  # noqa: F401 (fixes the torch backend first)
from keras import activations, layers, ops  # noqa: E402
from keras.src.ops import nn as keras_nn  # noqa: E402

from adapters.port_validation.graph import (  # noqa: E402
    Failed,
    numpy_of,
    to_keras_values,
    to_torch_values,
    torch_args,
    torch_mode,
)
from adapters.port_validation.function_calls import (  # noqa: E402
    FunctionCalls,
    called_function,
    module_kind,
)
from comparator.analysis.port_causes import OperationSetting  # noqa: E402
from comparator.analysis.tolerances import SETTING_MATCH_TOLERANCE  # noqa: E402
from comparator.analysis.validation import diverges, metrics  # noqa: E402

_READ = object()  # a family whose Keras operations keep the setting as an attribute


@dataclasses.dataclass(frozen=True)
class _Family:
    """One operation and its setting: PyTorch's module classes, the Keras layers and
    keras.ops operations that compute it, the functions a Keras Activation layer may hold
    (the setting read off their signature: Keras's default, or a functools.partial's), and
    the setting converted between the frameworks' terms. Where Keras has no such setting,
    keras_computes is the value it computes, in PyTorch's terms; keras_fix gives the words
    for the Keras side's fix from PyTorch's module, where it is not the setting."""

    name: str
    setting: str
    torch_classes: tuple
    keras_classes: tuple
    keras_functions: tuple = ()  # (keras.activations.f, keras.ops.f)
    code: str = "activation_setting"
    keras_computes: object = _READ
    to_torch: object = float  # Keras's value as PyTorch writes it
    to_keras: object = float  # PyTorch's value as Keras writes it
    keras_fix: object = None
    torch_setting: str = ""  # PyTorch's name for the setting, where it is not Keras's
    # PyTorch's module as one that keeps the setting as an attribute (nn.ReLU as a Hardtanh)
    torch_as: object = None

    @property
    def torch_attribute(self) -> str:
        return self.torch_setting or self.setting

    def held(self, module: nn.Module) -> nn.Module:
        return module if self.torch_as is None else self.torch_as(module)

    def torch_value(self, module: nn.Module):
        return getattr(self.held(module), self.torch_attribute)

    def fix_for(self, module: nn.Module) -> str:
        if self.keras_fix is not None:
            return self.keras_fix(module)
        return repr(self.to_keras(self.torch_value(module)))


def _clip_at(value) -> float:
    """Keras's ReLU max_value in PyTorch's terms: None clips nowhere (max_val=inf)."""
    return math.inf if value is None else float(value)


def _count_include_pad(rank: int) -> _Family:
    """AveragePooling1D, 2D and 3D average the values inside the input only."""
    return _Family(f"AvgPool{rank}d", "count_include_pad", (getattr(nn, f"AvgPool{rank}d"),),
                   (getattr(layers, f"AveragePooling{rank}D"),),
                   code="avgpool_count_include_pad", keras_computes=False, to_torch=bool,
                   to_keras=bool,
                   keras_fix=lambda module: f"ZeroPadding{rank}D({_one(module.padding)!r})")


def _one(padding):
    """nn.AvgPool1d keeps its padding as (1,); ZeroPadding1D takes 1."""
    return padding[0] if isinstance(padding, tuple) and len(set(padding)) == 1 else padding


def _without_corners(module: nn.Module) -> nn.Module:
    # F.interpolate refuses align_corners in a nearest mode: the rerun in Keras's mode drops it
    held = copy.deepcopy(module)
    held.align_corners = None
    return held


def _sequence_upsampling_fix(module: nn.Module) -> str:
    if module.mode != "linear":
        return f"no Keras layer upsamples a sequence with mode={module.mode!r}"
    return ("Reshape((length, 1, channels)), UpSampling2D((factor, 1), "
            "interpolation='bilinear') and Reshape((length * factor, channels)) compute "
            "mode='linear' with align_corners=False")


def _volume_upsampling_fix(module: nn.Module) -> str:
    return (f"no Keras layer upsamples a volume with mode={module.mode!r}: UpSampling3D only "
            "repeats (mode='nearest')")


def _clip_fix(module: nn.Module) -> str:
    return f"Activation(lambda t: keras.ops.clip(t, {module.min_val!r}, {module.max_val!r}))"


def _softplus_fix(module: nn.Module) -> str:
    return f"Activation(lambda t: keras.ops.softplus({module.beta!r} * t) / {module.beta!r})"


_UPSAMPLE_MODE = dict(code="upsample_interpolation", to_torch=str, to_keras=str,
                      torch_setting="mode", torch_as=_without_corners)

_FAMILIES = (
    _Family("LeakyReLU", "negative_slope", (nn.LeakyReLU,),
            (layers.LeakyReLU, keras_nn.LeakyRelu), (activations.leaky_relu, ops.leaky_relu)),
    _Family("ELU", "alpha", (nn.ELU,), (layers.ELU, keras_nn.Elu), (activations.elu, ops.elu)),
    # Keras's approximate=True is the tanh form, PyTorch's approximate='tanh'.
    _Family("GELU", "approximate", (nn.GELU,), (keras_nn.Gelu,), (activations.gelu, ops.gelu),
            to_torch=lambda approximate: "tanh" if approximate else "none",
            to_keras=lambda approximate: approximate == "tanh"),
    # ReLU6 is a Hardtanh whose max_val is 6; Keras's ReLU clips nowhere unless given
    # max_value (its default None: PyTorch's max_val=inf).
    _Family("ReLU6", "max_value", (nn.ReLU6,), (layers.ReLU,), torch_setting="max_val",
            to_torch=_clip_at),
    # The reverse: a plain ReLU clips nowhere, a Hardtanh(0, inf); Keras's ReLU(6.0) clips.
    _Family("ReLU", "max_value", (nn.ReLU,), (layers.ReLU,), torch_setting="max_val",
            to_torch=_clip_at, to_keras=lambda value: None if math.isinf(value) else value,
            torch_as=lambda module: nn.Hardtanh(0.0, math.inf)),
    # Keras's softplus has no beta (nor threshold: its torch backend's are 1 and 20).
    _Family("Softplus", "beta", (nn.Softplus,), (keras_nn.Softplus,),
            (activations.softplus, ops.softplus), keras_computes=1.0, keras_fix=_softplus_fix),
    # keras.ops.hard_tanh clips at -1 and 1, Hardtanh's defaults, and takes no setting.
    *(_Family("Hardtanh", setting, (nn.Hardtanh,), (keras_nn.HardTanh,),
              (activations.hard_tanh, ops.hard_tanh), keras_computes=value, keras_fix=_clip_fix)
      for setting, value in (("min_val", -1.0), ("max_val", 1.0))),
    # UpSampling2D resizes as align_corners=False does (nearest: None, which means the same);
    # nn.UpsamplingBilinear2d is an Upsample that aligns corners.
    _Family("Upsample", "align_corners", (nn.Upsample,), (layers.UpSampling2D,),
            code="upsample_align_corners", keras_computes=False, to_torch=bool, to_keras=bool,
            keras_fix=lambda module: ""),  # no Keras setting to give: words of its own
    # UpSampling2D's interpolation is PyTorch's mode ('nearest', 'bilinear');
    # UpSampling1D only repeats each step: mode='nearest'.
    _Family("Upsample", "interpolation", (nn.Upsample,), (layers.UpSampling2D,),
            **_UPSAMPLE_MODE),
    _Family("Upsample", "interpolation", (nn.Upsample,), (layers.UpSampling1D,),
            keras_computes="nearest", keras_fix=_sequence_upsampling_fix, **_UPSAMPLE_MODE),
    # UpSampling3D repeats along each axis too: mode='nearest' (measured equal).
    _Family("Upsample", "interpolation", (nn.Upsample,), (layers.UpSampling3D,),
            keras_computes="nearest", keras_fix=_volume_upsampling_fix, **_UPSAMPLE_MODE),
    *(_count_include_pad(rank) for rank in (1, 2, 3)),
)

# A softmax's axis names an axis of each framework's own layout (N, C, H, W against
# N, H, W, C), so no conversion of the value alone ports it: these families are read here
# (keras_setting) and measured through the layout in softmax_axis.py, not in _FAMILIES.
SOFTMAX_FAMILIES = tuple(
    _Family(name, "axis", (torch_class,), keras_classes, keras_functions, code="softmax_axis",
            to_torch=None, to_keras=None, torch_setting="dim")
    for name, torch_class, keras_classes, keras_functions in (
        ("Softmax", nn.Softmax, (layers.Softmax, keras_nn.Softmax),
         (activations.softmax, ops.softmax)),
        ("LogSoftmax", nn.LogSoftmax, (keras_nn.LogSoftmax,),
         (activations.log_softmax, ops.log_softmax))))


@dataclasses.dataclass(frozen=True)
class _KerasSetting:
    family: _Family
    value: object
    default: bool | None  # whether it is the holder's default; None: Keras has no setting
    kind: str  # the operation in words: "LeakyReLU", "Activation(keras.ops.gelu)"


@dataclasses.dataclass(frozen=True)
class FusedActivation:
    """The activation a paired Keras layer applies inside itself (Dense(activation=...)),
    as an operation of its own after the layer: PyTorch computes it after its Linear, as a
    module or a call, so it is read and measured as an Activation layer would be.
    name: "linear1's activation"; holder: "Dense"; input_of: the PyTorch module whose
    output (in Keras's layout, moves) the isolated pass feeds this activation."""

    name: str
    activation: object
    holder: str
    input_of: str
    moves: bool

    def __call__(self, x):
        return self.activation(x)


def keras_setting(op, families=_FAMILIES) -> _KerasSetting | None:
    """The family and setting of a Keras layer or operation (the first of these families
    that holds it), where it can be read (not from a lambda or a function of the user's
    own), or what it computes where it has none."""
    if isinstance(op, FusedActivation):
        return _fused_setting(op, families)
    for family in families:
        if isinstance(op, family.keras_classes):
            kind = (type(op).__name__ if isinstance(op, layers.Layer) else
                    f"keras.ops.{family.keras_functions[1].__name__}")
            if family.keras_computes is not _READ:
                return _KerasSetting(family, family.keras_computes, None, kind)
            default = inspect.signature(type(op)).parameters[family.setting].default
            value = getattr(op, family.setting)
            return _KerasSetting(family, value, _same(value, default), kind)
        if isinstance(op, layers.Activation):
            found = _held_setting(family, op.activation)
            if found is not None:
                return found
    return None


def _fused_setting(op: FusedActivation, families) -> _KerasSetting | None:
    """A fused activation's setting, worded as the layer holds it: "Dense(activation=
    keras.ops.gelu)"; a Keras layer given as the activation is read as that layer."""
    held = op.activation
    if isinstance(held, layers.Layer):
        found = keras_setting(held, families)
        return found and dataclasses.replace(found, kind=f"{op.holder}(activation={found.kind})")
    return next((found for family in families if (found := _held_setting(
        family, held, f"{op.holder}(activation={{}})")) is not None), None)


def partial_base(function):
    """The function a functools.partial (or a partial of one) calls; the function itself
    otherwise."""
    while isinstance(function, functools.partial):
        function = function.func
    return function


def _held_setting(family: _Family, function, holder: str = "Activation({})"
                  ) -> _KerasSetting | None:
    """The setting of a function a Keras Activation layer (or holder) holds, if it is the
    family's."""
    base = partial_base(function)
    if base not in family.keras_functions:
        return None
    where = "keras.activations" if base is family.keras_functions[0] else "keras.ops"
    name = f"{where}.{base.__name__}"
    if function is not base:
        name = f"functools.partial({name}, ...)"
    if family.keras_computes is not _READ:
        return _KerasSetting(family, family.keras_computes, None, holder.format(name))
    parameter = inspect.signature(function).parameters.get(family.setting)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    value = parameter.default
    default = inspect.signature(base).parameters[family.setting].default
    return _KerasSetting(family, value, _same(value, default), holder.format(name))


class TorchCall(NamedTuple):
    """One entry of PyTorch's running order: a module's name, the shape of its first input
    (None where that is not a tensor) and the module; or an operation forward() computes
    with a function, named for where it is called ("torch.nn.functional.softmax in
    head.forward(), call 1", which a module's dotted name would be only under modules named
    torch, nn and functional) with the module that computes the same (function_calls.py)."""

    name: str
    input_shape: tuple | None
    module: nn.Module


def torch_calls(model: nn.Module, x, mode: str, paired: set[str],
                keep: dict | None = None) -> list[TorchCall]:
    """The modules without children (and the paired modules) in the order their calls
    ended, in one forward pass in this mode, and the functions of function_calls.py that
    forward() calls outside them (inside them, the call is the module's own). keep: the
    positions in that order whose input to keep (a copy, in PyTorch's layout) as values."""
    calls, running, given, count = [], [], [], collections.Counter()
    recorded = {name for name, module in model.named_modules()
                if name in paired or not any(True for _ in module.children())}

    def kept(value):
        # copied when the call starts: an inplace module changes its input as it runs
        if keep is not None and isinstance(value, torch.Tensor):
            return value.detach().cpu().numpy().copy()
        return None

    def started(module, args, name):
        running.append(name)
        given.append(kept(args[0] if args else None))

    def ended(module, args, output, name):
        running.pop()
        first = given.pop()
        if name in recorded:
            if keep is not None and len(calls) in keep:
                keep[len(calls)] = first
            calls.append(TorchCall(name, _shape(args[0] if args else None), module))

    def function_called(function, stand_in, value):
        if recorded.isdisjoint(running):
            caller = f"{running[-1]}.forward()" if running and running[-1] else "forward()"
            count[caller, function] += 1
            if keep is not None and len(calls) in keep:
                keep[len(calls)] = kept(value)
            calls.append(TorchCall(f"{function} in {caller}, call {count[caller, function]}",
                                   _shape(value), stand_in))

    hooks = [hook for name, module in model.named_modules() for hook in (
        module.register_forward_pre_hook(functools.partial(started, name=name)),
        module.register_forward_hook(functools.partial(ended, name=name), always_call=True))]
    try:
        with torch_mode(model, mode), torch.no_grad(), FunctionCalls(function_called):
            device = next(model.parameters()).device
            model(*torch_args(x, device))
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def _shape(value) -> tuple | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def ran_between(order: list[str], paired: set[str], name: str) -> list[str]:
    """The modules that ran between `name` and the last paired module to run before it."""
    if name not in order:
        return []
    end = order.index(name)
    start = max((i for i in range(end) if order[i] in paired), default=-1)
    return order[start + 1:end]


def operation_setting(torch_modules: list[tuple[str, nn.Module]], keras_ops: list,
                      keras_inputs: dict) -> OperationSetting | None:
    """The first operation of one family on both sides (in running order) set otherwise,
    where the rerun confirms it: on the Keras operation's input, PyTorch's module gives
    another output than Keras's operation, and given Keras's setting it gives Keras's (both
    judged by SETTING_MATCH_TOLERANCE: finer than the layer's, since the layer after the
    operation sums its difference)."""
    for family in _FAMILIES:
        torch_side = [(n, m) for n, m in torch_modules if isinstance(m, family.torch_classes)]
        keras_side = [(op, found) for op in keras_ops
                      if (found := keras_setting(op, (family,))) is not None]
        for (name, module), (op, keras_set) in zip(torch_side, keras_side):
            if _same(family.to_keras(family.torch_value(module)), keras_set.value):
                continue
            found = _measured(name, module, op, keras_set, keras_inputs.get(op.name))
            if found is not None:
                return found
    return None


def _measured(name: str, module: nn.Module, op, keras_set: _KerasSetting,
              keras_input) -> OperationSetting | None:
    outputs = _outputs(module, op, keras_set, keras_input)
    if outputs is None:
        return None
    confirmed = confirmed_apart(*outputs)
    if confirmed is None:
        return None
    apart, left = confirmed
    family = keras_set.family
    torch_value = family.torch_value(module)
    # None where the class fixes it (nn.UpsamplingBilinear2d aligns corners, ReLU6 clips at 6);
    # a stand-in's class takes the setting as its function does, with the same default.
    torch_parameter = inspect.signature(type(module)).parameters.get(family.torch_attribute)
    return OperationSetting(
        family.code, family.name, family.setting, name, module_kind(module),
        repr(torch_value), None if torch_parameter is None else _same(
            torch_value, torch_parameter.default),
        op.name, keras_set.kind, repr(keras_set.value), keras_set.default,
        family.fix_for(module), repr(family.to_torch(keras_set.value)), apart.max_abs,
        left.max_abs, family.torch_attribute if torch_parameter is not None and
        family.torch_attribute != family.setting else "", called_function(module))


def confirmed_apart(keras_out, torch_out, redone):
    """(PyTorch's module against Keras, the rerun against Keras) where the module differs
    from Keras's operation and the rerun with Keras's setting gives Keras's output, both
    judged by SETTING_MATCH_TOLERANCE; None otherwise."""
    apart, left = metrics(keras_out, torch_out), metrics(keras_out, redone)
    if not diverges(apart, SETTING_MATCH_TOLERANCE) or diverges(left, SETTING_MATCH_TOLERANCE):
        return None
    return apart, left


def _outputs(module: nn.Module, op, keras_set: _KerasSetting, keras_input):
    """On the Keras operation's input: Keras's output, PyTorch's module's, and that of the
    module given Keras's setting; None where the input is missing or does not fit."""
    if keras_input is None or isinstance(keras_input, Failed):
        return None
    x = numpy_of(keras_input)
    swapped = copy.deepcopy(keras_set.family.held(module))
    setattr(swapped, keras_set.family.torch_attribute,
            keras_set.family.to_torch(keras_set.value))
    try:
        keras_out = numpy_of(op(ops.convert_to_tensor(x)))
        torch_out = run_torch_on_keras_values(module, x)
        swapped_out = run_torch_on_keras_values(swapped, x)
    except Exception:  # an operation takes more than, or another, input: nothing measured
        return None
    if keras_out.shape != torch_out.shape:
        return None
    return keras_out, torch_out, swapped_out


def run_torch_on_keras_values(module: nn.Module, keras_x):
    """The module on a Keras-layout activation, moved to PyTorch's layout and back (a copy:
    an inplace module must not change the input the next run takes)."""
    with torch.no_grad():
        value = module(torch.from_numpy(to_torch_values(keras_x).copy()))
    return to_keras_values(numpy_of(value))


def _same(a, b) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) if numbers else a == b
