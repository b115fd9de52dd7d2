"""The clipped cross-entropy on probabilities: one function in Keras, PyTorch and numpy."""

import numpy as np
import pytest
import torch

from adapters.pytorch.adapter import _clipped_probability_cross_entropy
from comparator.analysis.diagnosis import CERTAIN_LOSS, SATURATED_LOSS, certainty_note
from comparator.errors import UsageError
from comparator.analysis.referee import clipped_probability_cross_entropy
from comparator.config import CompareConfig, resolve


def _logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(6, 10)).astype(np.float32)
    logits[4] = [40.0] + [0.0] * 9  # label 3 gets a probability far below 1e-7
    logits[5] = [0.0] * 3 + [40.0] + [0.0] * 6  # label 3 gets probability 1
    return logits, np.array([1, 2, 3, 4, 3, 3])


def _keras_loss(logits, labels):
    import keras

    from adapters.keras.adapter import _softmax_categorical_crossentropy

    one_hot = np.eye(logits.shape[1], dtype=np.float32)[labels]
    per_sample = _softmax_categorical_crossentropy(one_hot, keras.ops.convert_to_tensor(logits))
    return keras.ops.convert_to_numpy(per_sample)


def test_keras_pytorch_and_numpy_compute_the_same_clipped_loss():
    logits, labels = _logits()
    keras_per_sample = _keras_loss(logits, labels)
    assert keras_per_sample[4] == pytest.approx(SATURATED_LOSS, abs=1e-5)
    assert keras_per_sample[5] == pytest.approx(CERTAIN_LOSS, abs=1e-9)
    torch_loss = float(_clipped_probability_cross_entropy(torch.from_numpy(logits),
                                                          torch.from_numpy(labels)))
    assert torch_loss == pytest.approx(float(np.mean(keras_per_sample)), rel=1e-6)
    assert clipped_probability_cross_entropy(logits, labels) == pytest.approx(torch_loss,
                                                                              rel=1e-5)


def test_clipping_stops_the_gradient_in_both_frameworks():
    import keras

    from adapters.keras.adapter import _softmax_categorical_crossentropy

    logits, labels = _logits()
    x = torch.from_numpy(logits).requires_grad_(True)
    _clipped_probability_cross_entropy(x, torch.from_numpy(labels)).backward()
    one_hot = torch.from_numpy(np.eye(10, dtype=np.float32)[labels])
    k = torch.from_numpy(logits).requires_grad_(True)
    keras.ops.mean(_softmax_categorical_crossentropy(one_hot, k)).backward()
    assert np.allclose(x.grad.numpy(), k.grad.numpy(), atol=1e-7)
    assert not x.grad[4].any() and not x.grad[5].any()  # both clipped rows: no gradient


def test_certainty_note_names_the_floor():
    assert "1 - 1e-7" in certainty_note(CERTAIN_LOSS, "inference")
    assert certainty_note(1e-3) is None


@pytest.mark.parametrize("changes,message", [
    (dict(labels=(1000,)), "label 1000 is outside densenet121's classes 0..999"),
    (dict(labels=(1, 2)), "give one label or 4"),
    (dict(scenario="head", labels=(1,)), "labels are for the classify scenario"),
    (dict(loss="hinge"), "unknown loss 'hinge'"),
])
def test_bad_loss_or_labels_are_usage_errors(changes, message):
    config = CompareConfig(**{**dict(model="densenet121", batch_size=4), **changes})
    with pytest.raises(UsageError, match=message):
        resolve(config)
