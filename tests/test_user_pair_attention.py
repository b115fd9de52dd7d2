"""A user's attention pair (PyTorch's nn.MultiheadAttention against Keras's
MultiHeadAttention): paired as one layer, its out_proj with it, so that --port-weights ports
it either way and its weights after a step are compared across the frameworks."""

import numpy as np
import pytest

import comparator
from comparator.zoo import attention_layout
from tests import user_layer_models as models

TOKENS = np.random.default_rng(3).standard_normal(
    (4, models.TOKENS, models.TOKENS)).astype(np.float32)
STEP = ("pytorch:train", "keras:train")


@pytest.mark.parametrize("biased", [True, False])
def test_the_layout_round_trips_bit_for_bit(biased):
    rng = np.random.default_rng(0)
    width, heads, head_dim = 8, 2, 4
    arrays = {"in_proj_weight": rng.standard_normal((3 * width, width)).astype(np.float32),
              "out_proj.weight": rng.standard_normal((width, width)).astype(np.float32)}
    if biased:
        arrays["in_proj_bias"] = rng.standard_normal(3 * width).astype(np.float32)
        arrays["out_proj.bias"] = rng.standard_normal(width).astype(np.float32)
    shapes = [(width, heads, head_dim), (heads, head_dim)] * 3 + [(heads, head_dim, width),
                                                                  (width,)]
    current = [np.zeros(s, np.float32) for s in (shapes if biased else shapes[::2])]
    values = attention_layout.to_keras(arrays, current)
    assert [v.shape for v in values] == [c.shape for c in current]
    # the key's kernel, head 1: PyTorch's rows width + head_dim .. width + 2 head_dim
    assert np.array_equal(values[2 if biased else 1][:, 1],
                          arrays["in_proj_weight"][width + head_dim:width + 2 * head_dim].T)
    back = attention_layout.from_keras(values)
    assert back.keys() == arrays.keys()
    assert all(np.array_equal(back[k], arrays[k]) for k in arrays)


@pytest.mark.parametrize("biased", [True, False])
def test_keys_and_values_of_other_widths_round_trip_bit_for_bit(biased):
    """With kdim or vdim, PyTorch holds the three projections apart (q_proj_weight, ...), each
    (E, its input's width), and Keras each kernel as (its input's width, heads, head_dim)."""
    rng = np.random.default_rng(1)
    width, heads, head_dim, kdim, vdim = 8, 2, 4, 6, 4
    arrays = {"q_proj_weight": rng.standard_normal((width, width)).astype(np.float32),
              "k_proj_weight": rng.standard_normal((width, kdim)).astype(np.float32),
              "v_proj_weight": rng.standard_normal((width, vdim)).astype(np.float32),
              "out_proj.weight": rng.standard_normal((width, width)).astype(np.float32)}
    if biased:
        arrays["in_proj_bias"] = rng.standard_normal(3 * width).astype(np.float32)
        arrays["out_proj.bias"] = rng.standard_normal(width).astype(np.float32)
    kernels = [(w, heads, head_dim) for w in (width, kdim, vdim)] + [(heads, head_dim, width)]
    shapes = [s for k, b in zip(kernels, [(heads, head_dim)] * 3 + [(width,)])
              for s in ((k, b) if biased else (k,))]
    values = attention_layout.to_keras(arrays, [np.zeros(s, np.float32) for s in shapes])
    assert [v.shape for v in values] == shapes
    assert np.array_equal(values[2 if biased else 1][:, 1],  # the key's kernel, head 1
                          arrays["k_proj_weight"][head_dim:2 * head_dim].T)
    back = attention_layout.from_keras(values)
    assert back.keys() == arrays.keys()
    assert all(np.array_equal(back[k], arrays[k]) for k in arrays)


@pytest.mark.parametrize("direction", ["pytorch-to-keras", "keras-to-pytorch"])
def test_attention_over_keys_and_values_of_other_widths_ports_either_way(direction):
    """Before, such an attention layer did not pair ("the pairing knows only ..."). Keras's
    graph orders the value's projection before the key's, where PyTorch runs the key's
    first: each PyTorch layer pairs with the first Keras layer left that holds its weights."""
    report = comparator.compare_pair(models.seeded(models.CrossAttentionNet()),
                                     models.keras_cross_attention_twin(), TOKENS, recipes=STEP,
                                     port_weights=direction)
    assert report.settings["pair"]["pairing"] == {"paired_layers": 5}
    assert report.checks[0].passed and report.checks[0].value < 1e-5
    (eq,) = report.equivalences
    assert eq.max_weight_diff is not None and eq.max_weight_diff < 1e-6


def test_a_swapped_projection_of_other_widths_is_named():
    torch_model = models.seeded(models.CrossAttentionNet())
    keras_model = models.keras_cross_attention_twin()
    comparator.port_weights(torch_model, keras_model)
    attention = keras_model.get_layer("attn")
    weights = attention.get_weights()
    weights[0] = weights[0][:, ::-1]  # the query's heads in reverse order
    attention.set_weights(weights)
    report = comparator.compare_pair(torch_model, keras_model, TOKENS, recipes=STEP)
    found = report.settings["pair"]["first_divergence"]
    assert found["causes"] == ["attention_weights"]
    assert "Keras's query kernel is not PyTorch's q_proj_weight, transposed, split into heads" \
        in found["text"]


