"""VGG16: Keras flattens channels-last, so the first dense layer's rows are permuted;
torchvision's classifier Dropout is left visible."""

from __future__ import annotations

import re

from comparator.zoo.spec import CAFFE_INPUT, TORCHVISION_INPUT, ModelSpec, register


# torchvision's VGG16 configuration "D": channels per conv, "M" a max pool. The index of
# a conv in torchvision's `features` Sequential follows from it (conv and ReLU, or pool).
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M")
# torchvision pools the last feature map to 7x7 before flattening (AdaptiveAvgPool2d).
VGG_FLATTEN_CHW = (512, 7, 7)


def _vgg_feature_names(config=VGG16_CONFIG) -> dict[int, str]:
    names, index, block, conv = {}, 0, 1, 1
    for item in config:
        if item == "M":
            index, block, conv = index + 1, block + 1, 1
        else:
            names[index] = f"block{block}_conv{conv}"
            index, conv = index + 2, conv + 1
    return names


_VGG_FEATURES = _vgg_feature_names()
_VGG_CLASSIFIER = {"classifier.0": ("fc1", "flatten_dense:{},{},{}".format(*VGG_FLATTEN_CHW)),
                   "classifier.3": "fc2", "classifier.6": "predictions"}


def keras_layer_name(module: str):
    match = re.fullmatch(r"features\.(\d+)", module)
    if match:
        return _VGG_FEATURES.get(int(match.group(1)))
    return _VGG_CLASSIFIER.get(module)


register(ModelSpec(
    name="vgg16", family="vgg", layer_names=keras_layer_name, feature_dim=512,
    torchvision_builder="vgg16", keras_builder="vgg16_adaptive_pool",
    naive_keras_builder="VGG16", naive_image_size=224,
    preprocessing={"pytorch": TORCHVISION_INPUT, "keras": CAFFE_INPUT},
    known_differences=(
        "Dropout: torchvision's classifier has two Dropout(0.5) layers, keras.applications' "
        "VGG16 none. Not matched here: in training mode PyTorch drops units and Keras does "
        "not (the runs' modes show it), so train-step losses differ by design.",
        "Flatten order: Keras flattens the last feature map channels-last (h, w, c), PyTorch "
        "channels-first (c, h, w); the first dense layer's rows are permuted by the port map "
        "(kind flatten_dense:512,7,7).",
        "Pooling before flatten: torchvision pools the feature map to 7x7 "
        "(AdaptiveAvgPool2d), keras.applications flattens it as it is, so its classifier only "
        "fits 224 px inputs. The Keras side here is keras.applications' VGG16 convolutional "
        "part plus AdaptiveAveragePooling2D((7, 7)) (the identity at 224 px) and its "
        "classifier, so any size from 32 px works.",
        "No BatchNorm: freezing recipes differ only in Dropout and in what trains.",
        "Preprocessing: keras.applications' VGG16 expects caffe-style input; the ported "
        "torchvision weights expect ImageNet mean/std, which both frameworks get here.",
    ),
))
