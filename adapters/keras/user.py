"""The Keras adapter over a model the user brought, as given: no zoo build, no porting.

The frozen part is the whole model, or the layer (often a nested model) named by
--freeze. States are named as PyTorch names the paired modules (adapters.own_pair.pairing),
so that both frameworks' weights after a step can be compared; without a pairing they keep
Keras's layer names and are compared within Keras only.

A worker (adapters.keras.worker) rebuilds the same model on another backend or Keras version
with `naming`: its states are then named by each weight's position in the model's weights,
which the comparison's own adapter turns into its names (`canonical_from_positions`), and its
layers take the names the comparison's own model gives them (`worker_naming`)."""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np

from adapters.keras.adapter import Keras3Adapter, keras, layers
from adapters.own_pair.loader import keras_layer, symbolic_inputs
# Not adapters.own_pair.pairing, which imports torch: a worker on TensorFlow or JAX runs this
# adapter too (adapters.own_pair.keras_layers says why).
from adapters.own_pair.keras_layers import (
    drops_whole_examples,
    leaf_layers,
    step_dropout,
    step_dropping_layers,
    stochastic_depth_layer,
    stochastic_depth_rate,
    weighted_keras_layers,
)
from adapters.own_pair.port_arrays import (
    LAYER_LEVEL_KINDS,
    keras_weights,
    named_indices,
    torch_arrays,
)
from comparator.inputs.batch import REGRESSION_SCENARIOS
from comparator.zoo.portmaps import to_keras_layout

_BN_NAMES = ("weight", "bias", "running_mean", "running_var")
_BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")


def _within(layer, variable) -> str:
    """A variable's name within its layer, unique there: a layer with sublayers
    (MultiHeadAttention's query, key, value and output projections) holds several variables
    named "kernel", which its path tells apart ("query/kernel")."""
    path = getattr(variable, "path", variable.name)
    own = f"{layer.name}/"
    return path[len(own):] if path.startswith(own) else variable.name


