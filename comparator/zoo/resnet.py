"""ResNet50: torchvision's is v1.5, keras.applications' v1; the Keras side here is a v1.5
rebuild with keras.applications' layer names (adapters/keras/models.py)."""

from __future__ import annotations

import re

from comparator.zoo.spec import (CAFFE_INPUT, TORCHVISION_INPUT, VARIANCE_UPDATE, ModelSpec,
                                 batchnorm, register)


def keras_layer_name(module: str) -> str | None:
    """torchvision ResNet (layer{L}.{B}) to keras.applications' names (conv{L+1}_block{B+1})."""
    if module in ("conv1", "bn1"):
        return "conv1_conv" if module == "conv1" else "conv1_bn"
    if module == "fc":
        return "predictions"
    match = re.fullmatch(r"layer(\d+)\.(\d+)\.(conv|bn)(\d)", module)
    if match:
        stage, block, what, i = match.groups()
        return f"conv{int(stage) + 1}_block{int(block) + 1}_{i}_{what}"
    match = re.fullmatch(r"layer(\d+)\.(\d+)\.downsample\.([01])", module)
    if match:
        stage, block, i = match.groups()
        return f"conv{int(stage) + 1}_block{int(block) + 1}_0_{'conv' if i == '0' else 'bn'}"
    return None


register(ModelSpec(
    name="resnet50", family="resnet", layer_names=keras_layer_name, feature_dim=2048,
    torchvision_builder="resnet50", keras_builder="resnet50_v1_5", naive_keras_builder="ResNet50",
    **batchnorm(keras_epsilon=1e-5, keras_momentum=0.99),
    preprocessing={"pytorch": TORCHVISION_INPUT, "keras": CAFFE_INPUT},
    known_differences=(
        "Architecture: keras.applications.ResNet50 is ResNet v1 (stride 2 on the first 1x1 "
        "conv of a strided block, convs with bias); torchvision's resnet50 is v1.5 (stride 2 "
        "on the 3x3 conv, convs without bias). Same weight shapes, different functions: the "
        "Keras side here is a functional ResNet50 v1.5 with keras.applications' layer names "
        "(adapters/keras/models.py); validate_port.py --naive resnet50 shows the mismatch.",
        "Padding: the v1.5 Keras model pads its strided 3x3 convs by 1 on every side "
        "(ZeroPadding2D), as PyTorch does; Keras 'same' would pad (0, 1).",
        "BatchNorm epsilon: keras.applications' ResNet50 uses 1.001e-5, torchvision 1e-5; the "
        "v1.5 Keras model uses 1e-5 (in training mode with few values per channel the "
        "difference is visible).",
        "BatchNorm momentum: Keras 0.99 (old-value weight, kept) is PyTorch 0.01; torchvision "
        "uses 0.1.",
        VARIANCE_UPDATE,
        "Preprocessing: keras.applications' ResNet50 expects caffe-style input; the ported "
        "torchvision weights expect ImageNet mean/std, which both frameworks get here.",
    ),
))
