"""A user pair's workers on TensorFlow and JAX import no torch where the user's Keras side
imports none: the worker rebuilds the model through adapters/own_pair and the user adapter,
which once imported torch at module level (1.5 s of a TensorFlow worker's start,
docs/own-models.md). The first test starts one real worker per backend (3 to 8 s on 2
cores)."""

import numpy as np
import pytest

from adapters.keras import client
from comparator.config.frameworks import missing_modules


def _residual_pair(tmp_path):
    """The tests' residual pair, its Keras side as a .keras file, frozen in `features`."""
    from tests import user_pair_models as models

    keras_file = tmp_path / "residual_net.keras"
    models.ported_keras_net().save(keras_file)
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    return dict(pytorch=models.seeded_torch_net(), keras=str(keras_file), x=x,
                freeze="features")


def _separable_pair(tmp_path):
    """A SeparableConv2D against PyTorch's depthwise and pointwise modules, the whole model
    frozen: the walk opens the separable convolution into its two part layers."""
    from tests import user_layer_models as models

    keras_file = tmp_path / "separable_net.keras"
    models.keras_separable_net().save(keras_file)
    x = np.random.default_rng(1).standard_normal(
        (4, 3, models.SIZE, models.SIZE)).astype(np.float32)
    return dict(pytorch=models.seeded(models.SeparableNet()), keras=str(keras_file), x=x,
                port_weights="pytorch-to-keras")


@pytest.mark.parametrize("backend, pair", [("tensorflow", _residual_pair),
                                           ("jax", _residual_pair),
                                           ("tensorflow", _separable_pair)])
def test_a_worker_rebuilding_a_keras_file_imports_no_torch(tmp_path, monkeypatch, backend,
                                                           pair):
    """The Keras side given as a .keras file (no builder of the user's to import torch):
    every Keras recipe runs in the worker (bn_trainable walks the frozen part's layers),
    which tests/torch_free_worker.py fails where torch was imported."""
    if missing_modules([backend]):
        pytest.skip(f"{backend} is not installed: pip install -e '.[{backend}]'")
    from adapters import open_user_pair
    from comparator.config import CompareConfig
    from comparator.config.pair import UserPair
    from comparator.config.recipes import select

    given = pair(tmp_path)
    worker = f"keras-{backend}"
    opened = open_user_pair(
        UserPair(**given),
        CompareConfig(model="user pair", batch_size=len(given["x"]),
                      frameworks=("pytorch", "keras", worker)))
    side = opened.adapters[worker]
    monkeypatch.setattr(client, "WORKER_MODULE", "tests.torch_free_worker")
    recipes = select(None, [worker])  # the default recipes of the classify scenario
    side.start(recipes, opened.batch, 1, 0.01, "sgd", False)
    assert side.failure is None, side.failure.reason
    assert {r.name for r in recipes} >= {"train", "bn_trainable"}
    assert side.logits(opened.batch).shape == opened.adapters["keras"].logits(opened.batch).shape


def test_the_walk_looks_inside_the_layers_the_tracer_opens():
    """The layers the walk (and the port validator's tracer, which takes holds_layers from
    adapters.own_pair.keras_layers) looks inside, of every kind the walk meets."""
    import keras

    from adapters.own_pair.keras_layers import holds_layers
    from tests import user_pair_models as models

    class Block(keras.layers.Layer):  # a user's layer holding a weighted layer
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return x + self.dense(x)

    class Scale(keras.layers.Layer):  # a user's layer holding weights of its own only
        def build(self, shape):
            self.scale = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.scale

    def built(layer, shape):
        layer(keras.ops.zeros(shape))
        return layer

    given = {
        "nested model": models.ported_keras_net().get_layer("features"),
        "Dense": built(keras.layers.Dense(3), (1, 3)),
        "BatchNormalization": built(keras.layers.BatchNormalization(), (1, 3)),
        "LSTM": built(keras.layers.LSTM(3), (1, 2, 3)),
        "Bidirectional": built(keras.layers.Bidirectional(keras.layers.GRU(3)), (1, 2, 3)),
        "MultiHeadAttention": keras.layers.MultiHeadAttention(2, 4),
        "SeparableConv2D, built": built(keras.layers.SeparableConv2D(4, 3), (1, 5, 5, 2)),
        "SeparableConv2D, not built": keras.layers.SeparableConv2D(4, 3),
        "SeparableConv1D, built": built(keras.layers.SeparableConv1D(4, 3), (1, 5, 2)),
        "user's block": built(Block(), (1, 3)),
        "user's layer": built(Scale(), (1, 3)),
    }
    answers = {kind: holds_layers(layer) for kind, layer in given.items()}
    assert answers == {kind: kind in ("nested model", "SeparableConv2D, built",
                                      "SeparableConv1D, built", "user's block")
                       for kind in given}


def test_the_start_timer_names_the_imports_that_brought_torch_in():
    """tools/worker_start.py reads -X importtime's lines (a module's line follows those of
    the modules it imported, one level deeper): the chain from torch to the outermost import."""
    from tools.worker_start import _chain

    lines = """import time: self [us] | cumulative | imported package
import time:       120 |        120 |   numpy
import time:        40 |     160000 |       torch
import time:        30 |     160100 |     adapters.own_pair.pairing
import time:        20 |     160200 |   adapters.keras.user
import time:        10 |     160300 | adapters.keras.worker
import time:        10 |         10 | json"""
    assert _chain(lines) == ("torch <- adapters.own_pair.pairing <- adapters.keras.user <- "
                             "adapters.keras.worker (0.16 s under -X importtime)")
    assert _chain(lines.replace("torch", "torchvision")) == "torch not imported"
