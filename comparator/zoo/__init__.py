"""Model facts in one declarative table.

Each entry says which builder every framework uses, how the weights are named
and ported, what input the model expects and what is known to differ. Adapters
read these facts; they never hard-code them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from comparator.errors import UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How a framework's application expects its input to be scaled."""

    mode: str
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    torchvision_builder: str | None
    keras_builder: str | None
    port_map: str
    default_image_size: int
    min_image_size: int
    num_classes: int
    feature_dim: int
    bn_epsilon: dict[str, float]
    bn_momentum: dict[str, float]
    preprocessing: dict[str, Preprocessing]
    known_differences: tuple[str, ...] = field(default_factory=tuple)
    input_features: int | None = None  # vector input of this width instead of images
    # keras.applications' own builder when `keras_builder` is this project's equivalent
    # rebuild: same layer names and weight shapes, a different function. Port validation
    # (`scripts/validate_port.py --naive`) loads it with the naive same-shape port.
    naive_keras_builder: str | None = None
    naive_image_size: int | None = None  # the one size that builder's classifier accepts


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def known_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"unknown model {name!r}; known models: {', '.join(known_models())}"
        ) from None


# Momenta are given in each framework's own convention: PyTorch's weight of the
# new batch statistic, Keras's weight of the old moving value.
_DENSENET_COMMON = dict(
    family="densenet",
    port_map="densenet",
    default_image_size=224,
    min_image_size=32,
    num_classes=1000,
    bn_epsilon={"pytorch": 1e-5, "keras": 1.001e-5},
    bn_momentum={"pytorch": 0.1, "keras": 0.99},
    preprocessing={
        "pytorch": Preprocessing("imagenet mean/std"),
        "keras": Preprocessing("torch (imagenet mean/std)"),
    },
    known_differences=(
        "BatchNorm epsilon: Keras 1.001e-5, PyTorch 1e-5.",
        "BatchNorm momentum: Keras 0.99 (old-value weight) is PyTorch 0.01; torchvision uses 0.1.",
        "Running variance update: PyTorch uses the unbiased batch variance, Keras the biased one.",
    ),
)

register(ModelSpec(name="densenet121", torchvision_builder="densenet121",
                   keras_builder="DenseNet121", feature_dim=1024, **_DENSENET_COMMON))
register(ModelSpec(name="densenet169", torchvision_builder="densenet169",
                   keras_builder="DenseNet169", feature_dim=1664, **_DENSENET_COMMON))
register(ModelSpec(name="densenet201", torchvision_builder="densenet201",
                   keras_builder="DenseNet201", feature_dim=1920, **_DENSENET_COMMON))

# Keras builders in lower case are this project's (adapters/keras/models.py): Keras
# functional models with keras.applications' layer names and torchvision's function.
register(ModelSpec(
    name="resnet50",
    family="resnet",
    torchvision_builder="resnet50",
    keras_builder="resnet50_v1_5",
    naive_keras_builder="ResNet50",
    port_map="resnet",
    default_image_size=224,
    min_image_size=32,
    num_classes=1000,
    feature_dim=2048,
    bn_epsilon={"pytorch": 1e-5, "keras": 1e-5},
    bn_momentum={"pytorch": 0.1, "keras": 0.99},
    preprocessing={
        "pytorch": Preprocessing("imagenet mean/std"),
        "keras": Preprocessing("caffe (RGB->BGR, ImageNet mean subtracted on 0-255, no scaling)",
                               mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0)),
    },
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
        "Running variance update: PyTorch uses the unbiased batch variance, Keras the biased one.",
        "Preprocessing: keras.applications' ResNet50 expects caffe-style input; the ported "
        "torchvision weights expect ImageNet mean/std, which both frameworks get here.",
    ),
))