@pytest.mark.parametrize("direction", ["pytorch-to-keras", "keras-to-pytorch"])
@pytest.mark.parametrize("biased", [True, False])
def test_port_weights_gives_an_attention_pair_the_same_function(direction, biased):
    """Before, the pair did not pair ('PyTorch has 4 modules with weights, Keras 3 layers'),
    so --port-weights refused."""
    report = comparator.compare_pair(
        models.seeded(models.AttentionNet(bias=biased)), models.keras_attention_twin(biased),
        TOKENS, recipes=STEP, port_weights=direction)
    assert report.checks[0].passed and report.checks[0].value < 1e-5
    assert report.settings["pair"]["pairing"] == {"paired_layers": 3}
    (eq,) = report.equivalences
    assert eq.max_weight_diff is not None and eq.max_weight_diff < 1e-6
    assert eq.max_diff < 1e-5


def test_the_tools_port_is_the_hand_written_one():
    """tests/user_layer_models.py ports the layer by hand: the tool writes the same arrays."""
    torch_model = models.seeded(models.AttentionNet())
    ported = models.keras_attention_twin()
    comparator.compare_pair(torch_model, ported, TOKENS, recipes=STEP,
                            port_weights="pytorch-to-keras")
    by_hand = models.keras_attention_net(torch_model)
    for mine, theirs in zip(ported.get_layer("attn").get_weights(),
                            by_hand.get_layer("attn").get_weights()):
        assert np.array_equal(mine, theirs)


def test_an_attention_layer_keras_has_no_counterpart_of_says_why_it_does_not_pair():
    """add_bias_kv appends a learnt key and value that Keras's layer has no weight for."""
    report = comparator.compare_pair(
        models.seeded(models.AttentionNet(add_bias_kv=True)), models.keras_attention_twin(),
        TOKENS, recipes=STEP)
    pairing = report.settings["pair"]["pairing"]
    assert pairing["paired_layers"] == 0
    assert "PyTorch's has add_bias_kv or add_zero_attn: Keras's MultiHeadAttention has no " \
           "such rows to attend to" in pairing["reason"]


def test_an_unpaired_attention_layer_keeps_its_sublayers_weights_apart():
    """Unpaired, Keras's four variables named "kernel" are named by their paths
    (query/kernel, ...): by their names alone they overwrote each other, and loading the
    initial state failed."""
    report = comparator.compare_pair(
        models.seeded(models.AttentionNet(add_bias_kv=True)), models.keras_attention_twin(),
        TOKENS, recipes=STEP)
    assert report.settings["pair"]["pairing"]["paired_layers"] == 0
    assert {run.id for run in report.runs} >= set(STEP)


@pytest.mark.parametrize("slip, code, words", [
    ("key and value swapped", "attention_projection_order",
     "Keras's key kernel holds PyTorch's value projection; in_proj_weight holds the query's, "
     "the key's and the value's, in that order"),
    ("output not transposed", "attention_weights",
     "Keras's output kernel is not PyTorch's out_proj.weight, transposed, split into heads"),
])
def test_an_attention_port_slip_is_named_when_the_port_check_fails(slip, code, words):
    """Before, the failed port check said that the port validator cannot trace the pair."""
    torch_model = models.seeded(models.AttentionNet())
    keras_model = models.keras_attention_net(torch_model)
    weights = keras_model.get_layer("attn").get_weights()
    if slip == "key and value swapped":
        weights[2:4], weights[4:6] = weights[4:6], weights[2:4]
    else:
        heads, head_dim, width = weights[6].shape
        out = torch_model.attn.out_proj.weight.detach().numpy()
        weights[6] = out.reshape(heads, head_dim, width)
    keras_model.get_layer("attn").set_weights(weights)
    report = comparator.compare_pair(torch_model, keras_model, TOKENS, recipes=STEP)
    assert not report.checks[0].passed
    found = report.settings["pair"]["first_divergence"]
    assert found["located"] and found["causes"] == [code] and found["seen_in"] == "weights"
    assert found["torch_module"] == "attn" and words in found["text"]


def test_a_transformer_encoder_block_pairs_layer_by_layer():
    """nn.TransformerEncoderLayer against the same block in Keras layers: attention, two
    LayerNorms and the feed-forward Dense layers pair in running order and port."""
    report = comparator.compare_pair(models.seeded(models.EncoderNet()),
                                     models.keras_encoder_twin(), TOKENS, recipes=STEP,
                                     port_weights="pytorch-to-keras")
    assert report.settings["pair"]["pairing"] == {"paired_layers": 6}
    assert report.checks[0].passed and report.checks[0].value < 1e-5
    assert report.equivalences[0].max_weight_diff < 1e-6
