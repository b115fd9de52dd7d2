"""A user's pair on volumes (N, C, D, H, W: Conv3d, BatchNorm3d, ConvTranspose3d, MaxPool3d) and a
sequence upsampled by a ConvTranspose1d: each is paired, ported, validated layer by layer and
stepped alike (they were refused: 'cannot port PyTorch modules of these kinds: conv
(Conv3d)', and --input-shape took no C,D,H,W); a Keras port padded or cropped otherwise
than PyTorch is named with its 3-D or 1-D padding and the layer that fixes it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import comparator
from tests import user_layer_models as models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOLUMES = np.random.default_rng(3).standard_normal(
    (4, 2, models.DEPTH, models.SIZE, models.SIZE)).astype(np.float32)
SEQUENCES = np.random.default_rng(5).standard_normal(
    (4, models.CHANNELS, models.STEPS)).astype(np.float32)


def _ported(torch_model, keras_model):
    comparator.port_weights(torch_model, keras_model)
    return torch_model, keras_model


def _volume_pair(**keras_options):
    return _ported(models.seeded(models.VolumeNet()).eval(),
                   models.keras_volume_net(**keras_options))


def _sequence_pair(kernel: int = 4, output_padding: int = 0):
    return _ported(models.seeded(models.UpsamplingSequenceNet(kernel, output_padding)).eval(),
                   models.keras_upsampling_sequence_net(kernel))


def test_a_volume_pair_ports_and_agrees_layer_by_layer():
    torch_model, keras_model = _volume_pair()
    result = comparator.validate_port(torch_model, keras_model, VOLUMES)
    assert result.passed, result.render()
    assert result.pairs == 5
    kernel = keras_model.get_layer("down").get_weights()[0]
    weight = torch_model.down.weight.detach().numpy()  # (out, in / groups, d, h, w)
    assert kernel.shape == (3, 3, 3, 2, 8)
    assert np.array_equal(kernel[1, 0, 2, 1, 5], weight[5, 1, 1, 0, 2])
    up = keras_model.get_layer("up").get_weights()[0]  # (d, h, w, out, in)
    assert np.array_equal(up[3, 2, 1, 0, 7], torch_model.up.weight.detach().numpy()[7, 0, 3, 2, 1])


def test_keras_same_padding_on_a_strided_3d_conv_is_named_with_every_side():
    torch_model, keras_model = _volume_pair(same_padding=True)
    found = comparator.validate_port(torch_model, keras_model, VOLUMES,
                                     modes=("inference",)).first_divergence
    assert (found.torch_module, found.keras_layer) == ("down", "down")
    assert [cause.code for cause in found.causes] == ["padding"]
    text = found.causes[0].text
    assert "PyTorch pads (front 1, back 1, top 1, bottom 1, left 1, right 1)" in text
    assert "Keras (front 0, back 1, top 0, bottom 1, left 0, right 1)" in text
    assert "ZeroPadding3D" in found.causes[0].detail


@pytest.mark.parametrize("layer", ["down", "up"])
def test_a_3d_kernel_reshaped_instead_of_transposed_is_named(layer):
    torch_model, keras_model = _volume_pair()
    target = keras_model.get_layer(layer)
    kernel, bias = target.get_weights()
    weight = getattr(torch_model, layer).weight.detach().numpy()
    target.set_weights([weight.reshape(kernel.shape), bias])
    found = comparator.validate_port(torch_model, keras_model, VOLUMES, gradients=False,
                                     train_step=False).first_divergence
    assert (found.torch_module, found.keras_layer) == (layer, layer)
    assert [cause.code for cause in found.causes] == ["kernel_layout"]
    assert "reshaped to Keras's shape, not transposed" in found.causes[0].text
    assert "kernel.transpose(2, 3, 4, 1, 0)" in found.causes[0].detail


def test_a_3d_kernel_with_its_channels_swapped_is_named():
    from comparator.analysis.kernel_layout import diagnose_kernel

    weight = np.random.default_rng(1).standard_normal((4, 4, 3, 3, 3)).astype(np.float32)
    mistake = diagnose_kernel("conv3d", weight, weight.transpose(1, 0, 2, 3, 4))
    assert mistake is not None and mistake.code == "channels_swapped"


@pytest.mark.parametrize("same_padding", [True, False])
def test_a_3d_max_pooling_padded_as_same_is_named_and_its_fix_passes(same_padding):
    result = models.ported_and_validated(models.PooledVolumeNet(),
                                         models.keras_pooled_volume_net(same_padding), VOLUMES)
    if not same_padding:
        assert result.passed, result.render()
        return
    found = result.first_divergence
    assert (found.torch_module, found.keras_layer) == ("conv2", "conv2")
    assert [cause.code for cause in found.causes] == ["pool_padding"]
    assert "ZeroPadding3D(1)" in found.causes[0].detail


@pytest.mark.parametrize("mode", ["nearest", "trilinear"])
def test_a_volume_upsampled_otherwise_than_keras_repeats_is_named(mode):
    """UpSampling3D repeats each value, as mode='nearest' does (they pass); 'trilinear'
    interpolates, which no Keras layer does."""
    result = models.ported_and_validated(models.UpsampledVolumeNet(mode),
                                         models.keras_upsampled_volume_net(), VOLUMES)
    if mode == "nearest":
        assert result.passed, result.render()
        return
    found = result.first_divergence
    assert (found.torch_module, found.keras_layer) == ("conv2", "conv2")
    assert [cause.code for cause in found.causes] == ["upsample_interpolation"]
    assert "no Keras layer upsamples a volume with mode='trilinear'" in found.causes[0].detail


def test_the_comparison_steps_a_volume_pair_alike():
    """Weights agree after one step; the BatchNorm3d running variance differs only as
    PyTorch's unbiased update against Keras's biased one, over 256 values per channel."""
    report = comparator.compare_pair(models.seeded(models.VolumeNet()).eval(),
                                     models.keras_volume_net(), VOLUMES,
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    assert report.checks[0].passed and report.checks[0].value < 1e-5
    assert report.settings["pair"]["pairing"] == {"paired_layers": 5}
    assert report.settings["inputs"]["shape"] == [4, 2, models.DEPTH, models.SIZE,
                                                          models.SIZE]
    (trained,) = report.equivalences
    assert trained.max_weight_diff < 1e-5
    assert [cause["cause"] for cause in trained.causes] == ["bn_variance_bias"]


def test_a_transposed_1d_conv_ports_steps_and_agrees():
    torch_model, keras_model = _sequence_pair()
    result = comparator.validate_port(torch_model, keras_model, SEQUENCES)
    assert result.passed, result.render()
    assert result.pairs == 3
    report = comparator.compare_pair(models.seeded(models.UpsamplingSequenceNet()).eval(),
                                     models.keras_upsampling_sequence_net(), SEQUENCES,
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    (trained,) = report.equivalences
    assert trained.equivalent and trained.max_weight_diff < 1e-5


def test_a_transposed_1d_conv_cropped_otherwise_is_named():
    """PyTorch's kernel 3, stride 2, padding 1, output_padding 1 crops (1, 0) of the full
    output; Keras's 'same' crops kernel - stride, (0, 1)."""
    torch_model, keras_model = _sequence_pair(kernel=3, output_padding=1)
    found = comparator.validate_port(torch_model, keras_model, SEQUENCES,
                                     modes=("inference",)).first_divergence
    assert (found.torch_module, found.keras_layer) == ("up", "up")
    assert [cause.code for cause in found.causes] == ["transposed_cropping"]
    assert "Cropping1D" in found.causes[0].detail


def test_compare_takes_a_volume_shape_on_the_command_line(tmp_path):
    report_path = tmp_path / "report.json"
    models_file = os.path.join("tests", "user_layer_models.py")
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "compare.py"),
         "--pytorch", f"{models_file}:VolumeNet", "--keras", f"{models_file}:keras_volume_net",
         "--port-weights", "pytorch-to-keras", "--input-shape", f"2,{models.DEPTH},8,8",
         "--batch-size", "4", "--recipes", "pytorch:train,keras:train", "--no-onnx",
         "--json", str(report_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    assert report["settings"]["inputs"]["shape"] == [4, 2, models.DEPTH, 8, 8]
    assert report["settings"]["inputs"]["keras_layout"] == "channels_last"
    assert all(check["passed"] for check in report["checks"])