register(ModelSpec(
    name="vgg16",
    family="vgg",
    torchvision_builder="vgg16",
    keras_builder="vgg16_adaptive_pool",
    naive_keras_builder="VGG16",
    naive_image_size=224,
    port_map="vgg",
    default_image_size=224,
    min_image_size=32,
    num_classes=1000,
    feature_dim=512,
    bn_epsilon={},
    bn_momentum={},
    preprocessing={
        "pytorch": Preprocessing("imagenet mean/std"),
        "keras": Preprocessing("caffe (RGB->BGR, ImageNet mean subtracted on 0-255, no scaling)",
                               mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0)),
    },
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

register(ModelSpec(
    name="mobilenet_v2",
    family="mobilenet_v2",
    torchvision_builder="mobilenet_v2",
    keras_builder="mobilenet_v2_symmetric",
    naive_keras_builder="MobileNetV2",
    port_map="mobilenet_v2",
    default_image_size=224,
    min_image_size=32,
    num_classes=1000,
    feature_dim=1280,
    bn_epsilon={"pytorch": 1e-5, "keras": 1e-5},
    bn_momentum={"pytorch": 0.1, "keras": 0.999},
    preprocessing={
        "pytorch": Preprocessing("imagenet mean/std"),
        "keras": Preprocessing("tf (scaled to [-1, 1])", mean=(0.5, 0.5, 0.5),
                               std=(0.5, 0.5, 0.5)),
    },
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
        "Running variance update: PyTorch uses the unbiased batch variance, Keras the biased one.",
        "Dropout: torchvision's classifier has Dropout(0.2) before the last Linear, "
        "keras.applications' none (kept): in training mode only PyTorch drops units.",
        "Preprocessing: keras.applications' MobileNetV2 expects [-1, 1] input; the ported "
        "torchvision weights expect ImageNet mean/std, which both frameworks get here.",
    ),
))

register(ModelSpec(
    name="tiny_cnn",
    family="tiny",
    torchvision_builder=None,
    keras_builder=None,
    port_map="tiny",
    default_image_size=32,
    min_image_size=8,
    num_classes=10,
    feature_dim=32,
    bn_epsilon={"pytorch": 1e-5, "keras": 1e-5},
    bn_momentum={"pytorch": 0.1, "keras": 0.9},
    preprocessing={
        "pytorch": Preprocessing("imagenet mean/std"),
        "keras": Preprocessing("imagenet mean/std"),
    },
    known_differences=("Defined in both frameworks by this project to keep tests fast.",),
))


register(ModelSpec(
    name="dense_mlp",
    family="mlp",
    torchvision_builder=None,
    keras_builder=None,
    port_map="mlp",
    default_image_size=0,
    min_image_size=0,
    num_classes=1,
    feature_dim=1000,
    bn_epsilon={},
    bn_momentum={},
    preprocessing={},
    known_differences=("The seed report's Dense(1000, relu) -> Dense(1) on 100 inputs; "
                       "no BatchNorm, no Dropout.",),
    input_features=100,
))


# keras.applications' own ImageNet checkpoints, named and checked as keras.applications
# does: (file under $KERAS_HOME/models, its URL, the md5 keras.applications verifies when it
# downloads). Listed only where the Keras side is keras.applications' own architecture and
# so computes the function the checkpoint was trained for; ResNet50 (v1 in Keras),
# MobileNetV2 (asymmetric padding, epsilon 1e-3) and VGG16 (no adaptive pool) are rebuilt
# here, so their Keras checkpoints would be loaded into another function.
_KERAS_DENSENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/densenet/"
KERAS_IMAGENET_CHECKPOINTS = {
    name: (f"{name}_weights_tf_dim_ordering_tf_kernels.h5",
           f"{_KERAS_DENSENET_URL}{name}_weights_tf_dim_ordering_tf_kernels.h5", md5)
    for name, md5 in (("densenet121", "9d60b8095a5708f2dcce2bca79d332c7"),
                      ("densenet169", "d699b8f76981ab1b30698df4c175e90b"),
                      ("densenet201", "1ceb130c1ea1b78c3bf6114dbdfd8807"))
}
