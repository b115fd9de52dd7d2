"""A run whose steps diverged while every number stayed finite.

A loss that becomes NaN or infinite stops the run (`Diverged`, status `diverged`). A step
that throws the model away with finite numbers does not: `--lr 1000` on tiny_cnn gives an
inference loss of 2.9e15 after one step, which is measured and true, but says nothing
about a framework's training. The rule, scale-free: the steps moved the weights they
changed by more than those weights' own size, in either of two norms, and the inference
loss rose.

* max |change| > max |weight before| (some weight moved by more than the largest of
  them): plain SGD puts its update on few weights (dense_mlp, --lr 0.3: a weight moved
  by 2.6 times the largest, L2 norm 0.10 times theirs; the loss rose from 0.24 to 171);
* ||change||_2 > ||weights before||_2: Adam moves every weight by about lr, so its largest
  change is lr whatever happens (tiny_cnn, --optimizer adam --lr 1: 0.81 times the largest
  weight, L2 norm 9 times theirs; the loss rose from 2.38 to 1.7e6).

The loss must have risen: weights ahead of a BatchNorm can grow without changing what the
model computes (MobileNetV2 at 32 px, batch 2, --lr 0.01: weights moved by 8.5e3 where the
largest was 1.27, and the inference loss fell from 7.46 to 2.75). Ordinary steps are far
below 1 in both norms (default --lr 0.01: tiny_cnn 0.0034 and 0.0041, dense_mlp 0.087 and
0.0034; DenseNet121's default step moves weights by 0.0017). docs/options.md has the sweep.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from comparator.analysis.states import split_state


def _changed_weights(initial: dict, final: dict):
    """(before, after) of every weight array the steps changed, one at a time; running
    statistics are no weights (they follow the batch, not the update)."""
    before, _ = split_state(initial)
    after, _ = split_state(final)
    for name, old in before.items():
        new = after.get(name)
        # Runs keep an unchanged array as the one object both states hold.
        if new is not None and new is not old and old.size and not np.array_equal(old, new):
            yield old, new


def step_sizes(initial: dict, final: dict) -> dict | None:
    """How far the steps moved the weights they changed, against those weights' own size:
    None where they changed none, or where those were all zero (no size to judge by). One
    array at a time in float64: DenseNet121's weights whole would be 64 MB more at the
    peak."""
    max_delta = largest = delta_squares = squares = 0.0
    for old, new in _changed_weights(initial, final):
        old, delta = old.astype(np.float64), new.astype(np.float64) - old
        max_delta = max(max_delta, float(np.max(np.abs(delta))))
        largest = max(largest, float(np.max(np.abs(old))))
        delta_squares += float(np.sum(delta ** 2))
        squares += float(np.sum(old ** 2))
    if largest == 0:
        return None
    return {"max_weight_delta": max_delta, "largest_weight_before": largest,
            "max_delta_ratio": max_delta / largest,
            "norm_ratio": math.sqrt(delta_squares) / math.sqrt(squares)}


def finite_divergence(run, initial: dict, final: dict) -> dict | None:
    """The run's `finite_divergence` record, or None where the rule does not hold."""
    before, after = run.losses.inference_before, run.losses.inference_after
    if not after > before:
        return None
    sizes = step_sizes(initial, final)
    if sizes is None or max(sizes["max_delta_ratio"], sizes["norm_ratio"]) <= 1:
        return None
    record = {key: sizes[key] for key in ("largest_weight_before", "max_delta_ratio",
                                          "norm_ratio")}
    record["text"] = _text(len(run.losses.train_step), sizes, before, after)
    return record


def _text(steps: int, sizes: dict, before: float, after: float) -> str:
    what, they, it = (("the step", "it", "it") if steps == 1
                      else (f"the {steps} steps", "they", "them"))
    return (f"{what} diverged without a NaN: {they} moved weights by up to "
            f"{sizes['max_weight_delta']:.3g} where the largest of the weights changed was "
            f"{sizes['largest_weight_before']:.3g} before (the change's L2 norm "
            f"{sizes['norm_ratio']:.3g} times theirs), and the inference loss rose "
            f"from {before:.4g} to {after:.4g}; the losses after {it} are measured, but "
            f"comparisons after such a step say little")


def with_finite_divergence(run, initial: dict, final: dict):
    """The RunResult with its `finite_divergence` record where the rule holds."""
    found = finite_divergence(run, initial, final)
    return run if found is None else replace(run, finite_divergence=found)