class KerasUserAdapter(Keras3Adapter):
    _by_position = False  # a worker's copy: states named by position (_weights_by_position)
    _names: dict = {}  # id(layer) -> the comparison's name of it, in a worker
    _canonical_names: dict = {}  # id(layer) -> its canonical name, in a worker

    def adopt(self, loaded, freeze: str | None, scenario: str, seed: int,
              input_shape: tuple[int, ...], pairing=None, dropout_off: bool = False,
              classes: int | None = None, naming: dict | None = None) -> None:
        """Take the user's model (adapters.own_pair.loader.LoadedModel) as the initial state.
        input_shape: one input's shape, channels-last, without the batch axis, or a tuple of
        such shapes for a model that takes several inputs. naming: in a worker, the
        comparison's own adapter's worker_naming()."""
        self.spec, self.scenario, self._seed = None, scenario, seed
        self.user_model = loaded.model
        self.base = keras_layer(loaded.model, freeze) if freeze else loaded.model
        self.head_layers = []
        self.classes = classes
        self.dropout_off = dropout_off
        self.training_false_problem = None
        inputs = symbolic_inputs(input_shape)
        self._wrappers = {False: keras.Model(inputs, loaded.model(inputs)),
                          True: self._training_false_model(input_shape, freeze)}
        self._evaluators, self._evaluated = {}, None
        self._index_layers()
        self._pairing = pairing if pairing is not None and pairing.paired else None
        self._by_position = naming is not None
        self._names, self._canonical_names = self._named_layers(naming or {})
        self.load_weights(self._canonical_impl())

    @property
    def pairing(self):
        """The user pair's Pairing (adapters.own_pair.pairing), None where not paired."""
        return self._pairing

    def _whole_model(self):
        # The user's model exports as the wrapper that calls it: `base` may be only the
        # frozen part of it.
        return None

    def _training_false_model(self, input_shape, freeze):
        """The model with the frozen part called with training=False in its functional graph
        (the transfer-learning guide's recipe), sharing every layer with the user's model."""
        inputs = symbolic_inputs(input_shape)
        if not freeze:
            return keras.Model(inputs, self.user_model(inputs, training=False))
        base = self.base

        def call(layer, *args, **kwargs):
            if layer is base:
                kwargs["training"] = False
            return layer(*args, **kwargs)

        try:
            return keras.models.clone_model(self.user_model, clone_function=lambda layer: layer,
                                            call_function=call)
        except Exception as exc:  # Sequential and subclassed models have no graph to rewire
            self.training_false_problem = (
                f"{type(self.user_model).__name__} {self.user_model.name!r} has no functional "
                f"graph in which {freeze!r} can be called with training=False ({exc})")
            return None

    def _all_layers(self):
        return list(self.user_model._flatten_layers(include_self=False, recursive=True))

    def _base_is_whole_model(self) -> bool:
        return self.base is self.user_model  # no --freeze

    def _frozen_layers(self):
        if not isinstance(self.base, keras.Model):
            return [self.base]
        # Leaf layers only: a nested model set non-trainable hides its BatchNorm weights.
        return leaf_layers(self.base)

    # A recurrent layer's training-mode call drops within its steps where its cell's
    # dropout or recurrent_dropout is set; it changes nothing else.
    _dropout_classes = (layers.Dropout, layers.RNN)

    def _index_layers(self) -> None:
        super()._index_layers()
        every = self._all_layers()
        self._step_dropping = [inner for x in every for inner in step_dropping_layers(x)]
        self._stochastic_depth = [x for x in every if stochastic_depth_layer(x)]
        # Their own classes, whose calls the Dropout-free passes and --dropout off force
        # into inference mode as they force Dropout's.
        self._stochastic_depth_classes = tuple(dict.fromkeys(
            type(x) for x in self._stochastic_depth))
        self._dropout_classes = type(self)._dropout_classes + self._stochastic_depth_classes
        self._dropout_layers = [x for x in every if isinstance(x, layers.Dropout)] + \
            self._stochastic_depth + self._step_dropping

    def _apply_impl(self, recipe):
        super()._apply_impl(recipe)
        if recipe is not None and recipe.inference_everywhere:
            self._forced_inference = (tuple(self._forced_inference)
                                      + self._stochastic_depth_classes)
        if self.dropout_off:  # --dropout off: the step runs Dropout in inference mode
            self._forced_inference = tuple(self._forced_inference) + self._dropout_classes

    def _audit_impl(self):
        return dataclasses.replace(super()._audit_impl(), stochastic_depth_layers=sum(
            drops_whole_examples(x) for x in self._dropout_layers))

    def _dropout_rates(self) -> dict[str, float]:
        """Dropout layers' rates, a StochasticDepth layer's, and a recurrent layer's as
        `lstm (dropout)` and `lstm (recurrent_dropout)`."""
        rates = {self._name_of(x): float(x.rate) for x in self._dropout_layers
                 if isinstance(x, layers.Dropout)}
        rates.update({self._name_of(x): rate for x in self._stochastic_depth
                      if (rate := stochastic_depth_rate(x)) is not None})
        rates.update({f"{self._name_of(x)} ({name})": rate for x in self._step_dropping
                      for name, rate in step_dropout(x.cell).items()})
        return rates

    @contextlib.contextmanager
    def _observe(self):
        """Also whether each recurrent layer that drops within its steps ran in training
        mode in the step (no Dropout layer's call shows it), and whether each StochasticDepth
        layer acted, as a Dropout layer's observation says."""
        adapter, call = self, layers.RNN.call

        def observed(layer, *args, **kwargs):
            if any(layer is x for x in adapter._step_dropping):
                forced = any(isinstance(layer, c) for c in adapter._forced_inference)
                adapter._dropout_seen.setdefault(
                    layer.name, bool(kwargs.get("training")) and not forced)
            return call(layer, *args, **kwargs)

        depth_calls = {cls: cls.call for cls in self._stochastic_depth_classes}
        with super()._observe():
            layers.RNN.call = observed
            for cls, depth_call in depth_calls.items():
                cls.call = self._dropout_observer(depth_call)
            try:
                yield
            finally:
                layers.RNN.call = call
                for cls, depth_call in depth_calls.items():
                    cls.call = depth_call

    def _data(self, batch):
        if self.scenario in REGRESSION_SCENARIOS:
            return batch.x_channels_last, batch.targets_as_keras()
        if self.loss_kind == "probabilities":
            return batch.x_channels_last, np.eye(self.classes, dtype=np.float32)[batch.y]
        return batch.x_channels_last, batch.y

    # ----- states, named as PyTorch names them where the layers are paired ---------------

    def _named_arrays(self):
        """(canonical name, Keras layer, index of its weight, port kind) for every array that
        is one Keras weight (a paired recurrent or attention layer's are ported layer by
        layer: _canonical_impl and _load_impl)."""
        if self._pairing is not None:
            for port, layer in zip(self._pairing.ports, self._pairing.keras_layers):
                if port.kind not in LAYER_LEVEL_KINDS:
                    for index, name in enumerate(port.canonical_names):
                        yield name, layer, index, port.kind
            return
        if self._by_position:
            for index, (name, _) in enumerate(self._weights_by_position()):
                yield name, self.user_model, index, "keras"
            return
        for position, layer in enumerate(weighted_keras_layers(self.user_model)):
            prefix = f"{position}:{layer.name}"
            if isinstance(layer, layers.BatchNormalization):
                present = [n for n, v in zip(_BN_NAMES, _BN_VARIABLES)
                           if getattr(layer, v, None) is not None]
                for index, name in enumerate(present):
                    yield f"{prefix}.{name}", layer, index, "bn"
                continue
            for index, variable in enumerate(layer.weights):
                yield f"{prefix}.{_within(layer, variable)}", layer, index, "keras"

    def _canonical_of(self, weights_of):
        if self._pairing is None:
            return super()._canonical_of(weights_of)
        arrays = {}
        for port, layer in zip(self._pairing.ports, self._pairing.keras_layers):
            values = weights_of(layer)
            arrays.update(torch_arrays(port, values, split_sums=False))
            for index, name in self._keras_only(port, layer):
                arrays[name] = values[index]
        return arrays

    def _load_impl(self, arrays):
        if self._pairing is not None:
            for port, layer in zip(self._pairing.ports, self._pairing.keras_layers):
                values = keras_weights(port, arrays, layer.get_weights())
                for index, name in self._keras_only(port, layer):
                    if name in arrays:
                        values[index] = np.asarray(arrays[name])
                layer.set_weights(values)
            return
        updates: dict[int, tuple] = {}
        for name, layer, index, kind in self._named_arrays():
            if name in arrays:
                if id(layer) not in updates:  # each layer's weights read once
                    updates[id(layer)] = (layer, layer.get_weights())
                updates[id(layer)][1][index] = to_keras_layout(kind, name,
                                                               np.asarray(arrays[name]))
        for layer, values in updates.values():
            layer.set_weights(values)

    @staticmethod
    def _keras_only(port, layer) -> list[tuple[int, str]]:
        """A paired layer's weights that no canonical array names (an LSTM's one bias for
        PyTorch's two), under a name of Keras's."""
        named = named_indices(port, len(layer.weights))
        return [(index, f"keras:{layer.name}.{_within(layer, variable)}")
                for index, variable in enumerate(layer.weights) if index not in named]

    def _canonical_layer_names(self) -> dict[int, str]:
        if self._pairing is None:
            return dict(self._canonical_names)
        return {id(layer): port.module
                for port, layer in zip(self._pairing.ports, self._pairing.keras_layers)}

    # ----- the same model in a worker (adapters.keras.worker) -----------------------------

    def _weights_by_position(self) -> list[tuple[str, object]]:
        """(name, variable) of every weight of the model, in its weights' order, named by its
        position there: the one name the same model rebuilt in another process shares (Keras
        numbers a layer's default name by the layers built before it in the process). A
        BatchNorm moving statistic ends as PyTorch's running statistics do, so that
        comparator.analysis.states.split_state tells the worker's statistics apart."""
        statistics = {}
        for bn in self._bn_layers:
            statistics[id(bn.moving_mean)] = ".running_mean"
            statistics[id(bn.moving_variance)] = ".running_var"
        return [(f"{index}{statistics.get(id(variable), '')}", variable)
                for index, variable in enumerate(self.user_model.weights)]

    def positional_arrays(self) -> dict[str, np.ndarray]:
        """The weights the model holds now, named by position: a worker's initial state."""
        names = [name for name, _ in self._weights_by_position()]
        return dict(zip(names, self.user_model.get_weights()))

    def canonical_from_positions(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A worker's state (named by position) under the names this adapter's states have.
        Reads no variable: it may run while this model trains."""
        held = {id(variable): np.asarray(arrays[name])
                for name, variable in self._weights_by_position()}
        return self._canonical_of(lambda layer: [held[id(v)] for v in layer.weights])

    def worker_naming(self) -> dict:
        """What a worker's copy of the model names its layers by: this model's layer names
        in _all_layers()'s order, and the canonical (PyTorch) names of the paired ones."""
        layers_here = self._all_layers()
        canonical = self._canonical_layer_names()
        return {"layer_names": [layer.name for layer in layers_here],
                "canonical_layer_names": {str(position): canonical[id(layer)]
                                          for position, layer in enumerate(layers_here)
                                          if id(layer) in canonical}}

    def _named_layers(self, naming: dict) -> tuple[dict, dict]:
        """id(layer) -> the comparison's layer name, and -> its canonical name (naming:
        worker_naming() of the comparison's own adapter); both empty outside a worker."""
        layers_here, names = self._all_layers(), naming.get("layer_names", [])
        canonical = naming.get("canonical_layer_names", {})
        # Another count of layers is refused afterwards (workers.require_same_model).
        return ({id(layer): name for layer, name in zip(layers_here, names)},
                {id(layers_here[int(position)]): name for position, name in canonical.items()
                 if int(position) < len(layers_here)})

    def _name_of(self, layer) -> str:
        return self._names.get(id(layer), layer.name)
