"""The referee's checks: what each reference says about the comparison's runs, as
pass/fail checks with the measured difference and the tolerance it was held to
(comparator/analysis/referee.py makes the references)."""

from __future__ import annotations

from comparator.analysis.tolerances import LOGIT_TOLERANCE, loss_tolerance
from comparator.schema import Check


def _fmt(value: float) -> str:
    return f"{value:.6g}"


FROM_LOGITS_WORDS = (" (from the graph's logits, unclipped, as this framework computes the "
                     "probabilities loss)")


def reference_loss(ref: dict, key: str, framework: str, from_logits) -> tuple[float | None, str]:
    """The reference's loss `key` as `framework` computes the loss, and words saying so where
    that is not the clipped probabilities loss: Keras on TensorFlow computes a softmax
    output's cross-entropy from the logits (settings.loss_by_framework), so it is held to
    the graph's `<key>_from_logits`, where the referee computed one."""
    if framework in from_logits and ref.get(f"{key}_from_logits") is not None:
        return ref[f"{key}_from_logits"], FROM_LOGITS_WORDS
    return ref.get(key), ""


def eval_checks(ref: dict, runs, measured_tolerance=None,
                from_logits: frozenset = frozenset()) -> list[Check]:
    """The inference graphs against each other and each framework's outputs, and the
    graphs' inference loss against each framework's loss before any step. Where two
    outputs part by more than 1e-4, measured_tolerance() (tolerance, words), when given,
    says how far float32 rounding alone goes, as the port check's float64 rerun does.
    from_logits: the frameworks whose probabilities loss is computed from logits."""
    checks = []
    for label, diff in ref["max_abs_diff"].items():
        graph, _, other = label.partition("_vs_")
        tolerance, measured = LOGIT_TOLERANCE, ""
        if diff > LOGIT_TOLERANCE and measured_tolerance is not None:
            tolerance, measured = measured_tolerance()
        checks.append(Check(
            name=f"referee:onnx_eval_{label}", passed=diff <= tolerance, value=diff,
            tolerance=tolerance,
            detail=f"max abs difference of inference outputs, ONNX Runtime on the "
                   f"{graph.replace('_', ' ')} vs {other.replace('_', ' ')}"
                   f"{'' if other.endswith('graph') else ' inference'}; the same float32 "
                   f"function in two runtimes agrees within 1e-4{measured}"))
    if ref["inference_before"] is None:
        return checks
    for framework in dict.fromkeys(r.framework for r in runs):
        mine = [r for r in runs if r.framework == framework]
        if not mine:
            continue
        loss, how = reference_loss(ref, "inference_before", framework, from_logits)
        theirs = mine[0].losses.inference_before
        diff, tol = abs(loss - theirs), loss_tolerance(max(abs(loss), abs(theirs)))
        checks.append(Check(
            name=f"referee:onnx_eval_loss_vs_{framework}_inference", passed=diff <= tol,
            value=diff, tolerance=tol,
            detail=f"inference loss before any step: {framework} {_fmt(theirs)}, ONNX "
                   f"Runtime {_fmt(loss)}{how}; the same outputs give the same loss to 1e-4 "
                   "relative"))
    return checks


def _refereed_pass(run) -> tuple[float, bool, str]:
    """The train-step loss the references can speak for: with Dropout active, the run's own
    train-step pass with Dropout off (its ablation pass, from the same state and in the same
    BatchNorm mode) where it measured one, since no reference draws the run's mask.
    Returns the loss, whether Dropout was active in it, and how to name it."""
    without = run.losses.train_step_without_dropout
    if run.modes.dropout_active and without is not None:
        return without, False, "train-step pass with Dropout off"
    return run.losses.train_step[0], bool(run.modes.dropout_active), "train-step loss"


def run_checks(runs, eval_ref: dict, train_ref: dict, measured_tolerance,
               from_logits: frozenset = frozenset()) -> list[Check]:
    """Each run's train-step loss against the training-mode graph's (batch statistics
    everywhere, no Dropout) or, with moving statistics, apart from it and equal to the
    inference graph's. Runs whose Dropout was active are held to it by their pass with
    Dropout off (_refereed_pass). `measured_tolerance(tolerance, train_ref, framework)`
    widens a tolerance that float32 rounding alone exceeds (float64 reruns). from_logits:
    as eval_checks's."""
    checks, compared, skipped = [], [], {}
    for run in runs:
        train, train_how = reference_loss(train_ref, "train_forward", run.framework,
                                          from_logits)
        inference, inference_how = reference_loss(eval_ref, "inference_before",
                                                  run.framework, from_logits)
        modes = run.modes
        reported, dropout_active, what = _refereed_pass(run)
        if modes.bn_layers == 0:
            skipped[run.id] = "the model has no BatchNorm layers"
            continue
        bn_text = f"{modes.bn_batch_stats} of {modes.bn_layers} BatchNorm layers"
        if modes.bn_batch_stats == modes.bn_layers and not dropout_active:
            if train is None:
                skipped[run.id] = "onnx:train_forward is unavailable"
                continue
            diff, tol = abs(reported - train), loss_tolerance(max(abs(reported),
                                                                  abs(train)))
            measured = ""
            if diff > tol:
                tol, measured = measured_tolerance(tol, train_ref, run.framework)
            compared.append(run.id)
            checks.append(Check(
                name=f"referee:train_forward_vs_{run.id}", passed=diff <= tol, value=diff,
                tolerance=tol,
                detail=f"{what} {_fmt(reported)} vs onnx:train_forward {_fmt(train)}"
                       f"{train_how}: the "
                       f"step used batch statistics in {bn_text} and this pass no Dropout, "
                       "the pass the reference computes; 1e-4 relative allows float32 "
                       f"kernels{measured}"))
        elif modes.bn_batch_stats == 0:
            dropout = (f"; {modes.dropout_active} of {modes.dropout_layers} Dropout layers "
                       "were also active, part of the gap" if dropout_active else "")
            if train is not None:
                diff, tol = abs(reported - train), loss_tolerance(max(abs(reported),
                                                                      abs(train)))
                compared.append(run.id)
                checks.append(Check(
                    name=f"referee:moving_stats_differ_{run.id}", passed=diff > tol,
                    value=diff, tolerance=tol,
                    detail=f"{what} {_fmt(reported)} differs from onnx:train_forward "
                           f"{_fmt(train)}{train_how} by {diff:.4g}, as expected: all "
                           f"{modes.bn_layers} BatchNorm layers used moving statistics"
                           f"{dropout}; passes when the difference exceeds the tolerance"))
            if inference is not None and not dropout_active:
                diff, tol = abs(reported - inference), loss_tolerance(
                    max(abs(reported), abs(inference)))
                checks.append(Check(
                    name=f"referee:onnx_eval_vs_{run.id}", passed=diff <= tol, value=diff,
                    tolerance=tol,
                    detail=f"{what} {_fmt(reported)} vs onnx:eval {_fmt(inference)}"
                           f"{inference_how}: "
                           "moving statistics and no Dropout make this pass an inference "
                           "pass; 1e-4 relative"))
        elif modes.bn_batch_stats == modes.bn_layers:
            skipped[run.id] = (f"{modes.dropout_active} of {modes.dropout_layers} Dropout "
                               "layers were active: a random mask, not comparable to a "
                               "dropout-off reference")
        else:
            skipped[run.id] = f"only {bn_text} used batch statistics"
    train_ref["compared_runs"] = compared
    train_ref["skipped_runs"] = skipped
    return checks
