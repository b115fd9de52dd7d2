"""Referee checks that failed wrongly: DenseNet121 at 32 px on two images, where BatchNorm
over two samples amplifies float32 rounding past 1e-4 relative; the tolerance is measured
against PyTorch in float64, as the port check's is. (Measured: PyTorch 2.0e-3 from ONNX
Runtime, its own float32 error 1.7e-3; Keras's train step is 1.5e-2 away, beyond 4x that,
and still fails: measuring Keras's own float32 error needs a float64 Keras model.)"""

import pytest

pytest.importorskip("onnxruntime")

from comparator.pipeline import referee as run_referee  # noqa: E402
from tests.conftest import run_once  # noqa: E402


def test_densenet_two_images_train_forward_is_judged_on_measured_float32_error(tmp_path):
    outcome = run_once(model="densenet121", batch_size=2, image_size=32,
                       frameworks=("pytorch",), recipes=("pytorch:train",))
    result = run_referee(outcome, cache_dir=str(tmp_path))
    train = [c for c in result.checks if c.name.startswith("referee:train_forward_vs_")]
    assert [c.name for c in train] == ["referee:train_forward_vs_pytorch:train"]
    assert all(c.passed for c in train), [(c.name, c.value, c.tolerance) for c in train]
    measured = [c for c in train if "from float64" in c.detail]
    assert measured, "no check needed the float64 reference: this case no longer tests it"
    error = result.references["onnx:train_forward"]["pytorch_float32_error"]
    assert all(c.tolerance == pytest.approx(4 * error) for c in measured)
