"""A user's pair with other normalisations than BatchNorm and inputs that are not RGB
images: both are paired layer by layer, compared, and a slip in their settings is named."""

import os

import numpy as np
import pytest

import comparator
from tests import user_layer_models as models

GRAY = np.random.default_rng(0).standard_normal((4, 1, models.SIZE, models.SIZE)).astype(
    np.float32)
VECTORS = np.random.default_rng(1).standard_normal((4, models.FEATURES)).astype(np.float32)


def test_a_one_channel_group_norm_pair_is_paired_and_compared():
    """A batch of one-channel images was refused ('expected a batch of shape (N, 3, H, W)');
    GroupNorm had no pairing ('PyTorch gn (GroupNorm) meets Keras gn ...')."""
    report = comparator.compare_pair(
        models.seeded(models.GroupNormNet()), models.keras_group_norm_net(), GRAY,
        port_weights="pytorch-to-keras",
        recipes=("pytorch:train", "keras:train", "pytorch:requires_grad", "keras:bn_trainable"))
    assert report.checks[0].passed and report.checks[0].value < 1e-5
    assert report.settings["pair"]["pairing"] == {"paired_layers": 3}
    assert report.settings["inputs"]["shape"] == [4, 1, models.SIZE, models.SIZE]
    same = {(e.a, e.b): e for e in report.equivalences}
    trained = same[("keras:train", "pytorch:train")]
    assert trained.equivalent and trained.max_weight_diff < 1e-5
    assert "first_divergence" not in report.settings["pair"]


@pytest.mark.parametrize("rms", [False, True])
def test_layer_norm_and_rms_norm_ports_agree_layer_by_layer(rms):
    torch_model = models.seeded(models.LayerNormMLP(rms=rms))
    keras_model = models.keras_layer_norm_mlp(epsilon=1.1920929e-07 if rms else 1e-5, rms=rms)
    comparator.port_weights(torch_model, keras_model)
    result = comparator.validate_port(torch_model, keras_model, VECTORS)
    assert result.passed, result.render()
    assert result.pairs == 3
    norm = keras_model.get_layer("norm").get_weights()
    assert np.array_equal(norm[0], torch_model.norm.weight.detach().numpy())


@pytest.mark.parametrize("keras_model, text", [
    (lambda: models.keras_layer_norm_mlp(epsilon=None),
     "LayerNorm epsilon: PyTorch 1e-05, Keras 0.001"),
    (lambda: models.keras_group_norm_net(groups=2), "GroupNorm groups: PyTorch 4, Keras 2"),
])
def test_a_normalisation_slip_is_named(keras_model, text):
    torch_model = (models.seeded(models.LayerNormMLP()) if "LayerNorm" in text
                   else models.seeded(models.GroupNormNet()))
    x = VECTORS if "LayerNorm" in text else GRAY
    keras_model = keras_model()
    comparator.port_weights(torch_model, keras_model)
    finding = comparator.validate_port(torch_model, keras_model, x, gradients=False,
                                       train_step=False).first_divergence
    assert finding is not None and text in finding.text
    assert finding.seen_in == "inference, isolated"


def test_a_failed_port_check_names_the_first_layer_that_differs():
    """The comparison said only that every loss differed from the start; it now runs the port
    validator on the pair and names the layer and its cause."""
    report = comparator.compare_pair(
        models.seeded(models.LayerNormMLP()), models.keras_layer_norm_mlp(epsilon=None),
        VECTORS, port_weights="pytorch-to-keras", recipes=("pytorch:train", "keras:train"))
    assert not report.checks[0].passed
    found = report.settings["pair"]["first_divergence"]
    assert found["located"] and (found["torch_module"], found["keras_layer"]) == ("norm", "norm")
    assert found["causes"] == ["epsilon"]
    (note,) = report.settings["notes"]
    assert note.startswith("the port check failed: Keras's inference outputs differ from "
                           f"PyTorch's by up to {report.checks[0].value:.3g}")
    assert "LayerNorm epsilon: PyTorch 1e-05, Keras 0.001" in note


