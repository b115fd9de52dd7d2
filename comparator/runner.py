"""One comparison, end to end: weights, batch, recipes per framework, checks, report."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

import dataclasses

from comparator.data import Batch, make_batch
from comparator.diagnosis import explain_bn_conventions, explain_run
from comparator.equivalence import equivalences
from comparator.errors import UsageError
from comparator.models import ModelSpec, get_spec
from comparator.recipes import Recipe, select
from comparator.results import Check, Report
from comparator.sources import random_calibrated

SCENARIOS = ("classify", "head")
FRAMEWORKS = ("pytorch", "keras")
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


@dataclass
class Outcome:
    """The report plus what produced it, for artifacts and follow-up work."""

    report: Report
    batch: Batch
    adapters: dict = field(default_factory=dict)


def resolve(config: CompareConfig) -> tuple[ModelSpec, CompareConfig, list[Recipe]]:
    """Validate a configuration before anything heavy is imported or built."""
    spec = get_spec(config.model)
    if config.scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {config.scenario!r}; known: {', '.join(SCENARIOS)}")
    image_size = config.image_size or spec.default_image_size
    for label, value in (("batch size", config.batch_size), ("image size", image_size),
                         ("steps", config.steps)):
        if value <= 0:
            raise UsageError(f"{label} must be positive, got {value}")
    if image_size < spec.min_image_size:
        raise UsageError(f"image size {image_size} is too small for {spec.name}: "
                         f"it needs at least {spec.min_image_size} px")
    if not (config.lr > 0 and np.isfinite(config.lr)):
        raise UsageError(f"learning rate must be a positive number, got {config.lr}")
    unknown = [f for f in config.frameworks if f not in FRAMEWORKS]
    if unknown or "pytorch" not in config.frameworks:
        raise UsageError(f"frameworks must include pytorch and be among {', '.join(FRAMEWORKS)}")
    if config.device != "cpu" and not config.device.startswith("cuda"):
        raise UsageError(f"unknown device {config.device!r}; use cpu or cuda")
    recipes = select(list(config.recipes), list(config.frameworks))
    resolved = CompareConfig(**{**config.__dict__, "image_size": image_size})
    return spec, resolved, recipes


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for package in ("onnx", "onnxruntime"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _noop(*_args, **_kwargs):
    pass


def _explain_pair(eq, spec, recipes, adapters, batch, config, runs, states):
    """Measure why two runs' running statistics differ when both runs updated them with
    the same batch statistics: re-run the PyTorch recipe with Keras's momentum."""
    if eq.max_bn_stat_diff is None or eq.max_bn_stat_diff <= 1e-5:
        return eq
    if not eq.a.startswith("keras:") or not eq.b.startswith("pytorch:"):
        return eq
    a, b = runs[eq.a], runs[eq.b]
    if not (a.state.bn_stats_changed and b.state.bn_stats_changed
            and a.modes.bn_batch_stats == b.modes.bn_batch_stats):
        return eq
    keras_momentum = spec.bn_momentum["keras"]
    torch_momentum = spec.bn_momentum["pytorch"]
    matched_state = states[eq.b]
    if abs((1.0 - keras_momentum) - torch_momentum) > 1e-12:
        by_id = {r.id: r for r in recipes}
        torch_adapter = adapters["pytorch"]
        with torch_adapter.bn_momentum(1.0 - keras_momentum):
            matched_state = torch_adapter.run_recipe(by_id[eq.b], batch, config.steps,
                                                     config.lr).final_state
    causes = explain_bn_conventions(states[eq.a], states[eq.b], matched_state,
                                    keras_momentum, torch_momentum)
    return dataclasses.replace(eq, causes=tuple(causes))


def compare(config: CompareConfig, progress=_noop) -> Outcome:
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
    adapters = {name: load_adapter(name, device=config.device) for name in config.frameworks}
    t = phase("imports", t)

    progress("building and calibrating PyTorch weights", 1)
    weights = random_calibrated(spec, config.scenario, config.seed, config.image_size,
                                adapters["pytorch"])
    batch = make_batch(spec, config.scenario, config.batch_size, config.image_size, config.seed)
    t = phase("build_and_calibrate", t)

    checks = []
    for name, adapter in adapters.items():
        if name == "pytorch":
            continue
        progress(f"porting weights to {name}", 1)
        adapter.build(spec, config.scenario, config.seed, config.image_size)
        adapter.load_weights(weights.arrays)
        diff = float(np.max(np.abs(adapters["pytorch"].logits(batch).astype(np.float64)
                                   - adapter.logits(batch))))
        checks.append(Check(
            name=f"port:{name}_vs_pytorch_eval_logits", passed=diff <= PORT_TOLERANCE,
            value=diff, tolerance=PORT_TOLERANCE,
            detail="max abs difference of inference-mode outputs on the batch; a faithful "
                   "float32 port of the same function stays within 1e-4"))
        t = phase("port", t)

    runs, states, explanations = {}, {}, []
    for recipe in recipes:
        progress(f"running {recipe.id}", 1)
        measurement = adapters[recipe.framework].run_recipe(recipe, batch, config.steps,
                                                            config.lr)
        runs[recipe.id], states[recipe.id] = measurement.result, measurement.final_state
        explanation = explain_run(measurement.result, measurement.ablations, config.batch_size)
        if explanation:
            explanations.append(explanation)
        t = phase(f"recipe:{recipe.id}", t)

    progress("explaining cross-framework differences", 1)
    found = [_explain_pair(eq, spec, recipes, adapters, batch, config, runs, states)
             for eq in equivalences(runs, states)]
    t = phase("diagnosis", t)
    environment = _package_versions()
    for adapter in adapters.values():
        environment.update(adapter.environment())
    settings = {
        "batch_size": config.batch_size, "image_size": config.image_size, "seed": config.seed,
        "steps": config.steps, "weights": weights.source, "weights_sha256": weights.sha256,
        "weights_description": weights.description,
        "optimizer": {"name": "sgd", "lr": config.lr, "momentum": 0.0},
        "loss": ("mean squared error" if config.scenario == "head"
                 else "mean cross-entropy from logits, integer labels"),
        "device": config.device, "frameworks": list(config.frameworks),
    }
    phases["total_seconds"] = round(time.perf_counter() - started, 3)
    report = Report(model=spec.name, scenario=config.scenario, settings=settings,
                    environment=environment, runs=tuple(runs.values()), checks=tuple(checks),
                    explanations=tuple(explanations), equivalences=tuple(found),
                    timings={"total_seconds": phases.pop("total_seconds"), "phases": phases})
    progress("done", 1)
    return Outcome(report=report, batch=batch, adapters=adapters)
