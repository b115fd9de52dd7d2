import numpy as np
import pytest


def _pair(outcome, a, b):
    (eq,) = [e for e in outcome.report.equivalences if (e.a, e.b) == (a, b)]
    return eq


def test_keras_trainable_false_is_pytorch_eval_requires_grad(densenet_classify):
    eq = _pair(densenet_classify, "keras:trainable_false", "pytorch:eval_requires_grad")
    assert eq.equivalent and eq.expected
    assert eq.max_diff < 1e-4


def test_train_recipes_agree_on_the_step_but_not_on_running_statistics(densenet_classify):
    report = densenet_classify.report
    keras_run, torch_run = report.run("keras:train"), report.run("pytorch:train")
    assert keras_run.losses.train_step[0] == pytest.approx(torch_run.losses.train_step[0],
                                                           abs=1e-4)
    eq = _pair(densenet_classify, "keras:train", "pytorch:train")
    assert not eq.equivalent
    # Keras momentum 0.99 against torchvision's 0.1: the running statistics part ways.
    assert eq.max_bn_stat_diff > 1e-3
    assert any("running statistics" in d for d in eq.differences)


def test_the_guides_training_false_does_not_act_like_pytorch_eval(densenet_classify):
    eq = _pair(densenet_classify, "keras:training_false", "pytorch:eval")
    assert not eq.equivalent
    assert any("BatchNorm layers using batch statistics: 121 vs 0" in d for d in eq.differences)


def test_training_false_behaves_like_nothing_frozen_in_keras(densenet_classify):
    report = densenet_classify.report
    a, b = report.run("keras:training_false"), report.run("keras:train")
    assert a.losses.train_step == b.losses.train_step
    assert a.losses.inference_after == pytest.approx(b.losses.inference_after, abs=1e-6)


def test_dropout_pairs_are_judged_on_the_dropout_free_passes(tiny_head):
    eq = _pair(tiny_head, "keras:trainable_false", "pytorch:eval_requires_grad")
    assert "judged on the Dropout-free passes" in eq.judged_on
    keras_run = tiny_head.report.run("keras:trainable_false")
    torch_run = tiny_head.report.run("pytorch:eval_requires_grad")
    # The head's Dropout draws different masks; without it the train-step passes agree.
    assert keras_run.losses.train_step_without_dropout == pytest.approx(
        torch_run.losses.train_step_without_dropout, abs=1e-4)
    assert eq.equivalent, eq.differences


def test_the_dropout_note_says_when_the_reported_train_step_losses_agree_anyway(tiny_head):
    """On the CPU the two frameworks' masks differ; on a GPU Keras on torch and PyTorch drew
    the same ones (docs/gpu.md), and the note must not say otherwise."""
    import dataclasses

    from comparator.analysis.equivalence import DROPOUT_JUDGEMENT, compare_runs

    report = tiny_head.report
    keras_run, torch_run = report.run("keras:train"), report.run("pytorch:train")
    assert keras_run.modes.dropout_active and torch_run.modes.dropout_active
    assert keras_run.losses.train_step[0] != pytest.approx(torch_run.losses.train_step[0])
    assert compare_runs(keras_run, torch_run, {}, {}).judged_on == DROPOUT_JUDGEMENT
    same_masks = dataclasses.replace(keras_run, losses=dataclasses.replace(
        keras_run.losses, train_step=torch_run.losses.train_step))
    note = compare_runs(same_masks, torch_run, {}, {}).judged_on
    loss = f"{torch_run.losses.train_step[0]:.6g}"
    assert note == (f"{DROPOUT_JUDGEMENT} (here the reported train-step losses agree: {loss} "
                    f"and {loss})")


def test_old_keras_frozen_batchnorm_has_a_pytorch_twin_and_no_keras_recipe(densenet_classify):
    findings = densenet_classify.report.findings
    assert any(f.startswith("pytorch:requires_grad reproduces the old Keras") for f in findings)
    assert "No keras recipe run here reproduces the old Keras frozen-BatchNorm behaviour " \
        "(frozen weights with BatchNorm on batch statistics)." in findings


