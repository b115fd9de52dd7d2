"""The freezing comparison on a pair the tests define (not in the zoo): a residual CNN with
BatchNorm and Dropout in PyTorch and its Keras port, with a planted momentum mistake."""

import numpy as np
import pytest

import comparator
from comparator.errors import UsageError
from tests import user_pair_models as pair

X = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)


def keras_with_momentum(momentum: float):
    model = pair.keras_residual_net(momentum=momentum)
    model.set_weights(pair.ported_keras_net().get_weights())
    return model


@pytest.fixture(scope="module")
def faithful():
    return comparator.compare_pair(pair.seeded_torch_net(), pair.ported_keras_net(), X)


@pytest.fixture(scope="module")
def momentum_mistake():
    return comparator.compare_pair(pair.seeded_torch_net(), keras_with_momentum(0.99), X,
                                   recipes=("pytorch:train", "keras:train"))


def equivalence(report, a, b):
    (found,) = [e for e in report.equivalences if (e.a, e.b) == (a, b)]
    return found


def test_the_users_weights_are_tested_as_given(faithful):
    assert faithful.model == "ResidualNet (PyTorch) vs residual_net (Keras)"
    port = faithful.checks[0]
    assert port.name == "port:keras_vs_pytorch_eval_logits" and port.value < 1e-6
    assert faithful.settings["pair"]["weights"] == "as given (not ported)"
    assert faithful.settings["pair"]["pairing"] == {"paired_layers": 7}
    assert faithful.settings["labels"] == "predicted"
    assert faithful.settings["labels_source"] == "predicted: the PyTorch model's own predictions"
    assert len(faithful.runs) == 8  # feature extraction needs a zoo head: not listed
    assert faithful.to_dict()["schema"] == "xframe-compare/report/1"


def test_conventions_are_read_from_the_layers(faithful):
    conventions = faithful.settings["conventions"]
    assert conventions["keras"]["batchnorm"]["features.1"] == {
        "momentum": 0.1, "keras_momentum": 0.9, "epsilon": 1e-5,
        "running_variance": "biased batch variance"}
    assert conventions["pytorch"]["batchnorm"]["bn2"]["momentum"] == 0.1
    assert conventions["pytorch"]["dropout"] == {"dropout": 0.25}
    assert conventions["keras"]["dropout"] == {"dropout": 0.25}


def test_dropout_pairs_are_judged_on_dropout_free_passes(faithful):
    same_function = equivalence(faithful, "keras:train", "pytorch:train")
    assert "judged on the Dropout-free passes" in same_function.judged_on
    # Only the variance convention is left, and it is explained as such.
    assert same_function.differences == (
        f"BatchNorm running statistics after the step differ by up to "
        f"{same_function.max_bn_stat_diff:.3g}",)
    assert [c["cause"] for c in same_function.causes] == ["bn_variance_bias"]
    for eq in faithful.equivalences:  # never "differ" on nothing
        assert eq.equivalent or eq.differences
        assert not any("(differ by 0)" in d for d in eq.differences)


def test_momentum_mistake_is_explained_with_the_layers_own_values(momentum_mistake):
    eq = equivalence(momentum_mistake, "keras:train", "pytorch:train")
    causes = {c["cause"]: c for c in eq.causes}
    momentum = causes["bn_momentum_convention"]
    assert momentum["momenta"]["bn1"] == {"keras": 0.99, "keras_as_pytorch": pytest.approx(0.01),
                                          "pytorch": 0.1}
    assert "Keras 0.01 (its momentum=0.99), PyTorch 0.1 on all 3 BatchNorm layers" in \
        momentum["text"]
    assert momentum["value"] < 1e-5 < momentum["before"]
    assert causes["bn_variance_bias"]["fraction_larger"] == 1.0


def test_over_several_steps_the_momentum_rerun_is_the_pass_compared():
    """With Dropout active the running statistics compared are those of the Dropout-free
    forward pass. The rerun took every step instead, steered by PyTorch's own masks: on
    examples/own_pair.py's model (Adam, 4 steps) it left the means 0.01 apart and the report
    said they 'agree to 0.01'."""
    report = comparator.compare_pair(pair.seeded_torch_net(), keras_with_momentum(0.99), X,
                                     recipes=("pytorch:train", "keras:train"), steps=3,
                                     optimizer="adam")
    eq = equivalence(report, "keras:train", "pytorch:train")
    assert "judged on the Dropout-free passes" in eq.judged_on
    momentum = {c["cause"]: c for c in eq.causes}["bn_momentum_convention"]
    assert momentum["explains"] and momentum["value"] < 1e-5 < momentum["before"]


