"""Framework versions side by side, on the tiny CNN: Keras 3.15 (the environment's),
keras-nightly (an overlay) and Keras 2 (tf_keras).

The overlays are built by `make test` (adapters.keras.overlays); these tests never
download: XFRAME_OVERLAYS_OFFLINE=1, and a missing overlay or tf_keras skips the test
with the reason.
"""

import importlib.util

import pytest

from adapters.keras.overlays import OFFLINE_VARIABLE, cached_versions, ensure
from adapters.keras.overlays import OverlayUnavailable
from comparator.config.flavours import parse
from comparator.errors import UsageError
from comparator.config.frameworks import canonical, resolve_frameworks
from comparator.config.recipes import select
from comparator.config import CompareConfig
from comparator.pipeline import compare

TINY = dict(model="tiny_cnn", batch_size=4, image_size=16)
RECIPES = ("pytorch:eval", "keras:training_false", "keras-torch@nightly:training_false",
           "tf-keras:training_false", "tf-keras:v1_frozen", "tf-keras:set_learning_phase",
           "keras-torch@3.99.0:training_false")


def test_versioned_names_parse_and_carry_the_version_into_run_ids():
    assert canonical("keras@3.6.0") == "keras-torch@3.6.0"
    assert canonical("keras-torch") == "keras"
    flavour = parse("keras-jax@nightly")
    assert (flavour.backend, flavour.package, flavour.version) == ("jax", "keras-nightly",
                                                                   "nightly")
    frameworks = resolve_frameworks(["pytorch", "keras-torch@3.6.0", "tf-keras"])
    ids = [r.id for r in select([], list(frameworks))]
    assert "keras-torch@3.6.0:training_false" in ids
    assert "tf-keras:v1_frozen" in ids and "keras-torch@3.6.0:v1_frozen" not in ids


@pytest.mark.parametrize("name", ["keras-torch@latest", "keras-jax@2.15.0", "tf-keras@2.21.0",
                                  "keras-cntk@3.6.0"])
def test_a_version_that_cannot_be_one_is_refused_in_words(name):
    with pytest.raises(UsageError):
        resolve_frameworks(["pytorch", name])


def test_an_overlay_missing_offline_is_skipped_with_the_command_that_builds_it(tmp_path):
    with pytest.raises(OverlayUnavailable) as caught:
        ensure(parse("keras-torch@3.6.0"), str(tmp_path), offline=True)
    assert caught.value.status == "skipped"
    assert caught.value.reason.endswith(
        "build it with: python -m adapters.keras.overlays keras-torch@3.6.0")
    with pytest.raises(OverlayUnavailable, match="no keras-nightly overlay is built"):
        ensure(parse("keras-jax@nightly"), str(tmp_path), offline=True)


@pytest.fixture(scope="module")
def versions_side_by_side():
    if not cached_versions("keras-nightly"):
        pytest.skip("no keras-nightly overlay is built here; build it with: "
                    "python -m adapters.keras.overlays keras-torch@nightly (make test does)")
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("tf_keras is not installed: pip install -e '.[tensorflow]'")
    with pytest.MonkeyPatch.context() as patch:  # offline: never download an overlay
        patch.setenv(OFFLINE_VARIABLE, "1")
        frameworks = ("pytorch", "keras", "keras-torch@nightly", "tf-keras",
                      "keras-torch@3.99.0")
        return compare(CompareConfig(**TINY, frameworks=frameworks, recipes=RECIPES)).report


def _bn_in_inference_and_untouched(run):
    return run.modes.bn_batch_stats == 0 and not run.state.bn_stats_changed


def test_keras_3_15_overrides_training_false_inside_fit(versions_side_by_side):
    run = versions_side_by_side.run("keras:training_false")
    assert run.framework_version.startswith("3.15.")
    assert run.modes.bn_batch_stats == run.modes.bn_layers == 3
    assert run.state.bn_stats_changed and run.state.max_bn_stat_delta > 1e-3


@pytest.mark.parametrize("run_id, version", [("keras-torch@nightly:training_false", "3.16.0.dev"),
                                             ("tf-keras:training_false", "2.")])
