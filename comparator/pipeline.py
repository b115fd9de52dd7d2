"""One comparison, end to end: weights, batch, recipes per framework, checks, report."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from comparator.analysis.crosscheck import explain_pair
from comparator.analysis.diagnosis import explain_run
from comparator.analysis.states import bn_layer_deltas
from comparator.analysis.equivalence import equivalences, old_keras_frozen_bn_findings
from comparator.analysis.tolerances import (FIT_VALIDATION_TOLERANCE, FLOAT32_FACTOR,
                                             PORT_TOLERANCE)
from comparator.config import ADAM_EPSILON, LOSS_DESCRIPTIONS, CompareConfig, resolve
from comparator.config.frameworks import unavailable_runs
from comparator.inputs.prepare import prepare
from comparator.inputs.batch import REGRESSION_SCENARIOS, Batch
from comparator.inputs.checkpoints import record_distance
from comparator.memory import long_lived_objects_frozen
from comparator.schema import Check, Report


@dataclass
class Outcome:
    """The report plus what produced it, for artifacts and follow-up work."""

    report: Report
    batch: Batch
    adapters: dict = field(default_factory=dict)
    bn_deltas: dict = field(default_factory=dict)  # run id -> per-BN-layer change, by depth


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
                "epsilon": {f: ADAM_EPSILON[f] for f in config.frameworks}}
    return {"name": "sgd", "lr": config.lr, "momentum": 0.0}


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
                name=f"{run.id}:fit_validation_equals_inference_after",
                passed=diff <= FIT_VALIDATION_TOLERANCE, value=diff,
                tolerance=FIT_VALIDATION_TOLERANCE,
                detail="Keras evaluates validation data after the epoch's update, so val_loss "
                       "is the inference loss after the step, not the reported train loss"))
    return checks


def _run_recipes(recipes, adapters, batch, config, progress, phase, t):
    """Every recipe of an in-process adapter: results, final states, per-run explanations
    and per-layer BatchNorm changes (runs of a failed worker are left out)."""
    runs, states, explanations, bn_deltas = {}, {}, [], {}
    for recipe in recipes:
        if adapters[recipe.framework].failure is not None:
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
    from adapters import checkpoint_loader, load_adapter  # frameworks load only now

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
                                   worker_timeout=config.worker_timeout,
                                   cache_dir=config.cache_dir)
                for name in config.frameworks}
    t = phase("imports", t)

    progress("building and calibrating PyTorch weights", 1)
    prepared = prepare(spec, config, adapters["pytorch"], loaders=checkpoint_loader)
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
        if adapter.runs_in_worker:  # every recipe of it runs now, in one call
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
                    findings=tuple(old_keras_frozen_bn_findings(runs)),
                    unavailable_runs=tuple(unavailable),
                    timings={"total_seconds": phases.pop("total_seconds"), "phases": phases,
                             "reused_inference_passes": sum(
                                 a.reused_inference_passes
                                 for a in adapters.values())})
    progress("done", 1)
    return Outcome(report=report, batch=batch, adapters=adapters, bn_deltas=bn_deltas)


def referee(outcome: Outcome, *, cache_dir: str | None = None, exporter: str = "torchscript",
            device: str = "cpu"):
    """ONNX Runtime's verdict on a finished comparison (comparator.analysis.referee)."""
    from adapters import onnx_runtime
    from comparator.analysis.referee import run_referee

    return run_referee(outcome, onnx_runtime, cache_dir=cache_dir, exporter=exporter,
                       device=device)