def test_dropout_off_and_freeze_run_the_rest_of_the_model():
    report = comparator.compare_pair(
        pair.seeded_torch_net(), pair.ported_keras_net(), X, freeze="features",
        dropout="off", recipes=("pytorch:eval_requires_grad", "keras:trainable_false"))
    for run in report.runs:
        assert run.modes.dropout_active == 0 and run.state.weights_changed
        assert run.state.frozen_params == 6 * 3 * 9 + 2 * 6  # the stem conv and its BN
    eq = equivalence(report, "keras:trainable_false", "pytorch:eval_requires_grad")
    # Without Dropout every loss is compared; the head's BatchNorm layers train, and only
    # the variance each framework keeps tells the two apart.
    assert eq.judged_on == "" and eq.max_diff < 1e-5
    assert [d.split(" differ")[0] for d in eq.differences] == [
        "BatchNorm running statistics after the step"]
    (cause,) = eq.causes
    assert cause["cause"] == "bn_variance_bias" and cause["fraction_larger"] == 1.0
    assert report.settings["pair"]["freeze"] == {"pytorch": "features", "keras": "features"}


def test_a_diverging_run_is_reported_and_the_others_complete():
    report = comparator.compare_pair(pair.seeded_torch_net(), pair.ported_keras_net(), X,
                                     lr=1e38, recipes=("pytorch:train", "keras:trainable_false"))
    (diverged,) = report.unavailable_runs
    assert diverged["id"] == "pytorch:train" and diverged["status"] == "diverged"
    assert diverged["step"] == 1
    assert [r.id for r in report.runs] == ["keras:trainable_false"]
    assert [c.name for c in report.checks if not c.passed] == ["pytorch:train:loss_finite"]


@pytest.mark.parametrize("keras_model, kwargs, message", [
    (lambda: pair.keras_residual_net(name="three"), {"freeze": "backbone"},
     "the PyTorch model has no submodule 'backbone'"),
    (lambda: pair.keras_residual_net(), {"freeze": "features:backbone"},
     "the Keras model has no layer 'backbone'"),
    (lambda: _three_class_keras(), {}, r"the two models' outputs differ in shape: PyTorch "
                                       r"\(4, 4\), Keras \(4, 3\)"),
    (lambda: pair.keras_residual_net(), {"loss": "hinge"}, "unknown loss 'hinge'"),
])
def test_bad_pairs_are_one_clear_line(keras_model, kwargs, message):
    with pytest.raises(UsageError, match=message) as caught:
        comparator.compare_pair(pair.ResidualNet(), keras_model(), X, **kwargs)
    assert "\n" not in str(caught.value)


def _three_class_keras():
    inputs = pair.keras.Input((None, None, 3))
    x = pair.keras.layers.GlobalAveragePooling2D()(inputs)
    return pair.keras.Model(inputs, pair.keras.layers.Dense(3)(x))


def test_an_exported_program_keeps_the_inference_side():
    import torch

    program = torch.export.export(pair.seeded_torch_net().eval(), (torch.from_numpy(X),))
    report = comparator.compare_pair(program, pair.ported_keras_net(), X,
                                     recipes=("pytorch:train", "keras:trainable_false"))
    (skipped,) = report.unavailable_runs
    assert skipped["id"] == "pytorch:train" and skipped["status"] == "not representable"
    assert "training-mode runs cannot be represented" in skipped["reason"]
    assert [r.id for r in report.runs] == ["keras:trainable_false"]
    assert report.checks[0].passed and report.checks[0].value < 1e-6


def _batchnorm_pair(torch_bn, **keras_bn):
    import keras
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch_model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), torch_bn, nn.ReLU(),
                                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    keras_model = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, padding="same"),
        keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, **keras_bn),
        keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    return torch_model, keras_model


def _batch_statistics_seen(report) -> dict:
    return {f"{run.framework}:{run.recipe}": run.modes.bn_batch_stats for run in report.runs}


