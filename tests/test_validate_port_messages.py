"""The validator's refusals name what to change: a parameter a model holds outside any layer,
attention heads, a Bidirectional merge mode, token ids outside the vocabulary (compare.py's
too) or given as floats; and the command line, which has no mapping option, does not tell the
user to pass mapping=."""

import os

import numpy as np
import pytest
import torch
from torch import nn

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
from keras import layers  # noqa: E402

from comparator.errors import UsageError  # noqa: E402

VOCAB, L, D = 12, 4, 8
FAST = dict(modes=("inference",), gradients=False, reference64=False, train_step=False)
SPEC = "tests.test_validate_port_messages"


@pytest.fixture(scope="module")
def validator():
    import adapters.port_validation.validator as validator

    return validator


def _ids(low=0, high=VOCAB - 1):
    return np.array([[1, 2, 3, high], [low, 4, 5, 6]], np.int64)


class Positions(nn.Module):
    """Token ids -> Embedding plus a learned positional table held by the model itself."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.tok = nn.Embedding(VOCAB, D)
        self.pos = nn.Parameter(torch.zeros(1, L, D))
        self.fc = nn.Linear(D, 3)

    def forward(self, ids):
        return self.fc((self.tok(ids) + self.pos).mean(1))


class Attention(nn.Module):
    def __init__(self, heads=2):
        super().__init__()
        torch.manual_seed(0)
        self.tok = nn.Embedding(VOCAB, D)
        self.attn = nn.MultiheadAttention(D, heads, batch_first=True)
        self.fc = nn.Linear(D, 3)

    def forward(self, ids):
        x = self.tok(ids)
        return self.fc(self.attn(x, x, x, need_weights=False)[0].mean(1))


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.tok = nn.Embedding(VOCAB, D)
        self.lstm = nn.LSTM(D, 4, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, ids):
        return self.fc(self.lstm(self.tok(ids))[0])


def mlp():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def keras_mlp_too_wide():  # 6 units where PyTorch's hidden layer has 8
    x = keras.Input((4,))
    return keras.Model(x, layers.Dense(3)(layers.Dense(6, activation="relu")(x)))


def _keras_ids(body):
    ids = keras.Input((L,), dtype="int32")
    return keras.Model(ids, body(layers.Embedding(VOCAB, D, name="tok")(ids)))


def keras_attention(heads=2, key_dim=4):
    def body(x):
        x = layers.MultiHeadAttention(heads, key_dim, name="attn")(x, x)
        return layers.Dense(3, name="fc")(layers.GlobalAveragePooling1D()(x))
    return _keras_ids(body)


def keras_tagger(merge_mode):
    return _keras_ids(lambda x: layers.Dense(3, name="fc")(layers.Bidirectional(
        layers.LSTM(4, return_sequences=True), merge_mode=merge_mode, name="lstm")(x)))


class AddPositions(layers.Layer):
    def build(self, input_shape):
        self.pos = self.add_weight(shape=(1, L, D), initializer="zeros", name="pos")

    def call(self, x):
        return x + self.pos


def keras_positions():
    return _keras_ids(lambda x: layers.Dense(3, name="fc")(
        layers.GlobalAveragePooling1D()(AddPositions(name="pos")(x))))


def test_a_parameter_added_to_the_tokens_is_validated_as_a_layer(validator):
    """Was 'cannot port PyTorch modules of these kinds:  (Positions)': no kind, no name;
    then a refusal that named it ("PyTorch Positions holds the parameter pos (1, 4, 8)
    directly, outside any torch.nn layer: ..."). Since 2026-11-30 it pairs with the Keras
    layer that adds its one weight (tests/test_learned_positions.py)."""
    result = validator.validate_port(Positions(), keras_positions(), _ids(),
                                     port="pytorch-to-keras", **FAST)
    assert result.passed, result.render()
    assert any(note.startswith("PyTorch's pos (plus tok's output), held outside any layer and "
                               "added to a value by forward()") for note in result.notes)


class ScaleShift(nn.Module):
    """A layer of the user's own kind: it holds its tensors as a layer does. (One tensor
    that forward() multiplies by, as timm's LayerScale holds, is a kind the validator
    knows since 2026-11-30: tests/test_validate_port_timm.py.)"""

    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(4))
        self.beta = nn.Parameter(torch.zeros(4))

    def forward(self, x):
        return x * self.gamma + self.beta


def keras_dense():
    x = keras.Input((4,))
    return keras.Model(x, layers.Dense(4)(x))


def test_a_layer_of_an_unknown_kind_is_still_named_by_kind(validator):
    """The model itself, a leaf of an unknown kind, was ' (ScaleShift)': no name."""
    with pytest.raises(UsageError, match=r"^cannot port PyTorch modules of these kinds: the "
                                         r"model \(ScaleShift\); the validator knows "):
        validator.validate_port(ScaleShift(), keras_dense(), np.zeros((2, 4), np.float32),
                                **FAST)


def test_other_heads_are_named_with_both_counts(validator):
    """Was '... weights [(8, 8, 8, 2, 4, 1)] ... weights [(8, 8, 8, 4, 2, 1)]: pass
    mapping=...': the settings read as one shape, and no word of heads."""
    with pytest.raises(UsageError) as caught:
        validator.validate_port(Attention(), keras_attention(4, 2), _ids(), **FAST)
    message = str(caught.value)
    assert "(MultiheadAttention, width 8, key and value widths 8 and 8, 2 heads of 4, with " \
           "biases)" in message
    assert "which has num_heads=4 of key_dim=2 where PyTorch's has num_heads=2 of 4" in message
    assert message.endswith("build it as MultiHeadAttention(num_heads=2, key_dim=4)")


