"""Weight porting between the canonical layout (torchvision names, PyTorch
array layouts) and Keras layers, by structure.

A port plan names, for every canonical module, the Keras layer that receives
it and how its arrays are laid out. The plan is derived from the module names
(block and layer numbers), never from the order in which layers happen to be
listed, and it must cover both models completely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from comparator.errors import UsageError

BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var")


@dataclass(frozen=True)
class LayerPort:
    module: str
    keras_layer: str
    kind: str  # "conv", "dense" or "bn"
    canonical_names: tuple[str, ...]


def _densenet_layer_name(module: str) -> str | None:
    rules = (
        (r"features\.conv0", "conv1_conv"),
        (r"features\.norm0", "conv1_bn"),
        (r"features\.denseblock(\d+)\.denselayer(\d+)\.norm1", "conv{b}_block{l}_0_bn"),
        (r"features\.denseblock(\d+)\.denselayer(\d+)\.conv1", "conv{b}_block{l}_1_conv"),
        (r"features\.denseblock(\d+)\.denselayer(\d+)\.norm2", "conv{b}_block{l}_1_bn"),
        (r"features\.denseblock(\d+)\.denselayer(\d+)\.conv2", "conv{b}_block{l}_2_conv"),
        (r"features\.transition(\d+)\.norm", "pool{b}_bn"),
        (r"features\.transition(\d+)\.conv", "pool{b}_conv"),
        (r"features\.norm5", "bn"),
        (r"classifier", "predictions"),
    )
    for pattern, template in rules:
        match = re.fullmatch(pattern, module)
        if match:
            groups = [int(g) for g in match.groups()]
            # torchvision counts blocks from 1, Keras from 2 (its stem is conv1).
            b = groups[0] + 1 if groups else 0
            l = groups[1] if len(groups) > 1 else 0  # noqa: E741
            return template.format(b=b, l=l)
    return None


def _tiny_layer_name(module: str) -> str | None:
    return module if re.fullmatch(r"(conv|bn)\d+|classifier", module) else None


def _resnet_layer_name(module: str) -> str | None:
    """torchvision ResNet (layer{L}.{B}) to keras.applications' names (conv{L+1}_block{B+1})."""
    if module in ("conv1", "bn1"):
        return "conv1_conv" if module == "conv1" else "conv1_bn"
    if module == "fc":
        return "predictions"
    match = re.fullmatch(r"layer(\d+)\.(\d+)\.(conv|bn)(\d)", module)
    if match:
        stage, block, what, i = match.groups()
        return f"conv{int(stage) + 1}_block{int(block) + 1}_{i}_{what}"
    match = re.fullmatch(r"layer(\d+)\.(\d+)\.downsample\.([01])", module)
    if match:
        stage, block, i = match.groups()
        return f"conv{int(stage) + 1}_block{int(block) + 1}_0_{'conv' if i == '0' else 'bn'}"
    return None


# torchvision's VGG16 configuration "D": channels per conv, "M" a max pool. The index of
# a conv in torchvision's `features` Sequential follows from it (conv and ReLU, or pool).
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M")
# torchvision pools the last feature map to 7x7 before flattening (AdaptiveAvgPool2d).
VGG_FLATTEN_CHW = (512, 7, 7)


def _vgg_feature_names(config=VGG16_CONFIG) -> dict[int, str]:
    names, index, block, conv = {}, 0, 1, 1
    for item in config:
        if item == "M":
            index, block, conv = index + 1, block + 1, 1
        else:
            names[index] = f"block{block}_conv{conv}"
            index, conv = index + 2, conv + 1
    return names


_VGG_FEATURES = _vgg_feature_names()
_VGG_CLASSIFIER = {"classifier.0": ("fc1", "flatten_dense:{},{},{}".format(*VGG_FLATTEN_CHW)),
                   "classifier.3": "fc2", "classifier.6": "predictions"}


def _vgg_layer_name(module: str):
    match = re.fullmatch(r"features\.(\d+)", module)
    if match:
        return _VGG_FEATURES.get(int(match.group(1)))
    return _VGG_CLASSIFIER.get(module)


def _mobilenet_v2_layer_name(module: str):
    """torchvision MobileNetV2 (features.{i}) to keras.applications' names (block_{i-1})."""
    fixed = {"features.0.0": "Conv1", "features.0.1": "bn_Conv1",
             "features.1.conv.0.0": ("expanded_conv_depthwise", "depthwise"),
             "features.1.conv.0.1": "expanded_conv_depthwise_BN",
             "features.1.conv.1": "expanded_conv_project",
             "features.1.conv.2": "expanded_conv_project_BN",
             "features.18.0": "Conv_1", "features.18.1": "Conv_1_bn",
             "classifier.1": "predictions"}
    if module in fixed:
        return fixed[module]
    match = re.fullmatch(r"features\.(\d+)\.conv\.(\d(?:\.\d)?)", module)
    if not match or not 2 <= int(match.group(1)) <= 17:
        return None
    block = int(match.group(1)) - 1
    part = {"0.0": "expand", "0.1": "expand_BN", "1.0": ("depthwise", "depthwise"),
            "1.1": "depthwise_BN", "2": "project", "3": "project_BN"}.get(match.group(2))
    if part is None:
        return None
    if isinstance(part, tuple):
        return f"block_{block}_{part[0]}", part[1]
    return f"block_{block}_{part}"


