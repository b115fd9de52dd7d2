"""What the zoo knows about a model, and the registry that checks it.

A family module (densenet.py, resnet.py, ...) declares its specs and the port-map namer
that names, for each torchvision module, the Keras layer that receives its weights.
`register` refuses a spec whose facts do not fit together, so a mistake shows when the
zoo is imported, not in the middle of a comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from comparator.errors import UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FRAMEWORK_SIDES = ("pytorch", "keras")

# A namer returns the Keras layer name for a torchvision module name, (name, kind) where
# the array layout cannot be told from the rank alone (depthwise kernels, a dense layer
# fed by a flattened map), or None when no Keras layer corresponds.
LayerNamer = Callable[[str], "str | tuple[str, str] | None"]


@dataclass(frozen=True)
class Preprocessing:
    """How a framework's application expects its input to be scaled."""

    mode: str
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


@dataclass(frozen=True)
class KerasCheckpoint:
    """keras.applications' own ImageNet checkpoint, named and checked as keras.applications
    does: the file under $KERAS_HOME/models, its URL, and the md5 it verifies on download."""

    file: str
    url: str
    md5: str


# The input both frameworks get with torchvision's weights, and keras.applications' caffe
# mode (RGB->BGR, mean subtracted on 0-255, no scaling) for the models that expect it.
TORCHVISION_INPUT = Preprocessing("imagenet mean/std")
CAFFE_INPUT = Preprocessing("caffe (RGB->BGR, ImageNet mean subtracted on 0-255, no scaling)",
                            mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0))
def batchnorm(keras_epsilon: float, keras_momentum: float) -> dict:
    """bn_epsilon and bn_momentum for a model whose PyTorch side keeps torch.nn.BatchNorm2d's
    defaults (epsilon 1e-5, momentum 0.1) and whose Keras side uses these."""
    return {"bn_epsilon": {"pytorch": 1e-5, "keras": keras_epsilon},
            "bn_momentum": {"pytorch": 0.1, "keras": keras_momentum}}


VARIANCE_UPDATE = ("Running variance update: PyTorch uses the unbiased batch variance, Keras "
                   "the biased one.")


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Defaults are an ImageNet classifier's (224 px, 1000 classes, no BatchNorm)."""

    name: str
    family: str
    layer_names: LayerNamer  # the port map: torchvision module -> Keras layer
    feature_dim: int
    torchvision_builder: str | None = None
    keras_builder: str | None = None
    default_image_size: int = 224
    min_image_size: int = 32
    num_classes: int = 1000
    # Momenta in each framework's own convention: PyTorch's weight of the new batch
    # statistic, Keras's weight of the old moving value.
    bn_epsilon: dict[str, float] = field(default_factory=dict)
    bn_momentum: dict[str, float] = field(default_factory=dict)
    preprocessing: dict[str, Preprocessing] = field(default_factory=dict)
    known_differences: tuple[str, ...] = field(default_factory=tuple)
    input_features: int | None = None  # vector input of this width instead of images
    # keras.applications' own builder when `keras_builder` is this project's equivalent
    # rebuild: same layer names and weight shapes, a different function. Port validation
    # (`scripts/validate_port.py --naive`) loads it with the naive same-shape port.
    naive_keras_builder: str | None = None
    naive_image_size: int | None = None  # the one size that builder's classifier accepts
    # Only where the Keras side is keras.applications' own architecture, so that the
    # checkpoint computes the function it was trained for.
    keras_imagenet: KerasCheckpoint | None = None

    @property
    def takes_images(self) -> bool:
        return self.input_features is None


_REGISTRY: dict[str, ModelSpec] = {}


def _problems(spec: ModelSpec) -> list[str]:
    problems = []
    if spec.name in _REGISTRY:
        problems.append("registered twice")
    if not callable(spec.layer_names):
        problems.append("layer_names is not a function")
    for label, table in (("bn_epsilon", spec.bn_epsilon), ("bn_momentum", spec.bn_momentum),
                         ("preprocessing", spec.preprocessing)):
        unknown = sorted(set(table) - set(FRAMEWORK_SIDES))
        if unknown:
            problems.append(f"{label} names unknown frameworks {unknown}")
    if set(spec.bn_epsilon) != set(spec.bn_momentum):
        problems.append("bn_epsilon and bn_momentum name different frameworks")
    if spec.takes_images:
        if set(spec.preprocessing) != set(FRAMEWORK_SIDES):
            problems.append("an image model needs preprocessing for pytorch and keras")
        if not 0 < spec.min_image_size <= spec.default_image_size:
            problems.append("image sizes must satisfy 0 < min_image_size <= default_image_size")
    elif spec.input_features <= 0:
        problems.append("input_features must be positive")
    if spec.num_classes <= 0 or spec.feature_dim <= 0:
        problems.append("num_classes and feature_dim must be positive")
    if spec.naive_image_size and not spec.naive_keras_builder:
        problems.append("naive_image_size without a naive_keras_builder")
    if spec.keras_imagenet and not (spec.keras_builder or "")[:1].isupper():
        problems.append("keras_imagenet is for keras.applications' own builders "
                        "(upper-case keras_builder)")
    return problems


def register(spec: ModelSpec) -> ModelSpec:
    problems = _problems(spec)
    if problems:
        raise ValueError(f"model spec {spec.name!r}: {'; '.join(problems)}")
    _REGISTRY[spec.name] = spec
    return spec


def known_models() -> list[str]:
    return sorted(_REGISTRY)


def default_scenario(name: str) -> str:
    """The scenario a model runs when none is asked for: vector models (dense_mlp) regress,
    image models classify."""
    spec = _REGISTRY.get(name)
    return "regress" if spec is not None and spec.input_features else "classify"


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"unknown model {name!r}; known models: {', '.join(known_models())}"
        ) from None
