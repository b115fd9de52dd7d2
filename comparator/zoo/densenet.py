"""DenseNet121/169/201: torchvision's and keras.applications' builders compute the same
function once kernels are transposed."""

from __future__ import annotations

import re

from comparator.zoo.spec import (VARIANCE_UPDATE, KerasCheckpoint, ModelSpec, Preprocessing,
                                  TORCHVISION_INPUT, register)


def keras_layer_name(module: str) -> str | None:
    rules = (
        (r"features\.conv0", "conv1_conv"),
        (r"features\.norm0", "conv1_bn"),
        (r"features\.denseblock(\d+)\.denselayer(\d+)\.norm1", "conv{b}_block{l}_0_bn"),
        (r"features\.denseblock(\d+)\.denselayer(\d+)\.conv1", "conv{b}_block{l}_1_conv"),
        (r"features\.denseblock(\d+)\.denselayer(\d+)\.norm2", "conv{b}_block{l}_1_bn"),
        (r"features\.denseblock(\d+)\.denselayer(\d+)\.conv2", "conv{b}_block{l}_2_conv"),
        (r"features\.transition(\d+)\.norm", "pool{b}_bn"),
        (r"features\.transition(\d+)\.conv", "pool{b}_conv"),
        (r"features\.norm5", "bn"),
        (r"classifier", "predictions"),
    )
    for pattern, template in rules:
        match = re.fullmatch(pattern, module)
        if match:
            groups = [int(g) for g in match.groups()]
            # torchvision counts blocks from 1, Keras from 2 (its stem is conv1).
            b = groups[0] + 1 if groups else 0
            l = groups[1] if len(groups) > 1 else 0  # noqa: E741
            return template.format(b=b, l=l)
    return None


_KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/densenet/"


def _keras_checkpoint(name: str, md5: str) -> KerasCheckpoint:
    file = f"{name}_weights_tf_dim_ordering_tf_kernels.h5"
    return KerasCheckpoint(file=file, url=_KERAS_URL + file, md5=md5)


_COMMON = dict(
    family="densenet",
    layer_names=keras_layer_name,
    bn_epsilon={"pytorch": 1e-5, "keras": 1.001e-5},
    bn_momentum={"pytorch": 0.1, "keras": 0.99},
    preprocessing={
        "pytorch": TORCHVISION_INPUT,
        "keras": Preprocessing("torch (imagenet mean/std)"),
    },
    known_differences=(
        "BatchNorm epsilon: Keras 1.001e-5, PyTorch 1e-5.",
        "BatchNorm momentum: Keras 0.99 (old-value weight) is PyTorch 0.01; torchvision uses 0.1.",
        VARIANCE_UPDATE,
    ),
)

for _name, _keras, _features, _md5 in (
        ("densenet121", "DenseNet121", 1024, "9d60b8095a5708f2dcce2bca79d332c7"),
        ("densenet169", "DenseNet169", 1664, "d699b8f76981ab1b30698df4c175e90b"),
        ("densenet201", "DenseNet201", 1920, "1ceb130c1ea1b78c3bf6114dbdfd8807")):
    register(ModelSpec(name=_name, torchvision_builder=_name, keras_builder=_keras,
                       feature_dim=_features, keras_imagenet=_keras_checkpoint(_name, _md5),
                       **_COMMON))
