"""A user's recurrent pair (LSTM, GRU, Elman RNN against Keras's LSTM, GRU, SimpleRNN):
paired array by array, so that --port-weights ports it either way and the weights after a
step are compared across the frameworks."""

import json
import os

import numpy as np
import pytest
from torch import nn

import comparator
from comparator.zoo import recurrent_layout
from tests import user_layer_models as models
from tests.test_user_pair_layers import SEQUENCES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
X = np.ascontiguousarray(SEQUENCES.transpose(0, 2, 1))  # N, L, F: the same in both
TORCH_MODELS = {"lstm": models.RecurrentNet, "gru": models.GatedRecurrentNet,
                "rnn": models.ElmanNet}
STEP = ("pytorch:train", "keras:train")


def _compare(kind, keras_model=None, torch_model=None, **options):
    torch_model = torch_model or models.seeded(TORCH_MODELS[kind]())
    keras_model = keras_model or models.keras_recurrent_twin(kind)
    return comparator.compare_pair(torch_model, keras_model, X, recipes=STEP, **options)


@pytest.mark.parametrize("kind", recurrent_layout.RECURRENT_KINDS)
def test_the_layouts_round_trip_bit_for_bit(kind):
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    rng = np.random.default_rng(0)
    arrays = {"m.weight_ih_l0": rng.standard_normal((gates * 5, 3)).astype(np.float32),
              "m.weight_hh_l0": rng.standard_normal((gates * 5, 5)).astype(np.float32),
              "m.bias_ih_l0": rng.standard_normal(gates * 5).astype(np.float32),
              "m.bias_hh_l0": rng.standard_normal(gates * 5).astype(np.float32)}
    bias = np.zeros((2, gates * 5), np.float32)
    for name, array in arrays.items():
        keras_value = recurrent_layout.to_keras(kind, name, array, bias)
        if kind == "gru" and ".bias" in name:
            bias = keras_value
        assert np.array_equal(recurrent_layout.from_keras(kind, name, keras_value), array)
    if kind == "gru":  # both biases, a row each; Keras's first gate is PyTorch's second (z)
        assert np.all(bias != 0)
        kernel = recurrent_layout.to_keras(kind, "m.weight_ih_l0", arrays["m.weight_ih_l0"], None)
        assert np.array_equal(kernel[:, :5], arrays["m.weight_ih_l0"][5:10].T)


@pytest.mark.parametrize("direction", ["pytorch-to-keras", "keras-to-pytorch"])
@pytest.mark.parametrize("kind", recurrent_layout.RECURRENT_KINDS)
def test_port_weights_gives_a_recurrent_pair_the_same_function(kind, direction):
    """Before, --port-weights refused: 'the pairing knows only Conv1d, Conv2d, ...'."""
    report = _compare(kind, port_weights=direction)
    assert report.checks[0].passed and report.checks[0].value < 1e-5
    pairing = report.settings["pair"]["pairing"]
    assert pairing["paired_layers"] == 2
    (eq,) = report.equivalences
    # One SGD step of the same function with the same gradients: the kernels agree.
    assert eq.max_weight_diff is not None and eq.max_weight_diff < 1e-6
    if kind == "gru":  # both biases have a Keras counterpart
        assert "not_compared" not in pairing and not eq.causes and eq.max_diff < 1e-6
        return
    assert pairing["not_compared"] == [f"{kind}.bias_ih_l0 and {kind}.bias_hh_l0 (Keras's "
                                       f"{kind} keeps their sum as one bias)"]
    assert any("on every paired array but" in note for note in report.settings["notes"])
    (cause,) = eq.causes
    assert cause["cause"] == "recurrent_bias_pair" and cause["explains"]


def test_the_gru_gates_are_ported_as_the_hand_written_port_orders_them():
    """PyTorch's r, z, n against Keras's z, r, h: the tool's port is the one the tests
    write by hand (tests/user_layer_models.py), bit for bit."""
    torch_model = models.seeded(models.GatedRecurrentNet())
    ported = models.keras_recurrent_twin("gru")
    _compare("gru", ported, torch_model, port_weights="pytorch-to-keras")
    by_hand = models.keras_gated_recurrent_net(torch_model)
    for mine, theirs in zip(ported.get_layer("gru").get_weights(),
                            by_hand.get_layer("gru").get_weights()):
        assert np.array_equal(mine, theirs)


def test_keras_to_pytorch_puts_the_one_bias_into_bias_ih():
    torch_model = models.seeded(models.RecurrentNet())
    keras_model = models.keras_recurrent_twin("lstm")
    bias = keras_model.get_layer("lstm").get_weights()[2]
    _compare("lstm", keras_model, torch_model, port_weights="keras-to-pytorch")
    assert np.array_equal(torch_model.lstm.bias_ih_l0.detach().numpy(), bias)
    assert not torch_model.lstm.bias_hh_l0.detach().numpy().any()


