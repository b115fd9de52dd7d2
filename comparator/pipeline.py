"""One comparison, end to end: weights, batch, recipes per framework, checks, report."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import metadata

import numpy as np

from comparator.interrupts import raise_if_requested
from comparator.analysis.crosscheck import explain_pair
from comparator.analysis.keras_pair_causes import explain_keras_pair
from comparator.analysis.diagnosis import explain_run
from comparator.analysis.divergence import with_finite_divergence
from comparator.analysis.states import bn_layer_deltas
from comparator.analysis.equivalence import (
    compared_states,
    equivalences,
    old_keras_frozen_bn_findings,
)
from comparator.analysis.versions import saved_training_finding, version_findings
from comparator.analysis.tolerances import (FLOAT32_FACTOR, PORT_TOLERANCE,
                                             fit_validation_tolerance)
from comparator.config import (ADAM_EPSILON, LOSS_DESCRIPTIONS, CompareConfig,
                               loss_by_framework, probabilities_description, resolve)
from comparator.config.frameworks import backend_of, unavailable_runs
from comparator.errors import Diverged, UsageError
from comparator.inputs.prepare import prepare
from comparator.inputs.batch import REGRESSION_SCENARIOS, Batch
from comparator.inputs.checkpoints import record_distance
from comparator.limits import peak_bytes, workers_fit_at_once, workers_may_overlap
from comparator.memory import collections_paused, long_lived_objects_frozen
from comparator.schema import Check, Report


@dataclass
class Outcome:
    """The report plus what produced it, for artifacts and follow-up work."""

    report: Report
    batch: Batch
    adapters: dict = field(default_factory=dict)
    bn_deltas: dict = field(default_factory=dict)  # run id -> per-BN-layer change, by depth
    # Takes back what the comparison put on a user's model objects (OpenedPair.release).
    release: Callable[[], None] = lambda: None


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for package in ("onnx", "onnxruntime"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    # Thread settings change float32 summation order: two reports whose numbers differ in
    # their last bits can be told apart by these.
    for variable in THREAD_VARIABLES:
        versions[variable] = os.environ.get(variable, "unset")
    versions["cpu_count"] = str(os.cpu_count())
    return versions


def _optimizer_settings(config: CompareConfig) -> dict:
    if config.optimizer == "adam":
        return {"name": "adam", "lr": config.lr,
                "epsilon": {f: ADAM_EPSILON.get(f, ADAM_EPSILON["keras"])
                            for f in config.frameworks}}
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
        own_error = reference.float32_output_error(batch)
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
            tolerance = fit_validation_tolerance(run.losses.inference_after)
            checks.append(Check(
                name=f"{run.id}:fit_validation_equals_inference_after",
                passed=diff <= tolerance, value=diff, tolerance=tolerance,
                detail="Keras evaluates validation data after the epoch's update, so val_loss "
                       "is the inference loss after the step, not the reported train loss "
                       "(tolerance: 1e-4 of that loss, at least 1e-5: fit's validation and "
                       "evaluate() are two compiled programs whose float32 kernels may round "
                       "differently)"))
    return checks


def _divergence_checks(diverged: list[dict]) -> list[Check]:
    """A failed check per run whose loss became NaN or infinite (the exit status says 1)."""
    return [Check(name=f"{record['id']}:loss_finite", passed=False, value=float(record["step"]),
                  tolerance=0.0,
                  detail=f"diverged at step {record['step']}: {record['reason']} (value: the "
                         "step)") for record in diverged]


def _run_recipes(recipes, adapters, batch, config, progress, clock):
    """Every recipe of an in-process adapter: results, final states, per-run explanations
    and per-layer BatchNorm changes (runs of a failed worker are left out)."""
    runs, states, explanations, bn_deltas = {}, {}, [], {}
    diverged, dropout_free = [], {}
    for recipe in recipes:
        if adapters[recipe.framework].failure is not None:
            continue
        progress(f"running {recipe.id}", 1)
        try:
            measurement = adapters[recipe.framework].run_recipe(
                recipe, batch, config.steps, config.lr, config.optimizer, config.validate)
        except Diverged as exc:  # the other runs go on; the report says where it happened
            diverged.append({"id": recipe.id, "framework": recipe.framework,
                             "backend": backend_of(recipe.framework), "recipe": recipe.name,
                             "status": "diverged", "step": exc.step, "reason": str(exc)})
            clock.phase(f"recipe:{recipe.id}")
            continue
        runs[recipe.id] = with_finite_divergence(measurement.result, measurement.initial_state,
                                                 measurement.final_state)
        states[recipe.id] = measurement.final_state
        if "dropout_off_statistics" in measurement.ablations:
            dropout_free[recipe.id] = {**measurement.final_state,
                                       **measurement.ablations["dropout_off_statistics"]}
        deltas = bn_layer_deltas(measurement.initial_state, measurement.final_state)
        if any(deltas):
            bn_deltas[recipe.id] = deltas
        explanation = explain_run(measurement.result, measurement.ablations, config.batch_size,
                                  clipped_probabilities=config.loss == "probabilities")
        if explanation:
            explanations.append(explanation)
        clock.phase(f"recipe:{recipe.id}")
    return runs, states, explanations, bn_deltas, (diverged, dropout_free)


class _Clock:
    """Wall seconds by phase, for the report's timings."""

    def __init__(self):
        self.started = self.last = time.perf_counter()
        self.phases: dict[str, float] = {}

    def phase(self, name: str) -> None:
        raise_if_requested()  # one a framework swallowed during the phase
        now = time.perf_counter()
        self.phases[name] = round(self.phases.get(name, 0.0) + now - self.last, 3)
        self.last = now

    def timings(self, adapters: dict) -> dict:
        timings = {"total_seconds": round(time.perf_counter() - self.started, 3),
                   "phases": self.phases,
                   "reused_inference_passes": sum(a.reused_inference_passes
                                                  for a in adapters.values()),
                   "ablation_seconds": round(sum(a.ablation_seconds
                                                 for a in adapters.values()), 3)}
        ran = {name: a.seconds for name, a in adapters.items()
               if a.runs_in_worker and a.seconds is not None}
        if ran:
            timings["worker_seconds"] = ran
        compiled = {name: a.compilations for name, a in adapters.items()
                    if a.runs_in_worker and a.compilations}
        if compiled:
            timings["worker_compilations"] = compiled
        return timings