def test_a_halving_merge_mode_is_named(validator):
    """Was 'no Keras layer fits PyTorch fc ...: pass mapping=...'."""
    with pytest.raises(UsageError) as caught:
        validator.validate_port(Tagger(), keras_tagger("sum"), _ids(), **FAST)
    message = str(caught.value)
    assert "Keras lstm merges its two directions with merge_mode='sum'" in message
    assert message.endswith("build it with merge_mode='concat'")


def test_the_command_line_does_not_offer_mapping(validator, tmp_path, capsys):
    """validate_port.py has no mapping option; the API does, and keeps offering it."""
    from comparator.cli.validate_port import main

    with pytest.raises(UsageError, match=r"pass mapping=\{torch_name: keras_name\}$"):
        validator.validate_port(mlp(), keras_mlp_too_wide(), np.zeros((2, 4), np.float32),
                                **FAST)
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.zeros((2, 4), np.float32))
    code = main(["--pytorch", f"{SPEC}:mlp", "--keras", f"{SPEC}:keras_mlp_too_wide",
                 "--inputs", str(inputs), "--modes", "inference", "--no-gradients"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "no Keras layer fits PyTorch 0 (Linear, weights [(8, 4), (8,)])" in err[0]
    assert "mapping" not in err[0]
    assert err[0].endswith(": build the Keras layer with PyTorch's weight shapes, the weighted "
                           "layers in the order PyTorch runs them")


@pytest.mark.parametrize("low, high, words", [
    (1, 29, "the token ids run from 1 to 29, and Embedding tok (num_embeddings=12) takes ids "
            "0 to 11"),
    (-2, 6, "the token ids run from -2 to 6, and Embedding tok (num_embeddings=12) takes ids "
            "0 to 11")])
def test_ids_outside_the_vocabulary_are_named(validator, low, high, words):
    """Was 'IndexError: index out of range in self' alone, in both tools."""
    from comparator import compare_pair

    ids = _ids(low, high)
    with pytest.raises(UsageError, match="IndexError") as caught:
        validator.validate_port(Attention(), keras_attention(), ids, **FAST)
    assert str(caught.value).endswith(words)
    with pytest.raises(UsageError, match="IndexError") as caught:
        compare_pair(Attention(), keras_attention(), ids, np.zeros(2, np.int64))
    assert str(caught.value).endswith(words)


def test_float_ids_get_compare_pys_hint(validator):
    with pytest.raises(UsageError) as caught:
        validator.validate_port(Attention(), keras_attention(), _ids().astype(np.float32),
                                **FAST)
    assert str(caught.value).endswith("; an Embedding takes token ids: give them as integers, "
                                      "x of --inputs FILE.npz")
