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


HEAD_LAYERS = {"head.0": "head_dense", "head.3": "head_output"}

def _mlp_layer_name(module: str) -> str | None:
    return module if re.fullmatch(r"fc\d+", module) else None


_NAMERS = {"densenet": _densenet_layer_name, "tiny": _tiny_layer_name, "mlp": _mlp_layer_name}


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
    namer = _NAMERS[port_map]
    modules: dict[str, list[str]] = {}
    for name in arrays:
        modules.setdefault(name.rsplit(".", 1)[0], []).append(name)
    plan = []
    for module, names in modules.items():
        keras_name = HEAD_LAYERS.get(module) or namer(module)
        if keras_name is None:
            raise UsageError(f"no Keras layer corresponds to PyTorch module {module!r}")
        kind = _kind(module, names, arrays)
        plan.append(LayerPort(module, keras_name, kind, _ordered(module, kind, set(names))))
    return plan


def to_keras_layout(kind: str, name: str, array: np.ndarray) -> np.ndarray:
    if name.endswith(".weight") and kind == "conv":
        return np.ascontiguousarray(array.transpose(2, 3, 1, 0))  # O,I,H,W -> H,W,I,O
    if name.endswith(".weight") and kind == "dense":
        return np.ascontiguousarray(array.T)  # out,in -> in,out
    return array


def from_keras_layout(kind: str, name: str, array: np.ndarray) -> np.ndarray:
    if name.endswith(".weight") and kind == "conv":
        return np.ascontiguousarray(array.transpose(3, 2, 0, 1))  # H,W,I,O -> O,I,H,W
    if name.endswith(".weight") and kind == "dense":
        return np.ascontiguousarray(array.T)
    return array
