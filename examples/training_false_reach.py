"""How far `training=False` on a nested model reaches inside `fit`, in plain Keras (no code
of this tool): one BatchNormalization before the nested `features` model, one inside it, one
after it; `features` called with training=False, as the transfer-learning guide does; one
`fit` step. A BatchNormalization that trained moves its moving mean.

    KERAS_BACKEND=torch python examples/training_false_reach.py
    KERAS_BACKEND=jax PYTHONPATH=<a keras-nightly overlay> python examples/training_false_reach.py

Prints the Keras version, the backend and how far each moving mean moved.
"""

import keras
import numpy as np
from keras import layers


def nested_model():
    inner = keras.Input((8,))
    features = keras.Model(
        inner, layers.BatchNormalization(name="bn_inside")(layers.Dense(8)(layers.ReLU()(inner))),
        name="features")
    inputs = keras.Input((8,))
    x = layers.BatchNormalization(name="bn_before")(layers.Dense(8)(inputs))
    x = features(x, training=False)
    x = layers.BatchNormalization(name="bn_after")(layers.Dense(8)(layers.ReLU()(x)))
    x = layers.Dropout(0.5, name="dropout_after")(x)
    return keras.Model(inputs, layers.Dense(1)(x)), features


def main():
    keras.utils.set_random_seed(0)
    model, features = nested_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 8)).astype("float32") * 3 + 1  # far from the moving mean, 0
    y = rng.normal(size=(4, 1)).astype("float32")
    norms = [model.get_layer("bn_before"), features.get_layer("bn_inside"),
             model.get_layer("bn_after")]
    before = [np.array(layer.moving_mean) for layer in norms]
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    moved = {layer.name: float(np.max(np.abs(np.array(layer.moving_mean) - start)))
             for layer, start in zip(norms, before)}
    print(keras.__version__, keras.backend.backend(),
          ", ".join(f"{name} moved {value:.3g}" for name, value in moved.items()))


if __name__ == "__main__":
    main()
