"""What one comparison is asked to do, and its validation before anything heavy loads."""

from __future__ import annotations

from dataclasses import dataclass

from comparator.config.frameworks import DEFAULT as FRAMEWORKS
from comparator.config.frameworks import resolve_frameworks
from comparator.limits import check_count, check_memory, check_numbers
from comparator.config.recipes import Recipe, select
from comparator.errors import UsageError
from comparator.inputs.prepare import check_inputs
from comparator.zoo import ModelSpec, get_spec

SCENARIOS = ("classify", "head", "regress")
OPTIMIZERS = ("sgd", "adam")
# Classification losses: cross-entropy from logits (integer labels), or of a softmax output
# with a one-hot label, as Keras's CategoricalCrossentropy() computes it (probabilities).
LOSS_KINDS = ("logits", "probabilities")
LOSS_DESCRIPTIONS = {
    "logits": "mean cross-entropy from logits, integer labels",
    "probabilities": "mean categorical cross-entropy on softmax probabilities clipped to "
                     "[1e-7, 1 - 1e-7], one-hot labels (Keras: softmax output and "
                     "CategoricalCrossentropy(); PyTorch: the same function written out)",
}
# The probabilities loss is not one function everywhere (measured 2026-11-29 on a softmax
# Dense output compiled with CategoricalCrossentropy(), logits [40, 0, 0] and [-100, 0, 0]
# with label 0). Keras 3.15.1 on torch and on JAX clip the probabilities: 1.19e-7 and
# 16.118 = -ln(1e-7), gradient 0 at both bounds; PyTorch here writes that function out.
# On TensorFlow, tf_keras 2.21 and Keras 3.15.1 take the logits the softmax was computed
# from (the `_keras_logits` a Keras softmax leaves on its output, or a Softmax op's input
# in a graph) and compute cross-entropy from them, unclipped: 0.0 and 100.69, gradient
# softmax - label ([-1, 0.5, 0.5] for the wrong one), in fit, evaluate and an eager call
# alike. Only probabilities handed over as plain values (predict()'s) are clipped there.
PROBABILITIES_CLIPPED = ("categorical cross-entropy on the softmax probabilities clipped "
                         "to [1e-7, 1 - 1e-7] (a saturated prediction: 1.19e-7 or "
                         "-ln(1e-7) = 16.118, gradient 0)")
PROBABILITIES_FROM_LOGITS = ("CategoricalCrossentropy() takes the logits the softmax was "
                             "computed from: cross-entropy from logits, not clipped (a "
                             "saturated prediction: 0 or the logit gap, e.g. 100.69, "
                             "gradient softmax - label)")


def probabilities_loss(framework: str) -> str:
    """What the probabilities loss is in `framework` (a comparison's framework name)."""
    from comparator.config.frameworks import backend_of

    if framework == "pytorch":
        return PROBABILITIES_CLIPPED + ", written out as Keras computes it on torch and JAX"
    if backend_of(framework) == "tensorflow":
        return PROBABILITIES_FROM_LOGITS
    return PROBABILITIES_CLIPPED


def loss_by_framework(loss: str, frameworks) -> dict[str, str] | None:
    """Each framework's own loss function where they differ, else None."""
    if loss != "probabilities":
        return None
    found = {framework: probabilities_loss(framework) for framework in frameworks}
    return found if PROBABILITIES_FROM_LOGITS in found.values() else None


def probabilities_description(frameworks) -> str:
    """settings.loss for the probabilities loss: LOSS_DESCRIPTIONS's where every framework
    clips, else which framework computes which function."""
    by_framework = loss_by_framework("probabilities", frameworks)
    if by_framework is None:
        return LOSS_DESCRIPTIONS["probabilities"]
    clipped = [name for name, text in by_framework.items() if text != PROBABILITIES_FROM_LOGITS]
    from_logits = [name for name, text in by_framework.items()
                   if text == PROBABILITIES_FROM_LOGITS]
    return ("mean categorical cross-entropy of a softmax output, one-hot labels (Keras: "
            "softmax output and CategoricalCrossentropy()), not the same function in every "
            "framework (loss_by_framework): "
            + (f"{', '.join(clipped)}: on the probabilities clipped to [1e-7, 1 - 1e-7]; "
               if clipped else "")
            + f"{', '.join(from_logits)}: from the softmax's logits, not clipped")


