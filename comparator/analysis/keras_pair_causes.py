"""Causes of a difference between two Keras runs (backends or versions of one recipe).

Two Keras runs whose weights differ get no rerun of their own: where both were held against
the same float64 rerun in their pairs with PyTorch (crosscheck.explain_pair), their two
distances from it say whether their difference is rounding; where none held both, the float64
rerun of a PyTorch recipe that computes the same step does; for two keras bn_trainable runs,
which no default PyTorch recipe steps like, that recipe is pytorch:requires_grad_except_bn,
run for the pair alone.
"""

from __future__ import annotations

import dataclasses

from comparator.analysis.crosscheck import rerun_of, within_rounding
from comparator.analysis.equivalence import same_function
from comparator.analysis.states import max_weight_diff
from comparator.analysis.tolerances import STATE_TOLERANCE
from comparator.analysis.train_loss_causes import keras_pair_loss_causes
from comparator.analysis.validation import NOISE_CAP
from comparator.config.recipes import RECIPES

# PyTorch's recipe of keras:bn_trainable's step (frozen weights but BatchNorm's gamma and beta,
# BatchNorm in training mode). It is in no default comparison, so a pair of two Keras
# bn_trainable runs whose weights differ runs it for itself.
BN_TRAINABLE_STEP = "pytorch:requires_grad_except_bn"


def explain_keras_pair(eq, reruns: dict, recipes=(), adapters=None, batch=None, config=None,
                       runs=None, states=None):
    """A pair of two Keras runs (backends or versions) whose weights differ, given a cause
    where both runs were held against the float64 rerun of the same PyTorch recipe in their
    pairs with it (explain_pair, which keeps each run's distance on the rerun): no rerun of
    its own. Where none held both, the float64 rerun of a PyTorch recipe that computes the
    same step as both (`_same_function_run`) measures their distances instead. The
    rounding explains the difference where both are as close to the float64 weights as
    float32 allows (FLOAT32_FACTOR times PyTorch's own float32 distance); and, as for a
    Keras run against PyTorch, only a pair that differs in nothing but its weights is then
    equivalent. Two runs of one function whose train-step losses differ also get float64
    reruns of that pass (keras_pair_loss_causes). The other arguments are explain_pair's,
    states the runs' final states."""
    if eq.a.startswith("pytorch:") or eq.b.startswith("pytorch:"):
        return eq
    causes = keras_pair_loss_causes(eq, reruns, recipes, adapters, batch, runs)
    weights = None
    if eq.max_weight_diff is not None and eq.max_weight_diff > STATE_TOLERANCE:
        weights = _held_cause(eq, reruns) or _same_function_cause(
            eq, reruns, recipes, adapters, batch, config, runs, states)
    causes += [weights] if weights is not None else []
    if not causes:
        return eq
    weights_only = all(d.startswith("weights after the step") for d in eq.differences)
    rounding = weights is not None and weights["explains"]
    return dataclasses.replace(eq, causes=(*eq.causes, *causes),
                               equivalent=eq.equivalent or (weights_only and rounding))


def _held_cause(eq, reruns: dict) -> dict | None:
    """The cause from the float64 rerun both runs were held against in their pairs."""
    rerun = next((rerun for rerun in reruns.values()
                  if eq.a in rerun.float32_errors and eq.b in rerun.float32_errors), None)
    if rerun is None:
        return None
    errors = {run: rerun.float32_errors[run] for run in (eq.a, eq.b)}
    return _keras_pair_cause(eq, errors, rerun.float32_errors[rerun.recipe.id],
                             f"Re-run of {rerun.recipe.id} in float64, against which both "
                             "were held")


def _same_function_cause(eq, reruns, recipes, adapters, batch, config, runs,
                         states) -> dict | None:
    """Two Keras runs whose pairs with PyTorch held neither against a float64 rerun (both
    keras:training_false runs of a classify scenario are paired with pytorch:eval, yet step
    as pytorch:train does), or held them against one float32 cannot pin: the float64 rerun
    of a PyTorch recipe of the same step, its float64 state shared with its own pairs."""
    torch = _same_function_run(eq, runs, reruns, adapters)
    if torch is None:
        return _bn_trainable_step_cause(eq, reruns, adapters, batch, config, runs, states)
    rerun = rerun_of(torch, reruns, recipes, adapters, batch, config)
    exact = rerun.float64_state()
    errors = {run: max_weight_diff(states[run], exact) for run in (eq.a, eq.b)}
    source = (f"Re-run of {torch} in float64, which computes the same step as both (the same "
              "BatchNorm modes and trainable weights)")
    return _judged_against(eq, errors, max_weight_diff(states[torch], exact), source,
                           runs[torch].state.max_weight_delta)


