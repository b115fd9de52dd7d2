"""A user's pair with PReLU, a depthwise convolution with a depth multiplier, an InstanceNorm
or a Keras SeparableConv2D: each is paired, ported and compared (they were refused: 'cannot
port PyTorch modules of these kinds: act (PReLU)'); a Keras PReLU that learns a slope per
position is refused in words that say how to share it, an InstanceNorm's slips are named,
and a Keras layer of a kind nothing pairs is named with the kinds that do."""

import re

import numpy as np
import pytest
import torch

import comparator
from adapters.keras.backend import keras
from comparator.errors import UsageError
from comparator.zoo.portmaps import from_keras_layout, to_keras_layout
from tests import user_layer_models as models

IMAGES = np.random.default_rng(3).standard_normal((4, 3, models.SIZE, models.SIZE)).astype(
    np.float32)
VECTORS = np.random.default_rng(4).standard_normal((4, models.FEATURES)).astype(np.float32)
SEQUENCES = np.random.default_rng(5).standard_normal(
    (4, models.CHANNELS, models.STEPS)).astype(np.float32)


def _pair(**keras_options):
    return models.seeded(models.SlopeNet()).eval(), models.keras_slope_net(**keras_options)


def _trained_alike(torch_model, keras_model, x, paired: int) -> None:
    """Ported by the comparison, paired layer for layer, and one train step leaves both
    frameworks' weights equal."""
    report = comparator.compare_pair(torch_model, keras_model, x,
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    assert report.checks[0].passed
    assert report.settings["pair"]["pairing"] == {"paired_layers": paired}
    (trained,) = report.equivalences
    assert trained.equivalent and trained.max_weight_diff < 1e-5


@pytest.mark.parametrize("depthwise", [True, False])
def test_prelu_and_a_depth_multiplier_port_and_agree_layer_by_layer(depthwise):
    torch_model, keras_model = _pair(depthwise=depthwise)
    comparator.port_weights(torch_model, keras_model)
    result = comparator.validate_port(torch_model, keras_model, IMAGES)
    assert result.passed, result.render()
    assert result.pairs == 6
    slopes = keras_model.get_layer("act").get_weights()[0]
    assert slopes.shape == (1, 1, 4)
    assert np.array_equal(slopes.ravel(), torch_model.act.weight.detach().numpy())


def test_the_keras_depthwise_kernel_orders_each_channels_outputs_as_pytorch():
    """Keras's DepthwiseConv2D(depth_multiplier=2) computes output c*2+j from kernel
    [:, :, c, j], as PyTorch's grouped Conv2d does from weight[c*2+j] (measured: equal)."""
    torch_model, keras_model = _pair()
    comparator.port_weights(torch_model, keras_model)
    kernel = keras_model.get_layer("dw").get_weights()[0]
    weight = torch_model.dw.weight.detach().numpy()
    assert kernel.shape == (3, 3, 4, 2)
    assert np.array_equal(kernel[:, :, 1, 0], weight[2, 0])
    assert np.array_equal(kernel[:, :, 1, 1], weight[3, 0])


@pytest.mark.parametrize("kind, shape, keras_shape", [
    ("depthwise:2", (8, 1, 3, 3), (3, 3, 4, 2)), ("prelu:1,1,4", (4,), (1, 1, 4)),
    ("prelu:1,1,1", (1,), (1, 1, 1)), ("depthwise1d:2", (8, 1, 3), (3, 4, 2)),
    ("conv3d", (8, 2, 3, 3, 3), (3, 3, 3, 2, 8)),
    ("conv_transpose3d", (8, 4, 4, 4, 4), (4, 4, 4, 4, 8)),
    ("conv_transpose1d", (4, 6, 3), (3, 6, 4))])
def test_the_new_layouts_go_to_keras_and_back_bit_for_bit(kind, shape, keras_shape):
    array = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    there = to_keras_layout(kind, "m.weight", array)
    assert there.shape == keras_shape
    assert np.array_equal(from_keras_layout(kind, "m.weight", there), array)


def test_the_comparison_pairs_them_and_compares_the_steps_weights():
    torch_model, keras_model = _pair()
    report = comparator.compare_pair(torch_model, keras_model, IMAGES,
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    assert report.checks[0].passed and report.checks[0].value < 1e-5
    assert report.settings["pair"]["pairing"] == {"paired_layers": 6}
    (trained,) = report.equivalences
    assert trained.max_weight_diff < 1e-5
    parameters = sum(p.numel() for p in torch_model.parameters())
    assert [(r.state.trainable_params, r.state.weights_changed) for r in report.runs] == [
        (parameters, True)] * 2


def test_a_keras_model_ported_back_gives_pytorch_its_slopes():
    torch_model, keras_model = _pair()
    keras_model.get_layer("act").set_weights([np.full((1, 1, 4), 0.1, np.float32)])
    comparator.port_weights(torch_model, keras_model, direction="keras_to_torch")
    assert torch.equal(torch_model.act.weight, torch.full((4,), 0.1))


def test_a_prelu_with_a_slope_per_position_is_refused_in_words_that_say_how_to_share_it():
    torch_model, keras_model = _pair(shared=False)
    with pytest.raises(UsageError, match=r"act learns a slope for every position, alpha "
                                         r"\(8, 8, 4\).*shared_axes .*\[1, 2\] where"):
        comparator.port_weights(torch_model, keras_model)
    report = comparator.compare_pair(torch_model, keras_model, IMAGES,
                                     recipes=("pytorch:train", "keras:train"))
    pairing = report.settings["pair"]["pairing"]
    assert pairing["paired_layers"] == 0
    assert "act learns a slope for every position" in pairing["reason"]


def test_an_instance_norm_pairs_with_a_group_per_channel_and_steps_alike():
    """InstanceNorm2d(affine=True) was 'other' ('cannot port PyTorch modules of these
    kinds'); Keras's GroupNormalization(groups=-1) computes it (measured: 4.8e-7 apart)."""
    torch_model = models.seeded(models.InstanceNormNet()).eval()
    keras_model = models.keras_instance_norm_net()
    comparator.port_weights(torch_model, keras_model)
    assert comparator.validate_port(torch_model, keras_model, IMAGES).passed
    _trained_alike(models.seeded(models.InstanceNormNet()).eval(),
                   models.keras_instance_norm_net(), IMAGES, paired=3)


@pytest.mark.parametrize("keras_options, text", [
    ({"groups": 2}, "InstanceNorm groups: PyTorch 4 (one per channel: "
                    "GroupNormalization(groups=-1)), Keras 2"),
    ({"epsilon": None}, "InstanceNorm epsilon: PyTorch 1e-05, Keras 0.001")])
def test_an_instance_norm_slip_is_named(keras_options, text):
    torch_model = models.seeded(models.InstanceNormNet()).eval()
    keras_model = models.keras_instance_norm_net(**keras_options)
    comparator.port_weights(torch_model, keras_model)
    # Faint images: variances near epsilon, where epsilon changes the function most.
    finding = comparator.validate_port(torch_model, keras_model, IMAGES * 0.02,
                                       gradients=False, train_step=False).first_divergence
    assert finding is not None and text in finding.text
    assert (finding.torch_module, finding.keras_layer) == ("norm", "norm")


def test_an_instance_norm_with_running_statistics_is_refused_by_name():
    """Keras's GroupNormalization keeps none to hold them."""
    with pytest.raises(UsageError, match=r"norm \(InstanceNorm2d, track_running_stats=True: "
                                         r"Keras's GroupNormalization.*keeps no running "
                                         r"statistics\)"):
        comparator.port_weights(models.InstanceNormNet(track_running_stats=True),
                                models.keras_instance_norm_net())


def test_a_separable_conv_is_validated_and_compared_as_its_two_convolutions():
    """A SeparableConv2D is one Keras layer for PyTorch's depthwise and pointwise modules: it
    was 'no Keras layer fits PyTorch depthwise ...: pass mapping=...' in the validator and
    'PyTorch has 4 modules with weights, Keras 3 layers' in the comparison."""
    torch_model = models.seeded(models.SeparableNet()).eval()
    keras_model = models.keras_separable_net()
    result = comparator.validate_port(torch_model, keras_model, IMAGES,
                                      port="pytorch-to-keras")
    assert result.passed, result.render()
    assert result.pairs == 4
    assert any("sep (SeparableConv2D, as DepthwiseConv2D sep.depthwise then Conv2D "
               "sep.pointwise)" in note for note in result.notes)
    depthwise, pointwise, bias = keras_model.get_layer("sep").get_weights()
    assert np.array_equal(depthwise[:, :, :, 0],
                          torch_model.depthwise.weight.detach().numpy()[:, 0].transpose(1, 2, 0))
    assert np.array_equal(pointwise[0, 0], torch_model.pointwise.weight.detach().numpy()[:, :, 0,
                                                                                         0].T)
    assert len(keras_model.weights) == 7  # the parts hold the layer's variables, not copies
    _trained_alike(models.seeded(models.SeparableNet()).eval(), models.keras_separable_net(),
                   IMAGES, paired=4)


def test_inputs_that_do_not_fit_a_traced_model_are_refused_in_one_line():
    """A model with a SeparableConv2D is traced on the inputs: a wrong size was Keras's
    ValueError from that run (validate_port.py: 'internal error', exit 5)."""
    with pytest.raises(UsageError, match=r"inputs of shape \(4, 3, 9, 9\) .* do not fit the "
                                         r"Keras model's input \(None, 8, 8, 3\)"):
        comparator.validate_port(models.SeparableNet(), models.keras_separable_net(),
                                 np.zeros((4, 3, 9, 9), np.float32))


def test_its_parts_compute_the_separable_conv_bit_for_bit():
    """What the validator's parts rest on (tracing.separable_parts), as a user's split port
    too: DepthwiseConv2D(use_bias=False) then a 1x1 Conv2D, given its weights."""
    torch_model = models.seeded(models.SeparableNet()).eval()
    split, separable = models.keras_separable_net(split=True), models.keras_separable_net()
    comparator.port_weights(torch_model, split)
    assert comparator.validate_port(torch_model, split, IMAGES).passed
    for name in ("conv", "fc"):
        separable.get_layer(name).set_weights(split.get_layer(name).get_weights())
    separable.get_layer("sep").set_weights(split.get_layer("depthwise").get_weights()
                                           + split.get_layer("pointwise").get_weights())
    batch = IMAGES.transpose(0, 2, 3, 1)
    assert np.array_equal(np.asarray(separable.predict(batch, verbose=0)),
                          np.asarray(split.predict(batch, verbose=0)))


def test_a_functional_separable_conv_ports_without_inputs_both_ways():
    """Traced on the model's declared input: the parts compute the layer exactly."""
    torch_model = models.seeded(models.SeparableNet()).eval()
    keras_model = models.keras_separable_net()
    comparator.port_weights(torch_model, keras_model)
    assert comparator.validate_port(torch_model, keras_model, IMAGES).passed
    fresh = models.SeparableNet()
    comparator.port_weights(fresh, keras_model, direction="keras_to_torch")
    assert torch.equal(fresh.pointwise.weight, torch_model.pointwise.weight)
    assert torch.equal(fresh.depthwise.weight, torch_model.depthwise.weight)


@pytest.mark.parametrize("separable", [False, True])
def test_a_depthwise_conv1d_pairs_with_keras_depthwise_and_separable_conv1d(separable):
    """A depthwise Conv1d was a 'conv1d' that only Conv1D(groups) could hold; Keras's
    DepthwiseConv1D and SeparableConv1D were of no kind the pairing knew."""
    torch_model = models.seeded(models.DepthwiseSequenceNet()).eval()
    keras_model = models.keras_depthwise_sequence_net(separable=separable)
    result = comparator.validate_port(torch_model, keras_model, SEQUENCES,
                                      port="pytorch-to-keras")
    assert result.passed, result.render()
    assert result.pairs == 4
    _trained_alike(models.seeded(models.DepthwiseSequenceNet()).eval(),
                   models.keras_depthwise_sequence_net(separable=separable), SEQUENCES, paired=4)


def test_a_keras_layer_of_an_unknown_kind_is_named_with_what_would_pair():
    """The validator said 'no Keras layer fits PyTorch fc1 ...: pass mapping=...', which no
    mapping could mend, and the comparison only counted the layers on each side."""
    torch_model, keras_model = models.VectorNet(), models.keras_einsum_net()
    words = (r"Keras layers of kinds the pairing does not know: projection \(EinsumDense\) "
             r"\(it knows Conv1D, .*MultiHeadAttention\)")
    with pytest.raises(UsageError, match=words):
        comparator.validate_port(torch_model, keras_model, VECTORS)
    report = comparator.compare_pair(torch_model, keras_model, VECTORS,
                                     recipes=("pytorch:train", "keras:train"))
    pairing = report.settings["pair"]["pairing"]
    assert pairing["paired_layers"] == 0
    assert pairing["reason"].startswith("PyTorch has 3 modules with weights, Keras 2 layers")
    assert re.search(words, pairing["reason"])


class _BatchStatisticsNet(torch.nn.Module):
    """conv -> BatchNorm without running statistics -> ReLU -> pool -> Linear."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4, track_running_stats=False)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def _keras_conv_net(middle, name: str, bias: bool = True):
    """conv (4 channels, with a bias or not) -> the given layer -> ReLU -> pool -> Dense."""
    layers = keras.layers
    inputs = keras.Input((models.SIZE, models.SIZE, 3))
    x = layers.Conv2D(4, 3, padding="same", use_bias=bias, name="conv")(inputs)
    x = layers.ReLU()(middle(x) if middle else x)
    x = layers.Dense(3, name="fc")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, x, name=name)


def _keras_batch_norm_net():
    return _keras_conv_net(keras.layers.BatchNormalization(epsilon=1e-5, name="bn"),
                           "batch_norm_net")


def test_batchnorm_without_running_statistics_normalises_with_the_batch_in_eval_mode():
    """What the refusal below states, measured: eval mode changes nothing."""
    bn = torch.nn.BatchNorm2d(4, track_running_stats=False).eval()
    x = torch.from_numpy(IMAGES[:, :1].repeat(4, axis=1))
    mean, variance = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), keepdim=True,
                                                           unbiased=False)
    expected = (x - mean) / torch.sqrt(variance + bn.eps)
    assert torch.allclose(bn(x), expected, atol=1e-5)


def test_batchnorm_without_running_statistics_is_refused_with_the_reason():
    """It was 'no Keras layer fits PyTorch bn (BatchNorm2d, weights [(4,), (4,)]) by order and
    shape' in the validator, and 'hold weights of different shapes' in the comparison."""
    words = r"bn \(BatchNorm2d, track_running_stats=False: it normalises with the batch's " \
            r"statistics in eval mode too"
    with pytest.raises(UsageError, match=words):
        comparator.validate_port(models.seeded(_BatchStatisticsNet()).eval(),
                                 _keras_batch_norm_net(), IMAGES)
    report = comparator.compare_pair(models.seeded(_BatchStatisticsNet()).eval(),
                                     _keras_batch_norm_net(), IMAGES,
                                     recipes=("pytorch:train", "keras:train"))
    assert "PyTorch's has track_running_stats=False" in \
        report.settings["pair"]["pairing"]["reason"]


class _BiasNet(torch.nn.Module):
    def __init__(self, bias: bool):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=bias)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def _keras_bias_net(bias: bool):
    return _keras_conv_net(None, "bias_net", bias)


def test_a_bias_on_one_side_only_is_named():
    """Was 'hold weights of different shapes' in the comparison, and 'no Keras layer fits
    ...: pass mapping=...' in the validator."""
    with pytest.raises(UsageError, match="which has no bias where PyTorch's has one: build it "
                                         "with use_bias=True"):
        comparator.validate_port(models.seeded(_BiasNet(True)), _keras_bias_net(False), IMAGES)
    for torch_bias, words in ((True, "Keras conv has no bias (use_bias=False) where PyTorch's "
                                     "has one"),
                              (False, "Keras conv has a bias (use_bias=True) where PyTorch's "
                                      "has none")):
        report = comparator.compare_pair(models.seeded(_BiasNet(torch_bias)).eval(),
                                         _keras_bias_net(not torch_bias), IMAGES,
                                         recipes=("pytorch:train", "keras:train"))
        assert words in report.settings["pair"]["pairing"]["reason"]


class _GroupedNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 8, 3, padding=1, groups=2)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.conv2(torch.relu(self.conv(x))).mean((2, 3)))


def _keras_ungrouped_net():
    """_GroupedNet's layers with conv2 in one group where PyTorch's has two (the pairing
    refuses it before anything runs)."""
    return _keras_conv_net(lambda x: keras.layers.Conv2D(8, 3, padding="same", name="conv2")(
        keras.layers.ReLU()(x)), "ungrouped_net")


def test_convolutions_grouped_otherwise_are_named():
    """Was '... pass mapping=...' in the validator and 'different shapes' in the comparison."""
    with pytest.raises(UsageError, match=r"conv2 \(Conv2d groups=2, .*whose kernel takes 4 "
                                         r"input channels per group where PyTorch's takes 2"):
        comparator.validate_port(models.seeded(_GroupedNet()), _keras_ungrouped_net(), IMAGES)
    report = comparator.compare_pair(models.seeded(_GroupedNet()).eval(),
                                     _keras_ungrouped_net(), IMAGES,
                                     recipes=("pytorch:train", "keras:train"))
    assert "PyTorch's has groups=2, Keras conv2 groups=1" in \
        report.settings["pair"]["pairing"]["reason"]
