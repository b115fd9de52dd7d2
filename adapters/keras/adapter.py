"""Keras 3 adapter (Keras itself is imported by adapters.keras.backend).

In the comparison's own process Keras runs on the PyTorch backend (`keras`, also
called `keras-torch`). The same class runs Keras on TensorFlow or JAX inside a
worker subprocess (adapters.keras.worker), which names the backend in
XFRAME_KERAS_BACKEND before importing this module. What differs between backends
is kept to `BackendHooks` (adapters/keras/hooks.py): when a tensor carries values, how
values reach the host from inside a train step, and how `compile` is told to run.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from adapters.keras.backend import BACKEND, keras  # noqa: F401  (re-exported)
from comparator.errors import FrameworkUnavailable
from keras import layers, ops  # noqa: E402

from adapters.base import FrameworkAdapter  # noqa: E402
from adapters.devices import use_full_float32  # noqa: E402
from adapters.keras.hooks import hooks_for  # noqa: E402
from adapters.keras.loss_build import build_loss_from_output_spec  # noqa: E402
from adapters.keras.models import (  # noqa: E402
    build_base,
    input_shape,
)
from comparator.inputs.batch import REGRESSION_SCENARIOS, Batch  # noqa: E402
from comparator.errors import UsageError  # noqa: E402
from comparator.analysis.observe import used_batch_statistics, variance  # noqa: E402
from comparator.zoo.head import HEAD_DROPOUT, HEAD_DROPOUT_LAYER, HEAD_HIDDEN, HEAD_LAYERS
from comparator.zoo.portmaps import (  # noqa: E402
    from_keras_layout,
    keras_layout_axes,
    port_plan,
    to_keras_layout,
)
from comparator.config.recipes import Recipe  # noqa: E402
from comparator.schema import Modes  # noqa: E402

@contextlib.contextmanager
def _inference_calls(classes):
    """Within the block, layers of these classes are called with training=False."""
    originals = {cls: cls.call for cls in classes}

    def forcing(original):
        def call(layer, inputs, *args, **kwargs):
            kwargs["training"] = False
            return original(layer, inputs, *args, **kwargs)
        return call

    for cls, original in originals.items():
        cls.call = forcing(original)
    try:
        yield
    finally:
        for cls, original in originals.items():
            cls.call = original


def _tensors(values):
    """One array as a backend tensor, or a list of a model's several inputs as a list."""
    if isinstance(values, list):
        return [ops.convert_to_tensor(v) for v in values]
    return ops.convert_to_tensor(values)


def _joined(outputs) -> np.ndarray:
    """One output as it is; several chosen outputs (--output KEY1,KEY2) one after another
    along the batch axis, as the comparison holds them."""
    if isinstance(outputs, (list, tuple)):
        return np.concatenate([np.asarray(output) for output in outputs])
    return np.asarray(outputs)


def _in_float64(layer):
    """A fresh copy of the layer computing in float64 (for keras.models.clone_model); a
    nested model cloned layer by layer in turn, as Keras 3's `recursive=True` does, which
    tf_keras's clone_model does not take."""
    if isinstance(layer, keras.Model):
        return keras.models.clone_model(layer, clone_function=_in_float64)
    config = layer.get_config()
    config["dtype"] = "float64"
    return layer.__class__.from_config(config)


@contextlib.contextmanager
def _promoting_to_float64():
    """Within the block Keras keeps float64 as float64. Outside TensorFlow, Keras 3.15.1's
    type promotion (`keras.src.backend.common.dtypes.result_type`) turns every 64-bit float
    into float32, as JAX does by default, and BatchNormalization computes in
    `result_type(inputs.dtype, "float32")`: a BatchNormalization layer of dtype float64 on
    torch normalised in float32. Measured on DenseNet121 at 32 px, batch 2 (2026-11-30):
    the float64 clone's train-step loss was 7.546308 with that promotion and 7.545610 without
    it, where PyTorch in float64 with Keras's epsilon gives 7.545610."""
    try:
        from keras.src.backend.common import dtypes
    except ImportError:  # tf_keras, which keeps float64 as TensorFlow does
        dtypes = None
    narrowing = getattr(dtypes, "BIT64_TO_BIT32_DTYPE", {})
    saved = narrowing.get("float64")
    if saved is not None:
        narrowing["float64"] = "float64"
    try:
        yield
    finally:
        if saved is not None:
            narrowing["float64"] = saved