def test_a_users_own_recurrent_port_is_compared_on_its_kernels():
    """The user's LSTM port as given (not ported by the tool) pairs as well."""
    torch_model = models.seeded(models.RecurrentNet())
    report = _compare("lstm", models.keras_recurrent_net(torch_model), torch_model)
    assert report.settings["pair"]["pairing"]["paired_layers"] == 2
    assert report.equivalences[0].max_weight_diff < 1e-6


@pytest.mark.parametrize("torch_model, keras_model, words", [
    (lambda: models.GatedRecurrentNet(), lambda: models.keras_recurrent_twin(
        "gru", reset_after=False), "Keras's GRU with reset_after=False applies the reset "
                                   "gate before the recurrent kernel"),
    (lambda: _projected(), lambda: models.keras_recurrent_twin("lstm"),
     "and PyTorch's has proj_size="),
    (lambda: models.DeepRecurrentNet("lstm", 1, bidirectional=True),
     lambda: models.keras_deep_recurrent_twin("lstm", 1), "hold weights of different shapes"),
    (lambda: models.DeepRecurrentNet("lstm", 2), lambda: models.keras_deep_recurrent_twin(
        "lstm", 1), "PyTorch has 3 modules with weights (a stacked recurrent module's layers "
                    "counted one by one), Keras 2 layers"),
])
def test_recurrent_layers_that_do_not_pair_say_why(torch_model, keras_model, words):
    report = comparator.compare_pair(models.seeded(torch_model()), keras_model(), X,
                                     recipes=STEP)
    pairing = report.settings["pair"]["pairing"]
    assert pairing["paired_layers"] == 0 and words in pairing["reason"]


def _projected():
    model = models.RecurrentNet()
    model.lstm = nn.LSTM(models.CHANNELS, 10, batch_first=True, proj_size=5)
    model.fc = nn.Linear(5, 4)
    return model


@pytest.mark.parametrize("kind, num_layers, bidirectional, direction", [
    ("lstm", 2, False, "pytorch-to-keras"),
    ("lstm", 2, True, "keras-to-pytorch"),
    ("gru", 2, True, "pytorch-to-keras"),
    ("rnn", 1, True, "pytorch-to-keras"),
])
def test_stacked_and_bidirectional_layers_pair_layer_by_layer(kind, num_layers, bidirectional,
                                                              direction):
    """PyTorch's layer k (both directions) pairs with Keras's k-th layer (a Bidirectional
    wrapper); before, such a module did not pair at all."""
    report = comparator.compare_pair(
        models.seeded(models.DeepRecurrentNet(kind, num_layers, bidirectional)),
        models.keras_deep_recurrent_twin(kind, num_layers, bidirectional), X, recipes=STEP,
        port_weights=direction)
    assert report.checks[0].passed and report.checks[0].value < 1e-5
    pairing = report.settings["pair"]["pairing"]
    assert pairing["paired_layers"] == num_layers + 1
    assert report.equivalences[0].max_weight_diff < 1e-6
    if kind != "gru":
        last = f"{kind}.bias_ih_l{num_layers - 1}_reverse" if bidirectional else \
            f"{kind}.bias_ih_l{num_layers - 1}"
        assert len(pairing["not_compared"]) == num_layers and last in pairing["not_compared"][-1]


def test_a_slip_in_the_backward_layer_is_named():
    torch_model = models.seeded(models.DeepRecurrentNet("gru", 1, bidirectional=True))
    keras_model = models.keras_deep_recurrent_twin("gru", 1, bidirectional=True)
    comparator.compare_pair(torch_model, keras_model, X, recipes=(),
                            port_weights="pytorch-to-keras")
    weights = keras_model.get_layer("gru_0").get_weights()
    weights[3] = torch_model.gru.weight_ih_l0_reverse.detach().numpy().T  # PyTorch's order
    keras_model.get_layer("gru_0").set_weights(weights)
    report = comparator.compare_pair(torch_model, keras_model, X, recipes=STEP)
    found = report.settings["pair"]["first_divergence"]
    assert found["causes"] == ["recurrent_gate_order"] and found["keras_layer"] == "gru_0"
    assert "Keras's backward kernel holds the gates in PyTorch's order" in found["text"]


