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
