"""What every pass of one port validation shares (`Setup`): the pairs in Keras's running
order, both models' layers by name, PyTorch's state and its float64 copy (the rounding
reference), the Keras operations whose inputs the isolated passes keep; and the small
accessors over PyTorch's running order, traced once per mode when first needed (the
modules and softmax functions that ran, their input shapes, what ran between two paired
modules, the padding before a conv), which the passes (passes.py) and the functions that
name a cause after them (named_causes.py) read."""

from __future__ import annotations

import copy

from torch import nn

from adapters.port_validation.bare_scales import on_last_axis
from adapters.port_validation.between_operations import keras_function
from adapters.port_validation.causes import TORCH_CONVS
from adapters.port_validation.fused_activations import fused_activations
from adapters.port_validation.graph import acts_on_last_axis, croppings_after, graph_nodes
from adapters.port_validation.operation_settings import (
    TorchCall,
    keras_setting,
    ran_between,
    torch_calls,
)
from adapters.port_validation.padding_modes import pads_before
from adapters.port_validation.pairs import torch_state
from adapters.port_validation.pool_padding import keras_pooling
from adapters.port_validation.preprocessing import keras_preprocessing
from adapters.port_validation.sequences import output_view, split_layer_key
from adapters.port_validation.softmax_axis import keras_softmax


class Setup:
    """What every pass of one validation shares: the pairs, both models' layers by name,
    PyTorch's state and its float64 copy (the rounding reference)."""

    def __init__(self, torch_model, fn, pairs, x, reference64: bool, output_keys=()):
        self.fn, self.pairs, self.x = fn, _in_running_order(pairs, fn), x
        pairs = self.pairs
        # (TORCH_KEY, KERAS_KEY) of each output, where --output chose several: each is
        # compared on its own at the end of a pass, in fn.outputs' order.
        self.output_keys = list(output_keys) if len(output_keys) > 1 else []
        self.torch_model = torch_model
        self.modules = dict(torch_model.named_modules())
        # A stacked recurrent module's layers (`lstm[1]`) are that module's.
        self.modules.update({p.torch_module: self.modules[split_layer_key(p.torch_module)[0]]
                             for p in pairs})
        self.by_name = {layer.name: layer for layer in fn.layers}
        # A transposed conv is compared after the cropping layers that alone take its
        # output: a Keras port crops there what PyTorch's padding crops inside the layer.
        self.croppings = {p.keras_layer: croppings_after(fn, self.by_name[p.keras_layer])
                          for p in pairs if p.kind.startswith("conv_transpose")}
        self.output_of = {p.keras_layer: (self.croppings.get(p.keras_layer) or
                                          [self.by_name[p.keras_layer]])[-1].name
                          for p in pairs}
        self.watch = {p.keras_layer for p in pairs} | set(self.output_of.values())
        self.state = torch_state(torch_model)
        self.model64 = copy.deepcopy(torch_model).double() if reference64 else None
        self.modules64 = dict(self.model64.named_modules()) if self.model64 is not None else {}
        self.note64 = ""
        # Whether each pair's activations change layout between the frameworks.
        self.moves = {p.torch_module: not (acts_on_last_axis(self.modules[p.torch_module])
                                           or on_last_axis(self.modules[p.torch_module]))
                      for p in pairs}
        self.fused = fused_activations(pairs, self.by_name, self.moves)
        self.views = {p.torch_module: view for p in pairs if (view := output_view(
            self.modules[p.torch_module], self.by_name[p.keras_layer])) is not None}
        self.facts = None
        self.output_finding = None
        self.operations = {node.operation.name: node.operation for node in graph_nodes(fn)}
        # Operations whose setting can be read (or that Keras computes one way): their inputs
        # are kept in the isolated passes, to measure a setting that differs
        # (operation_settings.py).
        self.setting_ops = {name for name, op in self.operations.items()
                            if keras_setting(op) is not None or keras_pooling(op)
                            or keras_preprocessing(op) or keras_softmax(op)
                            or keras_function(op) is not None}
        # PyTorch's modules in running order with their input shapes, by mode, when needed
        self.torch_calls = {}


def _in_running_order(pairs, fn) -> list:
    """The pairs in the order Keras's graph runs them, so that a pass's first diverging
    layer is the first to run: pairing by order and shape leaves them in PyTorch's order
    of registration, which a ModuleList of Linears beside one of BatchNorms does not run
    in. A layer traced as parts (a SeparableConv2D's `sep.depthwise`) runs where its layer
    does."""
    ran = dict.fromkeys(node.operation.name for node in graph_nodes(fn))
    order = {name: i for i, name in enumerate(ran)}

    def position(pair) -> int:
        name = pair.keras_layer
        return order.get(name, order.get(name.split(".")[0], len(order)))
    return sorted(pairs, key=position)


def paired_modules(setup: Setup) -> set[str]:
    return {split_layer_key(p.torch_module)[0] for p in setup.pairs}


def running_calls(setup: Setup, mode: str) -> list[TorchCall]:
    """PyTorch's modules without children (and the paired ones) and the softmax functions
    forward() calls, in running order, each with its input's shape, traced once per mode."""
    if mode not in setup.torch_calls:
        setup.torch_calls[mode] = torch_calls(setup.torch_model, setup.x, mode,
                                              paired_modules(setup))
    return setup.torch_calls[mode]


def run_order(setup: Setup, mode: str) -> list[str]:
    return [call.name for call in running_calls(setup, mode)]


def _ran(setup: Setup, mode: str) -> dict[str, nn.Module]:
    """Each entry of the running order's module: a softmax function's is its stand-in,
    which setup.modules (PyTorch's own) does not hold."""
    return {call.name: call.module for call in running_calls(setup, mode)}


def input_shapes(setup: Setup, mode: str) -> dict[str, tuple | None]:
    """The shape of the input each of those modules was first given."""
    shapes = {}
    for call in running_calls(setup, mode):
        shapes.setdefault(call.name, call.input_shape)
    return shapes


def first_to_run(setup: Setup, mode: str, torch_key: str) -> bool:
    """Whether this paired module is the first paired module to run."""
    paired = paired_modules(setup)
    first = next((name for name in run_order(setup, mode) if name in paired), None)
    return first == split_layer_key(torch_key)[0]


def torch_between(setup: Setup, mode: str, torch_key: str) -> list[tuple[str, nn.Module]]:
    """The PyTorch modules (without children) and softmax functions that ran between this
    paired module and the paired module that ran before it."""
    names = ran_between(run_order(setup, mode), paired_modules(setup),
                        split_layer_key(torch_key)[0])
    ran = _ran(setup, mode)
    return [(name, ran[name]) for name in names]


def pads_before_conv(setup: Setup, torch_key: str) -> tuple:
    """The PyTorch padding modules and F.pad calls (their stand-ins) that ran right before
    this paired conv, named, if any: only a conv's input padding is looked at. An F.pad
    call is found in the running order alone, which costs the conv's model one more forward
    pass (torch_calls)."""
    if not isinstance(setup.modules[torch_key], TORCH_CONVS):  # what layer_facts pads
        return ()
    return pads_before(run_order(setup, "inference"), _ran(setup, "inference"),
                       split_layer_key(torch_key)[0])