def _hand_port(kind, torch_model, slip):
    """The Keras twin with the PyTorch model's weights, ported with one slip users make."""
    keras_model = models.keras_recurrent_twin(kind)
    arrays = {n: p.detach().numpy() for n, p in getattr(torch_model, kind).named_parameters()}
    kernels = [arrays["weight_ih_l0"].T, arrays["weight_hh_l0"].T]
    if slip == "gates in PyTorch's order":
        bias = np.stack([arrays["bias_ih_l0"], arrays["bias_hh_l0"]])
    else:  # "bias_hh left out"
        bias = arrays["bias_ih_l0"]
    keras_model.get_layer(kind).set_weights(kernels + [bias])
    fc = torch_model.fc
    keras_model.get_layer("fc").set_weights([fc.weight.detach().numpy().T,
                                             fc.bias.detach().numpy()])
    return keras_model


@pytest.mark.parametrize("kind, slip, code, words", [
    ("gru", "gates in PyTorch's order", "recurrent_gate_order",
     "Keras's kernel holds the gates in PyTorch's order (r, z, n); Keras's GRU orders them "
     "z, r, h"),
    ("lstm", "bias_hh left out", "recurrent_bias_sum",
     "Keras's bias is one of PyTorch's two biases, without bias_hh_l0"),
    ("rnn", "bias_hh left out", "recurrent_bias_sum", "so it must hold their sum"),
])
def test_a_recurrent_port_slip_is_named_when_the_port_check_fails(kind, slip, code, words):
    """Before, the failed port check said only that the port validator cannot trace the
    pair (it traces no recurrent layer)."""
    torch_model = models.seeded(TORCH_MODELS[kind]())
    report = _compare(kind, _hand_port(kind, torch_model, slip), torch_model)
    assert not report.checks[0].passed
    found = report.settings["pair"]["first_divergence"]
    assert found["located"] and found["causes"] == [code] and found["seen_in"] == "weights"
    assert (found["torch_module"], found["keras_layer"]) == (kind, kind)
    assert words in found["text"]
    assert any(words in note for note in report.settings["notes"])


def test_a_failed_port_check_without_a_slip_is_located_by_the_port_validator():
    """Every weight is the port, yet the outputs differ: PyTorch's forward averages the
    LSTM's steps where Keras's LSTM gives the last one. Before, the comparison said only that
    the port validator cannot trace the pair."""
    from adapters.keras.backend import keras

    torch_model = models.seeded(models.DeepRecurrentNet("lstm", num_layers=1))
    inputs = keras.Input((models.STEPS, models.CHANNELS))
    last_step = keras.layers.LSTM(5, name="lstm")(inputs)
    keras_model = keras.Model(inputs, keras.layers.Dense(4, name="fc")(last_step))
    report = comparator.compare_pair(torch_model, keras_model, X, recipes=STEP,
                                     port_weights="pytorch-to-keras")
    assert not report.checks[0].passed
    found = report.settings["pair"]["first_divergence"]
    assert found["located"] and found["causes"] == ["between_layers"]
    assert (found["torch_module"], found["keras_layer"]) == ("fc", "fc")
    assert "Keras has no operation since the previous matched layers" in found["text"]


@pytest.mark.parametrize("kind, torch_options, keras_options, words", [
    ("lstm", {}, {"recurrent_activation": "hard_sigmoid"},
     "Keras's recurrent_activation is hard_sigmoid, PyTorch's LSTM uses sigmoid"),
    ("rnn", {"nonlinearity": "relu"}, {},
     "Keras's activation is tanh, PyTorch's RNN uses relu"),
])
def test_a_recurrent_activation_that_is_not_pytorchs_is_named(kind, torch_options,
                                                              keras_options, words):
    """Weights ported right, the function still differs: a Keras LSTM set to hard_sigmoid,
    a PyTorch RNN set to relu."""
    report = comparator.compare_pair(
        models.seeded(models.DeepRecurrentNet(kind, 1, **torch_options)),
        models.keras_deep_recurrent_twin(kind, 1, **keras_options), X, recipes=STEP,
        port_weights="pytorch-to-keras")
    assert not report.checks[0].passed
    found = report.settings["pair"]["first_divergence"]
    assert found["causes"] == ["recurrent_activation"] and found["seen_in"] == "settings"
    assert words in found["text"]


