"""This project's own small models, defined in both frameworks to keep tests fast:
a tiny CNN, and the seed report's dense MLP."""

from __future__ import annotations

import re

from comparator.zoo.spec import TORCHVISION_INPUT, ModelSpec, register


def _tiny_layer_name(module: str) -> str | None:
    return module if re.fullmatch(r"(conv|bn)\d+|classifier", module) else None


def _mlp_layer_name(module: str) -> str | None:
    return module if re.fullmatch(r"fc\d+", module) else None


register(ModelSpec(
    name="tiny_cnn", family="tiny", layer_names=_tiny_layer_name, feature_dim=32,
    default_image_size=32, min_image_size=8, num_classes=10,
    bn_epsilon={"pytorch": 1e-5, "keras": 1e-5}, bn_momentum={"pytorch": 0.1, "keras": 0.9},
    preprocessing={"pytorch": TORCHVISION_INPUT, "keras": TORCHVISION_INPUT},
    known_differences=("Defined in both frameworks by this project to keep tests fast.",),
))


register(ModelSpec(
    name="dense_mlp", family="mlp", layer_names=_mlp_layer_name, feature_dim=1000,
    input_features=100, default_image_size=0, min_image_size=0, num_classes=1,
    known_differences=("The seed report's Dense(1000, relu) -> Dense(1) on 100 inputs; "
                       "no BatchNorm, no Dropout.",),
))
