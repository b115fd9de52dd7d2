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
