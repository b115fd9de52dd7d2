"""MobileNetV2: the Keras side pads symmetrically, as torchvision does."""

from __future__ import annotations

import re

from comparator.zoo.spec import (TORCHVISION_INPUT, VARIANCE_UPDATE, ModelSpec, Preprocessing,
                                  register)


def keras_layer_name(module: str):
    """torchvision MobileNetV2 (features.{i}) to keras.applications' names (block_{i-1})."""
    fixed = {"features.0.0": "Conv1", "features.0.1": "bn_Conv1",
             "features.1.conv.0.0": ("expanded_conv_depthwise", "depthwise"),
             "features.1.conv.0.1": "expanded_conv_depthwise_BN",
             "features.1.conv.1": "expanded_conv_project",
             "features.1.conv.2": "expanded_conv_project_BN",
             "features.18.0": "Conv_1", "features.18.1": "Conv_1_bn",
             "classifier.1": "predictions"}
    if module in fixed:
        return fixed[module]
    match = re.fullmatch(r"features\.(\d+)\.conv\.(\d(?:\.\d)?)", module)
    if not match or not 2 <= int(match.group(1)) <= 17:
        return None
    block = int(match.group(1)) - 1
    part = {"0.0": "expand", "0.1": "expand_BN", "1.0": ("depthwise", "depthwise"),
            "1.1": "depthwise_BN", "2": "project", "3": "project_BN"}.get(match.group(2))
    if part is None:
        return None
    if isinstance(part, tuple):
        return f"block_{block}_{part[0]}", part[1]
    return f"block_{block}_{part}"


# keras.applications' "tf" mode: scaled to [-1, 1].
KERAS_TF_INPUT = Preprocessing("tf (scaled to [-1, 1])", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


register(ModelSpec(
    name="mobilenet_v2", family="mobilenet_v2", layer_names=keras_layer_name,
    feature_dim=1280,
    torchvision_builder="mobilenet_v2", keras_builder="mobilenet_v2_symmetric",
    naive_keras_builder="MobileNetV2",
    bn_epsilon={"pytorch": 1e-5, "keras": 1e-5}, bn_momentum={"pytorch": 0.1, "keras": 0.999},
    preprocessing={"pytorch": TORCHVISION_INPUT, "keras": KERAS_TF_INPUT},
    known_differences=(
        "Padding: keras.applications.MobileNetV2 pads stride-2 convs asymmetrically "
        "((0, 1), (0, 1) on even sizes: 'same' on Conv1, correct_pad before strided "
        "depthwise convs), torchvision symmetrically (1 on every side). The Keras side here "
        "is a functional MobileNetV2 with keras.applications' layer names that pads "
        "symmetrically (adapters/keras/models.py); validate_port.py --naive mobilenet_v2 "
        "shows the mismatch.",
        "BatchNorm epsilon: keras.applications uses 1e-3, torchvision 1e-5; the Keras side "
        "here uses 1e-5, since the epsilon changes the function.",
        "BatchNorm momentum: Keras's MobileNetV2 0.999 (old-value weight, kept here) is "
        "PyTorch 0.001; torchvision uses 0.1.",
        VARIANCE_UPDATE,
        "Dropout: torchvision's classifier has Dropout(0.2) before the last Linear, "
        "keras.applications' none (kept): in training mode only PyTorch drops units.",
        "Preprocessing: keras.applications' MobileNetV2 expects [-1, 1] input; the ported "
        "torchvision weights expect ImageNet mean/std, which both frameworks get here.",
    ),
))
