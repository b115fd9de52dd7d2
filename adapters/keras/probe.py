"""Defaults of one Keras, measured inside its worker (task "probe" of adapters.keras.worker).

BatchNormalization's default momentum and epsilon as constructed, which variance its
moving-variance update uses (from one training-mode call on a fixed batch: the
biased one, divided by n, or the unbiased one, by n - 1), and whether the loss `fit`
reports was computed before or after the step's update (a Dense model, MSE, SGD, one
batch). Runs with whatever `keras` the worker imported: a Keras 3 release, nightly or
tf_keras.
"""

from __future__ import annotations

import numpy as np

SAMPLES, FEATURES = 8, 4


def _batch():
    generator = np.random.default_rng(0)
    x = (generator.standard_normal((SAMPLES, FEATURES)) * 2 + 1).astype("float32")
    y = generator.standard_normal((SAMPLES, 1)).astype("float32")
    return x, y


def _variance_used(keras, x) -> dict:
    layer = keras.layers.BatchNormalization()
    momentum, epsilon = float(layer.momentum), float(layer.epsilon)
    layer(x, training=True)
    moving = np.asarray(layer.moving_variance.numpy() if hasattr(layer.moving_variance, "numpy")
                        else keras.ops.convert_to_numpy(layer.moving_variance), np.float64)
    used = (moving - momentum) / (1.0 - momentum)  # moving starts at 1
    biased, unbiased = np.var(x, axis=0), np.var(x, axis=0, ddof=1)
    errors = {"biased (divided by n)": float(np.max(np.abs(used - biased))),
              "unbiased (divided by n - 1)": float(np.max(np.abs(used - unbiased)))}
    closest = min(errors, key=errors.get)
    return {"bn_momentum": momentum, "bn_epsilon": epsilon,
            "bn_moving_variance_update": closest if errors[closest] < 1e-3 else
            f"neither (max abs error {min(errors.values()):.2g})"}


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
    return {"status": "ok", "keras": keras.__version__, **_variance_used(keras, x),
            **_fit_loss(keras, x, y)}
