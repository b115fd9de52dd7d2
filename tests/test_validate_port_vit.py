"""Vision transformers against Keras ports of them: the class token (concatenated before the
tokens) and the learned positions (added to them), both held by the model outside any layer,
pair with Keras layers that do the same with their one weight. Before 2026-11-30 the
validator refused timm's and torchvision's ViTs by name ("holds the parameter cls_token
(1, 1, 16) directly, outside any torch.nn layer, and forward() computes expand with it"),
and compare.py compared them only without --port-weights."""

import numpy as np
import pytest
import torch
from torch import nn

import comparator
from comparator.errors import UsageError
from tests.vit_models import (
    CLASSES,
    SIZE,
    WIDTH,
    keras_timm_deit_distilled,
    keras_timm_vit,
    keras_torchvision_vit,
    timm_deit_distilled,
    timm_vit,
    torchvision_vit,
)

X = np.random.default_rng(0).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)


def _timm():
    pytest.importorskip("timm")


@pytest.mark.parametrize("class_token, registers", [(True, 0), (False, 0), (True, 4)],
                         ids=["class_token", "mean_token", "registers"])
def test_timms_vit_validates_against_its_keras_port(class_token, registers):
    """registers: `torch.cat([cls_token, reg_token, x])` (both expanded) stands as two
    layers, the register tokens first, next to the patches."""
    _timm()
    result = comparator.validate_port(timm_vit(class_token, registers),
                                      keras_timm_vit(class_token, registers=registers), X,
                                      port="pytorch-to-keras")
    assert result.passed, result.render()
    expected = {"pos_embed": "positions"}
    if class_token:
        expected["cls_token"] = "class_token"
    if registers:
        expected["reg_token"] = "registers"
    for found in result.passes:
        assert {c.torch_module: c.keras_layer for c in found.layers
                if c.torch_module in expected} == expected
    assert set(expected) <= {g.name for g in result.gradients}


def test_deits_two_tokens_of_one_shape_pair_in_the_order_they_run():
    """DeiT concatenates its class and distillation tokens, (1, 1, D) each, before the
    patches. Paired by order and shape in the order PyTorch holds them, the class token took
    the Keras layer of the distillation token (its output one token short); they pair in
    the order they run, the distillation token first, in both tools."""
    _timm()
    result = comparator.validate_port(timm_deit_distilled(), keras_timm_deit_distilled(), X,
                                      port="pytorch-to-keras")
    assert result.passed, result.render()
    paired = {c.torch_module: c.keras_layer for c in result.passes[0].layers}
    assert (paired["cls_token"], paired["dist_token"]) == ("class_token", "distillation_token")
    report = comparator.compare_pair(timm_deit_distilled(), keras_timm_deit_distilled(), X,
                                     [0, 1], port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    assert report.checks_passed, report.checks


def test_torchvisions_vit_validates_against_its_keras_port():
    result = comparator.validate_port(torchvision_vit(), keras_torchvision_vit(), X,
                                      port="pytorch-to-keras")
    assert result.passed, result.render()
    assert result.passes[0].output.max_abs > 0  # not zeros on both sides
    assert any(note.startswith("PyTorch's class_token, encoder.pos_embedding, held outside "
                               "any layer and added to or concatenated before a value by "
                               "forward()") for note in result.notes)


def test_a_class_token_left_unported_is_the_layer_that_differs():
    torch_model, keras_model = torchvision_vit(), keras_torchvision_vit()
    comparator.port_weights(torch_model, keras_model)
    keras_model.get_layer("class_token").set_weights([np.zeros((1, 1, WIDTH), np.float32)])
    result = comparator.validate_port(torch_model, keras_model, X, modes=("inference",),
                                      gradients=False, reference64=False, train_step=False)
    found = result.first_divergence
    assert (found.torch_module, found.keras_layer) == ("class_token", "class_token")
    assert found.causes[0].text.startswith("Keras's weight holds 0 throughout, where "
                                           "PyTorch's numbers differ")


def test_compare_ports_the_vit_and_compares_its_tokens_after_the_step():
    labels = list(range(len(X)))
    report = comparator.compare_pair(torchvision_vit(), keras_torchvision_vit(), X,
                                     [label % CLASSES for label in labels],
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    assert report.checks_passed
    assert report.to_dict()["settings"]["pair"]["pairing"] == {"paired_layers": 15}
    (same,) = report.equivalences
    assert same.equivalent and same.max_weight_diff < 1e-5


class AppendedToken(nn.Module):
    """A token concatenated after the tokens: no Keras layer the pairing knows does that."""

    def __init__(self):
        super().__init__()
        self.inner = torchvision_vit()
        self.token = nn.Parameter(torch.randn(1, 1, WIDTH))

    def forward(self, x):
        tokens = self.inner.conv_proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([tokens, self.token.expand(len(x), -1, -1)], dim=1)
        return self.inner.heads(tokens.mean(1))


def test_a_token_concatenated_after_the_tokens_is_refused_by_name():
    with pytest.raises(UsageError, match=r"holds the parameter token \(1, 1, 16\) directly, "
                                         r"outside any torch.nn layer, and forward\(\) "
                                         r"concatenates it with other than one value after it"):
        comparator.validate_port(AppendedToken(), keras_torchvision_vit(), X,
                                 modes=("inference",), gradients=False, reference64=False,
                                 train_step=False)
