"""Keras 2 (the `tf_keras` package) behind the Keras 3 adapter, in a worker of its own.

The Keras 3 adapter is written against `keras`, `keras.layers` and `keras.ops`.
Keras 2's model API (Input, Model, layers, applications, compile/fit/evaluate/
predict, get_weights/set_weights) is the same for everything the adapter uses; it
has no `keras.ops`. So a tf-keras worker calls `install_as_keras()` before it
imports the adapter: `keras` then names tf_keras, and `keras.ops` is the handful of
TensorFlow functions below. What still differs lives in `Keras2Hooks`.

Only a tf-keras worker process imports this module.
"""

from __future__ import annotations

import sys
import types

from adapters.devices import tensorflow_device

V1_BATCH_NORMALIZATION = "tf_keras.src.layers.normalization.batch_normalization_v1"


def _ops_module(tf):
    """The keras.ops functions the adapter calls, on TensorFlow tensors."""
    ops = types.ModuleType("keras.ops")
    ops.convert_to_numpy = lambda x: x.numpy() if hasattr(x, "numpy") else __import__(
        "numpy").asarray(x)
    ops.convert_to_tensor = tf.convert_to_tensor
    ops.mean = lambda x, axis: tf.reduce_mean(x, axis=axis)
    ops.square = tf.square
    ops.stop_gradient = tf.stop_gradient
    ops.all = tf.reduce_all
    ops.equal = tf.equal
    ops.ones_like = tf.ones_like
    ops.zeros_like = tf.zeros_like
    return ops


def install_as_keras():
    """Make `import keras` give tf_keras in this process; returns it. Raises ImportError
    (with tf_keras's or TensorFlow's own message) when either cannot be imported."""
    import tensorflow as tf
    import tf_keras

    ops = _ops_module(tf)
    tf_keras.ops = ops
    sys.modules["keras"] = tf_keras
    sys.modules["keras.layers"] = tf_keras.layers
    sys.modules["keras.ops"] = ops
    return tf_keras


def v1_batch_normalization_class():
    """Keras 2.1's BatchNormalization as tf_keras still ships it: with trainable=False it
    keeps its moving statistics but, called with training=True (inside fit), normalises
    with the batch's statistics."""
    import importlib

    return importlib.import_module(V1_BATCH_NORMALIZATION).BatchNormalization


class Keras2Hooks:
    """Where Keras 2 differs from Keras 3 for the adapter (TensorFlow backend only)."""

    keras_generation = 2
    observes_by_probe = False  # TensorFlow: the observations run inside the step
    evaluate_keeps_outputs = False  # the port check's outputs come from predict()
    # A model call draws other Dropout masks than tf_keras's fit (tiny_cnn at 16 px, batch
    # 4: the ablation's BatchNorm share 0.0333 against 0.0217 from fit's own masks).
    masks_differ_outside_fit = True

    def __init__(self, base_hooks):
        self._base = base_hooks
        self.backend = base_hooks.backend
        from tf_keras.src.layers.normalization.batch_normalization import (
            BatchNormalizationBase,
        )

        # Both the current and the v1 BatchNormalization derive from it; observing it sees
        # either (the v1 recipe swaps a layer's class).
        self.batch_norm_class = BatchNormalizationBase
        self._swapped: list = []

    def is_concrete(self, tensor) -> bool:
        return self._base.is_concrete(tensor)

    def host(self, fn, *tensors) -> None:
        self._base.host(fn, *tensors)

    def mean_of_squares(self, tensor, axes):
        return self._base.mean_of_squares(tensor, axes)

    def snapshot(self, variable):
        """As Keras 3's on TensorFlow: inside the compiled step, a copy ordered before the
        layer's update; op by op, the value as numpy."""
        if self._base.in_graph():
            import tensorflow as tf

            return tf.identity(variable.read_value())
        return variable.numpy().copy()

    def restore_view(self, array, axes):
        return self._base.restore_view(array, axes)  # TensorFlow: None, a copy is kept

    def compile_options(self) -> dict:
        # tf_keras's own default: fit's step is a tf.function without XLA, which holds the
        # observations' tf.numpy_function (as Keras 3 on TensorFlow does on CPU).
        if self._base.eager:
            return {"jit_compile": False, "run_eagerly": True}
        return {}

    def train_step_kind(self, model) -> str:
        return self._base.train_step_kind(model)

    @staticmethod
    def is_compiled(model) -> bool:
        return bool(getattr(model, "_is_compiled", False))

    @staticmethod
    def device_of(variable) -> str:
        return tensorflow_device(variable.device)

    @staticmethod
    def value(variable):
        """A variable's current value as a tensor (a Keras 2 variable's .value is a method)."""
        return variable.read_value()

    def use_v1_batch_norm(self, bn_layers) -> None:
        """Make these layers Keras 2.1's BatchNormalization, weights and all else unchanged.
        tf_keras's v1 and current classes share one base and differ in the class flag
        _USE_V2_BEHAVIOR alone (read when a layer resolves `training`, and at construction
        for `fused`, which a built layer keeps), so swapping the class of a built layer is
        rebuilding it with the v1 class."""
        v1 = v1_batch_normalization_class()
        for layer in bn_layers:
            self._swapped.append((layer, layer.__class__))
            layer.__class__ = v1

    def restore_layers(self) -> None:
        for layer, original in self._swapped:
            layer.__class__ = original
        self._swapped = []

    def train_context(self, recipe):
        """keras.backend.set_learning_phase(0) for the recipe that asks for it, undone after
        the step (learning_phase_scope is what set_learning_phase sets, with an end)."""
        import contextlib

        if recipe is not None and recipe.learning_phase_zero:
            import tf_keras

            return tf_keras.backend.learning_phase_scope(0)
        return contextlib.nullcontext()

    @staticmethod
    def layer_name(name: str) -> str:
        """Keras 2's applications name a few stem layers with a slash (DenseNet's
        conv1/conv, conv1/bn); Keras 3 renamed them with an underscore."""
        return name.replace("/", "_")

    @staticmethod
    def channel_axis(layer, rank: int) -> int:
        """Keras 2 keeps BatchNormalization's axis as a list once built."""
        axis = layer.axis[0] if isinstance(layer.axis, (list, tuple)) else layer.axis
        return axis % rank


def export_onnx(model, path: str) -> dict:
    """The inference-mode ONNX graph of a Keras 2 model, written to `path`; the exporter's
    notes. tf_keras 2.21's model.export writes a SavedModel only (it takes no `format`), so
    tf2onnx converts the model itself: `tf2onnx.convert.from_keras` traces it with
    `training=False` (BatchNorm on moving statistics, Dropout off). The batch dimension
    stays free, as in Keras 3's own export on TensorFlow; the opset is tf2onnx's default,
    as there too."""
    import tensorflow as tf
    import tf2onnx
    import tf_keras

    signature = tuple(tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype,
                                    name="input" if len(model.inputs) == 1 else f"input{i}")
                      for i, tensor in enumerate(model.inputs))
    tf2onnx.convert.from_keras(model, input_signature=signature, output_path=path)
    return {"exporter": f"tf2onnx {tf2onnx.__version__} convert.from_keras on tf_keras "
                        f"{tf_keras.__version__} (whose model.export writes a SavedModel only)",
            "mode": "eval"}