def test_a_batchnorm_without_weight_and_bias_is_observed_in_both_frameworks():
    """Was: AttributeError "'NoneType' object has no attribute 'detach'" from the PyTorch
    BatchNorm hook, on BatchNorm2d(affine=False): its weight and bias are None."""
    from torch import nn

    report = comparator.compare_pair(*_batchnorm_pair(nn.BatchNorm2d(4, affine=False),
                                                      center=False, scale=False), X,
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "pytorch:eval", "keras:train",
                                              "keras:trainable_false"))
    assert report.checks[0].passed and report.settings["pair"]["pairing"] == {
        "paired_layers": 3}
    assert _batch_statistics_seen(report) == {"pytorch:train": 1, "pytorch:eval": 0,
                                              "keras:train": 1, "keras:trainable_false": 0}


def test_a_batchnorm_without_running_statistics_uses_the_batch_even_in_eval():
    """torch 2.14.1: BatchNorm2d(track_running_stats=False) normalises with the batch's
    statistics in eval() too (its running_mean is None), and the observation says so."""
    from torch import nn

    report = comparator.compare_pair(*_batchnorm_pair(
        nn.BatchNorm2d(4, track_running_stats=False)), X,
        recipes=("pytorch:train", "pytorch:eval", "keras:train"))
    seen = _batch_statistics_seen(report)
    assert (seen["pytorch:train"], seen["pytorch:eval"]) == (1, 1)


def test_a_keras_regularizer_is_named_with_what_it_adds_to_the_losses():
    """Keras 3.15.1 adds a weight regularizer's penalty to the losses it reports while the
    weight is trainable; PyTorch's loss has no such term. The report says so, with the
    penalty, which is the gap between the two inference losses on the same function."""
    import keras
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch_model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    layers = keras.layers
    keras_model = keras.Sequential([
        keras.Input((8, 8, 3)),
        layers.Conv2D(4, 3, padding="same", activation="relu", name="conv",
                      kernel_regularizer=keras.regularizers.L2(0.1)),
        layers.GlobalAveragePooling2D(), layers.Dense(5)], name="regularized")
    report = comparator.compare_pair(torch_model, keras_model, X,
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    kernel = keras_model.layers[0].kernel.numpy().astype(np.float64)
    penalty = 0.1 * np.sum(kernel ** 2)  # compare_pair leaves the ported weights in place
    (note,) = [n for n in report.settings["notes"] if "regularizers" in n]
    assert note.startswith("the Keras model's regularizers (regularized/conv/kernel) add "
                           f"{penalty:.6g} at the starting weights")
    losses = {run.framework: run.losses.inference_before for run in report.runs}
    assert losses["keras"] - losses["pytorch"] == pytest.approx(penalty, rel=1e-4)


def test_an_in_place_dropout_is_seen_acting():
    """torchvision's MobileNetV3 head holds Dropout(inplace=True). A forward hook sees such a
    module's input already overwritten by its output, and the run listed its Dropout as off
    (drop 0/1), then blamed the losses' gap on Dropout acting in Keras only."""
    torch_net = pair.seeded_torch_net()
    torch_net.dropout.inplace = True
    report = comparator.compare_pair(torch_net, pair.ported_keras_net(), X,
                                     recipes=("pytorch:train", "keras:train"))
    modes = {run.id: run.modes for run in report.runs}
    assert modes["pytorch:train"].dropout_layers == 1
    assert modes["pytorch:train"].dropout_active == 1
    assert "judged on the Dropout-free passes" in \
        equivalence(report, "keras:train", "pytorch:train").judged_on


def _as_given(module):
    return [(name, m.training, len(m._forward_hooks), len(m._forward_pre_hooks))
            for name, m in module.named_modules()]


@pytest.mark.parametrize("labels", [None, [0, 1, 7, 0]], ids=["ran", "bad label"])
def test_the_users_module_is_left_as_it_was(labels):
    """Each call left its observers on the caller's module (8 hooks on this net, piling up
    call after call), and one refused for a bad label left the module in eval()."""
    torch_net = pair.seeded_torch_net().train()
    torch_net.dropout.eval()  # a mode of the caller's own, kept too
    given = _as_given(torch_net)
    try:
        comparator.compare_pair(torch_net, pair.ported_keras_net(), X, labels,
                                recipes=("pytorch:train", "keras:train"))
    except UsageError:
        assert labels is not None
    assert _as_given(torch_net) == given
