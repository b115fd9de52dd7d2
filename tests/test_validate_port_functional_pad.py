"""An F.pad that PyTorch's forward() calls stands in the running order as the padding
module that computes the same (adapters/port_validation/function_calls.py), so a conv
padded otherwise than with zeros by such a call is named (padding_mode) for the call, its
amounts count towards the conv's padding, and a port that pads as it does passes. Before,
the call was not seen: the conv after F.pad(x, (1, 1, 1, 1), mode='reflect') was put down
to 'padding: PyTorch pads (top 0, ...), Keras (top 1, ...)' with the fix ZeroPadding2D(0).
The pairs are tests/functional_models.py's conv0, F.pad, conv1."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import adapters.port_validation.validator as layerwise  # noqa: E402
from adapters.port_validation.operation_settings import torch_calls  # noqa: E402
from tests.functional_models import keras_conv_conv, torch_conv_pad_conv  # noqa: E402

layers = keras.layers
QUICK = dict(modes=("inference",), gradients=False, train_step=False)
CALL = "torch.nn.functional.pad in forward(), call 1"


class ReflectPadding(layers.Layer):
    """Keras's reflect padding of one pixel per side (keras.ops.pad, mode 'reflect')."""

    def call(self, x):
        return keras.ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")


def _validated(torch_model, keras_model):
    x = np.random.default_rng(3).normal(size=(2, 3, 8, 8)).astype(np.float32)
    return layerwise.validate_port(torch_model, keras_model, x, port="pytorch-to-keras",
                                   **QUICK)


def _first_cause(result, code: str):
    found = result.first_divergence
    assert found is not None and [c.code for c in found.causes] == [code], result.render()
    assert (found.torch_module, found.keras_layer) == ("conv1", "conv1")
    return found.causes[0]


@pytest.mark.parametrize("mode, keras_model", [
    ("reflect", lambda: keras_conv_conv()),
    ("reflect", lambda: keras_conv_conv([layers.ZeroPadding2D(1, name="pad")],
                                        conv1_padding="valid")),
    ("replicate", lambda: keras_conv_conv()),
    ("circular", lambda: keras_conv_conv()),
])
def test_a_conv_after_a_functional_pad_other_than_zeros_is_named_for_the_call(mode,
                                                                               keras_model):
    cause = _first_cause(_validated(torch_conv_pad_conv(mode=mode), keras_model()),
                         "padding_mode")
    assert (f"PyTorch pads the input of conv1 with {mode} ({CALL}), Keras that of conv1 "
            "with zeros") in cause.text
    assert "given zeros of the same amounts it gives Keras's (max abs 0)" in cause.text
    assert "keras.ops.pad(x, pads, mode='reflect')" in cause.detail


def test_a_functional_pads_amounts_count_towards_the_convs_padding():
    """F.pad(x, (1, 1, 1, 1)) then a stride-2 conv pads (1, 1) on each axis, Keras's 'same'
    (0, 1) on an even size (before: 'PyTorch pads (top 0, ...)', fix ZeroPadding2D(0))."""
    cause = _first_cause(_validated(torch_conv_pad_conv(stride=2), keras_conv_conv(stride=2)),
                         "padding")
    assert ("PyTorch pads (top 1, bottom 1, left 1, right 1), Keras (top 0, bottom 1, left 0, "
            "right 1)") in cause.text
    assert cause.detail.endswith("pad explicitly with ZeroPadding2D(1) and use 'valid'")


@pytest.mark.parametrize("torch_model, keras_model", [
    (lambda: torch_conv_pad_conv(), lambda: keras_conv_conv()),
    (lambda: torch_conv_pad_conv(mode="reflect"),
     lambda: keras_conv_conv([ReflectPadding(name="pad")], conv1_padding="valid")),
    # TensorFlow's 'same' for a stride-2 conv on an even size, as PyTorch ports write it
    (lambda: torch_conv_pad_conv((0, 1, 0, 1), stride=2), lambda: keras_conv_conv(stride=2)),
    # and for a pooling after a ReLU: zeros pad as Keras's repeated edge values there
    (lambda: torch_conv_pad_conv((0, 1, 0, 1), pool=True),
     lambda: keras_conv_conv([layers.ReLU(name="relu"),
                              layers.MaxPooling2D(3, 2, "same", name="pool")])),
])
def test_ports_that_pad_as_the_functional_pad_does_pass(torch_model, keras_model):
    result = _validated(torch_model(), keras_model())
    assert result.passed and result.first_divergence is None, result.render()