# Each framework's default Adam epsilon, which this tool leaves as the framework sets it.
ADAM_EPSILON = {"pytorch": 1e-8, "keras": 1e-7, "keras-tensorflow": 1e-7, "keras-jax": 1e-7}


@dataclass(frozen=True)
class CompareConfig:
    model: str
    scenario: str = "classify"
    batch_size: int = 8
    image_size: int | None = None
    steps: int = 1
    seed: int = 0
    lr: float = 0.01
    recipes: tuple[str, ...] = ()
    device: str = "cpu"
    frameworks: tuple[str, ...] = FRAMEWORKS
    optimizer: str = "sgd"
    validate: bool = False
    loss: str = "logits"
    labels: tuple[int, ...] = ()  # one label for every image, or one per image
    # Real checkpoints and photos (comparator/inputs.py); the defaults are the offline ones.
    weights: str = "random-calibrated"
    images: tuple[str, ...] = ()  # with images, the batch is these images
    targets: tuple[float, ...] = ()  # head-scenario targets for the images
    worker_timeout: float = 600.0  # seconds a Keras worker (TensorFlow, JAX) may take
    # --cache-dir: calibrated weights and JAX's compilations are kept there (None: the
    # default cache folder, comparator.io.cache_folder). Never changes a measured number.
    cache_dir: str | None = None
    max_memory: int | None = None  # bytes; None: the machine's memory (comparator/limits.py)
    # False where no one asked for the scenario: a user pair's then follows its outputs
    # (comparator.config.pair.pair_scenario), as cross-entropy over one class is 0.
    scenario_given: bool = True


def resolve(config: CompareConfig) -> tuple[ModelSpec, CompareConfig, list[Recipe]]:
    """Validate a configuration before anything heavy is imported or built."""
    spec = get_spec(config.model)
    if config.scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {config.scenario!r}; known: {', '.join(SCENARIOS)}")
    vector = bool(spec.input_features)
    if vector != (config.scenario == "regress"):
        raise UsageError(f"{spec.name} takes the scenario "
                         f"{'regress' if vector else 'classify or head'}, not {config.scenario}")
    check_numbers(config)
    image_size = 0 if vector else (spec.default_image_size if config.image_size is None
                                   else config.image_size)
    sizes = [("batch size", config.batch_size), ("steps", config.steps)]
    if not vector:
        sizes.append(("image size", image_size))
    for label, value in sizes:
        check_count(value, label)
    if config.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {config.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    if not vector and image_size < spec.min_image_size:
        raise UsageError(f"image size {image_size} is too small for {spec.name}: "
                         f"it needs at least {spec.min_image_size} px")
    config = check_inputs(spec, config)
    check_memory(spec.name, config.batch_size, image_size, spec.input_features,
                 config.max_memory)
    _check_loss_and_labels(spec, config)
    frameworks = resolve_frameworks(config.frameworks)
    if config.device != "cpu" and not config.device.startswith("cuda"):
        raise UsageError(f"unknown device {config.device!r}; use cpu or cuda")
    recipes = select(list(config.recipes), list(frameworks), config.scenario)
    resolved = CompareConfig(**{**config.__dict__, "image_size": image_size,
                                "frameworks": frameworks})
    return spec, resolved, recipes


def _check_loss_and_labels(spec: ModelSpec, config: CompareConfig) -> None:
    if config.loss not in LOSS_KINDS:
        raise UsageError(f"unknown loss {config.loss!r}; known: {', '.join(LOSS_KINDS)}")
    classify = config.scenario == "classify"
    if config.loss != "logits" and not classify:
        raise UsageError(f"the {config.loss} loss is for the classify scenario, "
                         f"not {config.scenario}")
    if not config.labels:
        return
    if not classify:
        raise UsageError(f"labels are for the classify scenario, not {config.scenario}")
    if len(config.labels) not in (1, config.batch_size):
        raise UsageError(f"give one label or {config.batch_size} (the batch size), "
                         f"got {len(config.labels)}")
    wrong = [label for label in config.labels if not 0 <= label < spec.num_classes]
    if wrong:
        raise UsageError(f"label {wrong[0]} is outside {spec.name}'s classes "
                         f"0..{spec.num_classes - 1}")
