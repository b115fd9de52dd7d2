"""A tensor that a PyTorch module of the user's own holds directly, outside any torch.nn
layer, and that forward() multiplies a value by, adds to it or concatenates before it.
torchvision's ConvNeXt block computes `self.layer_scale * self.block(input)`, layer_scale
an nn.Parameter (C, 1, 1), one number per channel; a ViT or BERT adds its learned
positions, (1, L, D), to its tokens; a ViT repeats its class token, (1, 1, D), over the
batch and concatenates it before its tokens. A Keras port holds such a tensor in a layer of
one weight that does the same with its input (keras.applications' ConvNeXt: LayerScale,
gamma (C,), x * gamma).

Such a tensor is ported by element order (`bare_shape`): channel order on both sides where
it has at most one axis longer than 1, and the same array, but for leading axes of 1,
where it has more (positions over tokens, which both frameworks lay out as N, L, D).
Validating it takes one forward pass (`scale_uses`), which checks that forward() uses it
so with exactly one value, and along which axis of that value. While `scales_as_layers` is
active, each such tensor stands as a ParameterScale (ParameterOffset, ParameterPrefix): a
module registered in its owner under the tensor's own name, whose output is the product
(the sum, the value with the token first). The owner's forward runs in a TorchFunctionMode
that hands that operation to it, so that forward hooks, the running order and the reruns of
the validator see it as a paired module whose input is the value multiplied (the block's
output), added to or concatenated after (the tokens)."""

from __future__ import annotations

import contextlib
import dataclasses
import weakref

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

# `a * b` reaches a TorchFunctionMode as Tensor.mul (torch 2.14.1); the others as written.
# In place too (timm's LayerScale(inplace=True): `x.mul_(self.gamma)`): the stand-in gives
# the product as a new tensor, and the model's outputs with it standing are held to its own.
_MULTIPLY = {torch.mul, torch.multiply, torch.Tensor.mul, torch.Tensor.multiply,
             torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.Tensor.mul_,
             torch.Tensor.__imul__}
# `a + b` and `a += b` reach it as Tensor.add and Tensor.add_ (torch 2.14.1, measured).
_ADD = {torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__,
        torch.Tensor.add_, torch.Tensor.__iadd__}
# A class token (timm's and torchvision's ViTs) is expanded over the batch and concatenated
# before the tokens: `torch.cat([self.cls_token.expand(n, -1, -1), x], dim=1)`.
_EXPAND = {torch.Tensor.expand, torch.Tensor.expand_as}
_CONCATENATE = {torch.cat, torch.concat, torch.concatenate}
_OPERATIONS = {"multiplies": _MULTIPLY, "adds": _ADD, "prepends": _CONCATENATE}
# What lays a tensor's numbers out in another shape, in the same order: timm's LayerScale2d
# and ConvNeXt block multiply by `gamma.view(1, -1, 1, 1)` and `gamma.reshape(1, -1, 1, 1)`.
_RESHAPE = {torch.reshape, torch.Tensor.reshape, torch.Tensor.view, torch.unsqueeze,
            torch.Tensor.unsqueeze}


def _reshaped(func, args, result) -> torch.Tensor | None:
    """The tensor whose numbers this call laid out anew, in the same order, or repeated
    over the batch (expand), or None."""
    if not (args and isinstance(args[0], torch.Tensor) and isinstance(result, torch.Tensor)):
        return None
    if func in _EXPAND or (func in _RESHAPE and result.numel() == args[0].numel()):
        return args[0]
    return None


def _concatenated(args, kwargs) -> tuple[list, int]:
    """torch.cat's tensors and axis, as given."""
    tensors = args[0] if args else kwargs.get("tensors", ())
    return list(tensors), (args[1] if len(args) > 1 else kwargs.get("dim", 0))


def holds_bare(module: nn.Module) -> bool:
    """A module of the user's own class (not torch's) with modules inside: a tensor it
    holds itself it holds outside any layer (a ConvNeXt block's layer_scale, a ViT's
    learned positions). Or a leaf of such a class whose whole state is one parameter (timm's
    LayerScale and LayerScale2d: `x * self.gamma`): scale_uses then measures whether its
    forward multiplies a value by it. Any other leaf of an unknown class is a layer of a
    kind the validator does not know."""
    if type(module).__module__.startswith("torch."):
        return False
    if any(not isinstance(child, ParameterScale) for child in module.children()):
        return True
    return len(module._parameters) == 1 and not module._buffers