SEQUENCES = np.random.default_rng(2).standard_normal(
    (4, models.CHANNELS, models.STEPS)).astype(np.float32)


def test_a_conv1d_pair_on_sequences_is_paired_and_compared():
    """Sequences (N, C, L) were refused: '--input-shape takes C,H,W or F'."""
    report = comparator.compare_pair(
        models.seeded(models.SequenceNet()), models.keras_sequence_net(), SEQUENCES,
        port_weights="pytorch-to-keras", recipes=("pytorch:train", "keras:train"))
    assert report.checks[0].passed and report.checks[0].value < 1e-5
    assert report.settings["pair"]["pairing"] == {"paired_layers": 3}
    (eq,) = report.equivalences
    # The weights after the step agree; BatchNorm's kept variance is the one difference.
    assert eq.max_weight_diff < 1e-5
    assert [c["cause"] for c in eq.causes] == ["bn_variance_bias"]


@pytest.mark.parametrize("plant, text", [
    ("reshaped", "PyTorch's kernel was reshaped to Keras's shape, not transposed"),
    ("flipped", "the kernel is flipped along its length"),
    ("same", "padding: PyTorch pads (left 1, right 1), Keras (left 0, right 1)"),
])
def test_a_conv1d_port_slip_is_named(plant, text):
    torch_model = models.seeded(models.SequenceNet())
    keras_model = models.keras_sequence_net("same" if plant == "same" else "explicit")
    comparator.port_weights(torch_model, keras_model)
    conv = keras_model.get_layer("conv")
    kernel, bias = conv.get_weights()
    if plant == "reshaped":
        kernel = torch_model.conv.weight.detach().numpy().reshape(kernel.shape)
    elif plant == "flipped":
        kernel = kernel[::-1].copy()
    conv.set_weights([kernel, bias])
    finding = comparator.validate_port(torch_model, keras_model, SEQUENCES, gradients=False,
                                       train_step=False).first_divergence
    assert finding is not None and finding.keras_layer == "conv" and text in finding.text


def test_the_batch_and_input_shape_take_sequences():
    from comparator.config.pair import check_x, parse_input_shape
    from comparator.errors import UsageError
    from comparator.inputs.batch import Batch

    assert parse_input_shape("3,32") == (3, 32)
    check_x(SEQUENCES, "inputs")
    keras_x = Batch(x=SEQUENCES, y=np.zeros(4)).x_channels_last
    assert keras_x.shape == (4, models.STEPS, models.CHANNELS)
    assert np.array_equal(keras_x[:, :, 1], SEQUENCES[:, 1, :])
    assert parse_input_shape("1,2,3,4") == (1, 2, 3, 4)  # C,D,H,W: a volume
    with pytest.raises(UsageError, match="C,H,W, C,D,H,W, C,L or F"):
        parse_input_shape("1,2,3,4,5")


def test_a_recurrent_pair_takes_the_batch_as_given():
    """An LSTM takes N,L,F in both frameworks; the Keras side was given N,F,L and the pair
    refused ('expected shape=(None, 32, 3), found shape=(4, 3, 32)')."""
    torch_model = models.seeded(models.RecurrentNet())
    x = np.ascontiguousarray(SEQUENCES.transpose(0, 2, 1))  # N, L, F
    report = comparator.compare_pair(torch_model, models.keras_recurrent_net(torch_model), x,
                                     recipes=("pytorch:train", "keras:train"))
    assert report.settings["inputs"]["keras_layout"] == "as_given"
    assert report.checks[0].passed and report.checks[0].value < 1e-5
    assert report.settings["pair"]["pairing"]["paired_layers"] == 2
    (eq,) = report.equivalences
    assert eq.max_diff > 1e-4  # the same function before the step; after it, apart:
    (cause,) = eq.causes
    assert cause["cause"] == "recurrent_bias_pair" and cause["explains"]
    assert cause["parameters"] == ["lstm.bias_hh_l0"] and cause["value"] < 1e-6
    assert "twice as far" in cause["text"]


