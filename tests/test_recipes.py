"""What each freezing recipe does to weights, BatchNorm statistics and layer modes,
as measured on DenseNet121 (121 BatchNorm layers, no Dropout) at 32 px."""

import pytest

BN_LAYERS = 121


def _run(outcome, run_id):
    return outcome.report.run(run_id)


@pytest.mark.parametrize("run_id,weights,bn_stats,batch_stats", [
    ("pytorch:train", True, True, BN_LAYERS),
    # requires_grad=False changes nothing about BatchNorm in train(): batch statistics, updates.
    ("pytorch:requires_grad", False, True, BN_LAYERS),
    ("pytorch:eval", True, False, 0),
    ("pytorch:eval_requires_grad", False, False, 0),
    ("keras:train", True, True, BN_LAYERS),
    # trainable=False puts Keras BatchNormalization in inference mode, even inside fit().
    ("keras:trainable_false", False, False, 0),
    # training=False given when building the model does not survive fit(): fit calls the
    # model with training=True, and the trainable BatchNorm layers follow it.
    ("keras:training_false", True, True, BN_LAYERS),
    ("keras:bn_trainable", True, True, BN_LAYERS),
])
def test_recipe_effects(densenet_classify, run_id, weights, bn_stats, batch_stats):
    run = _run(densenet_classify, run_id)
    assert run.state.weights_changed is weights
    assert (run.state.max_weight_delta > 0) is weights
    assert run.state.bn_stats_changed is bn_stats
    assert run.modes.bn_layers == BN_LAYERS
    assert run.modes.bn_batch_stats == batch_stats
    assert run.modes.dropout_layers == 0


def test_parameter_counts_follow_the_recipe(densenet_classify):
    total = 7978856  # DenseNet121 parameters, BatchNorm running statistics excluded
    for run in densenet_classify.report.runs:
        assert run.state.trainable_params + run.state.frozen_params == total
    assert _run(densenet_classify, "pytorch:requires_grad").state.trainable_params == 0
    assert _run(densenet_classify, "keras:trainable_false").state.trainable_params == 0
    bn_only = _run(densenet_classify, "keras:bn_trainable").state.trainable_params
    assert bn_only == 2 * 41824  # gamma and beta of every BatchNorm channel


def test_a_frozen_inference_mode_step_reports_the_inference_loss(densenet_classify):
    for run_id in ("pytorch:eval_requires_grad", "keras:trainable_false"):
        run = _run(densenet_classify, run_id)
        assert run.losses.train_step[0] == pytest.approx(run.losses.inference_before, abs=1e-5)
        assert run.losses.inference_after == pytest.approx(run.losses.inference_before, abs=1e-6)


def test_batch_statistics_change_the_reported_loss(densenet_classify):
    run = _run(densenet_classify, "pytorch:requires_grad")
    assert abs(run.losses.train_step[0] - run.losses.inference_before) > 1e-3
    assert not run.state.weights_changed


def test_keras_trainable_false_leaves_dropout_active(tiny_classify):
    # Dropout has no weights, so trainable=False does not switch it off.
    assert _run(tiny_classify, "keras:trainable_false").modes.dropout_active == 1
    assert _run(tiny_classify, "pytorch:eval_requires_grad").modes.dropout_active == 0


def test_head_always_trains_and_its_dropout_is_active(densenet_head):
    for run in densenet_head.report.runs:
        assert run.state.weights_changed, run.id
        assert run.modes.dropout_layers == 1 and run.modes.dropout_active == 1, run.id
    frozen = _run(densenet_head, "pytorch:eval_requires_grad").state
    assert frozen.trainable_params == 1024 * 64 + 64 + 64 + 1


def test_steps_give_one_reported_loss_each():
    from tests.conftest import run_once

    outcome = run_once(model="tiny_cnn", batch_size=4, image_size=16, steps=3,
                       recipes=("pytorch:eval", "keras:trainable_false"))
    for run in outcome.report.runs:
        assert len(run.losses.train_step) == 3
    losses = _run(outcome, "pytorch:eval").losses.train_step
    assert losses[0] != losses[2]  # the same batch, after two updates


def test_the_keras_side_runs_first_and_the_order_changes_no_result(monkeypatch, tmp_path):
    """The Keras side's recipes run before PyTorch's (its steps need the most memory); the
    report still lists the runs in the recipes' order, with the numbers the other order gives."""
    from comparator import pipeline
    from comparator.config import CompareConfig

    def without_timings(outcome):
        report = outcome.report.to_dict()
        report.pop("timings")
        report["settings"].pop("weights_cache")  # calibrated by the first run, read by the second
        for run in report["runs"]:
            run.pop("seconds")
        return report

    config = CompareConfig(model="tiny_cnn", batch_size=4, image_size=16, seed=3,
                           cache_dir=str(tmp_path))
    messages = []
    keras_first = pipeline.compare(config, progress=lambda message, _: messages.append(message))
    running = [m.removeprefix("running ") for m in messages if m.startswith("running ")]
    listed = [run.id for run in keras_first.report.runs]
    assert running == [i for i in listed if i.startswith("keras:")] + \
        [i for i in listed if i.startswith("pytorch:")]
    assert listed[0].startswith("pytorch:")  # the recipes' order
    monkeypatch.setattr(pipeline, "_heaviest_first", list)
    assert without_timings(pipeline.compare(config)) == without_timings(keras_first)
