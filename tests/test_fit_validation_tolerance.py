"""fit(validation_data=...)'s val_loss against evaluate() after the step: the same state
evaluated by two compiled programs, held to float32 rounding that grows with the loss.

The numbers are tf_keras 2.21's on the tf-keras:set_learning_phase run of
`compare.py --preset seed-resnet50-learning-phase-keras2 --image-size 32 --no-onnx`
(2026-11-29): val_loss 2.4653168, evaluate() 2.4653578 (TensorFlow's oneDNN graph kernels
against its eager ones, comparator/analysis/tolerances.py); the same run's loss before the
step was 7.6826 and its train step (training mode) reported 7.0392.
"""

from types import SimpleNamespace

import pytest

from comparator.pipeline import _validation_checks

AFTER = 2.465357780456543


def _check(val_loss, after=AFTER):
    run = SimpleNamespace(id="tf-keras:set_learning_phase",
                          losses=SimpleNamespace(fit_validation=(val_loss,), inference_after=after))
    (check,) = _validation_checks({run.id: run})
    return check


def test_two_programs_rounding_the_same_state_differently_pass():
    check = _check(2.4653167724609375)
    assert check.passed, check
    assert check.value == pytest.approx(4.1e-5, rel=0.01)
    assert check.tolerance == pytest.approx(1e-4 * AFTER)


@pytest.mark.parametrize("val_loss", [7.682610034942627,  # before the step
                                      7.039159774780273,  # in training mode (the step's)
                                      AFTER * (1 + 3e-4)])  # beyond rounding
def test_another_state_still_fails(val_loss):
    assert not _check(val_loss).passed


def test_a_saturated_loss_keeps_the_absolute_floor():
    # PyTorch's clipped floor 1.19e-7 against tf_keras's 0.0: within 1e-5; 2e-5 is not.
    assert _check(0.0, after=1.1920928955078125e-07).passed
    assert _check(2e-5, after=0.0).tolerance == 1e-5
    assert not _check(2e-5, after=0.0).passed
