"""One comparison, end to end: weights, batch, recipes per framework, checks, report."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np


from comparator.data import REGRESSION_SCENARIOS, Batch
from comparator.crosscheck import FLOAT32_FACTOR, explain_pair
from comparator.diagnosis import explain_run
from comparator.analysis.versions import version_findings
from comparator.equivalence import equivalences, old_keras_frozen_bn_findings
from comparator.errors import UsageError
from comparator.memory import long_lived_objects_frozen
from comparator.frameworks import DEFAULT as FRAMEWORKS
from comparator.frameworks import resolve_frameworks, unavailable_runs
from comparator.models import ModelSpec, get_spec
from comparator.recipes import Recipe, select
from comparator.results import Check, Report
from comparator.checkpoints import record_distance
from comparator.inputs import check_inputs, prepare

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
# Every Keras, tf_keras 2.21 and the Keras 3 releases included, defaults to 1e-7.
ADAM_EPSILON = {"pytorch": 1e-8, "keras": 1e-7, "keras-tensorflow": 1e-7, "keras-jax": 1e-7}
PORT_TOLERANCE = 1e-4  # max abs logit difference of a faithful float32 port


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


@dataclass
class Outcome:
    """The report plus what produced it, for artifacts and follow-up work."""

    report: Report
    batch: Batch
    adapters: dict = field(default_factory=dict)
    bn_deltas: dict = field(default_factory=dict)  # run id -> per-BN-layer change, by depth


def resolve(config: CompareConfig) -> tuple[ModelSpec, CompareConfig, list[Recipe]]:
    """Validate a configuration before anything heavy is imported or built."""
    spec = get_spec(config.model)
    if config.scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {config.scenario!r}; known: {', '.join(SCENARIOS)}")
    vector = bool(spec.input_features)
    if vector != (config.scenario == "regress"):
        raise UsageError(f"{spec.name} takes the scenario "
                         f"{'regress' if vector else 'classify or head'}, not {config.scenario}")
    image_size = 0 if vector else (config.image_size or spec.default_image_size)
    sizes = [("batch size", config.batch_size), ("steps", config.steps)]
    if not vector:
        sizes.append(("image size", image_size))
    for label, value in sizes:
        if value <= 0:
            raise UsageError(f"{label} must be positive, got {value}")
    if config.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {config.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    if not vector and image_size < spec.min_image_size:
        raise UsageError(f"image size {image_size} is too small for {spec.name}: "
                         f"it needs at least {spec.min_image_size} px")
    config = check_inputs(spec, config)
    _check_loss_and_labels(spec, config)
    if not (config.lr > 0 and np.isfinite(config.lr)):
        raise UsageError(f"learning rate must be a positive number, got {config.lr}")
    frameworks = resolve_frameworks(config.frameworks)
    if not (config.worker_timeout > 0 and np.isfinite(config.worker_timeout)):
        raise UsageError(f"worker timeout must be a positive number of seconds, got "
                         f"{config.worker_timeout}")
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


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for package in ("onnx", "onnxruntime"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _optimizer_settings(config: CompareConfig) -> dict:
    if config.optimizer == "adam":
        return {"name": "adam", "lr": config.lr,
                "epsilon": {f: ADAM_EPSILON.get(f, ADAM_EPSILON["keras"])
                            for f in config.frameworks}}
    return {"name": "sgd", "lr": config.lr, "momentum": 0.0}


def bn_layer_deltas(before: dict, after: dict) -> list[float]:
    """The largest change of each BatchNorm layer's running statistics, in network order
    (canonical names follow the torchvision module order, which is depth order)."""
    layers: dict[str, float] = {}
    for name, value in before.items():
        if name.endswith((".running_mean", ".running_var")):
            layer = name.rsplit(".", 1)[0]
            delta = float(np.max(np.abs(after[name].astype(np.float64) - value)))
            layers[layer] = max(layers.get(layer, 0.0), delta)
    return list(layers.values())


def _port_check(name: str, reference, ported, batch: Batch) -> Check:
    """Inference outputs of the port against PyTorch's. Where they differ by more than 1e-4,
    PyTorch in float64 says how much float32 rounding alone explains: deep networks with
    random weights at small image sizes amplify it past 1e-4."""
    theirs = reference.logits(batch).astype(np.float64)
    diff = float(np.max(np.abs(theirs - ported.logits(batch))))
    tolerance = PORT_TOLERANCE
    detail = ("max abs difference of inference-mode outputs on the batch; a faithful float32 "
              "port of the same function stays within 1e-4")
    if diff > PORT_TOLERANCE:
        with reference.float64():
            exact = reference.logits(batch)
        own_error = float(np.max(np.abs(theirs - exact)))
        tolerance = max(PORT_TOLERANCE, FLOAT32_FACTOR * own_error)
        detail += (f"; here PyTorch's own float32 outputs are {own_error:.2g} from float64, so "
                   f"the tolerance is {FLOAT32_FACTOR}x that")
    return Check(name=f"port:{name}_vs_pytorch_eval_logits", passed=diff <= tolerance,
                 value=diff, tolerance=tolerance, detail=detail)


def _noop(*_args, **_kwargs):
    pass


def _validation_checks(runs) -> list[Check]:
    """fit(validation_data=...) evaluates after the update: it must equal inference_after."""
    checks = []
    for run in runs.values():
        if run.losses.fit_validation:
            diff = abs(run.losses.fit_validation[-1] - run.losses.inference_after)
            checks.append(Check(
                name=f"{run.id}:fit_validation_equals_inference_after", passed=diff <= 1e-5,
                value=diff, tolerance=1e-5,
                detail="Keras evaluates validation data after the epoch's update, so val_loss "
                       "is the inference loss after the step, not the reported train loss"))
    return checks


def _run_recipes(recipes, adapters, batch, config, progress, phase, t):
    """Every recipe of an in-process adapter: results, final states, per-run explanations
    and per-layer BatchNorm changes (runs of a failed worker are left out)."""
    runs, states, explanations, bn_deltas = {}, {}, [], {}
    for recipe in recipes:
        if getattr(adapters[recipe.framework], "failure", None) is not None:
            continue
        progress(f"running {recipe.id}", 1)
        measurement = adapters[recipe.framework].run_recipe(
            recipe, batch, config.steps, config.lr, config.optimizer, config.validate)
        runs[recipe.id], states[recipe.id] = measurement.result, measurement.final_state
        deltas = bn_layer_deltas(measurement.initial_state, measurement.final_state)
        if any(deltas):
            bn_deltas[recipe.id] = deltas
        explanation = explain_run(measurement.result, measurement.ablations, config.batch_size,
                                  clipped_probabilities=config.loss == "probabilities")
        if explanation:
            explanations.append(explanation)
        t = phase(f"recipe:{recipe.id}", t)
    return runs, states, explanations, bn_deltas, t


def compare(config: CompareConfig, progress=_noop, preset: str | None = None) -> Outcome:
    """Run the comparison. `progress(message, advance)` is told about each phase."""
    from adapters import load_adapter  # adapters import frameworks: only now

    started = time.perf_counter()
    phases: dict[str, float] = {}

    def phase(name: str, since: float) -> float:
        now = time.perf_counter()
        phases[name] = round(phases.get(name, 0.0) + now - since, 3)
        return now

    spec, config, recipes = resolve(config)
    t = time.perf_counter()
    progress("importing frameworks", 0)
    adapters = {name: load_adapter(name, device=config.device,
                                   worker_timeout=config.worker_timeout)
                for name in config.frameworks}
    t = phase("imports", t)

    progress("building and calibrating PyTorch weights", 1)
    prepared = prepare(spec, config, adapters["pytorch"])
    weights, batch = prepared.weights, prepared.batch
    for adapter in adapters.values():
        adapter.loss_kind = config.loss
    t = phase("build_and_calibrate", t)

    checks = []
    for name, adapter in adapters.items():
        if name == "pytorch":
            continue
        progress(f"porting weights to {name}", 1)
        adapter.build(spec, config.scenario, config.seed, config.image_size)
        # Every Keras backend receives what the Keras side was given (its own checkpoint
        # with imagenet-both, else the ported arrays).
        adapter.load_weights(prepared.arrays_for("keras" if name.startswith("keras") else name))
        if hasattr(adapter, "start"):  # a worker: every recipe of it runs now, in one call
            progress(f"running {name} in a worker", 0)
            adapter.start([r for r in recipes if r.framework == name], batch, config.steps,
                          config.lr, config.optimizer, config.validate)
            t = phase(f"worker:{name}", t)
            if adapter.failure is not None:
                continue
        if prepared.separate:  # two trainings: how far apart, not a port check
            record_distance(prepared.settings, name, adapters["pytorch"].logits(batch),
                            adapter.logits(batch))
        else:
            checks.append(_port_check(name, adapters["pytorch"], adapter, batch))
        t = phase("port", t)

    with long_lived_objects_frozen():
        unavailable = unavailable_runs(recipes, adapters)
        runs, states, explanations, bn_deltas, t = _run_recipes(recipes, adapters, batch,
                                                                 config, progress, phase, t)
        progress("explaining cross-framework differences", 1)
        found = [explain_pair(eq, spec, recipes, adapters, batch, config, runs, states)
                 for eq in equivalences(runs, states)]
        t = phase("diagnosis", t)
    checks += _validation_checks(runs)
    environment = _package_versions()
    for adapter in adapters.values():
        environment.update(adapter.environment())
    settings = {
        "batch_size": config.batch_size, "image_size": config.image_size, "seed": config.seed,
        "steps": config.steps, "weights": weights.source, "weights_sha256": weights.sha256,
        "weights_description": weights.description,
        "optimizer": _optimizer_settings(config),
        "loss": ("mean squared error" if config.scenario in REGRESSION_SCENARIOS
                 else LOSS_DESCRIPTIONS[config.loss]),
        "loss_kind": config.loss,
        "labels": ("given" if config.labels else "seeded") if config.scenario == "classify"
        else None,
        "scenario": config.scenario, "fit_validation_data": config.validate,
        "preset": preset,
        "device": config.device, "frameworks": list(config.frameworks),
    }
    settings.update(prepared.settings)
    phases["total_seconds"] = round(time.perf_counter() - started, 3)
    report = Report(model=spec.name, scenario=config.scenario, settings=settings,
                    environment=environment, runs=tuple(runs.values()), checks=tuple(checks),
                    explanations=tuple(explanations), equivalences=tuple(found),
                    findings=tuple(old_keras_frozen_bn_findings(runs))
                    + tuple(version_findings(runs.values())),
                    unavailable_runs=tuple(unavailable),
                    timings={"total_seconds": phases.pop("total_seconds"), "phases": phases,
                             "reused_inference_passes": sum(
                                 getattr(a, "reused_inference_passes", 0)
                                 for a in adapters.values())})
    progress("done", 1)
    return Outcome(report=report, batch=batch, adapters=adapters, bn_deltas=bn_deltas)