def test_float32_rounding_explains_weight_differences_only_within_a_few_times_torchs_own():
    import types

    from comparator.analysis.crosscheck import _float32_causes

    exact = {"w": np.array([1.0, 2.0])}
    states = {"keras:x": {"w": np.array([1.0, 2.003])}, "pytorch:y": {"w": np.array([1.0, 2.002])}}
    rerun = types.SimpleNamespace(float64_state=lambda: exact, float32_errors={})
    eq = types.SimpleNamespace(a="keras:x", b="pytorch:y", max_weight_diff=1e-3)
    (cause,) = _float32_causes(eq, rerun, states)
    assert cause["explains"] and cause["torch_float32_error"] == pytest.approx(2e-3)
    states["keras:x"]["w"] = np.array([1.0, 2.1])
    (cause,) = _float32_causes(eq, rerun, states)
    assert not cause["explains"] and "further" in cause["text"]


def test_pytorch_float64_rerun_is_float32_within_rounding(tiny_classify):
    torch_adapter = tiny_classify.adapters["pytorch"]
    single = torch_adapter.logits(tiny_classify.batch)
    with torch_adapter.float64():
        double = torch_adapter.logits(tiny_classify.batch)
    assert double.dtype == np.float64 and single.dtype == np.float32
    assert np.abs(double - single).max() < 1e-5
    assert torch_adapter.logits(tiny_classify.batch).dtype == np.float32


def test_a_pair_that_is_not_listed_is_judged_without_its_states(tiny_classify, monkeypatch):
    """A pair that is not an expected one is listed only when it agrees; one whose losses or
    layer modes already differ never has its weights read (on DenseNet121, 8 million of
    them in float64 for each such pair)."""
    from comparator.analysis import equivalence

    runs = {run.id: run for run in tiny_classify.report.runs}
    read = []
    monkeypatch.setattr(equivalence, "max_weight_diff", lambda a, b: None)
    monkeypatch.setattr(equivalence, "max_bn_stat_diff",
                        lambda a, b: read.append((a["id"], b["id"])))
    found = equivalence.equivalences(runs, {run_id: {"id": run_id} for run_id in runs})
    assert len(runs) == 8 and len(found) >= 4
    assert sorted(read) == sorted((eq.a, eq.b) for eq in found)


def test_recipes_that_train_other_weights_differ_where_dropout_hides_the_weights(tiny_classify):
    """With Dropout active the weights after the step are not compared; the number of
    trainable parameters still tells a recipe that trains only BatchNorm from one that
    trains everything (tf-keras:bn_trainable was listed as the same as pytorch:train on the
    tiny CNN before)."""
    import dataclasses

    from comparator.analysis.equivalence import compare_runs

    run = tiny_classify.report.run("keras:train")
    assert run.modes.dropout_active and run.state.weights_changed
    twin = dataclasses.replace(run, id="pytorch:twin")
    fewer = dataclasses.replace(twin, state=dataclasses.replace(run.state, trainable_params=12))
    assert compare_runs(run, twin, {}, {}).equivalent
    eq = compare_runs(run, fewer, {}, {})
    assert not eq.equivalent
    assert eq.differences == (f"trainable parameters: {run.state.trainable_params:,} vs 12",)


def test_a_pair_differing_in_dropout_alone_is_not_called_different_without_dropout():
    """tiny_cnn, batch 4: keras:trainable_false (the head's Dropout active) against
    pytorch:eval_requires_grad (none) agree on every Dropout-free pass; the one difference
    is the Dropout activity, which the sweep's verdict names."""
    from comparator.sweep.summary import _verdict

    judged = "Dropout was active ..."
    alone = {"equivalent": False, "judged_on": judged, "differences": [
        "Dropout layers active in the train step: 1 vs 0 (reported train-step losses "
        "2.60545 vs 2.51256)"]}
    assert _verdict(alone) == "differs in Dropout alone (active in 1 vs 0 layers)"
    more = {**alone, "differences": alone["differences"] + [
        "BatchNorm running statistics after the step differ by up to 0.0263"]}
    assert _verdict(more) == "differs without Dropout"
    assert _verdict({"equivalent": True, "judged_on": judged}) == "equivalent without Dropout"