@dataclass
class _Measured:
    """What the recipes measured, with the checks and explanations that follow from it."""

    runs: dict
    explanations: list
    equivalences: list
    checks: list
    unavailable: list
    conventions: dict
    bn_deltas: dict


def _measure(recipes, adapters, batch, config, progress, clock,
             collect_workers=lambda: None) -> _Measured:
    """Every recipe run, then the cross-framework equivalences with their measured causes.
    This process's own recipes run first, while the workers `_port` launched run beside
    them; `collect_workers` waits for those before their recipes are read."""
    # Inside compare()'s own block too: this one also freezes the models built since (the
    # port's, or a user pair's).
    with long_lived_objects_frozen():
        own = _heaviest_first([r for r in recipes if not adapters[r.framework].runs_in_worker])
        first = _run_recipes(own, adapters, batch, config, progress, clock)
        collect_workers()
        rest = _run_recipes([r for r in recipes if r not in own], adapters, batch, config,
                            progress, clock)
        runs, states, explanations, bn_deltas, (diverged, dropout_free) = _in_recipe_order(
            recipes, first, rest)
        unavailable = unavailable_runs(recipes, adapters)
        progress("explaining cross-framework differences", 1)
        # A worker read its own layers' conventions; one that did not run has none.
        conventions = {name: found for name, a in adapters.items()
                       if (found := a.conventions()) is not None}
        reruns, found = {}, []
        for eq in equivalences(runs, states, dropout_free):
            compared = dict(zip((eq.a, eq.b),
                                compared_states(runs, states, dropout_free, eq.a, eq.b)))
            found.append(explain_pair(eq, conventions, recipes, adapters, batch, config, runs,
                                      compared, reruns))
        # Two Keras runs, once each has been held against PyTorch's reruns; a pair that
        # none held may need a rerun of its own PyTorch recipe of the same step.
        found = [explain_keras_pair(eq, reruns, recipes, adapters, batch, config, runs, states)
                 for eq in found]
        clock.phase("diagnosis")
    checks = _divergence_checks(diverged) + _validation_checks(runs)
    return _Measured(runs, explanations, found, checks, unavailable + diverged, conventions,
                     bn_deltas)


