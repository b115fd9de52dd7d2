"""The port validator on recurrent and attention layers (PyTorch's LSTM, GRU, RNN and
MultiheadAttention against Keras's LSTM, GRU, SimpleRNN, Bidirectional and
MultiHeadAttention): traced layer by layer, ported either way, their gradients compared in
PyTorch's names, and a slip in their port named at the layer it breaks."""

import numpy as np
import pytest
import torch
from torch import nn

import comparator
from adapters.keras.backend import keras
from comparator.errors import UsageError
from tests import user_layer_models as models
from tests.test_user_pair_attention import TOKENS
from tests.test_user_pair_recurrent import TORCH_MODELS, X, _hand_port

layers = keras.layers


class FinalStateNet(nn.Module):
    """A sequence-first (L, N, F), bidirectional one-layer LSTM or GRU whose final states
    (h_n) feed a Linear: what Keras's Bidirectional layer without return_sequences gives."""

    def __init__(self, kind: str = "lstm"):
        super().__init__()
        self.rnn = models.TORCH_RECURRENT[kind](models.CHANNELS, 6, bidirectional=True)
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        _, state = self.rnn(x.transpose(0, 1))
        h_n = state[0] if isinstance(state, tuple) else state
        return self.fc(torch.cat([h_n[0], h_n[1]], dim=-1))


def keras_final_state_twin(kind: str = "lstm"):
    inputs = keras.Input((models.STEPS, models.CHANNELS))
    x = layers.Bidirectional(models.KERAS_RECURRENT[kind](6), name="rnn")(inputs)
    return keras.Model(inputs, layers.Dense(4, name="fc")(x))


def _validated(torch_model, keras_model, x, direction="torch_to_keras"):
    comparator.port_weights(torch_model, keras_model, direction=direction)
    return comparator.validate_port(torch_model, keras_model, x)


def _assert_agrees_everywhere(result, layer_pairs):
    assert result.first_divergence is None
    assert len(result.passes) == 4  # two modes, forward and isolated
    for found in result.passes:
        assert [(c.torch_module, c.keras_layer) for c in found.layers] == layer_pairs
        assert all(not c.diverges and c.metrics is not None for c in found.layers)
    assert result.gradients and all(not g.diverges and g.metrics is not None
                                    for g in result.gradients)


