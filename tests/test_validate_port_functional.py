"""The weightless operations PyTorch's forward() computes with a function, not a module
(F.leaky_relu(x, 0.2), F.gelu, x.relu(), F.interpolate, F.avg_pool2d: what ported code
writes), are measured as their modules are (adapters/port_validation/function_calls.py):
a setting that differs from the Keras port's is named for the call, with the fix; a
correct port passes. The running order holds each call once, as the function forward()
wrote, with a stand-in module that computes the same bit for bit. The pairs are
tests/activation_models.py's conv, operation, conv."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from tests.activation_models import keras_conv_act_conv, torch_conv_act_conv  # noqa: E402

QUICK = dict(modes=("inference",), gradients=False, train_step=False)
CALL = "in forward(), call 1"


@pytest.fixture(scope="module")
def fw():
    import torch
    import torch.nn.functional as F

    import adapters.port_validation.validator as layerwise
    from adapters.keras.backend import keras

    return torch, F, keras, layerwise


def _x(size: int):
    return np.random.default_rng(3).normal(size=(2, 3, size, size)).astype(np.float32)


def _validated(fw, function, keras_layer, size: int = 8, first_scale: float = 1.0):
    """conv0, `function` in PyTorch's forward(), conv1 against conv0, keras_layer, conv1."""
    layerwise = fw[3]
    return layerwise.validate_port(torch_conv_act_conv(function, first_scale=first_scale),
                                   keras_conv_act_conv(keras_layer, size=size), _x(size),
                                   port="pytorch-to-keras", **QUICK)


def _named(result, code: str):
    """The first divergence's one cause, which must be `code`, found between the convs."""
    found = result.first_divergence
    assert found is not None and [c.code for c in found.causes] == [code], result.render()
    assert (found.torch_module, found.keras_layer) == ("conv1", "conv1")
    return found.causes[0]


def test_functional_leaky_relu_against_keras_default_slope_is_named_for_the_call(fw):
    _, F, keras, _ = fw
    cause = _named(_validated(fw, lambda t: F.leaky_relu(t, 0.2),
                              keras.layers.LeakyReLU(name="leaky")), "activation_setting")
    assert ("LeakyReLU negative_slope: PyTorch torch.nn.functional.leaky_relu(..., "
            f"negative_slope=0.2) {CALL} (no module), Keras leaky (LeakyReLU) "
            "negative_slope=0.3 (Keras's default)") in cause.text
    assert "PyTorch's call gives up to" in cause.text
    assert "given negative_slope=0.3 it gives Keras's (max abs 0)" in cause.text
    assert cause.detail.endswith("give Keras's leaky negative_slope=0.2")


def test_functional_leaky_relu_ported_with_its_slope_passes(fw):
    _, F, keras, _ = fw
    result = _validated(fw, lambda t: F.leaky_relu(t, 0.2),
                        keras.layers.LeakyReLU(negative_slope=0.2, name="leaky"))
    assert result.passed and result.first_divergence is None, result.render()


def test_functional_gelu_tanh_form_against_keras_exact_gelu_is_named(fw):
    _, F, keras, _ = fw
    # keras.activations.gelu (Activation("gelu")) is the exact form: approximate=False.
    cause = _named(_validated(fw, lambda t: F.gelu(t, approximate="tanh"),
                              keras.layers.Activation("gelu", name="gelu"), first_scale=4.0),
                   "activation_setting")
    assert (f"PyTorch torch.nn.functional.gelu(..., approximate='tanh') {CALL} (no module), "
            "Keras gelu (Activation(keras.activations.gelu)) approximate=False "
            "(Keras's default)") in cause.text
    assert cause.detail.endswith("give Keras's gelu approximate=True")


def test_functional_interpolate_that_aligns_corners_is_named(fw):
    _, F, keras, _ = fw
    cause = _named(_validated(
        fw, lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=True),
        keras.layers.UpSampling2D(2, interpolation="bilinear", name="up"), size=5),
        "upsample_align_corners")
    assert (f"PyTorch torch.nn.functional.interpolate(..., align_corners=True) {CALL} "
            "(no module), Keras up (UpSampling2D) has no align_corners setting") in cause.text
    assert f"PyTorch's torch.nn.functional.interpolate {CALL} aligns corners" in cause.detail


def test_functional_average_pooling_that_counts_its_padding_is_named(fw):
    _, F, keras, _ = fw
    cause = _named(_validated(fw, lambda t: F.avg_pool2d(t, 3, 1, 1),
                              keras.layers.AveragePooling2D(3, 1, "same", name="pool")),
                   "avgpool_count_include_pad")
    assert (f"PyTorch torch.nn.functional.avg_pool2d(..., count_include_pad=True) {CALL} "
            "(no module, PyTorch's default), Keras pool (AveragePooling2D) has no "
            "count_include_pad setting") in cause.text
    assert cause.detail.endswith("pad with ZeroPadding2D(1) and pool with padding='valid'")


