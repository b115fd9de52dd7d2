"""An activation a Keras layer applies inside itself (Dense(activation=...)) where PyTorch
runs a module or a call after its Linear: it counts as the Keras operation after the layer,
so a setting that differs is named as for a separate Activation layer (activation_setting),
and one the validator cannot read (a lambda) is said to be so, not that Keras has no
operation there (adapters/port_validation/fused_activations.py)."""

import functools
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

QUICK = dict(modes=("inference",), gradients=False, train_step=False)


@pytest.fixture(scope="module")
def fw():
    import torch
    from torch import nn

    import adapters.port_validation.validator as layerwise
    from adapters.keras.backend import keras

    return torch, nn, keras, layerwise


def _torch_mlp(fw, activation):
    torch, nn, _, _ = fw

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(6, 16), activation, nn.Linear(16, 4)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    torch.manual_seed(0)
    return Mlp()


def _keras_mlp(fw, activation):
    keras = fw[2]
    x = keras.Input((6,))
    h = keras.layers.Dense(16, activation=activation, name="fc1")(x)
    return keras.Model(x, keras.layers.Dense(4, name="fc2")(h))


def _first(fw, torch_activation, keras_activation):
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32) * 3
    return fw[3].validate_port(_torch_mlp(fw, torch_activation), _keras_mlp(fw, keras_activation),
                               x, port="pytorch-to-keras", **QUICK).first_divergence


def test_keras_gelu_defaults_measured(fw):
    # keras.ops.gelu is the tanh form by default, keras.activations.gelu ("gelu") exact.
    import inspect

    keras = fw[2]
    assert inspect.signature(keras.ops.gelu).parameters["approximate"].default is True
    assert inspect.signature(keras.activations.gelu).parameters["approximate"].default is False
    assert keras.activations.get("gelu") is keras.activations.gelu


@pytest.mark.parametrize("torch_approximate, keras_activation", [
    ("none", "gelu"), ("none", "activations.gelu"), ("tanh", "ops.gelu")])
def test_a_faithful_fused_gelu_agrees(fw, torch_approximate, keras_activation):
    _, nn, keras, _ = fw
    activation = {"gelu": "gelu", "activations.gelu": keras.activations.gelu,
                  "ops.gelu": keras.ops.gelu}[keras_activation]
    assert _first(fw, nn.GELU(torch_approximate), activation) is None


def test_fused_ops_gelu_against_exact_gelu_is_named(fw):
    _, nn, keras, _ = fw
    found = _first(fw, nn.GELU(), keras.ops.gelu)
    assert (found.torch_module, found.keras_layer) == ("fc2", "fc2")
    assert [c.code for c in found.causes] == ["activation_setting"]
    text, detail = found.causes[0].text, found.causes[0].detail
    assert "PyTorch act (GELU) approximate='none' (PyTorch's default)" in text
    assert ("Keras fc1's activation (Dense(activation=keras.ops.gelu)) approximate=True "
            "(Keras's default)") in text
    assert "given approximate='tanh' it gives Keras's (max abs 0)" in text
    assert "give Keras's fc1's activation approximate=False" in detail


def test_fused_partial_and_leaky_relu_settings_are_named(fw):
    _, nn, keras, _ = fw
    found = _first(fw, nn.GELU(), functools.partial(keras.activations.gelu, approximate=True))
    assert [c.code for c in found.causes] == ["activation_setting"]
    assert ("Dense(activation=functools.partial(keras.activations.gelu, ...))) "
            "approximate=True;") in found.causes[0].text
    found = _first(fw, nn.LeakyReLU(), keras.activations.leaky_relu)
    assert [c.code for c in found.causes] == ["activation_setting"]
    assert ("Keras fc1's activation (Dense(activation=keras.activations.leaky_relu)) "
            "negative_slope=0.2 (Keras's default)") in found.causes[0].text


def test_a_fused_lambda_is_named_as_a_function_of_your_own_and_measured(fw):
    """Its setting cannot be read; what it computes is measured against PyTorch's GELU
    (between_operations.py; before, the cause was between_layers)."""
    _, nn, keras, _ = fw
    found = _first(fw, nn.GELU(), lambda t: keras.activations.gelu(t, approximate=True))
    assert [c.code for c in found.causes] == ["activation_function"]
    text = found.causes[0].text
    assert ("Keras fc1's activation (Dense(activation=<lambda>)) computes <lambda>, a "
            "function of your own") in text
    assert "PyTorch's GELU gives PyTorch's value there (max abs 0)" in text
    assert "Keras has no operation" not in text