def test_the_documented_lstm_command_runs(tmp_path):
    """docs/own-models.md's command: the LSTM pair ported by the tool, end to end."""
    from tests.test_user_pair_cli import compare

    report_path = tmp_path / "lstm.json"
    result = compare("--pytorch", "tests/user_layer_models.py:RecurrentNet",
                     "--keras", "tests/user_layer_models.py:keras_lstm_twin",
                     "--input-shape", "32,3", "--batch-size", "4",
                     "--port-weights", "pytorch-to-keras", "--no-onnx",
                     "--recipes", "pytorch:train,keras:train", "--json", str(report_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["settings"]["pair"]["pairing"]["not_compared"] == [
        "lstm.bias_ih_l0 and lstm.bias_hh_l0 (Keras's lstm keeps their sum as one bias)"]
    assert report["checks"][0]["passed"]
    (eq,) = report["equivalences"]
    assert eq["max_weight_diff"] < 1e-6 and eq["causes"][0]["cause"] == "recurrent_bias_pair"
    assert "on every paired array but lstm.bias_ih_l0" in " ".join(result.stdout.split())


def test_a_spec_builds_the_same_weights_on_every_run():
    """A class SPEC was built with unseeded initialisers: the same command gave another
    report on every run (inference losses 1.146, 1.137 and 1.079 for the LSTM pair)."""
    specs = (os.path.join(ROOT, "tests", "user_layer_models.py:RecurrentNet"),
             os.path.join(ROOT, "tests", "user_layer_models.py:keras_lstm_twin"))
    losses = []
    for _ in range(2):
        report = comparator.compare_pair(*specs, X, recipes=STEP)
        losses.append([(run.losses.inference_before, run.losses.inference_after)
                       for run in report.runs])
    assert losses[0] == losses[1]


def test_a_keras_layer_run_backwards_is_named():
    torch_model = models.seeded(models.RecurrentNet())
    report = _compare("lstm", models.keras_recurrent_twin("lstm", go_backwards=True),
                      torch_model, port_weights="pytorch-to-keras")
    assert not report.checks[0].passed
    found = report.settings["pair"]["first_divergence"]
    assert found["causes"] == ["recurrent_direction"] and found["seen_in"] == "settings"
    assert "Keras's layer runs the sequence backwards (go_backwards=True)" in found["text"]


def _runs(report):
    return {run.id: run for run in report.runs}


def test_dropout_within_keras_recurrent_steps_is_seen_and_explained():
    """Keras's LSTM(dropout=0.5) drops within its steps in fit's step, which PyTorch's LSTM
    never does. Before, the comparison counted no Dropout layer in Keras, and the step's
    losses (1.0263 against 0.9796) differed with nothing to say why."""
    report = _compare("lstm", models.keras_recurrent_twin("lstm", dropout=0.5),
                      port_weights="pytorch-to-keras")
    runs = _runs(report)
    keras_run, torch_run = runs["keras:train"], runs["pytorch:train"]
    assert (keras_run.modes.dropout_layers, keras_run.modes.dropout_active) == (1, 1)
    assert (torch_run.modes.dropout_layers, torch_run.modes.dropout_active) == (0, 0)
    # Its train-step pass with the steps' Dropout off is PyTorch's train step.
    assert keras_run.losses.train_step_without_dropout == pytest.approx(
        torch_run.losses.train_step[0], abs=1e-6)
    assert abs(keras_run.losses.train_step[0] - torch_run.losses.train_step[0]) > 1e-3
    (eq,) = report.equivalences
    assert any(d.startswith("Dropout layers active in the train step: 1 vs 0")
               for d in eq.differences)
    assert report.settings["conventions"]["keras"]["dropout"] == {"lstm (dropout)": 0.5}


def test_dropout_off_turns_the_recurrent_steps_dropout_off():
    report = _compare("lstm", models.keras_recurrent_twin("lstm", dropout=0.5,
                                                          recurrent_dropout=0.25),
                      port_weights="pytorch-to-keras", dropout="off")
    runs = _runs(report)
    assert runs["keras:train"].modes.dropout_active == 0
    assert runs["keras:train"].losses.train_step[0] == pytest.approx(
        runs["pytorch:train"].losses.train_step[0], abs=1e-6)


def test_dropout_between_a_stacked_modules_layers_pairs_with_keras_dropout_layers():
    """PyTorch's GRU(num_layers=2, dropout=0.25) drops between its layers, as the Keras
    twin's Dropout(0.25) does: before, PyTorch's was not seen and its step differed."""
    report = comparator.compare_pair(
        models.seeded(models.DeepRecurrentNet("gru", num_layers=2, dropout=0.25)),
        models.keras_deep_recurrent_twin("gru", 2, dropout_between=0.25), X, recipes=STEP,
        port_weights="pytorch-to-keras")
    torch_run = _runs(report)["pytorch:train"]
    assert (torch_run.modes.dropout_layers, torch_run.modes.dropout_active) == (1, 1)
    assert report.settings["conventions"]["pytorch"]["dropout"] == {
        "gru (between layers)": 0.25}
    (eq,) = report.equivalences
    assert eq.equivalent and eq.judged_on.startswith("Dropout was active")
