"""Paired layers that run in another order in the port: PyTorch normalises before the next
Linear, the Keras port after it (as a pre-norm block ported as post-norm does). The
validator named the next layer with "what reaches it differs: Keras has no operation since
the previous matched layers" (or, for attention, "cause unknown"); now it names the layers
that run on the other side of it, read off PyTorch's traced running order and Keras's
graph."""

import keras
import numpy as np
import torch
from torch import nn

import comparator

X = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)


class NormFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        return self.fc2(self.norm(self.fc1(x)))


def keras_norm(after_fc2: bool, epsilon=1e-5):
    layers = keras.layers
    inputs = keras.Input((6,))
    x = layers.Dense(8, name="fc1")(inputs)
    norm = layers.LayerNormalization(epsilon=epsilon, name="norm")
    x = norm(layers.Dense(8, name="fc2")(x)) if after_fc2 else layers.Dense(8, name="fc2")(norm(x))
    return keras.Model(inputs, x)


def validated(keras_model):
    torch.manual_seed(0)
    return comparator.validate_port(NormFirst(), keras_model, X, port="pytorch-to-keras",
                                    gradients=False, train_step=False)


def test_a_layer_moved_past_the_next_is_named_with_both_orders():
    finding = validated(keras_norm(after_fc2=True)).first_divergence
    assert (finding.torch_module, finding.causes[0].code) == ("fc2", "layer_order")
    assert finding.causes[0].text == (
        "the layers run in another order: PyTorch runs norm (LayerNorm) before fc2, Keras "
        "runs its pair norm (LayerNormalization) after fc2")


def test_ports_in_order_get_no_order_cause():
    assert validated(keras_norm(after_fc2=False)).passed
    slipped = validated(keras_norm(after_fc2=False, epsilon=1e-3))
    assert not any(c.code == "layer_order" for p in slipped.passes for layer in p.layers
                   for c in layer.causes)
