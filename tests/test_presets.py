"""The seed cases, reproduced with today's frameworks at small sizes."""

import subprocess
import sys

import pytest

from comparator.cli.compare import _config, build_parser
from tests.conftest import run_once


def test_flags_override_a_preset():
    config = _config(build_parser().parse_args(["--preset", "seed-densenet-regression",
                                                "--image-size", "32"]))
    assert (config.model, config.scenario, config.batch_size, config.image_size) == (
        "densenet121", "head", 32, 32)


def test_seed_dense_update_loss_is_reported_before_the_update():
    config = _config(build_parser().parse_args(["--preset", "seed-dense-update"]))
    outcome = run_once(**{k: v for k, v in config.__dict__.items()})
    report = outcome.report
    for run in report.runs:
        # The step reports the loss of the weights it started from ...
        assert run.losses.train_step[0] == pytest.approx(run.losses.inference_before, abs=1e-6)
        # ... and evaluation afterwards sees the updated weights.
        assert abs(run.losses.inference_after - run.losses.train_step[0]) > 1e-2
        (explanation,) = [e for e in report.explanations if e["run"] == run.id]
        assert [c["cause"] for c in explanation["causes"]] == ["update"]
    keras_run = report.run("keras:train")
    assert keras_run.losses.fit_validation[0] == pytest.approx(keras_run.losses.inference_after,
                                                               abs=1e-6)
    assert all(c.passed for c in report.checks)
    # Adam: Keras adds epsilon before bias correction; matching that placement closes the gap.
    (eq,) = report.equivalences
    causes = {c["cause"]: c for c in eq.causes}
    assert causes["adam_epsilon_placement"]["value"] < 1e-6 < causes["adam_epsilon"]["value"]
    assert causes["adam_epsilon_placement"]["explains"] and not causes["adam_epsilon"]["explains"]
    assert "float32_rounding" not in causes  # a cause already accounts for the weights


def test_seed_split_features_matches_freezing_in_place_in_pytorch():
    outcome = run_once(model="densenet121", scenario="head", batch_size=4, image_size=32,
                       recipes=("pytorch:feature_extraction", "pytorch:eval_requires_grad",
                                "keras:feature_extraction", "keras:trainable_false"))
    report = outcome.report
    split, frozen = report.run("pytorch:feature_extraction"), report.run(
        "pytorch:eval_requires_grad")
    assert split.losses == frozen.losses  # same RNG start, same passes, same numbers
    for run in report.runs:
        assert run.modes.bn_batch_stats == 0 and not run.state.bn_stats_changed
        assert run.state.trainable_params == 1024 * 64 + 64 + 64 + 1


def test_unknown_preset_is_one_line():
    result = subprocess.run([sys.executable, "scripts/compare.py", "--preset", "nope"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1


# ----- the ResNet50 single-image report (seed 3), at 64 px --------------------------------


@pytest.fixture(scope="module")
def resnet_single_image():
    settings = dict(_config(build_parser().parse_args(
        ["--preset", "seed-resnet50-single-image", "--image-size", "64"])).__dict__)
    settings["recipes"] += ("pytorch:eval", "keras:inference_everywhere")
    return run_once(**settings)


def test_single_image_preset_is_the_reports_setup():
    config = _config(build_parser().parse_args(["--preset", "seed-resnet50-single-image"]))
    assert (config.model, config.batch_size, config.loss, config.labels, config.validate) == (
        "resnet50", 1, "probabilities", (386,), True)


def test_frozen_keras_resnet50_reports_the_same_loss_in_fit_and_evaluate(resnet_single_image):
    report = resnet_single_image.report
    assert resnet_single_image.batch.y.tolist() == [386]
    assert "clipped" in report.settings["loss"] and report.settings["loss_kind"] == "probabilities"
    keras_run = report.run("keras:trainable_false")
    losses = keras_run.losses
    assert losses.train_step[0] == pytest.approx(losses.inference_before, abs=1e-6)
    assert losses.fit_validation[0] == pytest.approx(losses.inference_after, abs=1e-6)
    assert keras_run.modes.bn_batch_stats == 0 and not keras_run.state.bn_stats_changed
    assert keras_run.state.trainable_params == 0
    # The Keras 2 behaviour of the report is PyTorch's requires_grad=False in train():
    old = report.run("pytorch:requires_grad")
    assert old.modes.bn_batch_stats == old.modes.bn_layers == 53
    assert old.state.bn_stats_changed and not old.state.weights_changed
    assert abs(old.losses.train_step[0] - old.losses.inference_before) > 1e-3
    pairs = {(e.a, e.b): e for e in report.equivalences}
    assert pairs[("keras:trainable_false", "pytorch:eval_requires_grad")].equivalent
    assert all(c.passed for c in report.checks)


def test_inference_everywhere_keeps_batchnorm_on_moving_statistics_inside_fit(
        resnet_single_image):
    report = resnet_single_image.report
    run = report.run("keras:inference_everywhere")
    assert run.modes.bn_batch_stats == 0 and not run.state.bn_stats_changed
    assert run.state.weights_changed and run.state.frozen_params == 0
    assert run.losses.train_step[0] == pytest.approx(run.losses.inference_before, abs=1e-6)
    pairs = {(e.a, e.b): e for e in report.equivalences}
    assert pairs[("keras:inference_everywhere", "pytorch:eval")].equivalent


def test_inference_everywhere_is_not_in_the_default_matrix():
    from comparator.config.recipes import select

    assert "keras:inference_everywhere" not in [r.id for r in select([], ["keras"])]
    assert [r.id for r in select(["keras:inference_everywhere"], ["keras"])] == [
        "keras:inference_everywhere"]