@pytest.mark.parametrize("case", ["padding", "rounding"])
def test_functional_max_pooling_padded_or_rounded_otherwise_is_named(fw, case):
    """torchvision's ResNet stem as a call, F.max_pool2d(x, 3, 2, 1), against 'same' (pads
    (0, 1) on an even size); GoogLeNet's ceil_mode=True against 'valid'."""
    _, F, keras, _ = fw
    if case == "padding":
        function, padding, code = (lambda t: F.max_pool2d(t, 3, 2, 1)), "same", "pool_padding"
        words = (f"MaxPool2d padding: PyTorch torch.nn.functional.max_pool2d(..., "
                 f"padding=(1, 1)) {CALL} (no module), Keras pool (MaxPooling2D) "
                 "padding='same' (pads (0, 1) on this input)")
    else:
        function, padding, code = (lambda t: F.max_pool2d(t, 3, 2, ceil_mode=True)), "valid", \
            "pool_ceil_mode"
        words = (f"PyTorch torch.nn.functional.max_pool2d {CALL} (MaxPool2d, ceil_mode=True) "
                 "rounds its output size up, 4 x 4, Keras pool (MaxPooling2D, "
                 "padding='valid') down, 3 x 3")
    result = _validated(fw, function, keras.layers.MaxPooling2D(3, 2, padding, name="pool"))
    found = result.first_divergence
    assert found is not None and [c.code for c in found.causes] == [code], result.render()
    assert words in found.causes[0].text


@pytest.mark.parametrize("written, function", [
    ("torch.Tensor.relu", lambda t: t.relu()),
    ("torch.nn.functional.relu", lambda t: __import__("torch").nn.functional.relu(t)),
    ("torch.relu", lambda t: __import__("torch").relu(t)),
])
def test_a_plain_relu_call_against_keras_relu_6_is_named(fw, written, function):
    _, _, keras, _ = fw
    cause = _named(_validated(fw, function, keras.layers.ReLU(6.0, name="relu"),
                              first_scale=20.0), "activation_setting")
    assert (f"ReLU max_value: PyTorch {written}(...) {CALL} (no module) computes "
            "max_value=inf, Keras relu (ReLU) max_value=6.0") in cause.text
    assert cause.detail.endswith("give Keras's relu max_value=None")


def test_functional_relu6_hardtanh_elu_softplus_slips_are_named(fw):
    _, F, keras, _ = fw
    for function, keras_layer, words in [
            (F.relu6, keras.layers.ReLU(name="relu"),
             f"torch.nn.functional.relu6(...) {CALL} (no module) computes max_value=6.0"),
            (lambda t: F.hardtanh(t, -2.0),  # one clip apart: each is measured alone
             keras.layers.Activation("hard_tanh", name="clip"),
             f"torch.nn.functional.hardtanh(..., min_val=-2.0) {CALL} (no module)"),
            (lambda t: F.elu(t, 0.5), keras.layers.ELU(name="elu"),
             f"torch.nn.functional.elu(..., alpha=0.5) {CALL} (no module)"),
            (lambda t: F.softplus(t, 2.0), keras.layers.Activation("softplus", name="soft"),
             f"torch.nn.functional.softplus(..., beta=2.0) {CALL} (no module)")]:
        cause = _named(_validated(fw, function, keras_layer, first_scale=20.0),
                       "activation_setting")
        assert words in cause.text


def _calls(fw, steps):
    """The running order of a model whose forward() is `steps(self, x)` around a conv,
    a hooked nn.LeakyReLU and a block whose forward() calls F.relu."""
    torch, F, _, _ = fw
    from torch import nn

    from adapters.port_validation.operation_settings import torch_calls

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return F.relu(self.conv(x))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.block, self.act = Block(), nn.LeakyReLU()

        def forward(self, x):
            return steps(self, x)

    torch.manual_seed(0)
    model = Model().eval()
    return model, torch_calls(model, _x(8), "inference", set())


