"""Keras model construction for the model table: keras.applications builders and
this project's own small models. Imported only by adapters.keras3, after it has
fixed the backend."""

from __future__ import annotations

from adapters.keras3 import keras
from keras import layers

from comparator.models import ModelSpec

HEAD_HIDDEN = 64
HEAD_DROPOUT = 0.5


def tiny_cnn(spec: ModelSpec, image_size: int, include_top: bool):
    """The Keras twin of adapters.pytorch.TinyCNN (explicit padding, as PyTorch pads)."""
    eps, momentum = spec.bn_epsilon["keras"], spec.bn_momentum["keras"]
    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    for i, (filters, stride) in enumerate(((8, 1), (16, 2), (32, 2)), start=1):
        x = layers.ZeroPadding2D(1, name=f"pad{i}")(x)
        x = layers.Conv2D(filters, 3, strides=stride, use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(epsilon=eps, momentum=momentum, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if include_top:
        x = layers.Dropout(0.2, name="dropout")(x)
        x = layers.Dense(spec.num_classes, name="classifier")(x)
    return keras.Model(inputs, x, name="tiny_cnn")


def input_shape(spec: ModelSpec, image_size: int) -> tuple[int, ...]:
    if spec.input_features:
        return (spec.input_features,)
    return (image_size, image_size, 3)


def dense_mlp(spec: ModelSpec):
    """The Keras twin of adapters.pytorch_models.DenseMLP."""
    inputs = keras.Input((spec.input_features,))
    x = layers.Dense(spec.feature_dim, activation="relu", name="fc1")(inputs)
    return keras.Model(inputs, layers.Dense(1, name="fc2")(x), name="dense_mlp")


def build_base(spec: ModelSpec, image_size: int, include_top: bool):
    if spec.family == "mlp":
        return dense_mlp(spec)
    if spec.family == "tiny":
        return tiny_cnn(spec, image_size, include_top)
    builder = getattr(keras.applications, spec.keras_builder)
    shape = (image_size, image_size, 3)
    if include_top:
        return builder(weights=None, classifier_activation=None, input_shape=shape)
    return builder(weights=None, include_top=False, pooling="avg", input_shape=shape)
