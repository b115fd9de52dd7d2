"""A pair of two Keras runs (backends or versions) whose weights differ gets its cause from
the float64 rerun of the PyTorch recipe both were held against in their pairs with it: no
rerun of its own."""

import os
from types import SimpleNamespace

import numpy as np
import pytest

import comparator
from comparator.analysis.crosscheck import explain_keras_pair
from comparator.config.frameworks import missing_modules
from comparator.schema import Equivalence
from tests.user_pair_models import seeded_torch_net

SPEC = f"{os.path.join(os.path.dirname(__file__), 'user_pair_models.py')}:ported_keras_net"


def _pair(weights: float, *differences: str) -> Equivalence:
    return Equivalence(a="keras:train", b="keras-tensorflow:train", equivalent=False,
                       max_diff=3.2e-5, expected=True, reason="the same recipe",
                       differences=(f"weights after the step differ by up to {weights:.3g}",
                                    *differences),
                       max_weight_diff=weights, max_bn_stat_diff=None)


def _reruns(keras: float, tensorflow: float, torch: float = 0.013) -> dict:
    errors = {"pytorch:train": torch, "keras:train": keras, "keras-tensorflow:train": tensorflow}
    return {"pytorch:train": SimpleNamespace(recipe=SimpleNamespace(id="pytorch:train"),
                                             float32_errors=errors)}


def test_two_keras_runs_as_close_to_float64_as_float32_allows_differ_by_rounding():
    # The numbers of a user's pair on 2026-11-29 (Adam, 2 steps, batch 2).
    eq = explain_keras_pair(_pair(0.0039), _reruns(0.0042, 0.0043))
    (cause,) = eq.causes
    assert cause["cause"] == "float32_rounding" and cause["explains"]
    assert cause["float32_errors"] == {"keras:train": 0.0042, "keras-tensorflow:train": 0.0043}
    assert cause["value"] == 0.0043 and cause["before"] == 0.0039
    assert cause["torch_float32_error"] == 0.013
    assert ("each is as close to it as float32 allows (keras:train 0.0042, "
            "keras-tensorflow:train 0.0043; PyTorch's own float32 0.013)") in cause["text"]
    assert cause["text"].startswith("Re-run of pytorch:train in float64")
    # As for a Keras run against PyTorch: weights alone, parted by rounding, are the same
    # computation.
    assert eq.equivalent


def test_a_pair_that_differs_in_more_than_weights_stays_not_equivalent():
    eq = explain_keras_pair(
        _pair(0.0039, "BatchNorm running statistics after the step differ by up to 0.000166"),
        _reruns(0.0042, 0.0043))
    assert eq.causes[0]["explains"] and not eq.equivalent


def test_the_run_further_than_rounding_allows_is_named():
    eq = explain_keras_pair(_pair(0.2), _reruns(0.0042, 0.21))
    (cause,) = eq.causes
    assert not cause["explains"] and not eq.equivalent
    assert "keras-tensorflow:train is further from it than float32 rounding explains, the " \
           "other is not" in cause["text"]


def test_no_cause_without_both_runs_held_against_the_same_rerun():
    reruns = _reruns(0.0042, 0.0043)
    del reruns["pytorch:train"].float32_errors["keras-tensorflow:train"]
    assert explain_keras_pair(_pair(0.0039), reruns).causes == ()
    # Weights that agree need no cause.
    assert explain_keras_pair(_pair(1e-6), _reruns(0.0042, 0.0043)).causes == ()


@pytest.mark.skipif(bool(missing_modules(["jax"])),
                    reason="jax is not installed: pip install -e '.[jax]'")
def test_keras_and_keras_jax_reuse_their_pairs_float64_rerun():
    """The tests' small pair, Adam over 2 steps at lr 0.1: Keras's conventions carry both
    Keras runs about 0.15 from PyTorch's float64 weights (PyTorch's own float32 1.5e-06), and
    the two Keras runs' weights differ by about 6e-05 (measured 2026-11-29)."""
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    report = comparator.compare_pair(seeded_torch_net(), SPEC, x,
                                     frameworks="pytorch,keras,keras-jax",
                                     recipes=("pytorch:train", "keras:train", "keras-jax:train"),
                                     dropout="off", optimizer="adam", steps=2, lr=0.1)
    pairs = {(eq.a, eq.b): eq for eq in report.equivalences}
    held = {a: next(c for c in pairs[(a, "pytorch:train")].causes
                    if c["cause"] == "float32_rounding")
            for a in ("keras:train", "keras-jax:train")}
    keras_pair = pairs[("keras:train", "keras-jax:train")]
    assert keras_pair.max_weight_diff > 1e-5
    (cause,) = keras_pair.causes
    assert cause["cause"] == "float32_rounding"
    # The pairs' own measurements, no new rerun.
    assert cause["float32_errors"] == {run: c["value"] for run, c in held.items()}
    assert cause["torch_float32_error"] == held["keras:train"]["torch_float32_error"]
    assert not cause["explains"] and not keras_pair.equivalent
    assert "both are further from it than float32 rounding explains" in cause["text"]