def _heaviest_first(recipes) -> list:
    """The Keras side's recipes before PyTorch's. Keras's train steps need the most memory
    (DenseNet121 at 224 px, batch 8: 2.6 to 2.8 GiB above what the process holds, PyTorch's
    about 1.5 GiB), and every run's final state is kept until the analysis, so they run while
    the fewest are kept: the warm default command's peak fell from 4086-4166 MiB to
    3952-4064 MiB (three runs each, 2026-11-27). Every recipe starts from the initial state
    with its generators reseeded, so the order changes no result, and the report lists the
    runs in the recipes' order (`_in_recipe_order`)."""
    return sorted(recipes, key=lambda recipe: recipe.framework == "pytorch")


def _in_recipe_order(recipes, first, rest):
    """Two passes of _run_recipes merged as one pass in the recipes' order would give."""
    order = {r.id: i for i, r in enumerate(recipes)}

    def ordered(a: dict, b: dict) -> dict:
        return dict(sorted({**a, **b}.items(), key=lambda item: order[item[0]]))

    (runs_a, states_a, expl_a, deltas_a, (div_a, free_a)) = first
    (runs_b, states_b, expl_b, deltas_b, (div_b, free_b)) = rest
    return (ordered(runs_a, runs_b), ordered(states_a, states_b),
            sorted(expl_a + expl_b, key=lambda e: order[e["run"]]),
            ordered(deltas_a, deltas_b),
            (sorted(div_a + div_b, key=lambda d: order[d["id"]]), ordered(free_a, free_b)))


def _environment(adapters: dict) -> dict:
    environment = _package_versions()
    for adapter in adapters.values():
        for key, value in adapter.environment().items():
            if isinstance(value, dict):  # one entry per framework (keras_versions, ...)
                environment.setdefault(key, {}).update(value)
            else:
                environment[key] = value
    return environment


def _report(name: str, config, settings: dict, adapters: dict, measured: _Measured,
            port_checks: list, clock: _Clock, findings: tuple) -> Report:
    runs = measured.runs
    return Report(model=name, scenario=config.scenario, settings=settings,
                  environment=_environment(adapters), runs=tuple(runs.values()),
                  checks=tuple(port_checks + measured.checks),
                  explanations=tuple(measured.explanations),
                  equivalences=tuple(measured.equivalences),
                  findings=tuple(old_keras_frozen_bn_findings(runs)) + findings,
                  unavailable_runs=tuple(measured.unavailable),
                  timings=clock.timings(adapters))


def _port(spec, config, recipes, adapters, prepared, progress, clock) -> list[Check]:
    """Every non-PyTorch side built and given its weights, and the port check of each
    in-process one against PyTorch (with two trainings, their distance). A worker is
    launched here to run its recipes beside this process's; `_collect_workers` checks it."""
    checks, batch = [], prepared.batch
    workers = [name for name, a in adapters.items() if a.runs_in_worker]
    overlap = workers_may_overlap(spec.name, config.batch_size, config.image_size,
                                  len(workers), config.max_memory)
    for name, adapter in adapters.items():
        if name == "pytorch":
            continue
        progress(f"porting weights to {name}", 1)
        adapter.build(spec, config.scenario, config.seed, config.image_size)
        # Every Keras backend receives what the Keras side was given (its own checkpoint
        # with imagenet-both, else the ported arrays).
        adapter.load_weights(prepared.arrays_for("keras" if name.startswith("keras") else name))
        if adapter.runs_in_worker:  # every recipe of it runs in one call, from now on
            adapter.launch([r for r in recipes if r.framework == name], batch, config.steps,
                           config.lr, config.optimizer, config.validate,
                           background=overlap or name == workers[0])
        else:
            checks += [c for c in [_port_check_or_distance(name, adapters, prepared)] if c]
        clock.phase("port")
    return checks