def test_the_running_order_holds_each_call_once_as_written(fw):
    torch, F, _, _ = fw

    def forward(self, x):
        x = self.act(self.block(x))  # nn.LeakyReLU's own F.leaky_relu is the module's
        x = F.relu6(x)  # runs hardtanh inside: one call
        x = F.leaky_relu(x.clone(), negative_slope=0.1, inplace=True)
        x = F.interpolate(x, size=(10, 10), mode="bilinear", antialias=True)  # no module
        x = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.relu_(F.softplus(x, 2, 10))

    _, calls = _calls(fw, forward)
    assert [c.name for c in calls] == [
        "block.conv", "torch.nn.functional.relu in block.forward(), call 1", "act",
        f"torch.nn.functional.relu6 {CALL}", f"torch.nn.functional.leaky_relu {CALL}",
        f"torch.nn.functional.avg_pool2d {CALL}", f"torch.nn.functional.softplus {CALL}",
        f"torch.nn.functional.relu_ {CALL}"]
    modules = [c.module for c in calls[3:]]
    assert [(type(m).__name__, m.function) for m in modules[:2]] == [
        ("CalledReLU6", "torch.nn.functional.relu6"),
        ("CalledLeakyReLU", "torch.nn.functional.leaky_relu")]
    assert (modules[1].negative_slope, modules[1].inplace) == (0.1, False)
    pool = modules[2]
    assert (pool.kernel_size, pool.stride, pool.padding, pool.count_include_pad) == \
        (3, 1, 1, False)
    assert (modules[3].beta, modules[3].threshold) == (2, 10)
    assert [c.input_shape for c in calls[3:]] == [(2, 3, 8, 8)] * 2 + [(2, 3, 10, 10)] * 3


