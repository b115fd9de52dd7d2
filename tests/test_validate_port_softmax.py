"""A softmax (or log-softmax) that normalises over another axis in each framework
(softmax_axis): PyTorch's dim counts in N, C, H, W, Keras's axis in N, H, W, C, so the same
number on both sides is another axis on an image map, while on N, L, F sequences the
layouts are the same and the numbers are compared as they are. Named between two paired
layers and after the last one (a segmentation head's output), with the Keras axis that
ports PyTorch's dim; a correct port gets no cause, and a softmax whose input PyTorch's
forward has laid out otherwise (permuted to N, H, W, C) is not measured and stays
between_layers. A softmax PyTorch's forward() computes with a function (F.softmax,
torch.log_softmax, x.softmax) is measured as its module is, and named for the call. A Keras
softmax whose axis cannot be read (a lambda in an Activation or Lambda layer, a function of
the user's own) is measured on its input; an operation that is no softmax over one axis is
not named. The pairs are tests/softmax_models.py's."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from tests.activation_models import keras_conv_act_conv  # noqa: E402
from tests.softmax_models import (  # noqa: E402
    FEATURES,
    STEPS,
    keras_conv_lambda_softmax,
    keras_conv_softmax,
    keras_conv_softmax_conv,
    keras_sequence_softmax,
    torch_conv_called_softmax,
    torch_conv_called_softmax_conv,
    torch_conv_softmax,
    torch_conv_softmax_conv,
    torch_sequence_softmax,
    unread_softmax,
)

QUICK = dict(modes=("inference",), gradients=False, train_step=False)


@pytest.fixture(scope="module")
def layerwise():
    import adapters.port_validation.validator as layerwise

    return layerwise


def _images():
    return np.random.default_rng(3).normal(size=(2, 3, 8, 8)).astype(np.float32)


def _sequences():
    return np.random.default_rng(3).normal(size=(2, STEPS, FEATURES)).astype(np.float32)


def _validated(layerwise, torch_model, keras_model, x):
    return layerwise.validate_port(torch_model, keras_model, x, port="pytorch-to-keras",
                                   **QUICK)


def _codes(finding):
    return [cause.code for cause in finding.causes]


def _softmax_cause(layerwise, torch_model, keras_model, x, where):
    """The validation and its first divergence's one cause, which must be softmax_axis
    found at `where` (PyTorch's module, Keras's layer, the pass)."""
    result = _validated(layerwise, torch_model, keras_model, x)
    found = result.first_divergence
    assert found is not None and _codes(found) == ["softmax_axis"], result.render()
    assert (found.torch_module, found.keras_layer, found.seen_in) == where
    return result, found.causes[0]


BETWEEN_CONVS = ("conv1", "conv1", "inference, isolated")


def test_softmax_over_the_width_against_keras_channels_is_named_with_the_axis_to_use(
        layerwise):
    result, cause = _softmax_cause(layerwise, torch_conv_softmax_conv(dim=-1),
                                   keras_conv_softmax_conv(axis=-1), _images(), BETWEEN_CONVS)
    assert ("Softmax axis: PyTorch act (Softmax) dim=-1 normalises over axis 3 (W) of "
            "N, C, H, W (2, 4, 8, 8), Keras softmax (Softmax) axis=-1 (Keras's default) over "
            "axis 3 (C) of N, H, W, C (2, 8, 8, 4)") in cause.text
    assert "given dim=1 (Keras's axis in PyTorch's layout) it gives Keras's" in cause.text
    assert "PyTorch's dim=-1 is axis=2 in Keras's layout: give Keras's softmax axis=2" \
        in cause.detail
    assert "keras.layers.Softmax(axis=2) gives PyTorch's output" in cause.detail
    # The forward pass takes the isolated pass's cause.
    forward = result.pass_result("inference", isolated=False)
    assert _codes(forward.first_divergence) == ["softmax_axis"]


def test_log_softmax_as_keras_ops_is_named_with_the_channels_axis(layerwise):
    # keras.ops.log_softmax(t, axis=1) normalises over the height of N, H, W, C.
    _, cause = _softmax_cause(layerwise, torch_conv_softmax_conv(dim=1, log=True),
                              keras_conv_softmax_conv(axis=1, log=True), _images(),
                              BETWEEN_CONVS)
    assert ("PyTorch act (LogSoftmax) dim=1 normalises over axis 1 (C) of N, C, H, W "
            "(2, 4, 8, 8)") in cause.text
    assert "(keras.ops.log_softmax) axis=1 over axis 1 (H) of N, H, W, C (2, 8, 8, 4)" \
        in cause.text
    assert "PyTorch's dim=1 is axis=3 in Keras's layout" in cause.detail
    assert "keras.ops.log_softmax(x, axis=3) gives PyTorch's output" in cause.detail


def test_sequence_softmax_over_the_steps_against_keras_features_is_named(layerwise):
    _, cause = _softmax_cause(layerwise, torch_sequence_softmax(dim=1),
                              keras_sequence_softmax(axis=-1), _sequences(),
                              ("fc1", "fc1", "inference, isolated"))
    assert ("PyTorch act (Softmax) dim=1 normalises over axis 1 of (2, 5, 8), Keras softmax "
            "(Softmax) axis=-1 (Keras's default) over axis 2 of (2, 5, 8) (the same layout in "
            "both frameworks)") in cause.text
    assert "given dim=2 (Keras's axis in PyTorch's layout) it gives Keras's (max abs 0)" \
        in cause.text
    assert "PyTorch's dim=1 is axis=1 in Keras's layout: give Keras's softmax axis=1" \
        in cause.detail


def test_softmax_at_the_output_is_named_after_the_last_pair(layerwise):
    _, cause = _softmax_cause(layerwise, torch_conv_softmax(dim=1), keras_conv_softmax(axis=1),
                              _images(), ("act", "softmax", "inference, isolated, output"))
    assert "Keras softmax (Softmax) axis=1 over axis 1 (H) of N, H, W, C" in cause.text
    assert cause.detail.startswith("the layers agree; the outputs differ after them")
    assert "give Keras's softmax axis=3" in cause.detail


@pytest.mark.parametrize("pair", ["width", "channels", "log_channels", "sequence", "output"])
def test_a_correct_port_has_no_divergence(layerwise, pair):
    torch_model, keras_model, x = {
        "width": lambda: (torch_conv_softmax_conv(dim=-1), keras_conv_softmax_conv(axis=2),
                          _images()),
        "channels": lambda: (torch_conv_softmax_conv(dim=1), keras_conv_softmax_conv(axis=-1),
                             _images()),
        "log_channels": lambda: (torch_conv_softmax_conv(dim=1, log=True),
                                 keras_conv_softmax_conv(axis=-1, log=True), _images()),
        "sequence": lambda: (torch_sequence_softmax(dim=1), keras_sequence_softmax(axis=1),
                             _sequences()),
        "output": lambda: (torch_conv_softmax(dim=1), keras_conv_softmax(axis=-1), _images()),
    }[pair]()
    result = _validated(layerwise, torch_model, keras_model, x)
    assert result.passed and result.first_divergence is None, result.render()


def test_a_softmax_on_a_map_pytorch_permuted_is_not_measured(layerwise):
    """PyTorch's forward permutes its map to N, H, W, C, takes the softmax over the last
    axis (the channels, as Keras's axis=-1 does) and permutes back, then doubles it, which
    the Keras port does not: the cause is what reaches conv1, not the softmax, whose input
    in PyTorch is not the Keras input moved to PyTorch's layout."""
    from torch import nn

    class PermutedSoftmax(nn.Module):
        def __init__(self):
            super().__init__()
            self.softmax = nn.Softmax(dim=-1)

        def forward(self, x):
            return self.softmax(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) * 2.0

    torch_model = torch_conv_softmax_conv()
    torch_model.act = PermutedSoftmax()
    found = _validated(layerwise, torch_model, keras_conv_softmax_conv(axis=-1),
                       _images()).first_divergence
    assert found is not None and found.keras_layer == "conv1"
    assert _codes(found) == ["between_layers"]


F_SOFTMAX = "torch.nn.functional.softmax in forward(), call 1"


def test_functional_softmax_over_the_width_between_convs_is_named_for_the_call(layerwise):
    result, cause = _softmax_cause(layerwise, torch_conv_called_softmax_conv(dim=-1),
                                   keras_conv_softmax_conv(axis=-1), _images(), BETWEEN_CONVS)
    assert cause.text.startswith(
        "Softmax axis: PyTorch torch.nn.functional.softmax(..., dim=-1) in forward(), call 1 "
        "(no module) normalises over axis 3 (W) of N, C, H, W (2, 4, 8, 8), Keras softmax "
        "(Softmax) axis=-1 (Keras's default) over axis 3 (C) of N, H, W, C (2, 8, 8, 4)")
    assert "PyTorch's call gives up to" in cause.text
    assert "give Keras's softmax axis=2 (keras.layers.Softmax(axis=2) gives PyTorch's" \
        in cause.detail
    forward = result.pass_result("inference", isolated=False)
    assert _codes(forward.first_divergence) == ["softmax_axis"]


def test_functional_softmax_at_a_heads_output_is_named_after_the_last_pair(layerwise):
    _, cause = _softmax_cause(
        layerwise, torch_conv_called_softmax(dim=-1), keras_conv_softmax(axis=-1), _images(),
        ("torch.nn.functional.softmax in head.forward(), call 1", "softmax",
         "inference, isolated, output"))
    assert "PyTorch torch.nn.functional.softmax(..., dim=-1) in head.forward(), call 1" \
        in cause.text
    assert cause.detail.startswith("the layers agree; the outputs differ after them")
    assert "give Keras's softmax axis=2" in cause.detail


@pytest.mark.parametrize("call, dim, axis, log, torch_words, fix", [
    ("x.softmax", 1, 1, False, "torch.Tensor.softmax(..., dim=1) in forward(), call 1",
     "keras.layers.Softmax(axis=3)"),
    ("torch.log_softmax", -1, -1, True,
     "torch.log_softmax(..., dim=-1) in forward(), call 1", "keras.ops.log_softmax(x, axis=2)"),
    # dim=None: PyTorch's implicit choice, the channels of a 4-D map
    ("F.softmax", None, 1, False, "torch.nn.functional.softmax(..., dim=None) in forward(), "
     "call 1", "keras.layers.Softmax(axis=3)"),
])
def test_tensor_method_log_softmax_and_implicit_dim_are_named_with_keras_fix(
        layerwise, call, dim, axis, log, torch_words, fix):
    _, cause = _softmax_cause(layerwise, torch_conv_called_softmax_conv(dim, call),
                              keras_conv_softmax_conv(axis, log), _images(), BETWEEN_CONVS)
    assert f"PyTorch {torch_words} (no module) normalises over" in cause.text
    assert f"{fix} gives PyTorch's output" in cause.detail


@pytest.mark.parametrize("pair", ["between", "output", "log_between"])
def test_a_correct_port_of_a_functional_softmax_has_no_divergence(layerwise, pair):
    torch_model, keras_model = {
        "between": lambda: (torch_conv_called_softmax_conv(dim=1),
                            keras_conv_softmax_conv(axis=-1)),
        "output": lambda: (torch_conv_called_softmax(dim=1), keras_conv_softmax(axis=-1)),
        "log_between": lambda: (torch_conv_called_softmax_conv(dim=-1, call="F.log_softmax"),
                                keras_conv_softmax_conv(axis=2, log=True)),
    }[pair]()
    result = _validated(layerwise, torch_model, keras_model, _images())
    assert result.passed and result.first_divergence is None, result.render()


def test_running_order_holds_functional_softmaxes_outside_modules_only():
    """nn.Softmax's own forward calls F.softmax: that call is the module's. A softmax
    function called in forward() stands in the order as the module that computes it."""
    import torch
    from torch import nn

    from adapters.port_validation.operation_settings import torch_calls
    from adapters.port_validation.function_calls import CalledLogSoftmax, CalledSoftmax

    class Blocks(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.Softmax(dim=1)
            self.head = torch_conv_called_softmax(dim=1).head

        def forward(self, x):
            x = torch.log_softmax(self.head(self.act(x)), -1)
            return x.softmax(dim=1) + torch.softmax(x, 2, dtype=torch.float64)

    calls = torch_calls(Blocks(), _images(), "inference", set())
    assert [c.name for c in calls] == [
        "act", "head.conv", "torch.nn.functional.softmax in head.forward(), call 1",
        "torch.log_softmax in forward(), call 1", "torch.Tensor.softmax in forward(), call 1",
        "torch.softmax in forward(), call 1"]
    assert [c.input_shape for c in calls[2:]] == [(2, 4, 8, 8)] * 4
    stand_ins = [c.module for c in calls[2:]]
    assert [(type(m), m.dim, m.dtype) for m in stand_ins] == [
        (CalledSoftmax, 1, None), (CalledLogSoftmax, -1, None), (CalledSoftmax, 1, None),
        (CalledSoftmax, 2, torch.float64)]


OUTPUT = "inference, isolated, output"


@pytest.mark.parametrize("torch_model, torch_module", [
    (torch_conv_softmax, "act"),
    (torch_conv_called_softmax, "torch.nn.functional.softmax in head.forward(), call 1"),
])
def test_lambda_softmax_over_the_height_at_the_output_is_named_with_the_axis_measured(
        layerwise, torch_model, torch_module):
    _, cause = _softmax_cause(layerwise, torch_model(dim=1), keras_conv_lambda_softmax(axis=1),
                              _images(), (torch_module, "softmax", OUTPUT))
    assert ("Keras softmax (Activation(<lambda>), axis measured) axis=1 over axis 1 (H) of "
            "N, H, W, C (2, 8, 8, 4)") in cause.text
    assert ("PyTorch's dim=1 is axis=3 in Keras's layout: give the softmax inside "
            "Activation(<lambda>) axis=3 (keras.ops.softmax(t, axis=3) on its input gives "
            "PyTorch's output") in cause.detail


@pytest.mark.parametrize("holder, function, dim, axis, kind, fix", [
    ("Lambda", "ops.softmax", 1, 1, "Lambda(<lambda>)", "keras.ops.softmax(t, axis=3)"),
    ("Lambda", "ops.log_softmax", -1, -1, "Lambda(<lambda>)",
     "keras.ops.log_softmax(t, axis=2)"),
    ("Activation", "by_hand", 1, 1, "Activation(functools.partial(softmax_by_hand, ...))",
     "keras.ops.softmax(t, axis=3)"),
])
def test_unread_softmax_between_convs_is_named_with_the_axis_measured(
        layerwise, holder, function, dim, axis, kind, fix):
    log = function == "ops.log_softmax"
    _, cause = _softmax_cause(layerwise, torch_conv_softmax_conv(dim=dim, log=log),
                              keras_conv_act_conv(unread_softmax(axis, holder, function)),
                              _images(), BETWEEN_CONVS)
    assert f"Keras softmax ({kind}, axis measured) axis={axis % 4}" in cause.text
    assert f"give the {'log-softmax' if log else 'softmax'} inside {kind} " \
        f"axis={fix[-2]} ({fix} on its input gives PyTorch's output" in cause.detail


@pytest.mark.parametrize("holder, function, dim, axis, output", [
    ("Activation", "ops.softmax", 1, -1, True),
    ("Lambda", "ops.softmax", -1, 2, False),
    ("Lambda", "ops.log_softmax", 1, 3, False),
    ("Activation", "by_hand", 1, -1, False),
])
def test_a_correct_port_through_an_unread_softmax_has_no_divergence(
        layerwise, holder, function, dim, axis, output):
    layer = unread_softmax(axis, holder, function)
    if output:
        pair = torch_conv_softmax(dim=dim), keras_conv_softmax(softmax=layer)
    else:
        pair = (torch_conv_softmax_conv(dim=dim, log=function == "ops.log_softmax"),
                keras_conv_act_conv(layer))
    result = _validated(layerwise, *pair, _images())
    assert result.passed and result.first_divergence is None, result.render()


@pytest.mark.parametrize("holder, function, axis", [
    ("Activation", "ops.relu", None),
    ("Lambda", "ops.softmax", (1, 2)),  # over the height and width at once
    ("Activation", "ops.softmax", (1, 2)),
])
def test_an_operation_that_is_no_softmax_over_one_axis_is_not_named(layerwise, holder,
                                                                     function, axis):
    """Against PyTorch's softmax over the channels the outputs differ; no axis of Keras's
    input reproduces the operation, so no softmax_axis is named, between convs or at the
    output."""
    between = _validated(layerwise, torch_conv_softmax_conv(dim=1),
                         keras_conv_act_conv(unread_softmax(axis, holder, function)),
                         _images()).first_divergence
    # An Activation's function is measured against PyTorch's softmax (an activation of
    # another function, tests/test_validate_port_operations.py); a Lambda is not read.
    assert between is not None and _codes(between) == (
        ["between_layers"] if holder == "Lambda" else ["activation_function"])
    at_output = _validated(layerwise, torch_conv_softmax(dim=1),
                           keras_conv_softmax(softmax=unread_softmax(axis, holder, function)),
                           _images())
    assert not at_output.passed
    found = at_output.first_divergence
    assert found is None or "softmax_axis" not in _codes(found), at_output.render()
