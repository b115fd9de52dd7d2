import numpy as np
import pytest

from comparator.errors import UsageError
from comparator.zoo import get_spec
from comparator.zoo.portmaps import from_keras_layout, port_plan, to_keras_layout


def test_densenet_modules_map_to_keras_layers_by_block_and_layer_number():
    arrays = {
        "features.conv0.weight": np.zeros((64, 3, 7, 7)),
        "features.denseblock3.denselayer12.conv2.weight": np.zeros((32, 128, 3, 3)),
        "features.transition2.norm.weight": np.zeros(4), "features.transition2.norm.bias":
            np.zeros(4), "features.transition2.norm.running_mean": np.zeros(4),
        "features.transition2.norm.running_var": np.ones(4),
        "classifier.weight": np.zeros((1000, 1024)), "classifier.bias": np.zeros(1000),
    }
    plan = {p.module: p for p in port_plan(get_spec("densenet121").layer_names, arrays)}
    assert plan["features.conv0"].keras_layer == "conv1_conv"
    assert plan["features.denseblock3.denselayer12.conv2"].keras_layer == "conv4_block12_2_conv"
    assert plan["features.transition2.norm"].keras_layer == "pool3_bn"
    assert plan["features.transition2.norm"].kind == "bn"
    # Keras orders BatchNorm weights gamma, beta, moving mean, moving variance.
    assert plan["features.transition2.norm"].canonical_names == (
        "features.transition2.norm.weight", "features.transition2.norm.bias",
        "features.transition2.norm.running_mean", "features.transition2.norm.running_var")
    assert plan["classifier"].keras_layer == "predictions"
    assert plan["classifier"].kind == "dense"


def test_unknown_module_is_refused_with_its_name():
    with pytest.raises(UsageError, match="features.mystery"):
        port_plan(get_spec("densenet121").layer_names,
                  {"features.mystery.weight": np.zeros((2, 2, 1, 1))})


@pytest.mark.parametrize("kind,shape", [("conv", (5, 3, 7, 2)), ("dense", (10, 4))])
def test_layouts_round_trip_bit_for_bit(kind, shape):
    array = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    there = to_keras_layout(kind, "m.weight", array)
    assert there.shape == ((7, 2, 3, 5) if kind == "conv" else (4, 10))
    assert np.array_equal(from_keras_layout(kind, "m.weight", there), array)


@pytest.mark.parametrize("fixture", ["tiny_classify", "tiny_head", "densenet_classify",
                                     "densenet_head"])
def test_ported_models_compute_the_same_function(fixture, request):
    report = request.getfixturevalue(fixture).report
    (check,) = [c for c in report.checks if c.name.startswith("port:")]
    assert check.passed and check.value <= 1e-4
    # The inference loss each framework reports through its own API agrees too.
    before = {r.framework: r.losses.inference_before for r in report.runs}
    assert before["pytorch"] == pytest.approx(before["keras"], abs=1e-4)


def test_weights_carry_a_provenance_hash(densenet_classify):
    settings = densenet_classify.report.settings
    assert settings["weights"] == "random-calibrated"
    assert len(settings["weights_sha256"]) == 64


def test_same_seed_gives_the_same_weights_and_another_seed_does_not(tiny_classify):
    from tests.conftest import run_once

    again = run_once(model="tiny_cnn", batch_size=4, image_size=16, recipes=("pytorch:eval",))
    other = run_once(model="tiny_cnn", batch_size=4, image_size=16, seed=1,
                     recipes=("pytorch:eval",))
    sha = tiny_classify.report.settings["weights_sha256"]
    assert again.report.settings["weights_sha256"] == sha
    assert other.report.settings["weights_sha256"] != sha
