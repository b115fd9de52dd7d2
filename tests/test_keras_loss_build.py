"""The Keras adapter builds a compiled model's loss container from the model's output spec,
so fit() and evaluate() skip the symbolic pass of the whole model that Keras would make
first. The step must be the same as Keras's own: same losses, same weights afterwards,
and with an unseeded Dropout on torch the same masks."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.keras.backend import keras
from adapters.keras.loss_build import build_loss_from_output_spec

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class _CountingDense(keras.layers.Dense):
    """A Dense layer that counts its calls, symbolic ones included."""

    calls = 0

    def call(self, inputs):
        type(self).calls += 1
        return super().call(inputs)


def _model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    hidden = _CountingDense(5, activation="relu")(inputs)
    outputs = keras.layers.Dense(4)(keras.layers.Dropout(0.5)(hidden))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _step(prebuild: bool, evaluate_first: bool):
    """A step after compile(), or after compile() and evaluate(), with no reseeding between:
    the generator draws of evaluate() then reach the step's Dropout masks."""
    x = np.random.RandomState(0).rand(8, 6).astype("float32")
    y = np.arange(8) % 4
    model = _model()
    _CountingDense.calls = 0
    keras.utils.set_random_seed(5)
    built = build_loss_from_output_spec(model, y) if prebuild else None
    evaluated = model.evaluate(x, y, batch_size=8, verbose=0) if evaluate_first else None
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                        validation_data=(x, y))
    return built, _CountingDense.calls, (evaluated, history.history), model.get_weights()


@pytest.mark.parametrize("evaluate_first", [False, True])
def test_a_step_after_the_prebuilt_loss_is_keras_own_step_without_the_symbolic_pass(
        evaluate_first):
    built, calls, history, weights = _step(True, evaluate_first)
    _, own_calls, own_history, own_weights = _step(False, evaluate_first)
    assert built is True
    assert calls == own_calls - 1  # Keras's own path calls the model once more, symbolically
    assert history == own_history
    for ours, theirs in zip(weights, own_weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_the_loss_is_left_to_keras_where_the_output_spec_does_not_say_enough():
    y = np.zeros(8, dtype="int64")
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    unbuilt.compile(loss="mse")
    assert build_loss_from_output_spec(unbuilt, y) is False  # no outputs before a call
    with_metrics = _model()
    with_metrics.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert build_loss_from_output_spec(with_metrics, y) is False
    built = _model()
    assert build_loss_from_output_spec(built, y) is True
    assert build_loss_from_output_spec(built, y) is False  # already built
