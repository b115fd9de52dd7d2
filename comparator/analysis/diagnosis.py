"""Explanations of loss gaps, each computed from measured passes, never from a rule.

A user sees a train-step loss (what fit() or the loop reports) and an inference
loss after the step (what evaluate() reports next). Their gap splits exactly into

* the mode of the pass, on the same weights: BatchNorm batch statistics and
  active Dropout (inference_before - train_step), and
* the update: changed weights and moved BatchNorm running statistics
  (inference_after - inference_before).

Two causes that are active together are separated by ablation passes that
switch one off at a time, and each gets the average of its two marginal effects
(a two-player Shapley split), so the shares add up to the gap.
"""

from __future__ import annotations

import math

import numpy as np

from comparator.analysis.tolerances import STATE_TOLERANCE, loss_tolerance
from comparator.analysis.states import max_bn_stat_diff

SATURATED_LOSS = -math.log(1e-7)  # Keras clips probabilities to [1e-7, 1 - 1e-7]


def _cause(name: str, delta: float, gap: float, text: str) -> dict:
    share = delta / gap if gap else 0.0
    return {"cause": name, "share": share, "loss_delta": delta, "text": text}


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _apart(**losses: float) -> dict[str, str]:
    """Two losses with the fewest significant digits, 4 to 8, that tell them apart: 'from
    2.403 to 2.403' hid a change of 0.00087 (tiny_cnn, --lr 1e6). Equal at 8 digits: 4."""
    for digits in range(4, 9):
        texts = {name: f"{value:.{digits}g}" for name, value in losses.items()}
        if len(set(texts.values())) == len(texts):
            return texts
    return {name: _fmt(value) for name, value in losses.items()}


def _mode_causes(run, ablations) -> list[tuple[str, float, str]]:
    before, train = run.losses.inference_before, run.losses.train_step[0]
    modes = run.modes
    bn, dropout = modes.bn_batch_stats > 0, modes.dropout_active > 0
    bn_text = (f"{modes.bn_batch_stats} of {modes.bn_layers} BatchNorm layers normalised with "
               "this batch's statistics in the train step; with moving statistics the "
               "train-step loss would have been {alt} instead of {train}.")
    # Stochastic depth counts as Dropout; named, since no class of it is called Dropout.
    depth = (f" ({modes.stochastic_depth_layers} of them stochastic depth)"
             if modes.stochastic_depth_layers else "")
    dropout_text = (f"{modes.dropout_active} of {modes.dropout_layers} Dropout layers{depth} "
                    "were active in the train step; without them the train-step loss would "
                    "have been {alt} instead of {train}.")
    if bn and dropout:
        bn_off, dropout_off = ablations["bn_moving_statistics"], ablations["dropout_off"]
        bn_delta = 0.5 * ((bn_off - train) + (before - dropout_off))
        dropout_delta = 0.5 * ((dropout_off - train) + (before - bn_off))
        return [("bn_batch_statistics", bn_delta,
                 bn_text.format(**_apart(train=train, alt=bn_off))),
                ("dropout", dropout_delta,
                 dropout_text.format(**_apart(train=train, alt=dropout_off)))]
    if bn:
        return [("bn_batch_statistics", before - train,
                 bn_text.format(**_apart(train=train, alt=before)))]
    if dropout:
        return [("dropout", before - train,
                 dropout_text.format(**_apart(train=train, alt=before)))]
    if abs(before - train) > loss_tolerance(before):
        return [("unexplained_mode", before - train,
                 "The train-step pass used inference-mode BatchNorm and no Dropout, yet its "
                 f"loss differs from the inference loss by {before - train:.3g}.")]
    return []


