"""How the port validator pairs weighted layers when the user gives no port map: by an
explicit mapping, or in order by kind and weight shapes; and the check that refuses a pair
whose weights cannot correspond."""

from __future__ import annotations

from dataclasses import dataclass, field

from comparator.errors import UsageError


@dataclass(frozen=True)
class LayerInfo:
    """A weighted layer as the pairing sees it: a name, a kind and its weight shapes in
    the canonical (PyTorch) layout. kind: conv, depthwise, dense, bn or other."""

    name: str
    kind: str
    shapes: tuple[tuple[int, ...], ...]
    type_name: str = ""


@dataclass(frozen=True)
class Pair:
    """A PyTorch module and the Keras layer that holds its weights."""

    torch_module: str
    keras_layer: str
    kind: str  # a portmaps layout kind: conv, depthwise, dense, flatten_dense:C,H,W, bn
    canonical_names: tuple[str, ...] = field(default_factory=tuple)


def _describe(info: LayerInfo) -> str:
    return f"{info.name} ({info.type_name or info.kind}, weights {list(info.shapes)})"


def base_kind(kind: str) -> str:
    """The kind without the layout setting a Keras layer adds to it: flatten_dense:C,H,W is
    dense, depthwise:M depthwise (depthwise1d:M depthwise1d) and prelu:SHAPE prelu."""
    return "dense" if kind.startswith("flatten_dense") else kind.partition(":")[0]


def kinds_fit(torch_kind: str, keras_kind: str) -> bool:
    """Whether a PyTorch layer of one kind can hold a Keras layer's weights of the other: the
    same kind, a depthwise Conv2d or Conv1d ported as Conv2D or Conv1D(groups=channels), whose
    kernel has a convolution's layout (the shapes then decide), or an InstanceNorm ported as
    GroupNormalization (whose groups the port check and the validator's causes judge)."""
    return base_kind(torch_kind) == base_kind(keras_kind) or (torch_kind, keras_kind) in (
        ("depthwise", "conv"), ("depthwise1d", "conv1d"), ("instance_norm", "group_norm"))


def pair_layers(torch_layers: list[LayerInfo], keras_layers: list[LayerInfo],
                mapping: dict[str, str] | None = None) -> list[tuple[LayerInfo, LayerInfo]]:
    """Pair weighted layers: by an explicit mapping (torch name -> Keras name) that must
    name every layer, or else in order, each PyTorch layer with the next unused Keras
    layer of the same kind and weight shapes."""
    torch_by_name = {t.name: t for t in torch_layers}
    keras_by_name = {k.name: k for k in keras_layers}
    if mapping is not None:
        unknown_t = [t for t in mapping if t not in torch_by_name]
        unknown_k = [k for k in mapping.values() if k not in keras_by_name]
        if unknown_t or unknown_k:
            raise UsageError("the mapping names layers that hold no weights or do not exist: "
                             + "; ".join(filter(None, [
                                 unknown_t and f"PyTorch {', '.join(unknown_t)}",
                                 unknown_k and f"Keras {', '.join(unknown_k)}"])))
        missed_t = [t.name for t in torch_layers if t.name not in mapping]
        used = set(mapping.values())
        missed_k = [k.name for k in keras_layers if k.name not in used]
        if missed_t or missed_k:
            raise UsageError("the mapping leaves out layers with weights: " + "; ".join(
                filter(None, [missed_t and f"PyTorch {', '.join(missed_t)}",
                              missed_k and f"Keras {', '.join(missed_k)}"])))
        twice = sorted({k for k in mapping.values() if list(mapping.values()).count(k) > 1})
        if twice:
            raise UsageError(f"the mapping gives Keras layers {', '.join(twice)} twice")
        pairs = [(torch_by_name[t], keras_by_name[k]) for t, k in mapping.items()]
        for t, k in pairs:
            check_pair(t, k)
        return sorted(pairs, key=lambda p: torch_layers.index(p[0]))
    pairs, used = [], set()
    for t in torch_layers:
        match = next((k for k in keras_layers if k.name not in used and _fits(t, k)), None)
        if match is None:
            remaining = [k for k in keras_layers if k.name not in used]
            nearest = f"; the next unused Keras layer is {_describe(remaining[0])}" \
                if remaining else "; every Keras layer is taken"
            advice = ": pass mapping={torch_name: keras_name}"
            if remaining and _without_bias(t, remaining[0]):
                advice = (", which has no bias where PyTorch's has one: build it with "
                          "use_bias=True")
            elif remaining and (inputs := _other_groups(t, remaining[0])):
                advice = (f", whose kernel takes {inputs[1]} input channels per group where "
                          f"PyTorch's takes {inputs[0]}: build it with PyTorch's groups")
            raise UsageError(f"no Keras layer fits PyTorch {_describe(t)} by order and "
                             f"shape{nearest}{advice}")
        used.add(match.name)
        pairs.append((t, match))
    left = [k.name for k in keras_layers if k.name not in used]
    if left:
        raise UsageError(f"Keras layers with weights that no PyTorch module matches: "
                         f"{', '.join(left)}")
    return pairs


def _fits(t: LayerInfo, k: LayerInfo) -> bool:
    if not kinds_fit(t.kind, k.kind):
        return False
    n = len(t.shapes)
    return tuple(k.shapes[:n]) == tuple(t.shapes) and len(k.shapes) in (n, n + 1)


def _without_bias(t: LayerInfo, k: LayerInfo) -> bool:
    """Whether the Keras layer is the PyTorch layer's kind with its weights but the bias: a
    convolution's or dense layer's kernel, without the vector after it."""
    kernels = ("conv", "conv1d", "conv3d", "dense", "depthwise", "depthwise1d")
    return (base_kind(t.kind) in kernels or t.kind.startswith("conv_transpose")) and \
        kinds_fit(t.kind, k.kind) and len(t.shapes) == 2 and len(t.shapes[1]) == 1 and \
        tuple(k.shapes) == tuple(t.shapes[:1])


def _other_groups(t: LayerInfo, k: LayerInfo) -> tuple[int, int] | None:
    """(PyTorch's, Keras's) input channels per group where two convolutions' kernels differ
    in them alone, the one a multiple of the other: convolutions grouped otherwise."""
    if not (kinds_fit(t.kind, k.kind) and base_kind(t.kind).startswith("conv")
            and t.shapes and k.shapes):
        return None
    mine, theirs = tuple(t.shapes[0]), tuple(k.shapes[0])
    if len(mine) != len(theirs) or len(mine) < 3 or mine[1] == theirs[1] or \
            mine[:1] + mine[2:] != theirs[:1] + theirs[2:]:
        return None
    low, high = sorted((mine[1], theirs[1]))
    return (mine[1], theirs[1]) if high % low == 0 else None


def check_pair(t: LayerInfo, k: LayerInfo) -> None:
    """Refuse a pair whose kinds or weight shapes cannot correspond, naming both."""
    if not kinds_fit(t.kind, k.kind):
        raise UsageError(f"PyTorch {_describe(t)} cannot hold the weights of Keras "
                         f"{_describe(k)}: different kinds of layer")
    for i, shape in enumerate(t.shapes):
        if i >= len(k.shapes) or tuple(k.shapes[i]) != tuple(shape):
            theirs = tuple(k.shapes[i]) if i < len(k.shapes) else "nothing"
            raise UsageError(f"shape mismatch: PyTorch {t.name} weight {i} has shape "
                             f"{tuple(shape)}, Keras {k.name} {theirs} (in PyTorch's layout)")