def _collect_workers(adapters, progress, clock, check) -> list[Check]:
    """Wait for each worker (the phase `worker:<name>` is the time spent waiting), then
    check its port as an in-process side's is checked: check(name), a Check or None."""
    checks = []
    for name, adapter in adapters.items():
        if not adapter.runs_in_worker:
            continue
        progress(f"waiting for {name} (a worker)", 0)
        adapter.wait()
        clock.phase(f"worker:{name}")
        if adapter.failure is None:
            checks += [c for c in [check(name)] if c]
            clock.phase("port")
    return checks


def _port_check_or_distance(name, adapters, prepared) -> Check | None:
    """The port check, or with two trainings (a separate checkpoint each) their distance."""
    batch = prepared.batch
    if prepared.separate:  # two trainings: how far apart, not a port check
        record_distance(prepared.settings, name, adapters["pytorch"].logits(batch),
                        adapters[name].logits(batch))
        return None
    return _port_check(name, adapters["pytorch"], adapters[name], batch)


def _settings(config: CompareConfig, weights, preset: str | None) -> dict:
    return {
        "batch_size": config.batch_size, "image_size": config.image_size, "seed": config.seed,
        "steps": config.steps, "weights": weights.source, "weights_sha256": weights.sha256,
        "weights_description": weights.description,
        "optimizer": _optimizer_settings(config),
        "loss": _loss_description(config),
        "loss_kind": config.loss,
        **_loss_by_framework(config),
        "labels": ("given" if config.labels else "seeded") if config.scenario == "classify"
        else None,
        "scenario": config.scenario, "fit_validation_data": config.validate,
        "preset": preset,
        "device": config.device, "frameworks": list(config.frameworks),
    }


def _loss_description(config: CompareConfig) -> str:
    if config.scenario in REGRESSION_SCENARIOS:
        return "mean squared error"
    if config.loss == "probabilities":
        return probabilities_description(config.frameworks)
    return LOSS_DESCRIPTIONS[config.loss]


def _loss_by_framework(config: CompareConfig) -> dict:
    """settings.loss_by_framework where the frameworks' loss functions differ."""
    if config.scenario in REGRESSION_SCENARIOS:
        return {}
    found = loss_by_framework(config.loss, config.frameworks)
    return {"loss_by_framework": found} if found else {}


def compare(config: CompareConfig, progress=_noop, preset: str | None = None) -> Outcome:
    """Run the comparison. `progress(message, advance)` is told about each phase."""
    from adapters import checkpoint_loader, load_adapter  # frameworks load only now

    clock = _Clock()
    spec, config, recipes = resolve(config)
    clock.last = time.perf_counter()
    progress("importing frameworks", 0)
    with collections_paused():
        adapters = {name: load_adapter(name, device=config.device,
                                       worker_timeout=config.worker_timeout,
                                       cache_dir=config.cache_dir)
                    for name in config.frameworks}
    clock.phase("imports")

    with long_lived_objects_frozen():  # the frameworks' objects, from here on
        progress("building and calibrating PyTorch weights", 1)
        prepared = prepare(spec, config, adapters["pytorch"], loaders=checkpoint_loader)
        for adapter in adapters.values():
            adapter.loss_kind = config.loss
        clock.phase("build_and_calibrate")
        port_checks = _port(spec, config, recipes, adapters, prepared, progress, clock)
        measured = _measure(recipes, adapters, prepared.batch, config, progress, clock,
                            collect_workers=lambda: port_checks.extend(_collect_workers(
                                adapters, progress, clock,
                                lambda name: _port_check_or_distance(name, adapters, prepared))))
    settings = _settings(config, prepared.weights, preset)
    settings["conventions"] = measured.conventions
    settings.update(prepared.settings)
    report = _report(spec.name, config, settings, adapters, measured, port_checks, clock,
                     tuple(version_findings(measured.runs.values())))
    progress("done", 1)
    return Outcome(report=report, batch=prepared.batch, adapters=adapters,
                   bn_deltas=measured.bn_deltas)


# ----- a user's own pair ------------------------------------------------------------------

def _not_representable(recipes, blocked: dict) -> tuple[list, list[dict]]:
    """Recipes the pair can run, and a record for each it cannot represent."""
    runnable, records = [], []
    for recipe in recipes:
        reason = blocked.get(recipe.id) or blocked.get(recipe.framework)
        if reason is None:
            runnable.append(recipe)
            continue
        records.append({"id": recipe.id, "framework": recipe.framework,
                        "backend": backend_of(recipe.framework), "recipe": recipe.name,
                        "status": "not representable", "reason": reason})
    return runnable, records