@pytest.mark.parametrize("direction", ["torch_to_keras", "keras_to_torch"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_a_recurrent_pair_is_traced_layer_by_layer(kind, direction):
    """Before, the validator refused every recurrent module ("compare.py pairs an LSTM, ...")."""
    torch_model = models.seeded(TORCH_MODELS[kind]())
    result = _validated(torch_model, models.keras_recurrent_twin(kind), X, direction)
    _assert_agrees_everywhere(result, [(kind, kind), ("fc", "fc")])
    gradients = {g.name: g for g in result.gradients}
    # Keras's one LSTM or RNN bias stands for PyTorch's two, whose gradients are its own.
    assert {f"{kind}.bias_ih_l0", f"{kind}.bias_hh_l0"} <= set(gradients)
    assert gradients[f"{kind}.weight_ih_l0"].shape == tuple(
        getattr(torch_model, kind).weight_ih_l0.shape)
    if direction == "keras_to_torch" and kind != "gru":
        assert not getattr(torch_model, kind).bias_hh_l0.detach().any()


def test_the_recurrent_layers_output_is_the_one_plain_keras_gives():
    """The hand-written GRU port of the tests (tests/user_layer_models.py) agrees at the GRU
    with what PyTorch's module gives, to float32 rounding."""
    torch_model = models.seeded(models.GatedRecurrentNet())
    keras_model = models.keras_gated_recurrent_net(torch_model)
    result = comparator.validate_port(torch_model, keras_model, X, gradients=False)
    assert result.first_divergence is None
    keras_gru = keras.Model(keras_model.inputs, keras_model.get_layer("gru").output)
    torch_gru = torch_model.gru(torch.from_numpy(X))[0][:, -1].detach().numpy()
    plain = np.max(np.abs(keras.ops.convert_to_numpy(keras_gru(X)) - torch_gru))
    (first,) = [c for c in result.passes[0].layers if c.keras_layer == "gru"]
    assert first.metrics.max_abs == pytest.approx(float(plain), abs=1e-9)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_bidirectional_final_state_is_read_from_pytorchs_h_n(kind):
    """Keras's Bidirectional layer without return_sequences gives the forward direction's
    last step and the backward direction's first, which PyTorch's h_n holds (its output at
    the last step holds the backward direction's last step instead)."""
    torch_model = models.seeded(FinalStateNet(kind))
    result = _validated(torch_model, keras_final_state_twin(kind), X)
    _assert_agrees_everywhere(result, [("rnn", "rnn"), ("fc", "fc")])
    assert any(g.name == "rnn.weight_hh_l0_reverse" for g in result.gradients)


@pytest.mark.parametrize("kind, bidirectional", [("lstm", False), ("gru", True), ("rnn", False)])
def test_a_stacked_module_is_traced_layer_by_layer(kind, bidirectional):
    """PyTorch runs a stacked module's layers within one call; the validator runs each as a
    one-layer module of its arrays, named `module[k]`, against Keras's k-th layer. The
    Dropout between the layers is off in training mode, as every Dropout is, and is compared
    with the Dropout layers between Keras's recurrent layers."""
    torch_model = models.seeded(models.DeepRecurrentNet(kind, num_layers=3, dropout=0.5,
                                                        bidirectional=bidirectional))
    keras_model = models.keras_deep_recurrent_twin(kind, num_layers=3,
                                                   bidirectional=bidirectional,
                                                   dropout_between=0.5)
    recurrent = [layer.name for layer in keras_model.layers if layer.weights][:3]
    result = _validated(torch_model, keras_model, X)
    _assert_agrees_everywhere(result, [(f"{kind}[{k}]", recurrent[k]) for k in range(3)]
                              + [("fc", "fc")])
    assert f"{kind}.weight_hh_l2" in {g.name for g in result.gradients}
    assert torch_model.get_submodule(kind).dropout == 0.5
    assert [(d.torch_module, d.keras_rate, d.diverges) for d in result.dropout] == [
        (f"{kind} (between layers {k} and {k + 1})", 0.5, False) for k in range(2)]


def test_dropout_within_keras_recurrent_steps_is_off_in_the_passes_and_named():
    """Keras's LSTM(dropout=..., recurrent_dropout=...) drops within its steps in training,
    which no PyTorch LSTM does. Its masks are off in the passes (before, the training
    passes and every gradient diverged, with no cause), and the rates are named."""
    torch_model = models.seeded(models.RecurrentNet())
    keras_model = models.keras_recurrent_twin("lstm", dropout=0.5, recurrent_dropout=0.3)
    result = _validated(torch_model, keras_model, X)
    assert all(not c.diverges for found in result.passes for c in found.layers)
    assert not any(g.diverges for g in result.gradients)
    assert _first(result) == ("(none)", "lstm", ["dropout"])
    assert "Keras lstm (LSTM, dropout=0.5, recurrent_dropout=0.3) drops within its steps" in \
        result.first_divergence.causes[0].text
    cell = keras_model.get_layer("lstm").cell
    assert (cell.dropout, cell.recurrent_dropout) == (0.5, 0.3)


def test_a_stacked_modules_dropout_without_a_keras_counterpart_is_named():
    torch_model = models.seeded(models.DeepRecurrentNet("gru", num_layers=2, dropout=0.25))
    result = _validated(torch_model, models.keras_deep_recurrent_twin("gru", 2), X)
    assert _first(result) == ("gru (between layers 0 and 1)", "(none)", ["dropout"])


def test_a_slip_in_a_stacked_modules_second_layer_is_named_there():
    torch_model = models.seeded(models.DeepRecurrentNet("gru", num_layers=2))
    keras_model = models.keras_deep_recurrent_twin("gru", num_layers=2)
    comparator.port_weights(torch_model, keras_model)
    second = [layer for layer in keras_model.layers if layer.weights][1]
    kernel, recurrent, bias = second.get_weights()
    second.set_weights([torch_model.gru.weight_ih_l1.detach().numpy().T, recurrent, bias])
    result = comparator.validate_port(torch_model, keras_model, X)
    assert _first(result) == ("gru[1]", second.name, ["recurrent_gate_order"])


@pytest.mark.parametrize("net, twin", [(models.AttentionNet, models.keras_attention_twin),
                                       (models.CrossAttentionNet,
                                        models.keras_cross_attention_twin),
                                       (models.EncoderNet, models.keras_encoder_twin)])
def test_attention_is_traced_with_its_output_projection(net, twin):
    """nn.TransformerEncoderLayer runs one fused operation in eval mode without gradients:
    the validator turns that off so that its attention module runs as a module. Its Dropout
    modules of rate 0 compute nothing, as the Keras block without Dropout layers."""
    torch_model = models.seeded(net())
    result = _validated(torch_model, twin(), TOKENS)
    attention = "block.self_attn" if net is models.EncoderNet else "attn"
    assert attention in [c.torch_module for c in result.passes[0].layers]
    assert result.first_divergence is None and not result.dropout
    names = {g.name for g in result.gradients}
    packed = "k_proj_weight" if net is models.CrossAttentionNet else "in_proj_weight"
    assert {f"{attention}.{packed}", f"{attention}.out_proj.weight"} <= names
    assert all(not g.diverges for g in result.gradients)


def _first(result):
    found = result.first_divergence
    return found.torch_module, found.keras_layer, [c.code for c in found.causes]


@pytest.mark.parametrize("kind, slip, code", [
    ("gru", "gates in PyTorch's order", "recurrent_gate_order"),
    ("lstm", "bias_hh left out", "recurrent_bias_sum"),
    ("rnn", "bias_hh left out", "recurrent_bias_sum"),
])
def test_a_recurrent_port_slip_is_named_at_its_layer(kind, slip, code):
    torch_model = models.seeded(TORCH_MODELS[kind]())
    result = comparator.validate_port(torch_model, _hand_port(kind, torch_model, slip), X)
    assert _first(result) == (kind, kind, [code])
    isolated = next(p for p in result.passes if p.isolated and p.mode == "inference")
    assert [c.diverges for c in isolated.layers] == [True, False]


@pytest.mark.parametrize("setting, code", [
    ({"recurrent_activation": "hard_sigmoid"}, "recurrent_activation"),
    ({"go_backwards": True}, "recurrent_direction"),
])
def test_a_recurrent_setting_that_is_not_pytorchs_is_named(setting, code):
    torch_model = models.seeded(models.RecurrentNet())
    keras_model = models.keras_recurrent_twin("lstm", **setting)
    result = _validated(torch_model, keras_model, X)
    assert _first(result) == ("lstm", "lstm", [code])


def test_swapped_attention_projections_are_named():
    torch_model = models.seeded(models.AttentionNet())
    keras_model = models.keras_attention_net(torch_model)
    weights = keras_model.get_layer("attn").get_weights()
    weights[2:4], weights[4:6] = weights[4:6], weights[2:4]
    keras_model.get_layer("attn").set_weights(weights)
    result = comparator.validate_port(torch_model, keras_model, TOKENS)
    assert _first(result) == ("attn", "attn", ["attention_projection_order"])
    assert "Keras's key kernel holds PyTorch's value projection" in \
        result.first_divergence.causes[0].text


def test_a_last_step_where_pytorch_averages_the_steps_is_named_between_the_layers():
    """Keras's LSTM without return_sequences gives what PyTorch's final state holds, so the
    layers agree; PyTorch's forward then averages every step, which Keras does not. The
    Keras Dense layer, given PyTorch's input, gives PyTorch's output: what reaches it
    differs, with no Keras operation between."""
    torch_model = models.seeded(models.DeepRecurrentNet("lstm", num_layers=1))
    inputs = keras.Input((models.STEPS, models.CHANNELS))
    x = layers.LSTM(5, name="lstm")(inputs)
    keras_model = keras.Model(inputs, layers.Dense(4, name="fc")(x))
    result = _validated(torch_model, keras_model, X)
    assert _first(result) == ("fc", "fc", ["between_layers"])
    assert "Keras has no operation since the previous matched layers" in \
        result.first_divergence.causes[0].text


@pytest.mark.parametrize("torch_model, keras_model, words", [
    (lambda: models.RecurrentNet(proj_size=4), lambda: models.keras_recurrent_twin("lstm"),
     "lstm (LSTM, proj_size=4: Keras's LSTM has no projection)"),
    (models.GatedRecurrentNet, lambda: models.keras_recurrent_twin("gru", reset_after=False),
     "Keras's GRU with reset_after=False applies the reset gate before the recurrent kernel"),
    (lambda: FinalStateNet("gru"), lambda: keras.Model(*_merged_twin(None)),
     "Bidirectional with merge_mode=None"),
])
def test_what_the_validator_cannot_trace_is_refused_with_the_reason(torch_model, keras_model,
                                                                     words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        comparator.validate_port(torch_model(), keras_model(), X)


def _merged_twin(merge_mode):
    inputs = keras.Input((models.STEPS, models.CHANNELS))
    first, second = layers.Bidirectional(layers.GRU(6), merge_mode=merge_mode,
                                         name="rnn")(inputs)
    return inputs, layers.Dense(4, name="fc")(layers.Concatenate()([first, second]))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_stacked_modules_layers_rerun_give_its_own_output(kind):
    """Layer by layer, from a given initial state, the one-layer reruns end where PyTorch's
    stacked module does, final states included."""
    from adapters.port_validation.sequences import output_view, traced_calls

    torch.manual_seed(0)
    module = models.TORCH_RECURRENT[kind](3, 5, num_layers=3, bidirectional=True).eval()
    x = torch.randn(7, 2, 3)  # L, N, F: sequence first
    start = torch.randn(6, 2, 5)
    start = (start, torch.randn(6, 2, 5)) if kind == "lstm" else start
    with torch.no_grad():
        steps, final = module(x, start)
    last = layers.Bidirectional(models.KERAS_RECURRENT[kind](5))  # the last step of each way
    keys = [f"rnn[{k}]" for k in range(3)]
    views = dict.fromkeys(keys, output_view(module, last))
    with torch.no_grad():
        found = traced_calls(module, (x, start), {}, (steps, final), keys, views)
    assert [key for key, _ in found] == keys
    h_n = final[0] if kind == "lstm" else final
    np.testing.assert_allclose(found[-1][1][1], torch.cat([h_n[-2], h_n[-1]], -1).numpy(),
                               rtol=0, atol=1e-6)
    # Each layer's input is the layer before's every step, in the module's layout (L, N, 2H).
    assert found[1][1][0].shape == (7, 2, 10)


def _validate_script(*args):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run([sys.executable, os.path.join(root, "scripts", "validate_port.py"),
                           *args], capture_output=True, text=True, cwd=root, timeout=300)


def test_the_script_ports_the_weights_itself_to_validate_the_architecture():
    """The LSTM twin holds Keras's own random weights: as given it diverges at the LSTM;
    with --port-weights the validator ports PyTorch's first and every layer agrees."""
    pair = ("--pytorch", "tests/user_layer_models.py:RecurrentNet",
            "--keras", "tests/user_layer_models.py:keras_lstm_twin", "--input-shape", "32,3")
    as_given = _validate_script(*pair)
    assert as_given.returncode == 1, as_given.stderr
    assert "first diverging layer: PyTorch lstm <-> Keras lstm" in as_given.stdout
    ported = _validate_script(*pair, "--port-weights", "pytorch-to-keras")
    assert ported.returncode == 0, ported.stderr
    assert "(weights ported pytorch-to-keras by the validator)" in ported.stdout
    assert "every layer agrees" in ported.stdout
    refused = _validate_script("tiny_cnn", "--port-weights", "pytorch-to-keras")
    assert refused.returncode == 2 and "belong to your own pair" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_a_port_by_the_validator_leaves_an_architecture_difference_named():
    """Ported either way, the LayerNorm epsilon Keras's twin left at its default is still
    what differs, and is named."""
    for port in ("pytorch-to-keras", "keras-to-pytorch"):
        result = comparator.validate_port(models.seeded(models.LayerNormMLP()),
                                          models.keras_layer_norm_mlp(epsilon=None),
                                          np.random.default_rng(0).standard_normal(
                                              (4, models.FEATURES)).astype(np.float32),
                                          port=port)
        causes = [c.text for c in result.first_divergence.causes]
        assert any("LayerNorm epsilon: PyTorch 1e-05, Keras 0.001" in c for c in causes), causes
    with pytest.raises(UsageError, match="port must be one of pytorch-to-keras"):
        comparator.validate_port(models.RecurrentNet(), models.keras_lstm_twin(), X,
                                 port="sideways")


KERAS_CELLS = {"lstm": layers.LSTMCell, "gru": layers.GRUCell, "rnn": layers.SimpleRNNCell}


def keras_cell_twin(kind: str, **cell_options):
    """The one-layer recurrent twin written as Keras's generic RNN layer given a cell."""
    inputs = keras.Input((models.STEPS, models.CHANNELS))
    x = layers.RNN(KERAS_CELLS[kind](10, **cell_options), name=kind)(inputs)
    return keras.Model(inputs, layers.Dense(4, name="fc")(x))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_an_rnn_layer_given_a_cell_pairs_as_the_cells_layer(kind):
    """keras.layers.RNN(LSTMCell(...)) holds the LSTM's weights in the LSTM's layout. Before,
    neither the validator nor compare.py's pairing knew it ("the validator knows ...")."""
    torch_model = models.seeded(TORCH_MODELS[kind]())
    _assert_agrees_everywhere(_validated(torch_model, keras_cell_twin(kind), X),
                              [(kind, kind), ("fc", "fc")])
    report = comparator.compare_pair(torch_model, keras_cell_twin(kind), X,
                                     recipes=("pytorch:train", "keras:train"),
                                     port_weights="pytorch-to-keras")
    assert report.checks[0].passed and report.settings["pair"]["pairing"]["paired_layers"] == 2


def test_a_cells_setting_that_is_not_pytorchs_is_named():
    torch_model = models.seeded(models.RecurrentNet())
    result = _validated(torch_model, keras_cell_twin("lstm", recurrent_activation="hard_sigmoid"),
                        X)
    assert _first(result) == ("lstm", "lstm", ["recurrent_activation"])
    with pytest.raises(UsageError, match="reset_after=False"):
        comparator.validate_port(models.GatedRecurrentNet(),
                                 keras_cell_twin("gru", reset_after=False), X)


def test_attention_without_biases_is_traced():
    torch_model = models.seeded(models.AttentionNet(bias=False))
    result = _validated(torch_model, models.keras_attention_twin(use_bias=False), TOKENS)
    _assert_agrees_everywhere(result, [("attn", "attn"), ("norm", "norm"), ("fc", "fc")])
    assert not any(g.name.startswith("attn.in_proj_bias") for g in result.gradients)


class StartedNet(nn.Module):
    """An LSTM without biases, given a zero initial state that forward() makes as float32,
    whose final state feeds a Linear."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(models.CHANNELS, 10, batch_first=True, bias=False)
        self.fc = nn.Linear(10, 4)

    def forward(self, x):
        start = torch.zeros(1, x.shape[0], 10)
        return self.fc(self.lstm(x, (start, start))[1][0][-1])


def test_a_model_that_cannot_run_in_float64_is_validated_without_the_reference():
    """Before, the float64 copy's failure ended the validation ("the PyTorch model failed on
    input ...: expected m1 and m2 to have the same dtype"). Keras's LSTM here returns its
    states too (return_state=True): its output is compared."""
    inputs = keras.Input((models.STEPS, models.CHANNELS))
    output, *_ = layers.LSTM(10, use_bias=False, return_state=True, name="lstm")(inputs)
    keras_model = keras.Model(inputs, layers.Dense(4, name="fc")(output))
    result = _validated(models.seeded(StartedNet()), keras_model, X)
    assert result.passed and not result.float64_reference
    assert result.notes[0].startswith("no float64 rounding reference: PyTorch's float64 copy "
                                      "of the model failed (RuntimeError")
