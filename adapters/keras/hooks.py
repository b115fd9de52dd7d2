"""What the Keras adapter does differently on each backend (adapters/keras/adapter.py uses
keras.ops for everything else): when a tensor carries values, how values reach the host from
inside a train step, how BatchNorm observations square their inputs, and how `compile` is
told to run. Keras 2 (a tf-keras worker) wraps these in adapters/keras/keras2.py's hooks."""

from __future__ import annotations

import contextlib

import numpy as np

from adapters.devices import tensorflow_device, torch_device
from adapters.keras.backend import keras
from comparator.errors import UsageError
from keras import layers, ops  # noqa: E402


def _gapless_in_memory(tensor) -> bool:
    """Whether the tensor's elements fill its memory span with no gaps or overlaps, in some
    order of its axes (a contiguous tensor, or a permuted view of one)."""
    expected = 1
    for stride, size in sorted((st, sz) for st, sz in zip(tensor.stride(), tensor.shape)
                               if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


class BackendHooks:
    """The backend-specific parts of the adapter; everything else uses keras.ops.

    TensorFlow and JAX run `fit`'s train step compiled, as Keras defaults it (a
    tf.function; jax.jit), unless `eager` asks for the step run op by op. On TensorFlow
    the layer observations live inside the compiled step and hand their per-channel
    statistics to the host by tf.numpy_function as the step runs. On JAX they are the
    outputs of a probe pass of their own (Keras3Adapter._probe_observations): JAX keeps no
    program holding a host callback in its compilation cache, and a step without one is
    both cached and quicker to compile. Torch's trainer is eager unless told to compile."""

    def __init__(self, backend: str, eager: bool = False):
        self.backend = backend
        self.eager = eager
        # While a probe pass traces: the (record, tensors) pairs its outputs will fill.
        self.collected: list | None = None
        self._squares: dict = {}  # (device, dtype) -> torch scratch for mean_of_squares

    @property
    def observes_by_probe(self) -> bool:
        return self.backend == "jax" and not self.eager

    @property
    def masks_differ_outside_fit(self) -> bool:
        """Whether a model call after the step's reset draws other Dropout masks than fit's
        step: on torch (an eager call: 2.3750 against fit's 2.3835 on tiny_cnn at 32 px,
        batch 4), not on TensorFlow or JAX, whose calls draw fit's (the ablation's split
        equalled the one fit's own masks give, 2026-11-29)."""
        return self.backend == "torch"

    @property
    def evaluate_keeps_outputs(self) -> bool:
        """Whether evaluate() can hand back the outputs it computed: on torch it runs op by
        op, and a TensorFlow graph passes them out through `host`. Not on JAX: a program
        with a host callback never enters JAX's compilation cache."""
        return self.backend in ("torch", "tensorflow")

    def is_concrete(self, tensor) -> bool:
        """Whether a layer call carries values that a host callback will see."""
        if self.backend == "torch":
            # Keras builds models by calling layers on meta tensors; those carry no values.
            return "meta" not in str(getattr(tensor, "device", ""))
        # TensorFlow and JAX: a callback runs only when the step runs, never while
        # Keras traces shapes.
        return True

    def in_graph(self) -> bool:
        if self.backend != "tensorflow":
            return False
        import tensorflow as tf

        return not tf.executing_eagerly()

    def host(self, fn, *tensors) -> None:
        """Call fn with the tensors' values as numpy arrays, when the step runs them."""
        if self.collected is not None:
            self.collected.append((fn, tensors))
            return
        if self.backend == "jax":
            import jax

            jax.debug.callback(lambda *values: fn(*(np.asarray(v) for v in values)),
                               *tensors)
            return
        if self.in_graph():
            import tensorflow as tf

            def call(*values):
                fn(*(np.asarray(v) for v in values))
                return np.zeros((), np.bool_)

            # A stateful op: tf.function's automatic control dependencies run it.
            tf.numpy_function(call, [ops.convert_to_tensor(t) for t in tensors], tf.bool,
                              stateful=True)
            return
        fn(*(None if t is None else ops.convert_to_numpy(t) for t in tensors))

    def mean_of_squares(self, tensor, axes):
        """E[x^2] over `axes` of a tensor outside the gradient.

        On torch the squares go into one scratch buffer, kept and reused, instead of a
        fresh tensor the size of the layer's input or output for each observation. Those
        freed tensors, 242 per DenseNet121 step, left holes in the heap that later
        allocations split, so that later Keras steps grew the heap further
        (docs/benchmark.md, twelfth session). The values are bitwise the same
        (tests/test_keras_observations.py)."""
        if self.backend != "torch" or not _gapless_in_memory(tensor):
            return ops.mean(ops.square(tensor), axes)
        import torch

        key = (tensor.device, tensor.dtype)
        scratch = self._squares.get(key)
        if scratch is None or scratch.numel() < tensor.numel():
            scratch = self._squares[key] = torch.empty(tensor.numel(), dtype=tensor.dtype,
                                                       device=tensor.device)
        # In the tensor's own memory order, as torch.square would lay its result out: Keras
        # on torch hands BatchNorm the convolution's output as a channels-last view of a
        # channels-first tensor, and reducing in another order rounds differently.
        squares = torch.as_strided(scratch, tensor.shape, tensor.stride())
        torch.mul(tensor, tensor, out=squares)
        return ops.mean(squares, axes)

    def snapshot(self, variable):
        """A value of the variable that a later in-place update does not change."""
        if self.backend == "jax":
            return variable.value  # immutable
        if self.in_graph():
            import tensorflow as tf

            return tf.identity(variable.value)  # ordered before the layer's update
        return ops.convert_to_numpy(variable).copy()

    def restore_view(self, array: np.ndarray, axes: tuple[int, ...] | None):
        """A canonical array in the Keras variable's layout, as a view to restore the variable
        from, or None where the adapter keeps a copy of the variable instead.

        On torch, a torch view sharing the array's memory, which nothing writes into: the
        initial state is then held once (31 MiB less for DenseNet121), and `assign` takes a
        torch view faster than a numpy array (11 against 15 to 19 ms per restore of
        DenseNet121's 606 variables). Elsewhere, and for an array torch cannot share
        (read-only) or a layout no permutation gives (axes None), None."""
        if self.backend != "torch" or axes is None or not array.flags.writeable:
            return None
        import torch

        view = torch.from_numpy(array)
        return view.permute(*axes) if axes else view

    def device_of(self, variable) -> str:
        """Where the backend holds the variable, read from the variable itself."""
        value = variable.value
        if self.backend == "jax":
            device = next(iter(value.devices()))
            return "cpu" if device.platform == "cpu" else f"{device} ({device.device_kind})"
        if self.backend == "tensorflow":
            return tensorflow_device(value.device)
        return torch_device(value.device)

    batch_norm_class = None  # keras.layers.BatchNormalization, set once Keras is imported
    keras_generation = 3

    @staticmethod
    def value(variable):
        return variable.value

    @staticmethod
    def channel_axis(layer, rank: int) -> int:
        return layer.axis % rank

    @staticmethod
    def layer_name(name: str) -> str:
        """A layer's name as the port maps (Keras 3's keras.applications) spell it."""
        return name

    def use_v1_batch_norm(self, bn_layers) -> None:
        raise UsageError("the v1 BatchNormalization is Keras 2's (tf-keras)")

    def restore_layers(self) -> None:
        """Undo use_v1_batch_norm (nothing to undo in Keras 3)."""

    def train_context(self, recipe):
        return contextlib.nullcontext()

    def compile_options(self) -> dict:
        if self.backend == "torch":
            return {"jit_compile": False}
        if self.eager:
            return {"jit_compile": False, "run_eagerly": True}
        if self.backend == "tensorflow":
            # Keras's default on CPU. With a GPU Keras would add XLA, which cannot hold the
            # observations' tf.numpy_function; the step stays a tf.function there too.
            return {"jit_compile": False}
        return {}  # JAX: Keras's defaults, a jax.jit-compiled step

    @staticmethod
    def is_compiled(model) -> bool:
        return bool(getattr(model, "compiled", False))

    def train_step_kind(self, model) -> str:
        """How fit() runs the step, in words, from the compiled model itself."""
        if model.run_eagerly:
            return "eager (run_eagerly=True)"
        if self.backend == "torch":
            return "eager (Keras's default on torch)"
        if self.backend == "jax":
            return "compiled (jax.jit)"
        return "compiled (tf.function, XLA)" if model.jit_compile else "compiled (tf.function)"


def hooks_for(backend: str, eager: bool = False):
    """Keras 3's hooks on this backend, or Keras 2's (a tf-keras worker, where `keras` is
    tf_keras: adapters/keras/keras2.py)."""
    hooks = BackendHooks(backend, eager)
    hooks.batch_norm_class = layers.BatchNormalization
    if keras.__version__.startswith("2."):
        from adapters.keras.keras2 import Keras2Hooks

        return Keras2Hooks(hooks)
    return hooks
