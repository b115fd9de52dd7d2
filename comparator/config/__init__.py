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
# Classification losses: cross-entropy from logits (integer labels), or on softmax
# probabilities with a one-hot label, clipped to [1e-7, 1 - 1e-7] as Keras does.
LOSS_KINDS = ("logits", "probabilities")
LOSS_DESCRIPTIONS = {
    "logits": "mean cross-entropy from logits, integer labels",
    "probabilities": "mean categorical cross-entropy on softmax probabilities clipped to "
                     "[1e-7, 1 - 1e-7], one-hot labels (Keras: softmax output and "
                     "CategoricalCrossentropy(); PyTorch: the same function written out)",
}
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