class _Calling(nn.Module):
    """`first` (an nn.Identity: torch_calls records the modules without children, and a
    model without any would be recorded whole, the calls in it its own), then `call(x)` in
    forward(), then the modules given; `device`, a parameter, places the input."""

    def __init__(self, call, *modules: nn.Module):
        super().__init__()
        self.device = nn.Parameter(torch.zeros(()))
        self.first = nn.Identity()
        self.modules_run = nn.Sequential(*modules) if modules else None
        self.call = call

    def forward(self, x):
        x = self.call(self.first(x))
        return self.modules_run(x) if self.modules_run is not None else x


def _recorded(call, x: np.ndarray, *modules: nn.Module):
    """The running order after `first`."""
    calls = torch_calls(_Calling(call, *modules).eval(), x, "inference", set())
    assert calls[0].name == "first", calls
    return calls[1:]


def _values(*shape: int) -> np.ndarray:
    return np.random.default_rng(7).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("mode, value, stand_in", [
    ("constant", None, "ZeroPad"), ("constant", 0.0, "ZeroPad"),
    ("constant", -1.5, "ConstantPad"), ("reflect", None, "ReflectionPad"),
    ("replicate", None, "ReplicationPad"), ("circular", None, "CircularPad"),
])
def test_each_pad_stands_in_as_its_module_bit_for_bit(rank, mode, value, stand_in):
    x = _values(2, 3, *(4, 5, 6)[:rank])
    pad = (2, 1, 1, 2, 0, 1)[:2 * rank]
    options = {"mode": mode} if value is None else {"mode": mode, "value": value}
    calls = _recorded(lambda t: F.pad(t, pad, **options), x)
    assert [(c.name, type(c.module).__name__, c.input_shape) for c in calls] == [
        (CALL, f"Called{stand_in}{rank}d", x.shape)]
    with torch.no_grad():
        expected = F.pad(torch.from_numpy(x), pad, **options)
        assert torch.equal(calls[0].module(torch.from_numpy(x)), expected)
    assert calls[0].module.function == "torch.nn.functional.pad"


@pytest.mark.parametrize("call, stand_in", [
    (lambda t: F.pad(t, (1, 2)), "CalledZeroPad1d"),  # the width of an image
    (lambda t: F.pad(t, [1, 1, 0, 2], "reflect"), "CalledReflectionPad2d"),
    (lambda t: F.pad(input=t, pad=(1, 1, 1, 1), mode="replicate"), "CalledReplicationPad2d"),
])
def test_each_argument_form_stands_in_bit_for_bit(call, stand_in):
    x = _values(2, 3, 5, 6)
    calls = _recorded(call, x)
    assert [type(c.module).__name__ for c in calls] == [stand_in]
    with torch.no_grad():
        assert torch.equal(calls[0].module(torch.from_numpy(x)), call(torch.from_numpy(x)))


@pytest.mark.parametrize("call, shape, recorded", [
    (lambda t: F.pad(t, (1, 1, 1, 1, 1, 1)), (2, 3, 5, 6), False),  # reaches the channels
    (lambda t: F.pad(t, (1, 1, 1, 1, 1, 1), "reflect"), (2, 3, 5, 6), False),  # as C, H, W
    (lambda t: F.pad(t, (1, 1, 1, 1)), (2, 3, 6), False),
    (lambda t: F.pad(t, (1, 1, 1, 1, 0, 0, 1, 1)), (2, 3, 5, 6), False),  # and the batch
    (lambda t: F.pad(t, (1, 1, 1, 1)), (2, 3, 5, 6), True),
    (lambda t: F.pad(t, (1, 1, 1, 1, 1, 1), "reflect"), (2, 3, 4, 5, 6), True),
])
def test_a_pad_that_reaches_the_channel_axis_is_not_recorded(call, shape, recorded):
    """The padding modules pad spatial axes: no module stands in for a pad of the channel
    (or batch) axis; the same pad of spatial axes only is recorded."""
    calls = _recorded(call, _values(*shape))
    assert [c.name for c in calls] == ([CALL] if recorded else [])


def test_a_padding_modules_own_pad_call_is_the_modules():
    """nn.ReflectionPad2d runs F.pad itself: the running order holds the module once, then
    the call forward() makes."""
    calls = _recorded(lambda t: t, _values(2, 3, 5, 6), nn.ReflectionPad2d(1))
    assert [c.name for c in calls] == ["modules_run.0"]
    both = _recorded(lambda t: F.pad(t, (1, 1, 1, 1), "circular"), _values(2, 3, 5, 6),
                     nn.ReflectionPad2d(1))
    assert [(c.name, type(c.module).__name__) for c in both] == [
        (CALL, "CalledCircularPad2d"), ("modules_run.0", "ReflectionPad2d")]