def test_nightly_and_keras_2_honour_training_false_inside_fit(versions_side_by_side, run_id,
                                                              version):
    run = versions_side_by_side.run(run_id)
    assert run.framework_version.startswith(version)
    assert _bn_in_inference_and_untouched(run)
    assert run.state.weights_changed  # the base's weights still train, as asked
    pytorch_eval = versions_side_by_side.run("pytorch:eval")
    assert run.losses.train_step[0] == pytest.approx(pytorch_eval.losses.train_step[0],
                                                     rel=1e-4)


def test_v1_batch_norm_frozen_uses_batch_statistics_and_keeps_its_moving_ones(
        versions_side_by_side):
    run = versions_side_by_side.run("tf-keras:v1_frozen")
    assert run.modes.bn_batch_stats == run.modes.bn_layers == 3
    assert not run.state.bn_stats_changed and not run.state.weights_changed
    assert abs(run.losses.train_step[0] - run.losses.inference_after) > 1e-3
    assert run.losses.inference_after == pytest.approx(run.losses.inference_before, abs=1e-6)


def test_set_learning_phase_0_no_longer_reaches_fit_in_tf_keras(versions_side_by_side):
    run = versions_side_by_side.run("tf-keras:set_learning_phase")
    assert run.modes.bn_batch_stats == 3 and run.modes.dropout_active == 1
    assert run.state.bn_stats_changed


def test_every_run_records_framework_backend_and_version(versions_side_by_side):
    import torch

    for run in versions_side_by_side.runs:
        assert run.framework_version
    assert versions_side_by_side.run("pytorch:eval").framework_version == torch.__version__
    assert versions_side_by_side.run("tf-keras:v1_frozen").backend == "tensorflow"


def test_a_version_without_an_overlay_is_skipped_with_its_reason(versions_side_by_side):
    record, = [r for r in versions_side_by_side.unavailable_runs
               if r["framework"] == "keras-torch@3.99.0"]
    assert record["status"] == "skipped"
    assert "python -m adapters.keras.overlays keras-torch@3.99.0" in record["reason"]


def test_findings_and_the_side_by_side_table_say_where_training_false_changed(
        versions_side_by_side):
    from comparator.analysis.versions import side_by_side
    from comparator.report.markdown import render_markdown

    finding, = [f for f in versions_side_by_side.findings if f.startswith("`training=False`")]
    assert "overridden in 3.15.1; honoured in 3.16.0.dev" in finding
    assert finding.split("; ")[-1].startswith("honoured in tf_keras 2.")
    headers, rows = side_by_side(versions_side_by_side.runs)
    assert headers[1:] == ["keras 3.15.1", f"keras-torch@nightly "
                           f"{versions_side_by_side.run('keras-torch@nightly:training_false').framework_version}",
                           "tf-keras " + versions_side_by_side.run("tf-keras:v1_frozen")
                           .framework_version]
    assert rows[0][0] == "training_false" and rows[0][1].endswith("overridden")
    assert "## Versions side by side" in render_markdown(versions_side_by_side)


@pytest.mark.parametrize("name", ["seed-densenet-regression-keras2",
                                  "seed-resnet50-single-image-keras2",
                                  "seed-resnet50-learning-phase-keras2"])
def test_keras2_presets_name_tf_keras_recipes_and_what_they_cannot_reproduce(name):
    from comparator.config.presets import get_preset
    from comparator.config import resolve

    preset = get_preset(name)
    _, config, recipes = resolve(CompareConfig(**preset.settings))
    assert "tf-keras" in config.frameworks
    assert {r.framework for r in recipes} == {"pytorch", "tf-keras"}
    assert "cannot reproduce the report's magnitudes" in preset.question


def test_fit_with_validation_data_still_shows_the_train_steps_batch_statistics():
    """fit(validation_data=...) calls every layer again in inference mode after the step;
    the audit must keep what the train step did."""
    report = compare(CompareConfig(**{**TINY, "batch_size": 1}, frameworks=("pytorch", "keras"),
                                   loss="probabilities", labels=(3,), validate=True,
                                   recipes=("keras:train",))).report
    run = report.run("keras:train")
    assert run.modes.bn_batch_stats == 3 and run.modes.dropout_active == 1
    assert run.losses.fit_validation[-1] == pytest.approx(run.losses.inference_after, abs=1e-5)