def _summed(config: CompareConfig, output: dict) -> str:
    """The loss's description; of several outputs (--output KEY1,KEY2), as their weighted
    sum."""
    loss = _loss_description(config)
    if "loss_weights" not in output:
        return loss
    terms = " + ".join(f"{weight:g} x {keys['pytorch']!r}"
                       for weight, keys in zip(output["loss_weights"], output["keys"]))
    same = "targets" if config.scenario in REGRESSION_SCENARIOS else "labels"
    return f"{terms}: each output's {loss}, with the same {same}"


def _pair_settings(config: CompareConfig, opened) -> dict:
    x = opened.batch.x
    return {
        "batch_size": len(opened.batch),
        "image_size": int(x.shape[-1]) if not opened.batch.several and x.ndim == 4 else None,
        "seed": config.seed, "steps": config.steps, "weights": "user",
        "weights_sha256": None,
        "weights_description": opened.settings["pair"]["weights"],
        "optimizer": _optimizer_settings(config),
        "loss": _summed(config, opened.settings["pair"].get("output", {})),
        "loss_kind": config.loss, **_loss_by_framework(config), "scenario": config.scenario,
        "fit_validation_data": config.validate, "preset": None, "device": config.device,
        "frameworks": list(config.frameworks),
        "labels": (opened.settings["labels_source"].split(":")[0]
                   if config.scenario == "classify" else None),
        **opened.settings,
    }


def compare_user_pair(pair, config: CompareConfig, progress=_noop) -> Outcome:
    """The comparison on a user's own pair (comparator.config.pair.UserPair): the models as
    given, the recipes applied to the whole model or to the part named by pair.freeze."""
    from adapters import open_user_pair  # adapters import frameworks: only now

    from comparator.config.pair import check_pair, resolve_pair_config

    clock = _Clock()
    config, recipes = resolve_pair_config(config)
    check_pair(pair, config.frameworks)
    clock.last = time.perf_counter()
    progress("loading the two models", 1)
    opened = open_user_pair(pair, config)
    try:
        if opened.scenario != config.scenario:  # chosen from the outputs: its own recipes
            config, recipes = resolve_pair_config(replace(config, scenario=opened.scenario))
        return _compare_opened(opened, config, recipes, progress, clock)
    except BaseException:
        opened.release()
        raise


def _compare_opened(opened, config: CompareConfig, recipes, progress, clock) -> Outcome:
    adapters, batch = opened.adapters, opened.batch
    for adapter in adapters.values():
        adapter.loss_kind = config.loss
    clock.phase("load")
    recipes, not_representable = _not_representable(recipes, opened.not_representable)
    port_checks = [_pair_port_check(adapters, batch)]
    if not port_checks[0].passed:
        progress("the port check failed: finding the first layer that differs", 1)
        _locate_divergence(opened, port_checks[0])
    clock.phase("port")
    _launch_pair_workers(recipes, adapters, batch, config, progress)
    measured = _measure(recipes, adapters, batch, config, progress, clock,
                        collect_workers=lambda: port_checks.extend(_collect_workers(
                            adapters, progress, clock,
                            lambda name: _pair_port_check(adapters, batch, name))))
    measured.unavailable[:0] = not_representable
    settings = _pair_settings(config, opened)
    settings["conventions"].update({name: found for name, found in measured.conventions.items()
                                    if adapters[name].runs_in_worker})
    runs = measured.runs.values()
    keras_source = settings["pair"]["keras"]["source"]
    report = _report(opened.name, config, settings, adapters, measured, port_checks, clock,
                     (*version_findings(runs), *saved_training_finding(runs, keras_source)))
    progress("done", 1)
    return Outcome(report=report, batch=batch, adapters=adapters, bn_deltas=measured.bn_deltas,
                   release=opened.release)


