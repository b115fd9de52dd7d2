"""The Keras adapter evaluates every inference pass on one inference model compiled once
(so TensorFlow traces and JAX compiles the evaluation once per run, not once per recipe).
A user evaluates on the model they compiled for the recipe: both must give the same loss."""

from __future__ import annotations

import pytest

from comparator.config.recipes import recipes_for

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _own_evaluate(adapter, recipe, batch):
    """evaluate() on the model the recipe compiled for fit, as a user would call it."""
    adapter._apply_impl(recipe)
    adapter._prepare_optimizer_impl("sgd", 0.01)
    x, y = adapter._data(batch)
    return float(adapter._model.evaluate(x, y, batch_size=len(x), verbose=0))


RECIPES = {r.id: r for r in recipes_for("keras")}


@pytest.mark.parametrize("scenario,run_id", [
    *(("classify", f"keras:{name}") for name in ("train", "trainable_false", "training_false",
                                                 "bn_trainable")),
    ("head", "keras:feature_extraction"),
])
def test_inference_losses_are_those_of_the_recipes_own_compiled_model(request, scenario,
                                                                     run_id):
    outcome = request.getfixturevalue(f"tiny_{scenario}")
    recipe = RECIPES[run_id]
    adapter, batch = outcome.adapters["keras"], outcome.batch
    run = outcome.report.run(recipe.id)
    adapter.reset()
    assert _own_evaluate(adapter, recipe, batch) == run.losses.inference_before
    measurement = adapter.run_recipe(recipe, batch, 1, 0.01, ablate=False)
    assert measurement.result.losses.inference_after == run.losses.inference_after
    adapter._load_impl(measurement.final_state)  # the state the step left
    assert _own_evaluate(adapter, recipe, batch) == run.losses.inference_after
    adapter.reset()


@pytest.mark.parametrize("fixture", ["tiny_classify", "tiny_head", "densenet_classify"])
def test_outputs_kept_from_evaluate_are_those_of_predict(request, fixture):
    """On torch, the port check's outputs and the inference loss before the recipes come
    from one evaluate() pass: its outputs must be bitwise those of predict(), and its loss
    that of a separate evaluate()."""
    outcome = request.getfixturevalue(fixture)
    adapter, batch = outcome.adapters["keras"], outcome.batch
    kept = adapter.logits(batch)
    adapter.reset()
    x, y = adapter._data(batch)
    predicted = adapter._wrappers[False].predict(x, batch_size=len(x), verbose=0)
    assert kept.dtype == predicted.dtype and kept.tobytes() == predicted.tobytes()
    evaluated = float(adapter._evaluator().evaluate(x, y, batch_size=len(x), verbose=0))
    assert adapter._loss_from_outputs_impl(kept, batch) == evaluated
    assert all(run.losses.inference_before == evaluated for run in outcome.report.runs
               if run.framework == "keras" and run.recipe != "feature_extraction")


TENSORFLOW_KEPT_OUTPUTS = """
import json, sys
from adapters.keras.worker import _build, _keep_other_backends_out
_keep_other_backends_out({"backend": "tensorflow"})
adapter, batch = _build(json.load(open(sys.argv[1] + "/request.json")), sys.argv[1])
kept = adapter.logits(batch)
from_evaluate = adapter._evaluated is not None and adapter._evaluated[0] is kept
adapter.reset()
x, y = adapter._data(batch)
predicted = adapter._wrappers[False].predict(x, batch_size=len(x), verbose=0)
evaluated = float(adapter._evaluator().evaluate(x, y, batch_size=len(x), verbose=0))
print(from_evaluate, kept.dtype == predicted.dtype and kept.tobytes() == predicted.tobytes(),
      adapter._loss_from_outputs_impl(kept, batch) == evaluated,
      adapter.inference_loss(batch) == evaluated)
"""


def test_outputs_kept_from_a_tensorflow_evaluate_are_those_of_predict(tiny_classify, tmp_path):
    """On TensorFlow the compiled evaluate() hands its outputs back through a host call, so
    the worker traces one inference function instead of two: its outputs must be bitwise
    those of predict(), and its loss that of a later evaluate(), which keeps nothing."""
    import json
    import os
    import subprocess
    import sys

    import numpy as np

    from comparator.config.frameworks import missing_modules

    if missing_modules(["tensorflow"]):
        pytest.skip("the tensorflow extra is not installed")
    batch = tiny_classify.batch
    np.savez(tmp_path / "weights.npz", **tiny_classify.adapters["pytorch"].canonical_weights())
    np.savez(tmp_path / "batch.npz", x=batch.x, y=batch.y)
    (tmp_path / "request.json").write_text(json.dumps({
        "framework": "keras-tensorflow", "backend": "tensorflow", "device": "cpu",
        "loss_kind": "logits", "model": "tiny_cnn", "scenario": "classify", "seed": 0,
        "image_size": 16}))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", TENSORFLOW_KEPT_OUTPUTS, str(tmp_path)],
                          capture_output=True, text=True, cwd=root, timeout=600,
                          env={**os.environ, "PYTHONPATH": root, "KERAS_BACKEND": "tensorflow",
                               "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True", "True", "True"]


@pytest.mark.parametrize("fixture", ["tiny_classify", "tiny_head"])
def test_the_exported_model_computes_what_the_model_evaluate_runs_on_computes(request,
                                                                               tmp_path,
                                                                               fixture):
    """Without a head the base is the whole model, and the referee exports it rather than
    the wrapper around it (quicker): its ONNX graph must give the wrapper's outputs."""
    from adapters.onnx import runtime

    outcome = request.getfixturevalue(fixture)
    adapter, batch = outcome.adapters["keras"], outcome.batch
    exported = adapter.exportable_model()
    assert (exported is adapter.base) == (fixture == "tiny_classify")
    outputs = {}
    for name, model in (("exported", exported), ("evaluated", adapter._evaluator())):
        path = str(tmp_path / f"{name}.onnx")
        runtime.export_keras(model, path)
        outputs[name] = runtime.run_onnx(path, batch.x_channels_last).outputs
    assert outputs["exported"].tobytes() == outputs["evaluated"].tobytes()


def test_a_keras_functional_call_holds_every_layer_output_until_it_returns():
    """Why a Keras inference pass on torch raised the peak by 1.5 GiB for DenseNet121 at 224
    px, batch 8, against PyTorch's 0.2 GiB (docs/benchmark.md): Keras keeps each layer's
    output until the whole call returns; torch frees one as soon as nothing refers to it."""
    import weakref

    import numpy as np
    import torch

    from adapters.keras.backend import keras

    outputs, alive = [], []

    def recorded(x):
        y = x * 1.0
        if "meta" not in str(y.device):  # Keras builds the model on meta tensors
            outputs.append(weakref.ref(y))
        return y

    class Record(keras.layers.Layer):
        def call(self, x):
            return recorded(x)

    class Check(keras.layers.Layer):
        def call(self, x):
            if "meta" not in str(x.device):
                alive.append([ref() is not None for ref in outputs])
            return x

    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(4)(Record()(inputs))
    model = keras.Model(inputs, Check()(keras.layers.Dense(4)(Record()(hidden))))
    with torch.no_grad():
        model(np.ones((2, 4), np.float32), training=False)
    assert alive == [[True, True]]

    outputs.clear()
    linear = torch.nn.Linear(4, 4)

    def forward(x):  # the same chain in plain torch, checked at the same point
        hidden = linear(recorded(x))
        linear(recorded(hidden))
        return [ref() is not None for ref in outputs]

    with torch.no_grad():
        assert forward(torch.ones(2, 4)) == [False, False]