def _judged_against(eq, errors: dict, torch_error: float, source: str,
                    step: float | None) -> dict:
    """As _float32_causes judges a Keras run against PyTorch: no verdict where PyTorch's own
    float32 cannot pin the step (step: its largest weight change)."""
    if step is not None and not torch_error <= NOISE_CAP * step:
        return _inconclusive_keras_pair_cause(eq, errors, torch_error, source, step)
    return _keras_pair_cause(eq, errors, torch_error, source)


def _bn_trainable_step_cause(eq, reruns, adapters, batch, config, runs,
                             states) -> dict | None:
    """Two Keras bn_trainable runs that no run of the report steps like: BN_TRAINABLE_STEP,
    run for them in float32, as the report's runs are measured, and in float64. Its measured
    BatchNorm modes and trainable weights must be theirs, else it holds neither; its
    float32 state gives PyTorch's own rounding, its weight change the step's size."""
    if not _bn_trainable_pair(eq, runs, adapters):
        return None
    rerun = rerun_of(BN_TRAINABLE_STEP, reruns, RECIPES, adapters, batch, config)
    torch = rerun.measured_run()
    if torch is None or torch.result.modes.dropout_active or not all(
            same_function(torch.result, runs[run]) for run in (eq.a, eq.b)):
        return None
    exact = rerun.float64_state()
    errors = {run: max_weight_diff(states[run], exact) for run in (eq.a, eq.b)}
    source = (f"Run of {BN_TRAINABLE_STEP} in float64, made for this pair since none of the "
              "report's runs computes their step (its float32 run, made too, measured the "
              "same BatchNorm modes and trainable weights as both)")
    return _judged_against(eq, errors, max_weight_diff(torch.final_state, exact), source,
                           torch.result.state.max_weight_delta)


def _bn_trainable_pair(eq, runs, adapters) -> bool:
    """Both are bn_trainable runs, and BN_TRAINABLE_STEP is none of the report's runs (one
    would have been found, or have stepped otherwise) and can be run."""
    return (runs is not None and "pytorch" in (adapters or {}) and BN_TRAINABLE_STEP not in runs
            and all(run.split(":", 1)[1] == "bn_trainable" for run in (eq.a, eq.b)))


def _same_function_run(eq, runs, reruns, adapters) -> str | None:
    """A PyTorch run whose step is a step of the same function as both Keras runs' (no
    Dropout: neither Keras run had any active, or their weights would not be compared), one
    already rerun first: its float64 state may be kept. None where there is none, or it
    would need a rerun and no PyTorch adapter is at hand."""
    if runs is None:
        return None
    found = [run_id for run_id, run in runs.items()
             if run_id.startswith("pytorch:") and not run.modes.dropout_active
             and all(same_function(run, runs[keras]) for keras in (eq.a, eq.b))
             and (run_id in reruns or "pytorch" in (adapters or {}))]
    return next((run_id for run_id in found if run_id in reruns), next(iter(found), None))


def _keras_pair_cause(eq, errors: dict, torch_error: float, source: str) -> dict:
    """The two Keras runs' distances from a float64 rerun (source: which, and why it holds
    them), judged against PyTorch's own float32 distance from it."""
    beyond = [run for run, error in errors.items() if not within_rounding(error, torch_error)]
    further = max(errors, key=errors.get)
    numbers = (f"{eq.a} {errors[eq.a]:.2g}, {eq.b} {errors[eq.b]:.2g}; PyTorch's own float32 "
               f"{torch_error:.2g}")
    if not beyond:
        verdict = (f"each is as close to it as float32 allows ({numbers}): their weights "
                   "differ by rounding, not by a different computation")
    elif len(beyond) == 1:
        verdict = (f"{beyond[0]} is further from it than float32 rounding explains, the other "
                   f"is not ({numbers}): their weights differ by more than rounding")
    else:
        verdict = (f"both are further from it than float32 rounding explains, {further} the "
                   f"further ({numbers}), so it cannot tell whether their weights differ by "
                   "rounding alone")
    return {"cause": "float32_rounding", "value": errors[further],
            "before": eq.max_weight_diff, "torch_float32_error": torch_error,
            "float32_errors": errors, "explains": not beyond,
            "text": f"{source}: {verdict}."}


def _inconclusive_keras_pair_cause(eq, errors: dict, torch_error: float, source: str,
                                   step: float) -> dict:
    """As _float32_causes says of a Keras run against PyTorch: where PyTorch's own float32
    is that far from float64, the rerun judges neither run."""
    return {"cause": "float32_rounding", "value": max(errors.values()),
            "before": eq.max_weight_diff, "torch_float32_error": torch_error,
            "float32_errors": errors, "explains": False, "inconclusive": True,
            "text": f"{source}: PyTorch's float32 weights after the step are up to "
                    f"{torch_error:.2g} from it, {eq.a}'s up to {errors[eq.a]:.2g}, {eq.b}'s "
                    f"up to {errors[eq.b]:.2g}, where the step moved them by up to "
                    f"{step:.2g}: float32 cannot pin this step (its gradient is "
                    "ill-conditioned), so the rerun says nothing of whether their weights "
                    "differ by rounding."}