def _maps_of_other_channels():
    """PyTorch's map has 2 channels, N,2,H,W; the Keras model's 3, N,H,W,3."""
    import torch

    torch_model = torch.nn.Conv2d(1, 2, 1)
    inputs = models.keras.Input((models.SIZE, models.SIZE, 1))
    keras_model = models.keras.Model(inputs, models.layers.Conv2D(3, 1)(inputs))
    return torch_model, keras_model


def _two_input_keras():
    image, extra = models.keras.Input((models.SIZE, models.SIZE, 1)), models.keras.Input((4,))
    pooled = models.layers.GlobalAveragePooling2D()(image)
    return models.keras.Model([image, extra], models.layers.Concatenate()([pooled, extra]))


@pytest.mark.parametrize("pair, message", [
    (_maps_of_other_channels, r"outputs differ in shape: PyTorch \(4, 2, 8, 8\), Keras "
                              r"\(4, 8, 8, 3\) \(neither the same nor with the channel axis "
                              r"moved last\)"),
    (lambda: (models.GroupNormNet(), _two_input_keras()),
     "the Keras model takes 2 inputs and the batch has 1: give --inputs FILE.npz with x0, "
     "x1, ..."),
])
def test_what_the_comparison_does_not_take_is_said_in_one_line(pair, message):
    from comparator.errors import UsageError

    torch_model, keras_model = pair()
    with pytest.raises(UsageError, match=message) as caught:
        comparator.compare_pair(torch_model, keras_model, GRAY)
    assert "\n" not in str(caught.value)


def test_the_validators_float64_copy_does_not_copy_the_adapter():
    """The located divergence runs the port validator on the adapter's own module, whose
    float64 reference is a copy.deepcopy: a hook that was a bound method took a copy of the
    whole adapter (its states and Keras model) with it."""
    import copy

    from adapters.own_pair.loader import as_pytorch
    from adapters.pytorch.user import PyTorchUserAdapter
    from tests import user_pair_models as residual

    adapter = PyTorchUserAdapter(device="cpu")
    adapter.adopt(as_pytorch(residual.seeded_torch_net()), None, "classify", 0)
    copied = copy.deepcopy(adapter.model)
    hooks = [hook for module in copied.modules()
             for hook in (*module._forward_pre_hooks.values(), *module._forward_hooks.values())]
    assert hooks and not any(hasattr(hook, "__self__") for hook in hooks)


def test_an_attention_pair_runs_with_its_sublayers_weights_kept_apart():
    """Keras's MultiHeadAttention holds four variables named "kernel" (query, key, value,
    output): named by their names alone, they overwrote each other, and loading the initial
    state failed ('weight shape (8, 2, 4) is not compatible with provided weight shape
    (2, 4, 8)'). A square token batch (L == D) fits both layouts; no Conv1d, so as given."""
    torch_model = models.seeded(models.AttentionNet())
    x = np.random.default_rng(3).standard_normal(
        (4, models.TOKENS, models.TOKENS)).astype(np.float32)
    report = comparator.compare_pair(torch_model, models.keras_attention_net(torch_model), x,
                                     recipes=("pytorch:train", "keras:train"))
    assert report.settings["inputs"]["keras_layout"] == "as_given"
    assert report.checks[0].passed and report.checks[0].value < 1e-5
    # paired since: attn (its out_proj with it), norm, fc (tests/test_user_pair_attention.py)
    assert report.settings["pair"]["pairing"] == {"paired_layers": 3}
    (eq,) = report.equivalences
    assert eq.max_diff < 1e-5  # one SGD step of the same function


