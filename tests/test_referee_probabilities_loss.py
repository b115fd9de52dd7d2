"""The referee holds each framework to its own probabilities loss. Keras on TensorFlow
(tf_keras too) computes a softmax output's cross-entropy from the logits, unclipped; the
others on probabilities clipped to [1e-7, 1 - 1e-7] (comparator/config, measured
2026-11-29). The referee computed only the clipped loss from its graphs, so a saturated
prediction failed Keras on TensorFlow's checks: logits [-100, 0, 0] with label 0 give
100.69 from the logits and 16.118 clipped."""

from types import SimpleNamespace

import numpy as np
import pytest

from comparator.analysis.referee import loss_of
from comparator.analysis.referee_checks import eval_checks, run_checks
from comparator.schema import Modes

SATURATED = np.array([[-100.0, 0.0, 0.0], [3.0, 0.0, 0.0]], np.float32)
LABELS = np.array([0, 0])
CLIPPED = loss_of("classify", SATURATED, LABELS, "probabilities")
FROM_LOGITS = loss_of("classify", SATURATED, LABELS, "logits")
FRAMEWORKS = {"pytorch": CLIPPED, "keras-tensorflow": FROM_LOGITS}


def _run(framework: str, loss: float, bn_batch_stats: int = 0):
    return SimpleNamespace(
        id=f"{framework}:{'train' if bn_batch_stats else 'eval'}", framework=framework,
        losses=SimpleNamespace(inference_before=loss, train_step=(loss,),
                               train_step_without_dropout=None),
        modes=Modes(bn_layers=1, bn_batch_stats=bn_batch_stats, dropout_layers=0,
                    dropout_active=0))


def test_the_two_functions_part_on_a_saturated_prediction():
    assert CLIPPED == pytest.approx((-np.log(1e-7) + -np.log(np.exp(3) / (np.exp(3) + 2))) / 2)
    assert FROM_LOGITS == pytest.approx((100.0 + np.log(2 + np.exp(-100.0)) + np.log(
        1 + 2 * np.exp(-3.0))) / 2, rel=1e-6)  # 100.69 for the first, as config measured
    assert FROM_LOGITS - CLIPPED > 40


def test_each_framework_is_held_to_its_own_inference_loss():
    ref = {"max_abs_diff": {}, "inference_before": CLIPPED,
           "inference_before_from_logits": FROM_LOGITS}
    runs = [_run(name, loss) for name, loss in FRAMEWORKS.items()]
    checks = {c.name: c for c in eval_checks(ref, runs, from_logits={"keras-tensorflow"})}
    assert all(c.passed for c in checks.values()), checks
    tensorflow = checks["referee:onnx_eval_loss_vs_keras-tensorflow_inference"]
    assert "from the graph's logits, unclipped" in tensorflow.detail
    assert "unclipped" not in checks["referee:onnx_eval_loss_vs_pytorch_inference"].detail
    # Without a framework computing from the logits, the clipped loss is everyone's.
    alone = eval_checks(ref, runs)
    assert [c.passed for c in alone] == [True, False]


def test_each_run_is_held_to_its_own_train_forward_and_inference_loss():
    eval_ref = {"inference_before": CLIPPED, "inference_before_from_logits": FROM_LOGITS}
    train_ref = {"train_forward": CLIPPED + 1.0, "train_forward_from_logits": FROM_LOGITS + 1.0}

    def measured(tolerance, ref, framework):
        return tolerance, ""
    batch_stats = [_run(name, loss + 1.0, bn_batch_stats=1) for name, loss in FRAMEWORKS.items()]
    moving = [_run(name, loss) for name, loss in FRAMEWORKS.items()]
    checks = {c.name: c for c in run_checks(batch_stats + moving, eval_ref, train_ref, measured,
                                            from_logits={"keras-tensorflow"})}
    assert sorted(checks) == sorted(
        [f"referee:train_forward_vs_{name}:train" for name in FRAMEWORKS]
        + [f"referee:moving_stats_differ_{name}:eval" for name in FRAMEWORKS]
        + [f"referee:onnx_eval_vs_{name}:eval" for name in FRAMEWORKS])
    assert all(c.passed for c in checks.values()), [(c.name, c.detail) for c in checks.values()]
    assert "unclipped" in checks["referee:train_forward_vs_keras-tensorflow:train"].detail
    assert "unclipped" not in checks["referee:train_forward_vs_pytorch:train"].detail
    # Held to the clipped loss, Keras on TensorFlow's runs fail both.
    plain = {c.name: c for c in run_checks(batch_stats + moving, eval_ref, train_ref, measured)}
    assert not plain["referee:train_forward_vs_keras-tensorflow:train"].passed
    assert not plain["referee:onnx_eval_vs_keras-tensorflow:eval"].passed
