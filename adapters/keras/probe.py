"""Defaults of one Keras, measured inside its worker (task "probe" of adapters.keras.worker).

BatchNormalization's default momentum and epsilon as constructed, which variance its
moving-variance update uses (from one training-mode call on a fixed batch: the
biased one, divided by n, or the unbiased one, by n - 1), on vectors (N,F) and on images
(N,H,W,C), which tf_keras sends through TensorFlow's fused kernel, and whether the loss `fit`
reports was computed before or after the step's update (a Dense model, MSE, SGD, one
batch). Runs with whatever `keras` the worker imported: a Keras 3 release, nightly or
tf_keras.
"""

from __future__ import annotations

import numpy as np

SAMPLES, FEATURES, SIDE = 8, 4, 2


def _batch():
    generator = np.random.default_rng(0)
    x = (generator.standard_normal((SAMPLES, FEATURES)) * 2 + 1).astype("float32")
    y = generator.standard_normal((SAMPLES, 1)).astype("float32")
    return x, y


def images() -> np.ndarray:
    """A fixed channels-last image batch, N,H,W,C, for the variance on images."""
    generator = np.random.default_rng(1)
    return (generator.standard_normal((SAMPLES, SIDE, SIDE, FEATURES)) * 2 + 1).astype("float32")


def variance_words(used: np.ndarray, x: np.ndarray) -> str:
    """Which batch variance of x (channels last) `used` is: "biased (divided by n)",
    "unbiased (divided by n - 1)", or neither with the error."""
    rows = x.reshape(-1, x.shape[-1])
    errors = {"biased (divided by n)": np.var(rows, axis=0),
              "unbiased (divided by n - 1)": np.var(rows, axis=0, ddof=1)}
    errors = {words: float(np.max(np.abs(used - value))) for words, value in errors.items()}
    closest = min(errors, key=errors.get)
    return (closest if errors[closest] < 1e-3 else
            f"neither (max abs error {min(errors.values()):.2g})")


def _variance_used(keras, x) -> str:
    layer = keras.layers.BatchNormalization()
    layer(x, training=True)
    moving = np.asarray(layer.moving_variance.numpy() if hasattr(layer.moving_variance, "numpy")
                        else keras.ops.convert_to_numpy(layer.moving_variance), np.float64)
    momentum = float(layer.momentum)
    return variance_words((moving - momentum) / (1.0 - momentum), x)  # moving starts at 1


def _defaults(keras, x) -> dict:
    layer = keras.layers.BatchNormalization()
    return {"bn_momentum": float(layer.momentum), "bn_epsilon": float(layer.epsilon),
            "bn_moving_variance_update": _variance_used(keras, x),
            "bn_moving_variance_update_images": _variance_used(keras, images())}


def _fit_loss(keras, x, y) -> dict:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((FEATURES,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    before = float(model.evaluate(x, y, batch_size=SAMPLES, verbose=0))
    reported = float(model.fit(x, y, batch_size=SAMPLES, epochs=1, shuffle=False,
                               verbose=0).history["loss"][0])
    after = float(model.evaluate(x, y, batch_size=SAMPLES, verbose=0))
    tolerance = 1e-5 * max(1.0, abs(before))
    when = ("before the update" if abs(reported - before) <= tolerance else
            "after the update" if abs(reported - after) <= tolerance else "neither")
    return {"fit_loss": when, "fit_loss_values": {"evaluate_before": before,
                                                  "fit_reported": reported,
                                                  "evaluate_after": after}}


def probe(keras) -> dict:
    x, y = _batch()
    return {"status": "ok", "keras": keras.__version__, **_defaults(keras, x),
            **_fit_loss(keras, x, y)}