def test_an_unbuilt_subclassed_recurrent_model_is_built_on_the_batch_as_given():
    """It was built on the channels-last copy (N,F,L) before the layout was read, and then
    failed on the batch as given."""
    x = np.ascontiguousarray(SEQUENCES.transpose(0, 2, 1))
    report = comparator.compare_pair(models.seeded(models.RecurrentNet()),
                                     models.SubclassedRecurrentNet(), x,
                                     recipes=("pytorch:train", "keras:train"))
    assert report.settings["inputs"]["keras_layout"] == "as_given"
    assert not report.checks[0].passed  # its own random weights: another function
    found = report.settings["pair"]["first_divergence"]
    assert found["located"] and found["causes"] == ["recurrent_weights"]
    assert "Keras's kernel is not PyTorch's lstm.weight_ih_l0 ported" in found["text"]


def test_token_ids_are_compared_and_validated_as_integers():
    """Integer inputs were refused ('x is int64; it must be float32'); the port validator
    also moved the channel axis of every 3-D activation, which an Embedding's N,L,F output
    does not have (on 10 tokens: 'output shapes differ: PyTorch emb (4, 10, 8), Keras emb
    (4, 10, 8)')."""
    ids = models.token_ids()
    report = comparator.compare_pair(models.seeded(models.TokenNet()), models.keras_token_net(),
                                     ids, port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    assert report.checks[0].passed and report.settings["pair"]["pairing"] == {
        "paired_layers": 3}
    (eq,) = report.equivalences
    assert eq.equivalent and eq.max_weight_diff < 1e-5
    torch_model, keras_model = models.seeded(models.TokenNet()), models.keras_token_net(None)
    comparator.port_weights(torch_model, keras_model)
    result = comparator.validate_port(torch_model, keras_model, ids)
    assert [c.keras_layer for c in result.pass_result("inference", False).diverging][:1] == [
        "norm"]
    assert "LayerNorm epsilon: PyTorch 1e-05, Keras 0.001" in result.first_divergence.text
    keras_model.get_layer("norm").epsilon = 1e-5
    assert comparator.validate_port(torch_model, keras_model, ids).passed


def test_token_ids_reach_onnx_runtime_as_integers(tmp_path):
    """ONNX Runtime was fed every batch as float32 and refused a graph that takes int64."""
    import subprocess
    import sys

    np.savez(tmp_path / "ids.npz", x=models.token_ids())
    spec = f"{models.__file__}:"
    run = subprocess.run(
        [sys.executable, "scripts/compare.py", "--pytorch", spec + "plain_token_net",
         "--keras", spec + "keras_plain_token_net", "--inputs", str(tmp_path / "ids.npz"),
         "--port-weights", "pytorch-to-keras",
         "--recipes", "pytorch:eval,keras:trainable_false",
         "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "report.json"),
         "--quiet"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert run.returncode == 0, run.stderr
    import json

    report = json.loads((tmp_path / "report.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["referee:onnx_eval_pytorch_graph_vs_pytorch"]["passed"]
    assert checks["referee:onnx_eval_keras_graph_vs_keras"]["passed"]


def test_integer_images_are_refused_not_taken_as_token_ids():
    from comparator.config.pair import check_x
    from comparator.errors import UsageError

    pixels = np.zeros((2, 3, 8, 8), np.uint8)
    with pytest.raises(UsageError, match=r"is uint8 of shape \(2, 3, 8, 8\); integers are "
                                         "taken as token ids, N,L"):
        check_x(pixels, "x")
    check_x(models.token_ids(), "x")


def test_a_gru_pair_needs_no_bias_rerun():
    """Keras's default GRU keeps both biases, as PyTorch's does: ported gate by gate, the
    pair computes the same losses after a step, and no recurrent bias cause is attached."""
    torch_model = models.seeded(models.GatedRecurrentNet())
    x = np.ascontiguousarray(SEQUENCES.transpose(0, 2, 1))
    report = comparator.compare_pair(torch_model, models.keras_gated_recurrent_net(torch_model),
                                     x, recipes=("pytorch:train", "keras:train"))
    assert report.checks[0].passed
    (eq,) = report.equivalences
    assert eq.max_diff < 1e-6 and not eq.causes