@pytest.mark.parametrize("call", [
    lambda F, t: F.leaky_relu(t, 0.2), lambda F, t: F.leaky_relu_(t.clone(), 0.2),
    lambda F, t: F.elu(t, alpha=0.5), lambda F, t: F.elu_(t.clone(), 0.5),
    lambda F, t: F.gelu(t, approximate="tanh"), lambda F, t: F.gelu(t),
    lambda F, t: F.relu6(t), lambda F, t: F.relu(t, inplace=False), lambda F, t: t.relu(),
    lambda F, t: t.clone().relu_(), lambda F, t: F.hardtanh(t, -0.5, 0.7),
    lambda F, t: F.hardtanh_(t.clone(), max_val=0.3), lambda F, t: F.softplus(t, 3, 2),
    lambda F, t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=True),
    lambda F, t: F.interpolate(t, size=(5, 11), mode="bicubic"),
    lambda F, t: F.interpolate(t, scale_factor=1.5),
    lambda F, t: F.avg_pool2d(t, 3, 2, 1, True, False),
    lambda F, t: F.avg_pool2d(t, (3, 2), divisor_override=2),
    lambda F, t: F.avg_pool1d(t[:, :, 0], 3, padding=1),
    lambda F, t: F.avg_pool3d(t[:, None], (1, 3, 3), 1, (0, 1, 1), count_include_pad=False),
    lambda F, t: F.max_pool2d(t, 3, 2, 1), lambda F, t: F.max_pool2d(t, 2, ceil_mode=True),
    lambda F, t: F.max_pool2d(t, 3, 1, 1, dilation=2),
    lambda F, t: F.max_pool1d(t[:, :, 0], 3, 2, 1),
    lambda F, t: F.max_pool3d(t[:, None], (1, 3, 3), 1, (0, 1, 1)),
])
def test_each_stand_in_computes_its_call_bit_for_bit(fw, call):
    torch, F, _, _ = fw
    from torch import nn

    from adapters.port_validation.operation_settings import torch_calls

    class Called(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return call(F, self.conv(x) * 3)

    torch.manual_seed(0)
    model = Called().eval()
    calls = torch_calls(model, _x(8), "inference", set())
    assert [c.name for c in calls][0] == "conv" and len(calls) == 2, calls
    with torch.no_grad():
        x = model.conv(torch.from_numpy(_x(8))) * 3
        expected, seen = call(F, x), calls[1]
        value = x[:, :, 0] if seen.input_shape == (2, 3, 8) else \
            x[:, None] if seen.input_shape == (2, 1, 3, 8, 8) else x
        assert seen.input_shape == tuple(value.shape)
        assert torch.equal(seen.module(value.clone()), expected)


def test_each_stand_in_class_defaults_as_its_function(fw):
    """A stand-in's class says whether PyTorch's value is its default
    (OperationSetting.torch_default): each builder's defaults, the function's, must be the
    module's."""
    import inspect

    torch = fw[0]
    from adapters.port_validation.function_calls import _FUNCTIONS, Called

    for name, build in _FUNCTIONS.values():
        parameters = inspect.signature(build).parameters.values()
        given = {"input": torch.zeros(1, 1, 4, 4), "pad": (1, 1, 1, 1), "min": 0}
        required = [given.get(p.name, 3) for p in parameters
                    if p.default is inspect.Parameter.empty]
        # an interpolation's size or scale, a clamp's bound (at least one each)
        options = {"scale_factor": 2} if "interpolate" in name else \
            {"min": 0} if name in ("torch.clamp", "torch.clip", "torch.Tensor.clamp",
                                   "torch.Tensor.clip", "torch.Tensor.clamp_") else {}
        module = build(*required, **options)
        assert isinstance(module, Called), name
        base = next(c for c in type(module).__mro__ if not issubclass(c, Called))
        own = inspect.signature(base).parameters
        for parameter in parameters:
            if parameter.name in own and parameter.name != "inplace" and \
                    parameter.default is not inspect.Parameter.empty:
                assert own[parameter.name].default == parameter.default, (name, parameter)


@pytest.mark.parametrize("call", [
    lambda F, t: F.adaptive_avg_pool2d(t, 1), lambda F, t: F.adaptive_avg_pool2d(t, (2, 3)),
    lambda F, t: F.adaptive_avg_pool1d(t[:, :, 0], 3),
    lambda F, t: F.adaptive_avg_pool3d(t[:, None], (1, 2, 2)),
    lambda F, t: F.adaptive_max_pool2d(t, 3), lambda F, t: F.adaptive_max_pool1d(t[:, :, 0], 2),
    lambda F, t: F.adaptive_max_pool3d(t[:, None], 2),
    lambda F, t: __import__("torch").constant_pad_nd(t, (1, 0, 2, 1)),
    lambda F, t: __import__("torch").constant_pad_nd(t, (1, 1), float("-inf")),
    lambda F, t: t.clamp(min=0), lambda F, t: t.clamp(0), lambda F, t: t.clamp(0, 6),
    lambda F, t: t.clamp(0.0, 6.0), lambda F, t: t.clamp(-1, 2.5), lambda F, t: t.clip(0, 6),
    lambda F, t: t.clone().clamp_(0, 6), lambda F, t: t.clamp_min(0),
    lambda F, t: __import__("torch").clamp(t, 0, 6),
    lambda F, t: __import__("torch").clamp(t, min=-0.5, max=0.5),
    lambda F, t: __import__("torch").clip(t, min=0),
    lambda F, t: __import__("torch").clamp_min(t, 0),
])
def test_each_new_stand_in_computes_its_call_bit_for_bit(fw, call):
    """Adaptive poolings, torch.constant_pad_nd (seen called as itself) and clamps at
    numbers that an activation computes."""
    test_each_stand_in_computes_its_call_bit_for_bit(fw, call)


@pytest.mark.parametrize("call, stand_in", [
    (lambda t: t.clamp(min=0), "CalledReLU"), (lambda t: t.clamp(0, 6), "CalledReLU6"),
    (lambda t: t.clamp(-1, 1), "CalledHardtanh"),
    (lambda t: t.clamp(t.new_zeros(())), None),  # a tensor bound
    (lambda t: t.clamp(max=6), None), (lambda t: t.clamp(min=0.5), None),
    (lambda t: t.clamp(2, 1), None),  # every value 1: no Hardtanh has min above max
    (lambda t: __import__("torch").nn.functional.adaptive_max_pool2d(
        t, 2, return_indices=True)[0], None),
])
def test_only_a_clamp_an_activation_computes_stands_in(fw, call, stand_in):
    _, calls = _calls(fw, lambda self, x: call(self.block.conv(x)))
    assert [type(c.module).__name__ for c in calls[1:]] == ([stand_in] if stand_in else [])


@pytest.mark.parametrize("call, keras_layer, words, fix", [
    (lambda t: t.clamp(min=0), lambda keras: keras.layers.ReLU(6.0, name="relu"),
     f"torch.Tensor.clamp(...) {CALL} (no module) computes max_value=inf, Keras relu (ReLU) "
     "max_value=6.0", "give Keras's relu max_value=None"),
    (lambda t: __import__("torch").clamp(t, 0, 6), lambda keras: keras.layers.ReLU(name="relu"),
     f"torch.clamp(...) {CALL} (no module) computes max_value=6.0, Keras relu (ReLU) "
     "max_value=None", "give Keras's relu max_value=6.0"),
])
def test_a_clamp_against_a_relu_clipped_otherwise_is_named(fw, call, keras_layer, words, fix):
    cause = _named(_validated(fw, call, keras_layer(fw[2]), first_scale=20.0),
                   "activation_setting")
    assert words in cause.text and cause.detail.endswith(fix)


@pytest.mark.parametrize("call, keras_layer", [
    (lambda t: t.clamp(0, 6), lambda keras: keras.layers.ReLU(6.0, name="relu")),
    (lambda t: __import__("torch").clamp_min(t, 0), lambda keras: keras.layers.ReLU(name="relu")),
])
def test_a_clamp_ported_as_its_relu_passes(fw, call, keras_layer):
    result = _validated(fw, call, keras_layer(fw[2]), first_scale=20.0)
    assert result.passed and result.first_divergence is None, result.render()
