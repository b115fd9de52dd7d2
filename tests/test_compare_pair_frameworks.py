"""compare_pair (Python) on other Keras backends: frameworks= as compare.py's --frameworks.
The worker rebuilds the Keras model from its SPEC, so its numbers are checked against plain
Keras on JAX doing the same step in a fresh process (tests/test_user_pair_workers.py)."""

import os

import numpy as np
import pytest

import comparator
from comparator.config.frameworks import missing_modules
from comparator.errors import UsageError
from tests.test_user_pair_workers import LR, MODELS, ROOT, STEPS, batch_file, plain_keras
from tests.user_pair_models import ported_keras_net, seeded_torch_net

KERAS_SPEC = f"{os.path.join(ROOT, MODELS)}:ported_keras_net"


__all__ = ["batch_file"]  # the batch tests/test_user_pair_workers.py compares on


@pytest.mark.skipif(bool(missing_modules(["jax"])),
                    reason="jax is not installed: pip install -e '.[jax]'")
def test_compare_pair_runs_the_keras_spec_on_jax_as_plain_keras_on_jax(batch_file):
    with np.load(batch_file) as data:
        x, y = data["x"], data["y"]
    report = comparator.compare_pair(seeded_torch_net(), KERAS_SPEC, x, y,
                                     frameworks="pytorch,keras,keras-jax",
                                     recipes=("keras:train", "keras-jax:train"),
                                     dropout="off", lr=LR, steps=STEPS)
    assert report.settings["frameworks"] == ["pytorch", "keras", "keras-jax"]
    worker = report.run("keras-jax:train")
    assert worker.backend == "jax"
    plain = plain_keras("jax", batch_file)
    assert abs(worker.losses.inference_before - plain["before"]) <= 1e-6
    assert np.allclose(worker.losses.train_step, plain["train_step"], rtol=0, atol=1e-6)
    assert abs(worker.losses.inference_after - plain["after"]) <= 1e-6
    assert "port:keras-jax_vs_pytorch_eval_logits" in {check.name for check in report.checks}


@pytest.mark.parametrize("frameworks, words", [
    (5, "frameworks takes names (pytorch, keras, keras-jax, ...), not 5"),
    (["pytorch", 3], "frameworks takes names"),
    ("pytorch,keras,nope", "unknown framework 'nope'"),
    ("pytorch,keras,tf-keras", "tf-keras runs Keras 2"),
])
def test_frameworks_it_cannot_take_are_refused_before_any_model_loads(frameworks, words):
    x = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        comparator.compare_pair(None, "no_such_file.py:nothing", x, frameworks=frameworks)


def test_a_keras_model_object_cannot_go_to_a_worker():
    x = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(UsageError, match="a model object cannot be sent there"):
        comparator.compare_pair(seeded_torch_net(), ported_keras_net(), x,
                                frameworks=("pytorch", "keras", "keras-jax"))