def _launch_pair_workers(recipes, adapters, batch, config, progress) -> None:
    """Start each worker that runs the pair's Keras model on another backend or version
    (adapters/own_pair/workers.py). The first runs beside this process's own recipes; the
    others beside it too where the estimate of every process's peak fits the memory at once
    (comparator.limits, on the counts of the user's PyTorch model), else one after another
    when collected."""
    workers = [name for name, adapter in adapters.items() if adapter.runs_in_worker]
    overlap = len(workers) > 1 and _pair_workers_fit(adapters["pytorch"], batch, config,
                                                     len(workers))
    for name in workers:
        progress(f"starting {name} (a worker)", 0)
        adapters[name].launch([r for r in recipes if r.framework == name], batch, config.steps,
                              config.lr, config.optimizer, config.validate,
                              background=overlap or name == workers[0])


def _pair_workers_fit(pytorch, batch, config, workers: int) -> bool:
    """Whether the pair's workers fit in memory beside each other and this process; not where
    the PyTorch model cannot be counted (a torch.export program)."""
    counts = pytorch.memory_counts(batch)
    return counts is not None and workers_fit_at_once(
        peak_bytes(*counts, config.batch_size), workers, config.max_memory)


def _locate_divergence(opened, check: Check) -> None:
    """Name the layer where a failed port check starts, in settings.pair and as a note."""
    from adapters import locate_port_divergence
    from comparator.analysis.validation import output_label

    pair = opened.settings["pair"]
    unpaired = pair["pairing"].get("reason")
    output = pair.get("output", {})
    left_out = tuple(output.get("left_out", ()))
    # Of several outputs, the models already return the chosen ones: the validator names
    # them by --output's keys and follows every one of them.
    chosen = ",".join(output_label(keys["pytorch"], keys["keras"])
                      for keys in output.get("keys", ())) or None
    if unpaired:
        found = {"located": False, "text": f"no layer can be located, as the layers are not "
                                           f"paired: {unpaired}"}
    else:
        found = locate_port_divergence(opened.adapters, opened.batch, left_out, chosen)
    opened.settings["pair"]["first_divergence"] = found
    opened.settings.setdefault("notes", []).append(
        f"the port check failed: Keras's inference outputs differ from PyTorch's by up to "
        f"{check.value:.3g} on the batch, so the two models start apart in every run. "
        + found["text"][0].upper() + found["text"][1:])


def _pair_port_check(adapters: dict, batch: Batch, name: str = "keras") -> Check:
    """The user's port as given: inference outputs of a Keras side against PyTorch's. A
    torch.export program has no float64 rerun, so its tolerance stays the fixed one."""
    reference = adapters["pytorch"]
    if getattr(reference, "inference_only", None):
        theirs = reference.logits(batch).astype(np.float64)
        diff = float(np.max(np.abs(theirs - adapters[name].logits(batch))))
        return Check(name=f"port:{name}_vs_pytorch_eval_logits", passed=diff <= PORT_TOLERANCE,
                     value=diff, tolerance=PORT_TOLERANCE,
                     detail="max abs difference of inference-mode outputs on the batch")
    return _port_check(name, reference, adapters[name], batch)


PAIR_LOSSES = ("logits", "probabilities", "mse")


def _names(values, what: str = "frameworks",
           examples: str = "pytorch, keras, keras-jax, ...") -> tuple[str, ...]:
    """frameworks (or recipes) as a tuple of names, from a list or a comma-separated string."""
    names = values.split(",") if isinstance(values, str) else values
    try:
        names = tuple(names)
    except TypeError:
        names = None
    if not names or not all(isinstance(name, str) and name.strip() for name in names):
        raise UsageError(f"{what} takes names ({examples}), not {values!r}")
    return tuple(name.strip() for name in names)


def _numbers(values) -> tuple[float, ...]:
    """loss_weights as floats; anything else is refused in one line."""
    try:
        return tuple(float(value) for value in values)
    except (TypeError, ValueError):
        raise UsageError(f"loss_weights takes a number per output, not {values!r}") from None