HEAD_LAYERS = {"head.0": "head_dense", "head.3": "head_output"}

def _mlp_layer_name(module: str) -> str | None:
    return module if re.fullmatch(r"fc\d+", module) else None


# A namer returns the Keras layer name, or (name, kind) where the array layout cannot be
# told from the rank alone (depthwise kernels, a dense layer fed by a flattened map).
_NAMERS = {"densenet": _densenet_layer_name, "tiny": _tiny_layer_name, "mlp": _mlp_layer_name,
           "resnet": _resnet_layer_name, "vgg": _vgg_layer_name,
           "mobilenet_v2": _mobilenet_v2_layer_name}


def port_map_names() -> list[str]:
    return sorted(_NAMERS)


def _kind(module: str, names: list[str], arrays: dict[str, np.ndarray]) -> str:
    suffixes = {n[len(module) + 1:] for n in names}
    if suffixes == set(BN_SUFFIXES):
        return "bn"
    ndim = arrays[f"{module}.weight"].ndim
    if ndim == 4:
        return "conv"
    if ndim == 2:
        return "dense"
    raise UsageError(f"cannot port module {module!r}: weight of rank {ndim}")


def _ordered(module: str, kind: str, present: set[str]) -> tuple[str, ...]:
    suffixes = BN_SUFFIXES if kind == "bn" else ("weight", "bias")
    return tuple(f"{module}.{s}" for s in suffixes if f"{module}.{s}" in present)


def port_plan(port_map: str, arrays: dict[str, np.ndarray]) -> list[LayerPort]:
    """Every canonical module with the Keras layer it maps to."""
    try:
        namer = _NAMERS[port_map]
    except KeyError:
        raise UsageError(f"unknown port map {port_map!r}; known: "
                         f"{', '.join(port_map_names())}") from None
    modules: dict[str, list[str]] = {}
    for name in arrays:
        modules.setdefault(name.rsplit(".", 1)[0], []).append(name)
    plan = []
    for module, names in modules.items():
        named = HEAD_LAYERS.get(module) or namer(module)
        if named is None:
            raise UsageError(f"no Keras layer corresponds to PyTorch module {module!r}")
        keras_name, kind = named if isinstance(named, tuple) else (named, None)
        kind = kind or _kind(module, names, arrays)
        plan.append(LayerPort(module, keras_name, kind, _ordered(module, kind, set(names))))
    return plan


def _flatten_chw(kind: str) -> tuple[int, int, int]:
    c, h, w = (int(v) for v in kind.split(":", 1)[1].split(","))
    return c, h, w


def to_keras_layout(kind: str, name: str, array: np.ndarray) -> np.ndarray:
    """One canonical (PyTorch-layout) array in the layout of the Keras layer's weight.

    Kinds: "conv" (O,I,H,W -> H,W,I,O), "depthwise" (C,1,H,W -> H,W,C,1: depth multiplier
    1, as in MobileNetV2), "dense"
    (out,in -> in,out), "flatten_dense:C,H,W" (a dense layer fed by a flattened C,H,W
    map: its input rows are reordered from channels-first to channels-last flattening),
    "bn" (vectors, unchanged).
    """
    if not name.endswith(".weight"):
        return array
    if kind == "conv":
        return np.ascontiguousarray(array.transpose(2, 3, 1, 0))  # O,I,H,W -> H,W,I,O
    if kind == "depthwise":
        return np.ascontiguousarray(array.transpose(2, 3, 0, 1))  # C,1,H,W -> H,W,C,1
    if kind == "dense":
        return np.ascontiguousarray(array.T)  # out,in -> in,out
    if kind.startswith("flatten_dense:"):
        c, h, w = _flatten_chw(kind)
        out = array.shape[0]
        if array.shape[1] != c * h * w:
            raise UsageError(f"{name} has {array.shape[1]} inputs, not {c}x{h}x{w}")
        # Keras flattens (h, w, c); torch flattens (c, h, w).
        return np.ascontiguousarray(
            array.reshape(out, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, out))
    return array


def from_keras_layout(kind: str, name: str, array: np.ndarray) -> np.ndarray:
    """The inverse of to_keras_layout: a round trip returns the array bit for bit."""
    if not name.endswith(".weight"):
        return array
    if kind == "conv":
        return np.ascontiguousarray(array.transpose(3, 2, 0, 1))  # H,W,I,O -> O,I,H,W
    if kind == "depthwise":
        return np.ascontiguousarray(array.transpose(2, 3, 0, 1))  # H,W,C,1 -> C,1,H,W
    if kind == "dense":
        return np.ascontiguousarray(array.T)
    if kind.startswith("flatten_dense:"):
        c, h, w = _flatten_chw(kind)
        out = array.shape[1]
        return np.ascontiguousarray(
            array.reshape(h, w, c, out).transpose(3, 2, 0, 1).reshape(out, c * h * w))
    return array