def _update_causes(run, ablations) -> list[tuple[str, float, str]]:
    before, after, train = (run.losses.inference_before, run.losses.inference_after,
                            run.losses.train_step[0])
    state = run.state
    steps = len(run.losses.train_step)
    step_words = "the step" if steps == 1 else f"the {steps} steps"
    weights_text = (f"The reported loss {_fmt(train)} was computed before {step_words} "
                    f"changed the weights (by up to {state.max_weight_delta:.2g}); that change "
                    "moved the inference loss by {delta:+.4g}.")
    frozen = "" if state.trainable_params else " although no weight was trainable"
    stats_text = (f"{step_words.capitalize()} moved BatchNorm running statistics by up to "
                  f"{state.max_bn_stat_delta:.2g}{frozen}; that alone moved the inference loss "
                  "from {before} to {alt}.")
    if state.weights_changed and state.bn_stats_changed:
        stats_only = ablations["stats_update_only"]
        return [("bn_running_statistics_moved", stats_only - before,
                 stats_text.format(**_apart(before=before, alt=stats_only))),
                ("update", after - stats_only,
                 weights_text.format(delta=after - stats_only)
                 + " (measured with the statistics' change already applied)")]
    if state.bn_stats_changed:
        return [("bn_running_statistics_moved", after - before,
                 stats_text.format(**_apart(before=before, alt=after)))]
    if state.weights_changed:
        return [("update", after - before, weights_text.format(delta=after - before))]
    return []


def notes_for(run, batch_size: int, clipped_probabilities: bool = False) -> list[str]:
    notes = []
    if batch_size == 1 and run.modes.bn_batch_stats:
        notes.append("Batch size 1 with batch statistics: each BatchNorm channel's mean and "
                     "variance come from one image's pixels, so the train-step pass sees "
                     "statistics of that single image (degenerate where a layer's output is "
                     "1x1: the variance is 0 and the layer outputs beta).")
    for label, value in (("train-step", run.losses.train_step[0]),
                         ("inference", run.losses.inference_after)):
        note = saturation_note(value, label) or (
            clipped_probabilities and certainty_note(value, label))
        if note:
            notes.append(note)
    return notes


def saturation_note(loss: float, label: str = "") -> str | None:
    """Recognise Keras's clipped cross-entropy on probabilities at -ln(1e-7) = 16.118."""
    if abs(loss - SATURATED_LOSS) > 1e-3:
        return None
    return (f"The {label + ' ' if label else ''}loss {loss:.4f} equals -ln(1e-7) = 16.1181: "
            "Keras cross-entropy on probabilities (from_logits=False) clips them to "
            "[1e-7, 1 - 1e-7], so every prediction gave its label a probability of at most "
            "1e-7 (saturated), and the loss cannot grow further.")


# -ln of the float32 value nearest 1 - 1e-7, the upper clip of a probability.
CERTAIN_LOSS = -math.log(float(np.float32(1.0 - 1e-7)))


def certainty_note(loss: float, label: str = "") -> str | None:
    """Recognise the other end of the clipped cross-entropy: a label probability of 1."""
    if abs(loss - CERTAIN_LOSS) > 1e-9:
        return None
    return (f"The {label + ' ' if label else ''}loss {loss:.3g} is the floor of cross-entropy "
            "on probabilities clipped to [1e-7, 1 - 1e-7]: the label's probability reached "
            f"1 - 1e-7 (float32 {np.float32(1.0 - 1e-7):.8f}), the prediction is saturated "
            "and the loss cannot fall further.")


def explain_run(run, ablations: dict, batch_size: int,
                clipped_probabilities: bool = False) -> dict | None:
    """The causes of gaps between reported and inference losses of one run, or None."""
    before, train, after = (run.losses.inference_before, run.losses.train_step[0],
                            run.losses.inference_after)
    gap = after - train
    tolerance = loss_tolerance(max(abs(before), abs(train)))
    notes = notes_for(run, batch_size, clipped_probabilities)
    if max(abs(gap), abs(before - train), abs(after - before)) <= tolerance and not notes:
        return None
    raw = _mode_causes(run, ablations) + _update_causes(run, ablations)
    causes = [_cause(name, delta, gap, text) for name, delta, text in raw]
    residual = gap - sum(c["loss_delta"] for c in causes)
    return {
        "run": run.id, "gap": gap,
        "train_step": train, "inference_before": before, "inference_after": after,
        "mode_gap": before - train, "update_gap": after - before,
        "causes": causes, "residual": residual, "notes": notes,
        "summary": (f"{run.id}: the train step reported {_fmt(train)}, inference after it "
                    f"gives {_fmt(after)} (gap {gap:+.4g})."),
    }