def test_the_cache_dir_flag_is_where_overlays_are_looked_for(tmp_path, capsys, monkeypatch):
    from comparator.cli.compare import main

    monkeypatch.setenv(OFFLINE_VARIABLE, "1")
    # compare.py sets it from --cache-dir; monkeypatch puts the test process's value back.
    monkeypatch.setenv("XFRAME_CACHE_DIR", str(tmp_path / "not-this-one"))
    out = tmp_path / "r.json"
    code = main(["tiny_cnn", "--image-size", "16", "--batch-size", "2", "--no-onnx",
                 "--frameworks", "pytorch,keras-torch@3.6.0", "--cache-dir", str(tmp_path),
                 "--recipes", "pytorch:eval,keras-torch@3.6.0:train", "--json", str(out),
                 "--quiet"])
    import json

    record, = json.loads(out.read_text())["unavailable_runs"]
    assert code == 0 and record["status"] == "skipped"
    assert "python -m adapters.keras.overlays keras-torch@3.6.0" in record["reason"]
    assert "keras-torch@3.6.0 runs skipped" in capsys.readouterr().err


def test_keras2_stem_layer_names_meet_the_keras3_port_maps():
    from adapters.keras.keras2 import Keras2Hooks

    assert Keras2Hooks.layer_name("conv1/conv") == "conv1_conv"
    assert Keras2Hooks.layer_name("conv2_block1_0_bn") == "conv2_block1_0_bn"


def _run(framework, version, recipe, bn_batch, moved, backend="torch"):
    from comparator.schema import Losses, Modes, RunResult, State

    return RunResult(id=f"{framework}:{recipe}", framework=framework, recipe=recipe,
                     description="", losses=Losses(1.0, (1.0,), 1.0),
                     state=State(0, 0, True, 0.1, moved, 0.1 if moved else 0.0),
                     modes=Modes(3, bn_batch, 0, 0), seconds=0.0, backend=backend,
                     framework_version=version)


def test_version_findings_order_releases_numerically_and_keep_keras_2_apart():
    from comparator.analysis.versions import version_findings

    runs = [_run("tf-keras", "2.21.0", "training_false", 0, False, "tensorflow"),
            _run("keras-torch@3.10.0", "3.10.0", "training_false", 3, True),
            _run("keras-torch@nightly", "3.16.0.dev2026102704", "training_false", 0, False),
            _run("keras-torch@3.9.2", "3.9.2", "training_false", 3, True),
            _run("keras", "3.15.1", "training_false", 3, True)]
    finding, = version_findings(runs)
    assert finding.startswith("`training=False` inside `fit` (training_false): overridden in "
                              "3.9.2 to 3.15.1; honoured in 3.16.0.dev2026102704; honoured in "
                              "tf_keras 2.21.0")


def test_no_version_finding_when_every_version_behaves_alike():
    from comparator.analysis.versions import version_findings

    assert version_findings([_run("keras", "3.15.1", "trainable_false", 0, False),
                             _run("keras-torch@3.6.0", "3.6.0", "trainable_false", 0,
                                  False)]) == []


def test_each_keras_reads_the_variance_its_batchnorm_keeps(versions_side_by_side):
    """tf_keras's fused BatchNorm kernel keeps the unbiased batch variance, Keras 3's own
    layer the biased one (both measured with momentum 0, 2026-11-29)."""
    conventions = versions_side_by_side.settings["conventions"]
    variances = {framework: {layer["running_variance"] for layer in found["batchnorm"].values()}
                 for framework, found in conventions.items()}
    assert variances == {"pytorch": {"unbiased batch variance"},
                         "keras": {"biased batch variance"},
                         "keras-torch@nightly": {"biased batch variance"},
                         "tf-keras": {"unbiased batch variance (TensorFlow's fused kernel)"}}