def test_a_fused_activation_of_another_family_is_named_with_both_functions(fw):
    _, nn, _, _ = fw
    found = _first(fw, nn.ELU(), "relu")
    assert [c.code for c in found.causes] == ["activation_function"]
    assert ("PyTorch act (ELU) computes elu, Keras fc1's activation (Dense(activation="
            "keras.activations.relu)) computes relu") in found.causes[0].text
    assert "use keras.activations.elu" in found.causes[0].detail


def _encoder(fw):
    """nn.TransformerEncoderLayer(activation='gelu'): its forward() calls F.gelu between
    linear1 and linear2."""
    torch, nn, _, _ = fw

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                                    activation="gelu", batch_first=True)

        def forward(self, x):
            return self.block(x)

    torch.manual_seed(0)
    return Block()


def _keras_encoder(fw, activation):
    keras = fw[2]
    layers = keras.layers
    x = keras.Input((4, 8))
    h = layers.LayerNormalization(epsilon=1e-5, name="norm1")(
        layers.Add()([x, layers.MultiHeadAttention(2, 4, name="attn")(x, x)]))
    f = layers.Dense(16, activation=activation, name="linear1")(h)
    out = layers.LayerNormalization(epsilon=1e-5, name="norm2")(
        layers.Add()([h, layers.Dense(8, name="linear2")(f)]))
    return keras.Model(x, out)


def test_encoder_feed_forward_gelu_fused_into_dense(fw):
    _, _, keras, layerwise = fw
    x = np.random.default_rng(1).normal(size=(2, 4, 8)).astype(np.float32) * 2
    result = layerwise.validate_port(_encoder(fw), _keras_encoder(fw, "gelu"), x,
                                     port="pytorch-to-keras", **QUICK)
    assert result.first_divergence is None
    found = layerwise.validate_port(_encoder(fw), _keras_encoder(fw, keras.ops.gelu), x,
                                    port="pytorch-to-keras", **QUICK).first_divergence
    assert (found.torch_module, found.keras_layer) == ("block.linear2", "linear2")
    assert [c.code for c in found.causes] == ["activation_setting"]
    assert ("PyTorch torch.nn.functional.gelu(..., approximate='none') in block.forward(), "
            "call 1") in found.causes[0].text
    assert "Keras linear1's activation (Dense(activation=keras.ops.gelu))" in found.causes[0].text


def _positional_pair(fw):
    """Token and learned positional embeddings, then a Linear; the Keras port holds its
    positional Embedding inside a layer of its own whose call() runs it on keras.ops.arange
    (tests the refusal: the traced graph has no node for that Embedding)."""
    torch, nn, keras, _ = fw

    class Torch(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos, self.fc = nn.Embedding(10, 8), nn.Embedding(4, 8), nn.Linear(8, 3)

        def forward(self, ids):
            return self.fc(self.tok(ids) + self.pos(torch.arange(ids.shape[1])))

    class PositionEmbedding(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.emb = keras.layers.Embedding(4, 8, name="pos_emb")

        def build(self, input_shape):
            self.emb.build((4,))

        def call(self, x):
            return x + self.emb(keras.ops.arange(keras.ops.shape(x)[1]))

    ids = keras.Input((4,), dtype="int32")
    x = PositionEmbedding(name="pos")(keras.layers.Embedding(10, 8, name="tok")(ids))
    torch.manual_seed(0)
    return Torch(), keras.Model(ids, keras.layers.Dense(3, name="fc")(x))


def test_a_positional_embedding_inside_a_custom_layer_is_named_in_the_refusal(fw):
    from comparator.errors import UsageError

    torch_model, keras_model = _positional_pair(fw)
    ids = np.random.default_rng(0).integers(0, 10, size=(2, 4)).astype(np.int64)
    with pytest.raises(UsageError) as refused:
        fw[3].validate_port(torch_model, keras_model, ids, port="pytorch-to-keras", **QUICK)
    text = str(refused.value)
    assert "no Keras layer fits PyTorch pos (Embedding, weights [(4, 8)])" in text
    assert ("Keras layer pos (PositionEmbedding) holds pos_emb (Embedding, weights [(4, 8)]), "
            "which is no node of the graph its call() traces") in text
    assert "so the validator cannot pair it" in text
