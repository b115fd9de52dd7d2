"""A weightless operation set otherwise in each framework: Keras's LeakyReLU default
slope, keras.ops.gelu's tanh form, ELU's alpha, Softplus's beta, a ReLU clipped on one
side only, Hardtanh's clips (activation_setting), a bilinear upsampling that aligns corners
(upsample_align_corners), an upsampling in another mode (upsample_interpolation), an
average pooling that counts its padding (avgpool_count_include_pad) and a pooling padded
otherwise (pool_padding, 1-D and 2-D through a conv pair, 3-D on the pooling alone) are
named with both settings and the measured difference; a correct port gets no such cause,
and where a setting cannot be read, PyTorch's activation is written out of other operations
(torch.where; a function such as F.leaky_relu is measured:
tests/test_validate_port_functional.py), or the rerun does not confirm it, the cause stays
between_layers. The pairs are
tests/activation_models.py's: a conv, the operations, a conv."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from tests.activation_models import (  # noqa: E402
    keras_conv_act_conv,
    keras_conv_aligned_upsample_conv,
    keras_conv_pool_conv,
    keras_conv_softplus_conv,
    keras_conv_upsample_conv,
    keras_sequence_pool_conv,
    torch_conv_act_conv,
    torch_conv_nearest_upsample_conv,
    torch_conv_pool_conv,
    torch_conv_softplus_conv,
    torch_conv_upsample_conv,
    torch_sequence_pool_conv,
)

QUICK = dict(modes=("inference",), gradients=False, train_step=False)


@pytest.fixture(scope="module")
def fw():
    import torch
    from torch import nn

    import adapters.port_validation.validator as layerwise
    from adapters.keras.backend import keras

    return torch, nn, keras, layerwise


def _x(size: int, rank: int = 2):
    return np.random.default_rng(3).normal(size=(2, 3) + (size,) * rank).astype(np.float32)


def _validated(fw, torch_model, keras_model, size: int = 8, rank: int = 2):
    _, _, _, layerwise = fw
    return layerwise.validate_port(torch_model, keras_model, _x(size, rank),
                                   port="pytorch-to-keras", **QUICK)


def _codes(finding):
    return [cause.code for cause in finding.causes]


def test_keras_leaky_relu_default_slope_is_named_with_both_slopes(fw):
    _, nn, keras, _ = fw
    result = _validated(fw, torch_conv_act_conv(nn.LeakyReLU()),
                        keras_conv_act_conv(keras.layers.LeakyReLU(name="leaky")))
    found = result.first_divergence
    assert (found.torch_module, found.keras_layer) == ("conv1", "conv1")
    assert _codes(found) == ["activation_setting"]
    text = found.causes[0].text
    assert "PyTorch act (LeakyReLU) negative_slope=0.01 (PyTorch's default)" in text
    assert "Keras leaky (LeakyReLU) negative_slope=0.3 (Keras's default)" in text
    assert "given negative_slope=0.3 it gives Keras's (max abs 0)" in text
    assert "negative_slope=0.01" in found.causes[0].detail
    # The forward pass takes the isolated pass's cause.
    forward = result.pass_result("inference", isolated=False)
    assert _codes(forward.first_divergence) == ["activation_setting"]


def test_keras_ops_gelu_tanh_form_is_named(fw):
    _, nn, keras, _ = fw
    # Wider activations: the tanh form is up to 4.7e-4 from the exact one, at |x| = 2.7.
    gelu = keras.layers.Activation(keras.ops.gelu, name="gelu")
    result = _validated(fw, torch_conv_act_conv(nn.GELU(), first_scale=4.0),
                        keras_conv_act_conv(gelu))
    found = result.first_divergence
    assert found is not None and _codes(found) == ["activation_setting"], result.render()
    text = found.causes[0].text
    assert "PyTorch act (GELU) approximate='none' (PyTorch's default)" in text
    assert "Keras gelu (Activation(keras.ops.gelu)) approximate=True (Keras's default)" in text
    assert "given approximate='tanh' it gives Keras's" in text
    assert "approximate=False" in found.causes[0].detail


def test_elu_alpha_set_on_the_pytorch_side_is_named(fw):
    _, nn, keras, _ = fw
    result = _validated(fw, torch_conv_act_conv(nn.ELU(alpha=0.5)),
                        keras_conv_act_conv(keras.layers.ELU(name="elu")))
    found = result.first_divergence
    assert _codes(found) == ["activation_setting"]
    assert "PyTorch act (ELU) alpha=0.5, Keras elu (ELU) alpha=1.0 (Keras's default)" \
        in found.causes[0].text


def test_relu6_ported_as_keras_plain_relu_is_named(fw):
    """MobileNet's ReLU6 as Keras's ReLU() without max_value (Keras's default: no clip)."""
    _, nn, keras, _ = fw
    result = _validated(fw, torch_conv_act_conv(nn.ReLU6(), first_scale=20.0),
                        keras_conv_act_conv(keras.layers.ReLU(name="relu")))
    found = result.first_divergence
    assert _codes(found) == ["activation_setting"]
    assert ("ReLU6 max_value: PyTorch act (ReLU6) max_value=6.0, Keras relu (ReLU) "
            "max_value=None (Keras's default)") in found.causes[0].text
    assert "given max_value=inf it gives Keras's (max abs 0)" in found.causes[0].text
    assert found.causes[0].detail.endswith("give Keras's relu max_value=6.0")


def test_a_correct_port_has_no_divergence(fw):
    _, nn, keras, _ = fw
    for torch_activation, keras_activation in [
            (nn.LeakyReLU(), keras.layers.LeakyReLU(negative_slope=0.01, name="leaky")),
            (nn.GELU(), keras.layers.Activation("gelu", name="gelu")),
            (nn.ReLU6(), keras.layers.ReLU(6.0, name="relu"))]:
        result = _validated(fw, torch_conv_act_conv(torch_activation, first_scale=4.0),
                            keras_conv_act_conv(keras_activation))
        assert result.passed and result.first_divergence is None, result.render()


@pytest.mark.parametrize("case", ["lambda_in_keras", "hand_written_in_torch",
                                  "not_confirmed"])
def test_unread_or_unconfirmed_settings_stay_between_layers(fw, case):
    torch, nn, keras, _ = fw
    if case == "lambda_in_keras":  # Keras's setting cannot be read off a lambda
        gelu = keras.layers.Activation(lambda t: keras.ops.gelu(t, approximate=True),
                                       name="gelu")
        pair = (torch_conv_act_conv(nn.GELU(), first_scale=4.0), keras_conv_act_conv(gelu))
    elif case == "hand_written_in_torch":  # no module, no function of a family: not seen
        pair = (torch_conv_act_conv(lambda t: torch.where(t > 0, t, 0.01 * t)),
                keras_conv_act_conv(keras.layers.LeakyReLU(name="leaky")))
    else:  # the slopes differ, but Keras's ReLU before its LeakyReLU hides it
        pair = (torch_conv_act_conv(nn.LeakyReLU()),
                keras_conv_act_conv(keras.layers.ReLU(name="relu"),
                                    keras.layers.LeakyReLU(name="leaky")))
    found = _validated(fw, *pair).first_divergence
    assert found is not None and found.keras_layer == "conv1"
    # A lambda's setting cannot be read, but what it computes is measured against
    # PyTorch's GELU (tests/test_validate_port_operations.py).
    assert _codes(found) == (["activation_function"] if case == "lambda_in_keras" else
                             ["between_layers"])


def test_upsampling_that_aligns_corners_is_named(fw):
    result = _validated(fw, torch_conv_upsample_conv(), keras_conv_upsample_conv(), size=5)
    found = result.first_divergence
    assert (found.torch_module, found.keras_layer) == ("conv1", "conv1")
    assert _codes(found) == ["upsample_align_corners"], result.render()
    text = found.causes[0].text
    assert "PyTorch act (Upsample) align_corners=True, Keras up (UpSampling2D) has no " \
           "align_corners setting: it computes align_corners=False" in text
    assert "given align_corners=False it gives Keras's (max abs 0)" in text
    assert "no Keras resize can" in found.causes[0].detail


def test_upsampling_bilinear_2d_aligns_corners_by_definition(fw):
    _, nn, _, _ = fw
    result = _validated(fw, torch_conv_act_conv(nn.UpsamplingBilinear2d(scale_factor=2)),
                        keras_conv_upsample_conv(), size=5)
    found = result.first_divergence
    assert _codes(found) == ["upsample_align_corners"], result.render()
    assert "PyTorch act (UpsamplingBilinear2d) align_corners=True, " in found.causes[0].text


def test_average_pooling_that_counts_its_padding_is_named_on_an_odd_size(fw):
    result = _validated(fw, torch_conv_pool_conv(), keras_conv_pool_conv(5), size=5)
    found = result.first_divergence
    assert (found.torch_module, found.keras_layer) == ("conv1", "conv1")
    assert _codes(found) == ["avgpool_count_include_pad"], result.render()
    text = found.causes[0].text
    assert "PyTorch act (AvgPool2d) count_include_pad=True (PyTorch's default), Keras pool " \
           "(AveragePooling2D) has no count_include_pad setting: it computes " \
           "count_include_pad=False" in text
    assert "given count_include_pad=False it gives Keras's (max abs 0)" in text
    assert "pad with ZeroPadding2D(1) and pool with padding='valid'" in found.causes[0].detail


def test_average_pooling_on_an_even_size_is_put_down_to_its_padding(fw):
    # Keras's 'same' pads 6 x 6 by (0, 1), PyTorch by (1, 1): counting the padding or not,
    # PyTorch's pooling is not Keras's, so count_include_pad is not named; padded as Keras
    # pads it (the edge values repeated, on Keras 3.15.1's torch backend), it is Keras's.
    found = _validated(fw, torch_conv_pool_conv(), keras_conv_pool_conv(6),
                       size=6).first_divergence
    assert found is not None and found.keras_layer == "conv1"
    assert _codes(found) == ["pool_padding"]
    assert ("AvgPool2d padding: PyTorch act (AvgPool2d) padding=(1, 1), Keras pool "
            "(AveragePooling2D) padding='same' (pads (0, 1) on this input)") in found.causes[0].text
    assert "given padding=(0, 1) (edge values repeated, as Keras pads) it gives Keras's (max " \
           "abs 0)" in found.causes[0].text


def test_an_average_that_leaves_out_its_padding_has_no_keras_layer_to_port_to(fw):
    _, nn, keras, _ = fw
    found = _validated(fw, torch_conv_act_conv(nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
                       keras_conv_pool_conv(6), size=6).first_divergence
    assert _codes(found) == ["pool_padding"]
    assert found.causes[0].detail.endswith(
        "no Keras pooling layer pads both sides and averages only the values inside")


@pytest.mark.parametrize("size", [8, 7])
def test_a_max_pooling_padded_as_same_is_named_on_an_even_size_only(fw, size):
    """torchvision's ResNet stem, MaxPool2d(3, 2, padding=1), ported as MaxPooling2D(3, 2,
    padding='same'): on an even size Keras pads (0, 1), PyTorch (1, 1)."""
    _, nn, keras, _ = fw
    result = _validated(fw, torch_conv_act_conv(nn.MaxPool2d(3, 2, padding=1)),
                        keras_conv_act_conv(keras.layers.MaxPooling2D(
                            3, 2, padding="same", name="pool"), size=size), size=size)
    if size == 7:
        assert result.passed and result.first_divergence is None, result.render()
        return
    found = result.first_divergence
    assert _codes(found) == ["pool_padding"]
    assert "MaxPool2d padding: PyTorch act (MaxPool2d) padding=(1, 1), Keras pool " \
           "(MaxPooling2D) padding='same' (pads (0, 1) on this input)" in found.causes[0].text
    assert "pad with ZeroPadding2D(1) (zeros stand for PyTorch's -inf padding where the " \
           "input is not negative, as after a ReLU) and pool with padding='valid'" \
           in found.causes[0].detail


def test_a_max_pooling_after_a_relu_ported_as_the_cause_says_passes(fw):
    _, nn, keras, _ = fw
    result = _validated(fw, torch_conv_act_conv(nn.Sequential(
        nn.ReLU(), nn.MaxPool2d(3, 2, padding=1))), keras_conv_act_conv(
        keras.layers.ReLU(name="relu"), keras.layers.ZeroPadding2D(1, name="pad"),
        keras.layers.MaxPooling2D(3, 2, name="pool"), size=8), size=8)
    assert result.passed and result.first_divergence is None, result.render()


@pytest.mark.parametrize("size", [5, 6])
def test_correct_upsampling_and_pooling_ports_pass(fw, size):
    _, nn, keras, _ = fw
    for torch_operation, keras_operations in [
            (nn.Upsample(scale_factor=2, mode="bilinear"),
             [keras.layers.UpSampling2D(2, interpolation="bilinear", name="up")]),
            (nn.AvgPool2d(3, stride=2, padding=1),
             [keras.layers.ZeroPadding2D(1, name="pad"),
              keras.layers.AveragePooling2D(3, strides=2, name="pool")])]:
        result = _validated(fw, torch_conv_act_conv(torch_operation),
                            keras_conv_act_conv(*keras_operations, size=size), size=size)
        assert result.passed and result.first_divergence is None, result.render()


@pytest.mark.parametrize("size", [5, 6])
def test_upsampling_that_aligns_corners_ported_as_the_cause_says_passes(fw, size):
    _, _, _, layerwise = fw
    result = layerwise.validate_port(torch_conv_upsample_conv(),
                                     keras_conv_aligned_upsample_conv(size), _x(size),
                                     port="pytorch-to-keras")
    assert result.passed and result.first_divergence is None, result.render()


def _sequence_pair(fw, torch_operation, *keras_operations, length: int):
    """conv0, the operation, conv1 as Conv1d and Conv1D, validated on (2, 3, length)."""
    return _validated(fw, torch_conv_act_conv(torch_operation, rank=1),
                      keras_conv_act_conv(*keras_operations, size=length, rank=1),
                      size=length, rank=1)


@pytest.mark.parametrize("length", [8, 7])
def test_a_1d_max_pooling_padded_as_same_is_named_on_an_even_length_only(fw, length):
    _, _, _, layerwise = fw
    result = layerwise.validate_port(torch_sequence_pool_conv(), keras_sequence_pool_conv(length),
                                     _x(length, rank=1), port="pytorch-to-keras", **QUICK)
    if length == 7:
        assert result.passed and result.first_divergence is None, result.render()
        return
    found = result.first_divergence
    assert (found.torch_module, found.keras_layer) == ("conv1", "conv1")
    assert _codes(found) == ["pool_padding"], result.render()
    assert "MaxPool1d padding: PyTorch act (MaxPool1d) padding=(1, 1), Keras pool " \
           "(MaxPooling1D) padding='same' (pads (0, 1) on this input)" in found.causes[0].text
    assert "given padding=(0, 1) (edge values repeated, as Keras pads) it gives Keras's (max " \
           "abs 0)" in found.causes[0].text
    assert "pad with ZeroPadding1D(1) (zeros stand for" in found.causes[0].detail


@pytest.mark.parametrize("length", [7, 8])
def test_a_1d_average_pooling_names_its_padding_count_or_its_padding(fw, length):
    """Odd length: Keras pads (1, 1) too and only the count differs; even: the padding."""
    _, nn, keras, _ = fw
    found = _sequence_pair(fw, nn.AvgPool1d(3, 2, padding=1), keras.layers.AveragePooling1D(
        3, 2, padding="same", name="pool"), length=length).first_divergence
    if length == 7:
        assert _codes(found) == ["avgpool_count_include_pad"]
        assert "AvgPool1d count_include_pad: PyTorch act (AvgPool1d) count_include_pad=True " \
               "(PyTorch's default), Keras pool (AveragePooling1D) has no count_include_pad " \
               "setting: it computes count_include_pad=False" in found.causes[0].text
        assert "pad with ZeroPadding1D(1) and pool with padding='valid'" \
            in found.causes[0].detail
    else:
        assert _codes(found) == ["pool_padding"]
        assert "AvgPool1d padding: PyTorch act (AvgPool1d) padding=(1, 1)" in found.causes[0].text
    assert "it gives Keras's (max abs 0)" in found.causes[0].text


@pytest.mark.parametrize("length", [7, 8])
def test_1d_poolings_ported_as_the_causes_say_pass(fw, length):
    _, nn, keras, _ = fw
    for torch_operations, keras_operations in [
            ((nn.ReLU(), nn.MaxPool1d(3, 2, padding=1)),
             (keras.layers.ReLU(name="relu"), keras.layers.ZeroPadding1D(1, name="pad"),
              keras.layers.MaxPooling1D(3, 2, name="pool"))),
            ((nn.AvgPool1d(3, 2, padding=1),),
             (keras.layers.ZeroPadding1D(1, name="pad"),
              keras.layers.AveragePooling1D(3, 2, name="pool")))]:
        result = _sequence_pair(fw, nn.Sequential(*torch_operations), *keras_operations,
                                length=length)
        assert result.passed and result.first_divergence is None, result.render()


@pytest.mark.parametrize("kind", ["Max", "Avg"])
def test_3d_poolings_are_measured_by_the_same_tables(fw, kind):
    """No Conv3d pair to validate end to end here: the 3-D entries measured directly, on a
    6 x 6 x 6 map Keras's 'same' pads (0, 1) on each axis; 5 x 5 x 5 for the average's
    count."""
    torch, nn, keras, _ = fw
    from adapters.port_validation.operation_settings import operation_setting
    from adapters.port_validation.pool_padding import pool_padding

    keras_class = getattr(keras.layers, f"{'Average' if kind == 'Avg' else 'Max'}Pooling3D")
    module = getattr(nn, f"{kind}Pool3d")(3, 2, padding=1)
    op = keras_class(3, 2, padding="same", name="pool")
    for size, measure, code in [(6, pool_padding, "pool_padding"),
                                (5, operation_setting, "avgpool_count_include_pad")]:
        x = np.random.default_rng(3).normal(size=(2, size, size, size, 4)).astype(np.float32)
        found = measure([("act", module)], [op], {"pool": x})
        if kind == "Max" and size == 5:
            assert found is None  # a maximum has no count
            continue
        assert found is not None and found.code == code
        assert found.torch_kind == f"{kind}Pool3d" and found.swapped_max_abs == 0.0
        assert found.max_abs > 0.1
        if code == "pool_padding":
            assert found.keras_value == "'same' (pads (0, 1) on this input)"
            assert "ZeroPadding3D(1)" in found.keras_fix
        else:
            assert found.keras_fix == "ZeroPadding3D(1)"


@pytest.mark.parametrize("reverse", [False, True])
def test_upsampling_in_another_mode_is_named(fw, reverse):
    """nn.Upsample's default 'nearest' against UpSampling2D(interpolation='bilinear'), and
    a bilinear nn.Upsample against UpSampling2D's default 'nearest'."""
    _, nn, keras, _ = fw
    if reverse:
        pair = (torch_conv_act_conv(nn.Upsample(scale_factor=2, mode="bilinear")),
                keras_conv_act_conv(keras.layers.UpSampling2D(2, name="up"), size=5))
    else:
        pair = (torch_conv_nearest_upsample_conv(), keras_conv_upsample_conv())
    found = _validated(fw, *pair, size=5).first_divergence
    assert (found.torch_module, found.keras_layer) == ("conv1", "conv1")
    assert _codes(found) == ["upsample_interpolation"]
    torch_mode, keras_mode = ("bilinear", "nearest") if reverse else ("nearest", "bilinear")
    assert (f"Upsample interpolation: PyTorch act (Upsample) mode='{torch_mode}'"
            + ("" if reverse else " (PyTorch's default)")
            + f", Keras up (UpSampling2D) interpolation='{keras_mode}'"
            + (" (Keras's default)" if reverse else "")) in found.causes[0].text
    assert f"given mode='{keras_mode}' it gives Keras's (max abs 0)" in found.causes[0].text
    assert found.causes[0].detail.endswith(
        f"give Keras's up interpolation='{torch_mode}'")


def test_a_linear_sequence_upsampling_ported_as_upsampling_1d_is_named(fw):
    _, nn, keras, _ = fw
    found = _sequence_pair(fw, nn.Upsample(scale_factor=2, mode="linear"),
                           keras.layers.UpSampling1D(2, name="up"), length=7).first_divergence
    assert _codes(found) == ["upsample_interpolation"]
    assert "PyTorch act (Upsample) mode='linear', Keras up (UpSampling1D) has no " \
           "interpolation setting: it computes interpolation='nearest'" in found.causes[0].text
    assert "given mode='nearest' it gives Keras's (max abs 0)" in found.causes[0].text
    assert "UpSampling2D((factor, 1), interpolation='bilinear')" in found.causes[0].detail


def test_upsamplings_in_the_same_mode_pass(fw):
    _, nn, keras, _ = fw
    linear = [keras.layers.Reshape((7, 1, 4), name="to_2d"),
              keras.layers.UpSampling2D((2, 1), interpolation="bilinear", name="up"),
              keras.layers.Reshape((14, 4), name="to_1d")]
    for torch_mode, keras_operations, rank in [
            ("nearest", [keras.layers.UpSampling2D(2, name="up")], 2),
            ("nearest", [keras.layers.UpSampling1D(2, name="up")], 1),
            ("linear", linear, 1)]:
        result = _validated(fw, torch_conv_act_conv(nn.Upsample(scale_factor=2, mode=torch_mode),
                                                    rank=rank),
                            keras_conv_act_conv(*keras_operations, size=7, rank=rank),
                            size=7, rank=rank)
        assert result.passed and result.first_divergence is None, result.render()


def test_a_softplus_of_another_beta_is_named(fw):
    found = _validated(fw, torch_conv_softplus_conv(), keras_conv_softplus_conv()).first_divergence
    assert _codes(found) == ["activation_setting"]
    text = found.causes[0].text
    assert "Softplus beta: PyTorch act (Softplus) beta=2.0, Keras softplus " \
           "(Activation(keras.activations.softplus)) has no beta setting: it computes " \
           "beta=1.0" in text
    assert "given beta=1.0 it gives Keras's (max abs 0)" in text
    assert found.causes[0].detail.endswith(
        "compute PyTorch's with Activation(lambda t: keras.ops.softplus(2.0 * t) / 2.0)")


def test_a_plain_relu_ported_as_keras_relu_6_is_named(fw):
    _, nn, keras, _ = fw
    found = _validated(fw, torch_conv_act_conv(nn.ReLU(), first_scale=20.0),
                       keras_conv_act_conv(keras.layers.ReLU(6.0, name="relu"))).first_divergence
    assert _codes(found) == ["activation_setting"]
    assert "ReLU max_value: PyTorch act (ReLU) max_value=inf, Keras relu (ReLU) " \
           "max_value=6.0;" in found.causes[0].text
    assert "given max_value=6.0 it gives Keras's (max abs 0)" in found.causes[0].text
    assert found.causes[0].detail.endswith("give Keras's relu max_value=None")


@pytest.mark.parametrize("setting", ["min_val", "max_val"])
def test_a_hardtanh_clipped_elsewhere_than_keras_hard_tanh_is_named(fw, setting):
    _, nn, keras, _ = fw
    low, high = (0.0, 1.0) if setting == "min_val" else (-1.0, 2.0)
    hard_tanh = keras.layers.Activation(keras.ops.hard_tanh, name="clip")
    found = _validated(fw, torch_conv_act_conv(nn.Hardtanh(low, high), first_scale=4.0),
                       keras_conv_act_conv(hard_tanh)).first_divergence
    assert _codes(found) == ["activation_setting"]
    value, keras_value = (low, -1.0) if setting == "min_val" else (high, 1.0)
    assert (f"Hardtanh {setting}: PyTorch act (Hardtanh) {setting}={value}, Keras clip "
            f"(Activation(keras.ops.hard_tanh)) has no {setting} setting: it computes "
            f"{setting}={keras_value}") in found.causes[0].text
    assert found.causes[0].detail.endswith(
        f"Activation(lambda t: keras.ops.clip(t, {low}, {high}))")


def test_softplus_relu_and_hardtanh_ported_as_the_causes_say_pass(fw):
    _, nn, keras, _ = fw
    ops = keras.ops
    for torch_activation, keras_activation in [
            (nn.Softplus(beta=2.0), lambda t: ops.softplus(2.0 * t) / 2.0),
            (nn.Softplus(), "softplus"),
            (nn.ReLU(), keras.layers.ReLU(name="relu")),
            (nn.Hardtanh(-1.0, 2.0), lambda t: ops.clip(t, -1.0, 2.0)),
            (nn.Hardtanh(), "hard_tanh")]:
        if not isinstance(keras_activation, keras.layers.Layer):
            keras_activation = keras.layers.Activation(keras_activation, name="act")
        result = _validated(fw, torch_conv_act_conv(torch_activation, first_scale=4.0),
                            keras_conv_act_conv(keras_activation))
        assert result.passed and result.first_divergence is None, result.render()