def _momentum_words(momenta: dict) -> str:
    """Keras's and PyTorch's momenta, both in PyTorch's convention, per layer or for all."""
    def pair(keras, torch):
        torch_text = "None (cumulative average)" if torch is None else f"{torch:g}"
        return f"Keras {1.0 - keras:.4g} (its momentum={keras:g}), PyTorch {torch_text}"
    values = set(momenta.values())
    if len(values) == 1:
        count = {1: "its one BatchNorm layer", 2: "both BatchNorm layers"}.get(
            len(momenta), f"all {len(momenta)} BatchNorm layers")
        return f"{pair(*next(iter(values)))} on {count}"
    differing = [(name, k, t) for name, (k, t) in momenta.items()
                 if t is None or abs((1.0 - k) - t) > 1e-12]
    listed = "; ".join(f"{name}: {pair(k, t)}" for name, k, t in differing[:3])
    more = f" and {len(differing) - 3} more" if len(differing) > 3 else ""
    return f"{listed}{more}"


def explain_bn_conventions(keras_final: dict, torch_final: dict, torch_matched: dict,
                           momenta: dict, keras_biased: bool = True) -> list[dict]:
    """Why running statistics differ after the same step, from a momentum-matched rerun.
    momenta: {layer: (Keras's momentum as Keras states it, PyTorch's)}, read from the layers;
    keras_biased: whether Keras's layers keep the biased batch variance (tf_keras's fused
    kernel keeps the unbiased one, as PyTorch does)."""
    already_matched = all(t is not None and abs((1.0 - k) - t) <= 1e-12
                          for k, t in momenta.values())
    mean_before = max_bn_stat_diff(keras_final, torch_final, ".running_mean")
    mean_after = max_bn_stat_diff(keras_final, torch_matched, ".running_mean")
    var_after = max_bn_stat_diff(keras_final, torch_matched, ".running_var")
    names = [k for k in keras_final if k.endswith(".running_var") and k in torch_matched]
    torch_var, keras_var = (np.concatenate([s[k].ravel() for k in names])
                            for s in (torch_matched, keras_final))
    differ = torch_var != keras_var  # channels of layers that did not move say nothing
    larger = np.mean(torch_var[differ] > keras_var[differ]) if differ.any() else 0.0
    variance = {
        "cause": "bn_variance_bias", "value": var_after, "fraction_larger": float(larger),
        "text": f"With matched momentum the running variances still differ by up to "
                f"{var_after:.2g}, and PyTorch's is the larger in {100 * larger:.0f}% of the "
                "channels that differ: PyTorch updates it with the unbiased batch variance, "
                "Keras with the biased one."}
    variances = [variance] if keras_biased else []
    if already_matched:
        return variances
    closed = mean_after <= STATE_TOLERANCE
    outcome = (f"agree to {mean_after:.2g} (they differed by {mean_before:.2g})" if closed else
               f"still differ by up to {mean_after:.2g} (were {mean_before:.2g})")
    momentum = {
        "cause": "bn_momentum_convention", "value": mean_after, "before": mean_before,
        "explains": closed,
        "momenta": {name: {"keras": k, "keras_as_pytorch": 1.0 - k, "pytorch": t}
                    for name, (k, t) in momenta.items()},
        "text": f"BatchNorm momentum read from the layers, in PyTorch's convention (the weight "
                f"of the new batch value; Keras's momentum weights the old moving value, so "
                f"Keras's m is 1 - m here): {_momentum_words(momenta)}. Re-run with every "
                f"PyTorch layer's momentum set to its Keras layer's, the running means "
                f"{outcome}."}
    if not closed:  # the variance text, measured at matched momentum, would mislead
        return [momentum]
    return [momentum, *variances]