def _softmax_categorical_crossentropy(y_true, logits):
    """What a model ending in softmax compiled with CategoricalCrossentropy() computes:
    Keras renormalises the probabilities and clips them to [1e-7, 1 - 1e-7]."""
    probabilities = keras.activations.softmax(logits)
    return keras.losses.categorical_crossentropy(y_true, probabilities, from_logits=False)


class Keras3Adapter(FrameworkAdapter):
    name = "keras"
    version_key = "keras"
    backend = BACKEND
    capabilities = frozenset({"optimizer_overrides", "float64_forward", "float64_recipe_loss"})
    # The weight of each chosen output's loss where the model returns several (a user pair's
    # --output KEY1,KEY2 with --loss-weights); None: one output.
    output_weights: tuple[float, ...] | None = None
    # The layers whose training-mode calls drop values: called in inference mode in the
    # Dropout-free pass.
    _dropout_classes: tuple = (layers.Dropout,)

    def __init__(self, device: str = "cpu", eager: bool = False):
        super().__init__(device)
        if keras.backend.backend() != self.backend:
            raise FrameworkUnavailable(
                f"Keras runs on {keras.backend.backend()!r}, not {self.backend}")
        self._hooks = hooks_for(self.backend, eager)
        self._precision = use_full_float32(self.backend) if device.startswith("cuda") else None
        keras_device = os.environ.get("KERAS_TORCH_DEVICE", "cpu")
        if self.backend == "torch" and keras_device.split(":")[0] != device.split(":")[0]:
            raise FrameworkUnavailable(f"Keras was imported for device {keras_device!r}; "
                                       f"run the comparison for {device!r} in a fresh process")
        self._observing = False
        self._bn_seen: dict[str, bool] = {}
        self._dropout_seen: dict[str, bool] = {}
        self._plan = []
        self._model = None
        self._fit_model = None
        self._exact_model = None
        self._head_model = None
        self._evaluators: dict = {}  # loss kind -> compiled inference model
        self._evaluated: tuple | None = None  # (outputs, loss kind, loss) of one evaluate()
        self._features = None
        self._forced_inference: tuple = ()
        self._recipe: Recipe | None = None
        self.optimizer_overrides: dict = {}

    # ----- building and weights -------------------------------------------------------

    def _build_impl(self, spec, scenario, seed, image_size):
        self._seed = seed
        keras.utils.set_random_seed(seed)
        self.base = build_base(spec, image_size, include_top=(scenario != "head"))
        self.head_layers = []
        if scenario == "head":
            self.head_layers = [
                layers.Dense(HEAD_HIDDEN, activation="relu", name=HEAD_LAYERS["head.0"]),
                layers.Dropout(HEAD_DROPOUT, name=HEAD_DROPOUT_LAYER),
                layers.Dense(1, name=HEAD_LAYERS["head.3"]),
            ]
        self._wrappers = {flag: self._wrap(image_size, flag) for flag in (False, True)}
        self._evaluators, self._evaluated = {}, None
        self._index_layers()

    def _index_layers(self) -> None:
        """Variables, layers by kind and Dropout seeds of the model in self._wrappers."""
        self._variables = list(self._wrappers[False].weights)
        self._by_name = {self._hooks.layer_name(layer.name): layer
                         for layer in self._all_layers()}
        every = self._all_layers()
        self._bn_layers = [x for x in every if isinstance(x, self._hooks.batch_norm_class)]
        self._dropout_layers = [x for x in every if isinstance(x, layers.Dropout)]
        stats = {id(v) for bn in self._bn_layers for v in (bn.moving_mean, bn.moving_variance)}
        self._parameters = [v for v in self._variables if id(v) not in stats]
        self._seed_states = [layer.seed_generator.state for layer in self._all_layers()
                             if getattr(layer, "seed_generator", None) is not None]
        self._seed_start = [ops.convert_to_numpy(v).copy() for v in self._seed_states]

    def _wrap(self, image_size: int, training_false: bool):
        """The model fit() sees: the base, called with training=False when asked, then the head."""
        inputs = keras.Input(input_shape(self.spec, image_size))
        x = self.base(inputs, training=False) if training_false else self.base(inputs)
        for layer in self.head_layers:
            x = layer(x)
        return keras.Model(inputs, x)

    def _frozen_layers(self):
        return list(self.base.layers)

    def _all_layers(self):
        return list(self.base.layers) + list(self.head_layers)

    def _layer(self, name: str):
        try:
            return self._by_name[name]
        except KeyError:
            raise UsageError(f"the Keras model has no layer named {name!r}") from None

    def _load_impl(self, arrays):
        self._plan = port_plan(self.spec.layer_names, arrays)
        covered = set()
        for port in self._plan:
            layer = self._layer(port.keras_layer)
            values = [to_keras_layout(port.kind, n, arrays[n]) for n in port.canonical_names]
            current = layer.get_weights()
            if len(current) != len(values):
                raise UsageError(f"{port.module} has {len(values)} arrays but Keras layer "
                                 f"{layer.name} has {len(current)}")
            for name, have, want in zip(port.canonical_names, current, values):
                if have.shape != want.shape:
                    raise UsageError(f"shape mismatch: PyTorch {name} {want.shape} (Keras layout)"
                                     f" vs Keras {layer.name} {have.shape}")
            layer.set_weights(values)
            covered.add(layer.name)
        unported = [x.name for x in self._all_layers() if x.weights and x.name not in covered]
        if unported:
            raise UsageError(f"Keras layers without ported weights: {', '.join(unported[:5])}")

    def _canonical_impl(self):
        return self._canonical_of(lambda layer: layer.get_weights())

    def _canonical_of(self, weights_of):
        """The canonical arrays of this model holding weights_of(layer) in each layer (its
        get_weights(), or values a worker's copy of the model held)."""
        arrays, layer, values = {}, None, []
        for name, owner, index, kind in self._named_arrays():  # a layer's arrays in a row
            if owner is not layer:
                layer, values = owner, weights_of(owner)
            arrays[name] = from_keras_layout(kind, name, values[index])
        return arrays

    def _named_arrays(self):
        """(canonical name, Keras layer, index of its weight, port kind) for every array."""
        for port in self._plan:
            layer = self._layer(port.keras_layer)
            for index, name in enumerate(port.canonical_names):
                yield name, layer, index, port.kind

    def _snapshot_impl(self, canonical):
        """Each variable's initial value: where the backend can, a view of its canonical
        array (the initial state's, kept unchanged), else a copy."""
        views = {}
        for name, layer, index, kind in self._named_arrays():
            if name in canonical:
                view = self._hooks.restore_view(canonical[name], keras_layout_axes(kind, name))
                if view is not None:
                    views[id(layer.weights[index])] = view
        return [views[id(v)] if id(v) in views else ops.convert_to_numpy(v).copy()
                for v in self._variables]

    def _restore_impl(self, state):
        for variable, value in zip(self._variables, state):
            variable.assign(value)
        self._hooks.restore_layers()
        self.base.trainable = True
        for layer in self._all_layers():
            layer.trainable = True

    # ----- recipes ---------------------------------------------------------------------

    def _apply_impl(self, recipe: Recipe | None):
        self._model = self._wrappers[bool(recipe and recipe.training_false)]
        self._recipe = recipe
        self._fit_model, self._features = self._model, None
        self._forced_inference = ((self._hooks.batch_norm_class, layers.Dropout)
                                  if recipe is not None and recipe.inference_everywhere else ())
        if recipe is not None and recipe.feature_extraction:
            self.base.trainable = False
            self._fit_model = self._head_only()
            return
        if recipe is None or not recipe.trainable_false:
            return
        if recipe.v1_batch_norm:
            self._hooks.use_v1_batch_norm([x for x in self.base.layers if x in self._bn_layers])
        if recipe.bn_stays_trainable:
            for layer in self._frozen_layers():
                layer.trainable = isinstance(layer, layers.BatchNormalization)
        else:
            self.base.trainable = False

    def _head_only(self):
        """A model of the head alone, fit on features the base computed beforehand."""
        if self._head_model is None:
            inputs = keras.Input((self.spec.feature_dim,))
            x = inputs
            for layer in self.head_layers:
                x = layer(x)
            self._head_model = keras.Model(inputs, x)
        return self._head_model

    def _loss(self):
        if self.scenario in REGRESSION_SCENARIOS:
            return keras.losses.MeanSquaredError()
        if self.loss_kind == "probabilities":
            return _softmax_categorical_crossentropy
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def _loss_options(self) -> dict:
        """compile()'s loss: one, or one per output with loss_weights, which makes the `loss`
        that fit() and evaluate() report the weighted sum of the outputs' losses (Keras
        3.15.1 on torch, measured: evaluate() gives [that sum, each output's unweighted
        loss])."""
        if self.output_weights is None:
            return {"loss": self._loss()}
        return {"loss": [self._loss() for _ in self.output_weights],
                "loss_weights": list(self.output_weights)}

    def _per_output(self, y):
        """The labels as fit() and evaluate() take them: once per output, where several."""
        return y if self.output_weights is None else [y] * len(self.output_weights)

    def _forward_loss_value(self, y, y_pred) -> float:
        """The loss of a forward pass's outputs, as compile()'s loss computes it."""
        # A loss class reduces over the batch already; the probabilities loss is a function
        # with one value per sample, which compile() averages the same way.
        if self.output_weights is None:
            return float(np.mean(ops.convert_to_numpy(self._loss()(y, y_pred))))
        return sum(weight * float(np.mean(ops.convert_to_numpy(self._loss()(y, output))))
                   for weight, output in zip(self.output_weights, y_pred, strict=True))

    def _optimizer(self, optimizer, lr):
        if optimizer == "adam":
            return keras.optimizers.Adam(learning_rate=lr, **self.optimizer_overrides)
        return keras.optimizers.SGD(learning_rate=lr, **self.optimizer_overrides)

    def _prepare_optimizer_impl(self, optimizer, lr):
        for model in {id(m): m for m in (self._model, self._fit_model)}.values():
            model.compile(optimizer=self._optimizer(optimizer, lr), **self._loss_options(),
                          **self._hooks.compile_options())

    def _param_counts_impl(self):
        trainable_ids = {id(v) for v in self._fit_model.trainable_weights}
        trainable = sum(int(np.prod(v.shape)) for v in self._parameters if id(v) in trainable_ids)
        total = sum(int(np.prod(v.shape)) for v in self._parameters)
        return trainable, total - trainable

    # ----- passes ----------------------------------------------------------------------

    def _data(self, batch: Batch):
        if self.loss_kind == "probabilities":
            return batch.x_channels_last, np.eye(self.spec.num_classes, dtype=np.float32)[batch.y]
        return batch.x_channels_last, batch.y

    def _logits_impl(self, batch):
        if self._hooks.evaluate_keeps_outputs:
            kept = self._evaluate_keeping_outputs(batch)
            if kept is not None:
                outputs = batch.outputs_as_pytorch(kept[0])
                self._evaluated = (outputs, self.loss_kind, kept[1])
                return outputs
        x, _ = self._data(batch)
        outputs = self._wrappers[False].predict(x, batch_size=len(batch), verbose=0)
        return batch.outputs_as_pytorch(_joined(outputs))

    def _evaluate_keeping_outputs(self, batch) -> tuple[np.ndarray, float] | None:
        """The inference loss's own evaluate() (`_inference_loss_impl`): its outputs and
        its loss, or None when the evaluation was compiled before and cannot hand them back.

        Its forward pass is predict()'s (the same layers in inference mode, without
        gradients: the outputs are bitwise equal, tests/test_keras_evaluation.py), so the
        port check's outputs and the inference loss before every recipe come from one pass
        instead of two; on TensorFlow that is one traced function instead of two. A graph
        traced here keeps the hand-back for later evaluations, which then keep nothing."""
        evaluator, kept = self._evaluator(), []
        compute_metrics = evaluator.compute_metrics

        def keep(*outputs):
            if not kept:  # a copy: TensorFlow may reuse the buffer it lent
                kept.append(_joined([np.array(output) for output in outputs]))

        def keeping_outputs(x, y, y_pred, sample_weight=None):
            self._hooks.host(keep, *(y_pred if isinstance(y_pred, (list, tuple)) else [y_pred]))
            return compute_metrics(x, y, y_pred, sample_weight)

        evaluator.compute_metrics = keeping_outputs
        try:
            loss = self._inference_loss_impl(batch)
        finally:
            del evaluator.compute_metrics
        return (kept[0], loss) if kept else None

    def _loss_from_outputs_impl(self, outputs, batch):
        # The loss evaluate() gave in the pass that computed these outputs.
        evaluated = self._evaluated
        if evaluated is None or evaluated[0] is not outputs or evaluated[1] != self.loss_kind:
            return None
        return evaluated[2]

    def _inference_loss_impl(self, batch):
        x, y = self._data(batch)
        evaluator = self._evaluator()
        build_loss_from_output_spec(evaluator, y)
        found = evaluator.evaluate(x, self._per_output(y), batch_size=len(batch), verbose=0)
        # Of several outputs, evaluate() gives [the weighted sum, each output's own loss].
        return float(found[0] if isinstance(found, list) else found)

    def _evaluator(self):
        """The model evaluate() runs on: the inference model over the same layers, compiled
        once per loss. An inference pass does not depend on the recipe (trainable flags,
        training=False given to the base, the optimizer), and every compile() of the model
        fit() trains would make TensorFlow trace its evaluation again and JAX compile it
        again. A recipe that swaps layer classes (tf-keras's v1 BatchNormalization)
        evaluates on the model it compiled itself."""
        if self._recipe is not None and self._recipe.v1_batch_norm:
            return self._model
        evaluator = self._evaluators.get(self.loss_kind)
        if evaluator is None:
            inference = self._wrappers[False]
            evaluator = keras.Model(inference.inputs, inference.outputs)
            evaluator.compile(**self._loss_options(), **self._hooks.compile_options())
            self._evaluators[self.loss_kind] = evaluator
        return evaluator

    def _fit_inputs(self, x):
        if self._fit_model is self._model:
            return x
        if self._features is None:
            self._features = self.base.predict(x, batch_size=len(x), verbose=0)
        return self._features

    def _train_step_impl(self, batch, validate=False):
        x, y = self._data(batch)
        inputs, y = self._fit_inputs(x), self._per_output(y)
        extra = {"validation_data": (inputs, y)} if validate else {}
        build_loss_from_output_spec(self._fit_model, y)
        if self._hooks.observes_by_probe:
            self._probe_observations(inputs)
            observing = contextlib.nullcontext()
        else:
            observing = self._observe()
        with _inference_calls(self._forced_inference), observing, \
                self._hooks.train_context(self._recipe):
            history = self._fit_model.fit(inputs, y, batch_size=len(batch), epochs=1,
                                          shuffle=False, verbose=0, **extra)
        validation = history.history.get("val_loss", [None])[0]
        return float(history.history["loss"][0]), validation

    def _bn_moving_loss_impl(self, batch):
        """Where a model call draws other Dropout masks than fit (hooks'
        masks_differ_outside_fit), fit's own first step after compile(), as the run took it,
        with BatchNorm held in inference mode: its reported loss. On torch a second fit after
        one compile() draws others too (tiny_cnn at 32 px, batch 4: 2.4344 against 2.3835),
        so the run is prepared again. Before, the split of the gap between BatchNorm and
        Dropout took 2.3434 for Keras's pass with moving statistics, where fit's masks give
        2.3660 (keras:trainable_false's own train-step loss). The step's update is undone by
        the restore that follows, and its observations are dropped."""
        if not self._hooks.masks_differ_outside_fit:
            return super()._bn_moving_loss_impl(batch)
        self._prepare_run(self._recipe, *self._optimizer_settings)
        self._reset_rng_impl()
        forced = self._forced_inference
        self._forced_inference = (*forced, self._hooks.batch_norm_class)
        try:
            loss, _ = self._train_step_impl(batch)
        finally:
            self._forced_inference = forced
            self._audit_impl()
        return loss

    def _reset_rng_impl(self):
        # keras.utils.set_random_seed seeds Python, numpy, the backend's global generator
        # (unseeded torch dropout draws from torch's) and Keras's global SeedGenerator;
        # each Dropout layer's own SeedGenerator state is put back explicitly.
        keras.utils.set_random_seed(self._seed)
        for variable, value in zip(self._seed_states, self._seed_start):
            variable.assign(value)

    def _forward_loss_impl(self, batch, bn_moving, dropout_off):
        # What fit()'s train step does before the update: call the model with training=True.
        x, y = (_tensors(a) for a in self._data(batch))
        forced = list(self._forced_inference)
        if bn_moving:
            forced.append(self._hooks.batch_norm_class)
        if dropout_off:
            forced.extend(self._dropout_classes)
        inputs = _tensors(self._fit_inputs(self._data(batch)[0]))
        with _inference_calls(forced):
            y_pred = (self._exact_model or self._fit_model)(inputs, training=True)
        return self._forward_loss_value(y, y_pred)

    @contextlib.contextmanager
    def float64(self):
        """Within the block, train-step forward passes run on a float64 clone of the model
        fit() trains, holding its current weights: the rerun that measures how far float32
        rounding alone moves Keras's own train-step loss (its BatchNorm variance is
        E[x^2] - E[x]^2 on the torch backend, which cancels on few values per channel). Keras
        keeps float64 within the block (_promoting_to_float64); its loss classes still
        compute in float32 (their dtype is floatx), so the loss is rounded to float32 last."""
        exact = keras.models.clone_model(self._fit_model, clone_function=_in_float64)
        exact.set_weights([np.asarray(w, np.float64) for w in self._fit_model.get_weights()])
        self._exact_model = exact
        try:
            with _promoting_to_float64():
                yield
        finally:
            self._exact_model = None

    # ----- observation -----------------------------------------------------------------

    def _probe_observations(self, inputs) -> None:
        """Record what the next train step's layers do from a probe pass: the model fit()
        trains, called as JAX's train step calls it (stateless_call, training=True, from
        the same variables), compiled with jax.jit, its outputs the observations' inputs.
        stateless_call leaves every variable as it was, the Dropout seeds included, so the
        step that follows draws the same masks and starts from the same statistics."""
        import jax

        model, hooks = self._fit_model, self._hooks
        collected: list = []

        trainable, non_trainable = model.trainable_variables, model.non_trainable_variables
        wanted = {id(v) for v in trainable + non_trainable}
        # The variables in the model's own order, which no trainable flag changes: recipes
        # that compute the same pass then ask for the same program.
        everything = [v for v in model.variables if id(v) in wanted]
        position = {id(v): i for i, v in enumerate(everything)}

        def probe(values, x):
            collected.clear()  # a retrace starts the list again
            hooks.collected = collected
            try:
                model.stateless_call([values[position[id(v)]] for v in trainable],
                                     [values[position[id(v)]] for v in non_trainable], x,
                                     training=True)
            finally:
                hooks.collected = None
            return [list(tensors) for _, tensors in collected]

        with _inference_calls(self._forced_inference), self._observe():
            values = jax.jit(probe)([v.value for v in everything], inputs)
        for (record, _), arrays in zip(collected, values, strict=True):
            record(*(np.asarray(a) for a in arrays))

    @contextlib.contextmanager
    def _observe(self):
        adapter = self
        bn_class = self._hooks.batch_norm_class
        bn_call, dropout_call = bn_class.call, layers.Dropout.call

        hooks = self._hooks

        def observed_bn(layer, inputs, *args, **kwargs):
            if not hooks.is_concrete(inputs):
                return bn_call(layer, inputs, *args, **kwargs)
            moving = (hooks.snapshot(layer.moving_mean), hooks.snapshot(layer.moving_variance))
            outputs = bn_call(layer, inputs, *args, **kwargs)
            rank = len(inputs.shape)
            axes = [a for a in range(rank) if a != hooks.channel_axis(layer, rank)]
            sums = [reduce(ops.stop_gradient(t), axes) for t in (inputs, outputs)
                    for reduce in (ops.mean, hooks.mean_of_squares)]
            gamma = hooks.value(layer.gamma) if layer.scale else ops.ones_like(sums[0])
            beta = hooks.value(layer.beta) if layer.center else ops.zeros_like(sums[0])

            def record(x_mean, x_square, y_mean, y_square, gamma, beta, mean, moving_var):
                # The step's own call comes first; fit's validation pass (validation_data,
                # in inference mode) calls the layer again afterwards and must not count.
                adapter._bn_seen.setdefault(layer.name, used_batch_statistics(
                    x_mean, variance(x_mean, x_square), y_mean, variance(y_mean, y_square),
                    gamma, beta, mean, moving_var, eps=layer.epsilon))

            hooks.host(record, *sums, gamma, beta, *moving)
            return outputs

        bn_class.call = observed_bn
        layers.Dropout.call = self._dropout_observer(dropout_call)
        try:
            yield
        finally:
            bn_class.call, layers.Dropout.call = bn_call, dropout_call

    def _dropout_observer(self, call):
        """`call` (a Dropout-like layer class's) recording whether the layer acted: whether
        its output differs from its input."""
        adapter, hooks = self, self._hooks

        def observed(layer, inputs, *args, **kwargs):
            outputs = call(layer, inputs, *args, **kwargs)
            if hooks.is_concrete(inputs):
                same = ops.all(ops.equal(ops.stop_gradient(inputs), ops.stop_gradient(outputs)))

                def record(same):
                    adapter._dropout_seen.setdefault(layer.name, not bool(same))

                hooks.host(record, same)
            return outputs
        return observed

    def _audit_impl(self):
        modes = Modes(len(self._bn_layers), sum(self._bn_seen.values()),
                      len(self._dropout_layers), sum(self._dropout_seen.values()),
                      self._outside_base_modes())
        self._bn_seen, self._dropout_seen = {}, {}
        return modes

    def _base_is_whole_model(self) -> bool:
        return not self.head_layers

    def _outside_base_modes(self) -> dict | None:
        """The counts of Modes for the layers outside the frozen base, apart: whether a
        recipe meant for the base (training_false) reached the layers after it is seen only
        there. Layers forced into inference mode by a setting (--dropout off) are left out:
        their mode says nothing about the recipe. None where the base is the whole model."""
        if self._base_is_whole_model():
            return None
        in_base = {id(x) for x in self.base._flatten_layers(include_self=True, recursive=True)}

        def outside(layers_of_kind):
            return [x for x in layers_of_kind if id(x) not in in_base
                    and not isinstance(x, tuple(self._forced_inference))]

        bn, dropout = outside(self._bn_layers), outside(self._dropout_layers)
        return {"bn_layers": len(bn),
                "bn_batch_stats": sum(bool(self._bn_seen.get(x.name)) for x in bn),
                "dropout_layers": len(dropout),
                "dropout_active": sum(bool(self._dropout_seen.get(x.name)) for x in dropout)}

    def _canonical_layer_names(self) -> dict[int, str]:
        """id(Keras layer) -> the canonical (PyTorch) name of the module ported into it."""
        return {id(self._layer(port.keras_layer)): port.module for port in self._plan}

    def conventions(self) -> dict:
        """Per layer, as set on the layers: BatchNorm momentum in PyTorch's convention
        (1 - Keras's momentum: the weight of the new batch value) with Keras's own value
        beside it, epsilon, the variance the moving variance is updated with, and Dropout
        rates. Layers go by the canonical name of the module ported into them."""
        names = self._canonical_layer_names()
        return {
            "batchnorm": {names.get(id(bn), self._name_of(bn)): {
                "momentum": round(1.0 - float(bn.momentum), 12),
                "keras_momentum": float(bn.momentum), "epsilon": float(bn.epsilon),
                "running_variance": _running_variance(bn)} for bn in self._bn_layers},
            "dropout": self._dropout_rates(),
        }

    def _dropout_rates(self) -> dict[str, float]:
        return {self._name_of(layer): float(layer.rate) for layer in self._dropout_layers}

    def _name_of(self, layer) -> str:
        """The name a report gives the layer: its own (a worker rebuilding a user's model
        gives the comparison's)."""
        return layer.name

    def _exportable_model_impl(self):
        """The inference-mode model (BatchNorm on moving statistics, Dropout off). Keras
        exports only a model that has been called (its export checks `_called`). Without a
        head, the base is the whole model, and once called it is what is exported: its
        graph gives bitwise the outputs of the wrapper around it and DenseNet121's export
        took 2.5 to 2.7 s instead of 3.2 to 3.7 s (measured on torch, 2026-11-27). Else
        the model evaluate() ran on once there is one (on torch the port check's pass is an
        evaluate()), else _wrappers[False], over the same layers, which predict() and fit()
        call."""
        whole = self._whole_model()
        if whole is not None and getattr(whole, "_called", False):
            return whole
        evaluator = self._evaluators.get(self.loss_kind)
        return evaluator if evaluator is not None else self._wrappers[False]

    def _whole_model(self):
        """The model whose call is _wrappers[False]'s, or None: the base, without a head."""
        return None if self.head_layers else self.base

    def _environment_impl(self):
        found = {"keras": keras.__version__, "keras_backend": keras.backend.backend()}
        if getattr(self, "base", None) is not None:  # built
            found["devices"] = {self.name: self._hooks.device_of(self.base.weights[0])}
        if self._precision:
            found["gpu_float32"] = {self.name: self._precision}
        if self._fit_model is not None and self._hooks.is_compiled(self._fit_model):
            found["keras_train_step"] = self._hooks.train_step_kind(self._fit_model)
        return found

    def backend_versions(self) -> dict[str, str]:
        """The backend framework's own version (torch's is reported by its adapter)."""
        if self.backend == "tensorflow":
            import tensorflow as tf

            return {"tensorflow": tf.__version__}
        if self.backend == "jax":
            import jax
            import jaxlib

            return {"jax": jax.__version__, "jaxlib": jaxlib.__version__}
        return {}


def _running_variance(bn) -> str:
    """The batch variance a BatchNormalization layer's moving variance is updated with:
    Keras 3's own layer takes the biased one on every backend; tf_keras's fused kernel (its
    default on 4-D inputs, `fused` resolved to True when built) the unbiased one (tf_keras
    2.21 and Keras 3.15.1 on torch, TensorFlow and JAX, measured with momentum 0 on one
    batch, 2026-11-29)."""
    if getattr(bn, "fused", False) is True:
        return "unbiased batch variance (TensorFlow's fused kernel)"
    return "biased batch variance"