def joined(owner: str, name: str) -> str:
    return f"{owner}.{name}" if owner else name


def candidates(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """(owner, attribute) of each parameter held outside any layer, by its full name: what
    can scale a value, be added to one or be concatenated before one."""
    return {joined(owner, name): (module, name)
            for owner, module in model.named_modules() if holds_bare(module)
            for name, p in module.named_parameters(recurse=False)}


def bare_shape(shape) -> tuple[int, ...]:
    """What a tensor held outside any layer is ported as, in either framework: its numbers
    in one row where at most one axis is longer than 1 (a scale's (C, 1, 1) is Keras's
    (C,)), else its shape without its leading axes of 1 (positions (1, L, D), which Keras
    may hold as (L, D))."""
    shape = tuple(int(d) for d in shape)
    if sum(d > 1 for d in shape) <= 1:
        return (int(np.prod(shape)),)
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


# The port kind (comparator/zoo/portmaps.py) and the Keras layer's kind (own_pair/pairing.py)
# of a tensor forward() uses so.
KINDS = {"multiplies": "scale", "adds": "offset", "prepends": "prefix"}


def scale_kind(shape, kind: str = "scale") -> str:
    """The port kind of a scale (an offset, a prefix: KINDS) of this PyTorch shape."""
    return f"{kind}:" + ",".join(str(int(d)) for d in shape)


@dataclasses.dataclass(frozen=True)
class Scale:
    """How forward() multiplies by a candidate, adds it, or concatenates it before a value:
    the value's rank, the axis of the value the tensor's numbers lie along (None for one
    number; the first of them where several axes are longer than 1; the axis concatenated
    along, for "prepends"), the module whose output the value is ("" where none gave it),
    the shape forward() gives the tensor first (its own where it uses it as it is, or
    repeats it over the batch), and the operation, "multiplies", "adds" or "prepends"."""

    rank: int
    axis: int | None
    producer: str
    shape: tuple[int, ...] = ()
    operation: str = "multiplies"


class ParameterScale(nn.Module):
    """Stands for the parameter `name` of `owner`: its output is its input times it."""

    def __init__(self, owner: nn.Module, name: str, scale: Scale):
        super().__init__()
        # held as a plain attribute: the owner holds this module, not the other way round
        object.__setattr__(self, "owner", owner)
        self.name, self.scale = name, scale

    def forward(self, x):
        return self.held() * x

    def held(self) -> torch.Tensor:
        """The owner's tensor, in the shape forward() uses it in."""
        tensor = self.owner._parameters[self.name]
        if self.scale.shape and tuple(tensor.shape) != self.scale.shape:
            tensor = tensor.reshape(self.scale.shape)
        return tensor

    def extra_repr(self) -> str:
        return f"{self.name}, axis={self.scale.axis}"


class ParameterOffset(ParameterScale):
    """Stands for the parameter `name` of `owner`: its output is its input plus it."""

    def forward(self, x):
        return x + self.held()


class ParameterPrefix(ParameterScale):
    """Stands for the parameter `name` of `owner`, a class token: its output is the tensor,
    repeated over the batch, concatenated before its input along the scale's axis."""

    def forward(self, x):
        token = self.held()
        return torch.cat([token.expand(x.shape[0], *token.shape[1:]), x], dim=self.scale.axis)


_STAND_INS = {"multiplies": ParameterScale, "adds": ParameterOffset,
              "prepends": ParameterPrefix}


def stand_in_for(owner: nn.Module, name: str, scale: Scale) -> ParameterScale:
    return _STAND_INS[scale.operation](owner, name, scale)


def on_last_axis(module: nn.Module) -> bool:
    """A ParameterScale whose numbers lie along its input's last axis (the channels of a
    channels-last map, as in the original ConvNeXt's `self.gamma * x` before the permute):
    its values are laid out as Keras's already, whatever their rank."""
    if not isinstance(module, ParameterScale):
        return False
    scale = module.scale
    return scale.axis is not None and scale.axis == scale.rank - 1


class _Uses(TorchFunctionMode):
    """Records every torch function computed with a watched tensor (by id: a live object's
    id is its own), and which module's output each tensor is."""

    def __init__(self, watched: dict[int, str], names: dict[nn.Module, str]):
        super().__init__()
        self.watched, self.names = watched, names
        self.shapes = {name: None for name in watched.values()}  # each candidate's own
        self.uses: dict[str, list[Scale | str]] = {name: [] for name in watched.values()}
        self.outputs: dict[int, tuple[weakref.ref, str]] = {}
        self.reshaped: list[torch.Tensor] = []  # kept alive, so that their ids stay theirs
        self.expanded: set[int] = set()
        self.first_use: dict[str, tuple[int, int]] = {}  # (call, -place among its operands)
        self._calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        source = _reshaped(func, args, result)
        if source is not None and id(source) in self.watched:
            # Not a use: the multiplication by the reshaped tensor is (_use).
            name = self.watched[id(result)] = self.watched[id(source)]
            self.shapes[name] = self.shapes[name] or tuple(source.shape)
            self.reshaped.append(result)
            if func in _EXPAND or id(source) in self.expanded:
                self.expanded.add(id(result))
            return result
        if isinstance(result, torch.Tensor):  # not a shape or a dtype read off the tensor
            for place, leaf in enumerate(tree_leaves((args, kwargs))):
                name = self.watched.get(id(leaf))
                if name is not None:
                    self.uses[name].append(self._use(func, args, kwargs, leaf, result))
                    # of tokens concatenated before one value, the last runs first
                    self.first_use.setdefault(name, (self._calls, -place))
        self._calls += 1
        return result

    def in_running_order(self, names) -> list[str]:
        """`names` in the order their stand-ins run: by first use, those unused last."""
        last = (self._calls, 0)
        return sorted(names, key=lambda name: self.first_use.get(name, last))

    def _use(self, func, args, kwargs, held, result) -> Scale | str:
        """A Scale where this call multiplies one value by the tensor or adds it to one,
        keeping the value's shape, or concatenates it before one; else what the call does
        with it, in words."""
        what = getattr(func, "__name__", str(func))
        what = what[2:-2] if what.startswith("__") else what
        operation = next((op for op, funcs in _OPERATIONS.items() if func in funcs), None)
        if operation == "prepends":
            return self._prepended(args, kwargs, held)
        if operation is None or kwargs or len(args) != 2:
            return f"computes {what} with it"
        if id(held) in self.expanded:
            return f"repeats it over the batch (expand), then computes {what} with it"
        other = args[1] if args[0] is held else args[0]
        if not isinstance(other, torch.Tensor) or other is held or \
                tuple(result.shape) != tuple(other.shape):
            return ("multiplies by it a value of another shape, or no tensor"
                    if operation == "multiplies" else
                    "adds it to a value of another shape, or to no tensor")
        long = [i for i, d in enumerate(held.shape) if d > 1]
        axis = other.ndim - held.ndim + long[0] if long else None
        return Scale(other.ndim, axis, self.producer(other), tuple(held.shape), operation)

    def _prepended(self, args, kwargs, held) -> Scale | str:
        """A Scale where torch.cat puts the tensor, as it is or repeated over the batch,
        before one value, alone (a class token) or among other such tensors (timm's
        register tokens after its class token: each stands before what follows it)."""
        tensors, axis = _concatenated(args, kwargs)
        place = next(i for i, t in enumerate(tensors) if t is held)
        if len(tensors) < 2 or place == len(tensors) - 1 or \
                any(id(t) in self.watched for t in tensors[-1:]) or \
                not all(id(t) in self.watched for t in tensors[:-1]):
            return "concatenates it with other than one value after it"
        other, own = tensors[-1], self.shapes[self.watched[id(held)]] or tuple(held.shape)
        if len(own) != other.ndim or own[0] != 1 or tuple(own[1:]) != tuple(held.shape[1:]):
            return "concatenates it, in another shape than its own, before a value"
        producer = self.producer(other) if place == len(tensors) - 2 else ""
        return Scale(other.ndim, axis % other.ndim, producer, own, "prepends")

    def seen(self, module, args, output) -> None:
        if isinstance(output, torch.Tensor):
            self.outputs[id(output)] = (weakref.ref(output), self.names[module])

    def producer(self, value: torch.Tensor) -> str:
        ref, name = self.outputs.get(id(value), (lambda: None, ""))
        return name if ref() is value else ""


def scale_uses(model: nn.Module, args: list) -> tuple[dict[str, Scale | str], list]:
    """For each candidate, by full name, in the order their stand-ins would run (several
    of one kind and shape pair with Keras layers in that order): how forward() multiplies
    by it, adds it or concatenates it (a Scale), or what else it does with it, in words;
    and the model's outputs (its tensors) in that pass."""
    found = candidates(model)
    if not found:
        return {}, []
    watched = {id(getattr(owner, name)): full for full, (owner, name) in found.items()}
    modules = dict(model.named_modules())
    recorder = _Uses(watched, {module: name for name, module in modules.items()})
    # the outermost module last: a Sequential gives its last layer's tensor as its own
    hooks = [m.register_forward_hook(recorder.seen) for m in modules.values()]
    try:
        outputs = model_outputs(model, args, recorder)
    finally:
        for hook in hooks:
            hook.remove()
    return {full: _one_scale(recorder.uses[full])
            for full in recorder.in_running_order(found)}, outputs


def model_outputs(model: nn.Module, args: list, mode=None) -> list:
    """The tensors of the model's output in one inference pass without gradients, run
    within `mode` where given; the model's modes given back."""
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad(), mode or contextlib.nullcontext():
            return [leaf for leaf in tree_leaves(model(*args)) if isinstance(leaf, torch.Tensor)]
    finally:
        for module, training in modes.items():
            module.training = training


def _one_scale(uses: list) -> Scale | str:
    if not uses:
        return "forward() does not use it"
    if len(uses) > 1:
        return f"forward() uses it {len(uses)} times"
    return uses[0] if isinstance(uses[0], Scale) else f"forward() {uses[0]}"


class _Handed(TorchFunctionMode):
    """Hands the multiplication by a tensor its owner's ParameterScale stands for (the
    addition, for a ParameterOffset; the concatenation before a value, for each
    ParameterPrefix in it) to that module, so that it runs as a module does (hooks and all);
    computes the rest as asked. Multiplying or adding two numbers is the same either way
    round, so the operands' order is kept by none."""

    def __init__(self, owner: nn.Module):
        super().__init__()
        self.owner = owner
        self.reshaped: dict[int, tuple[torch.Tensor, ParameterScale]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _CONCATENATE:
            tensors, _ = _concatenated(args, kwargs)
            stand_ins = [self._stand_in(t) for t in tensors[:-1]]
            if tensors[:-1] and all(s is not None and s.scale.operation == "prepends"
                                    for s in stand_ins):
                value = tensors[-1]
                for stand_in in reversed(stand_ins):  # the last token first, next to it
                    value = stand_in(value)
                return value
        if not kwargs and len(args) == 2:
            for held, other in (args, args[::-1]):
                stand_in = self._stand_in(held)
                if stand_in is not None and isinstance(other, torch.Tensor) and \
                        func in _OPERATIONS[stand_in.scale.operation]:
                    return stand_in(other)
        result = func(*args, **kwargs)
        source = _reshaped(func, args, result)
        stand_in = None if source is None else self._stand_in(source)
        if stand_in is not None:  # the tensor the multiplication will take
            self.reshaped[id(result)] = (result, stand_in)
        return result

    def _stand_in(self, held) -> ParameterScale | None:
        kept = self.reshaped.get(id(held))
        if kept is not None and kept[0] is held:
            return kept[1]
        return next((m for name, m in self.owner._modules.items()
                     if isinstance(m, ParameterScale)
                     and self.owner._parameters.get(name) is held), None)


# The modes the owners' forwards run in, by owner (a forward of a module that calls
# itself again nests them).
_ACTIVE: dict[int, list[_Handed]] = {}


def _enter(owner, args) -> None:
    mode = _Handed(owner)
    mode.__enter__()
    _ACTIVE.setdefault(id(owner), []).append(mode)


def _leave(owner, args, output) -> None:
    modes = _ACTIVE.get(id(owner))
    if modes:
        modes.pop().__exit__(None, None, None)
        if not modes:
            del _ACTIVE[id(owner)]


@contextlib.contextmanager
def scales_as_layers(model: nn.Module, scales: dict[str, Scale]):
    """Within the block each of `scales` (full names) stands as a ParameterScale (or
    ParameterOffset) in its owner, under the tensor's own name (attribute access still
    finds the tensor: nn.Module looks in _parameters first), and the owner's forward hands
    it the multiplication (or the addition). A copy of the model made within the block
    (the float64 reference) keeps them, each computing with its own owner's tensor."""
    found = candidates(model)
    installed, hooks = [], []
    try:
        for full, scale in scales.items():
            owner, name = found[full]
            owner._modules[name] = stand_in_for(owner, name, scale)
            installed.append((owner, name))
        for owner in {id(o): o for o, _ in installed}.values():
            hooks += [owner.register_forward_pre_hook(_enter),
                      owner.register_forward_hook(_leave, always_call=True)]
        yield
    finally:
        for hook in hooks:
            hook.remove()
        for owner, name in installed:
            del owner._modules[name]
