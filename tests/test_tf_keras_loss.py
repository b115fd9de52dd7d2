"""The probabilities loss is not one function in every framework, and the report says so.

Keras on torch and JAX (and PyTorch, written out) clip the softmax probabilities to
[1e-7, 1 - 1e-7]; on TensorFlow, tf_keras 2.21's and Keras 3.15.1's
CategoricalCrossentropy() take the logits the softmax was computed from and give
cross-entropy from logits, unclipped (comparator/config/__init__.py, measured 2026-11-29).
"""

import importlib.util
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from comparator.config import (LOSS_DESCRIPTIONS, PROBABILITIES_CLIPPED,
                               PROBABILITIES_FROM_LOGITS, CompareConfig)
from comparator.pipeline import _settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = SimpleNamespace(source="random-calibrated", sha256="0", description="seeded")


def _loss_settings(frameworks, loss="probabilities"):
    config = CompareConfig(model="tiny_cnn", loss=loss, frameworks=frameworks)
    settings = _settings(config, WEIGHTS, None)
    return settings["loss"], settings.get("loss_by_framework")


def test_tf_keras_beside_pytorch_is_described_per_framework():
    loss, by_framework = _loss_settings(("pytorch", "tf-keras"))
    assert by_framework["tf-keras"] == PROBABILITIES_FROM_LOGITS
    assert by_framework["pytorch"].startswith(PROBABILITIES_CLIPPED)
    assert "not the same function in every framework" in loss
    assert "tf-keras: from the softmax's logits, not clipped" in loss
    assert "clipped to" in loss.split("pytorch:")[1]


def test_keras_on_tensorflow_is_the_tf_keras_function_and_jax_the_clipped_one():
    _, by_framework = _loss_settings(("pytorch", "keras", "keras-tensorflow", "keras-jax"))
    assert by_framework["keras-tensorflow"] == PROBABILITIES_FROM_LOGITS
    assert by_framework["keras"] == by_framework["keras-jax"] == PROBABILITIES_CLIPPED


def test_where_every_framework_clips_the_description_stays_one():
    assert _loss_settings(("pytorch", "keras")) == (LOSS_DESCRIPTIONS["probabilities"], None)
    assert _loss_settings(("pytorch", "tf-keras"), loss="logits") == (
        LOSS_DESCRIPTIONS["logits"], None)


def test_the_preset_says_why_tf_keras_cannot_give_16_118():
    from comparator.config.presets import get_preset

    question = get_preset("seed-resnet50-learning-phase-keras2").question
    assert "16.118 whatever the weights" in question and "takes the softmax's logits" in question


_MEASURE = """
import json, numpy as np
from adapters.keras.worker import _adapter
_adapter("tf-keras", "tensorflow", "cpu")
import keras, tensorflow as tf
from adapters.keras.adapter import _softmax_categorical_crossentropy as loss
y = tf.constant([[1.0, 0.0, 0.0]] * 2)
logits = tf.Variable([[40.0, 0.0, 0.0], [-100.0, 0.0, 0.0]])
with tf.GradientTape() as tape:
    eager = loss(y, logits)
graph = tf.function(loss)(y, logits)
clipped = keras.losses.categorical_crossentropy(y, tf.nn.softmax(logits))
print(json.dumps({"keras": keras.__name__, "eager": eager.numpy().tolist(),
                  "graph": graph.numpy().tolist(), "grad": tape.gradient(eager, logits)
                  .numpy().tolist(), "probabilities": clipped.numpy().tolist()}))
"""


@pytest.mark.skipif(importlib.util.find_spec("tf_keras") is None,
                    reason="tf_keras is not installed (the tensorflow extra)")
def test_tf_keras_computes_the_loss_from_the_softmax_logits_in_the_worker():
    """The tf-keras worker's own loss, on a saturated right and a saturated wrong
    prediction: cross-entropy from logits, eager and in a graph, with its gradient;
    probabilities handed over from an eager tf.nn.softmax (no logits to take) are clipped."""
    env = {**os.environ, "XFRAME_KERAS2": "1", "PYTHONPATH": ROOT,
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", _MEASURE], env=env, cwd=ROOT, timeout=300,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["keras"] == "tf_keras"
    for losses in (found["eager"], found["graph"]):
        assert losses[0] == 0.0 and losses[1] == pytest.approx(100.6931, abs=1e-3)
    assert found["grad"][1] == pytest.approx([-1.0, 0.5, 0.5], abs=1e-6)
    assert found["probabilities"] == pytest.approx([1.1920929e-07, 16.118095], rel=1e-6)