def compare_pair(torch_module, keras_model, inputs, labels_or_targets=None, *,
                 loss: str | None = None, recipes=(), freeze: str | None = None,
                 onnx: str | None = None, steps: int = 1, lr: float = 0.01,
                 optimizer: str = "sgd", dropout: str = "on", seed: int = 0,
                 device: str = "cpu", port_weights: str | None = None,
                 output: str | None = None, loss_weights=None,
                 frameworks=("pytorch", "keras")) -> Report:
    """Compare the freezing recipes of PyTorch and Keras on your own pair; the Report of
    compare.py (same JSON schema, `model` names the pair).

    torch_module: a torch.nn.Module (or a torch.export program, or a SPEC string);
    keras_model: a keras.Model (or a SPEC string), on the torch backend in this process;
    inputs: one batch in PyTorch's layout (N,C,H,W or N,F), numpy or a tensor, or a tuple or
    list of them for a model that takes several (forward()'s positional arguments, the Keras
    model's inputs, in order); Keras gets each image, volume or channels-first sequence
    channels-last, as its own input's declared shape says. loss: "logits" (cross-entropy),
    "probabilities" or "mse" (regression); default "logits", or "mse" where the outputs have
    one unit per example (cross-entropy over one class is 0 whatever the weights; the two
    cross-entropies are refused on them). labels_or_targets: class indices
    (loss "logits" or "probabilities"; one per position of a map or a sequence) or regression
    targets (loss "mse"; the outputs' shape, in PyTorch's layout); default: the PyTorch
    model's own predictions. freeze: the submodule and layer that play the frozen backbone
    ("NAME" or "TORCH_NAME:KERAS_NAME"); default: the whole model. onnx: an ONNX file of the
    model, run in ONNX Runtime as the referee. Weights are used as given unless port_weights
    ("pytorch-to-keras" or "keras-to-pytorch"). output: the output compared where the models
    return several ("KEY", a dict's key or a position, or "TORCH_KEY:KERAS_KEY"); the PyTorch
    module returns it alone through a forward hook until the comparison ends. Several keys
    separated by ',' ("out,aux") compare those outputs, every loss the weighted sum of
    theirs with the same labels, loss_weights (a number per output, default 1 each).
    frameworks: as compare.py's --frameworks (a list or "pytorch,keras,keras-jax"); a Keras
    backend or version other than this process's runs in a worker, which rebuilds the Keras
    model from its SPEC, so keras_model must then be a SPEC string."""
    from comparator.config.pair import UserPair

    if loss is not None and loss not in PAIR_LOSSES:
        raise UsageError(f"unknown loss {loss!r}; known: {', '.join(PAIR_LOSSES)}")
    pair = UserPair(pytorch=torch_module, keras=keras_model, freeze=freeze, output=output,
                    loss_weights=None if loss_weights is None else _numbers(loss_weights),
                    onnx=onnx, port_weights=port_weights, dropout=dropout, x=inputs,
                    y=None if labels_or_targets is None else np.asarray(labels_or_targets))
    # No loss: cross-entropy, or mean squared error on outputs with one unit (pair_scenario).
    config = CompareConfig(model="user pair", scenario="regress" if loss == "mse" else "classify",
                           scenario_given=loss is not None,
                           batch_size=len(inputs[0] if isinstance(inputs, (tuple, list))
                                          else inputs), steps=steps, seed=seed, lr=lr,
                           recipes=(() if isinstance(recipes, (tuple, list)) and not recipes
                                    else _names(recipes, "recipes",
                                                "pytorch:eval, keras:trainable_false, ...")),
                           device=device, optimizer=optimizer,
                           loss="logits" if loss in (None, "mse") else loss,
                           frameworks=_names(frameworks))
    outcome = compare_user_pair(pair, config)
    try:
        if onnx:
            from comparator.analysis.referee import with_referee

            outcome.report = with_referee(outcome.report,
                                          referee_onnx_file(outcome, onnx, device))
    finally:
        outcome.release()
    return outcome.report
def referee(outcome: Outcome, *, cache_dir: str | None = None, exporter: str = "torchscript",
            device: str = "cpu"):
    """ONNX Runtime's verdict on a finished comparison (comparator.analysis.referee)."""
    from adapters import onnx_runtime
    from comparator.analysis.referee import run_referee

    return run_referee(outcome, onnx_runtime, cache_dir=cache_dir, exporter=exporter,
                       device=device)


def referee_onnx_file(outcome: Outcome, path: str, device: str = "cpu"):
    """ONNX Runtime running the user's own ONNX file on the batch (analysis.referee)."""
    from adapters import onnx_runtime
    from comparator.analysis.referee_file import referee_file

    return referee_file(outcome, path, onnx_runtime, device=device)
