"""validate_port on a user's own pair (tests/user_port_models.py: a residual block,
BatchNorm, Dropout; not in the zoo) with planted porting mistakes: each is located and
named, the training side included."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from tests import user_port_models as pair  # noqa: E402

FAST = dict(modes=("inference",), gradients=False, reference64=False)


@pytest.fixture(scope="module")
def validator():
    import adapters.port_validation.validator as validator

    return validator


def _inputs(n=2):
    return np.random.default_rng(1).normal(size=(n, 3, pair.SIZE, pair.SIZE)).astype(np.float32)


def _validate(validator, keras_model, plant=None, **options):
    torch_model = pair.torch_net()
    validator.port_weights(torch_model, keras_model)
    if plant is not None:
        plant(keras_model)
    return validator.validate_port(torch_model, keras_model, _inputs(), **options)


def test_the_correct_port_agrees_in_training_too(validator):
    result = _validate(validator, pair.keras_net())
    assert result.passed, result.render()
    assert [s.keras_layer for s in result.statistics] == ["bn", "bn1", "bn2"]
    assert all(not s.diverges for s in result.statistics)
    # Read off the step: PyTorch keeps the unbiased batch variance, Keras the biased one;
    # with 2 x 8 x 8 = 128 values per channel that alone moves them apart.
    first = result.statistics[0]
    assert (first.torch_variance, first.keras_variance) == ("unbiased", "biased")
    assert first.values_per_channel == 128 and first.kept_variance_rel > 1e-4
    assert (first.torch_momentum, first.keras_momentum) == pytest.approx((0.1, 0.1))
    assert [(d.torch_module, d.keras_layer, d.torch_rate, d.keras_rate)
            for d in result.dropout] == [("drop", "drop", 0.25, 0.25)]
    data = result.to_dict()
    assert data["statistics"][0]["torch_variance"] == "unbiased" and data["passed"] is True
    assert "every layer agrees" in result.render()


def test_a_momentum_left_at_keras_default_is_named_with_both_momenta(validator):
    result = _validate(validator, pair.keras_net(momentum=0.99, wrong_bn="bn1"))
    # Inference and the training-mode passes agree: only the running statistics do not.
    assert not any(p.diverging for p in result.passes) and not result.gradient_divergences
    assert not result.passed
    assert [s.keras_layer for s in result.statistics_divergences] == ["bn1"]
    finding = result.first_divergence
    assert (finding.torch_module, finding.keras_layer) == ("bn1", "bn1")
    assert finding.causes[0].code == "momentum"
    assert "PyTorch bn1 0.1, Keras bn1 0.01 (PyTorch's convention" in finding.text
    assert "Keras states momentum=0.99" in finding.text
    assert finding.text in result.render()


def test_a_wrong_epsilon_is_named_with_both_values(validator):
    result = _validate(validator, pair.keras_net(epsilon=1e-3, wrong_bn="bn2"), **FAST)
    finding = result.first_divergence
    assert finding.keras_layer == "bn2" and finding.causes[0].code == "epsilon"
    assert "PyTorch 1e-05, Keras 0.001" in finding.text
    assert not result.statistics_divergences  # epsilon does not enter the statistics


def test_a_wrong_dropout_rate_is_named(validator):
    result = _validate(validator, pair.keras_net(dropout=0.5), **FAST)
    assert not any(p.diverging for p in result.passes) and not result.passed
    finding = result.first_divergence
    assert finding.causes[0].code == "dropout" and finding.seen_in == "Dropout layers"
    assert "PyTorch drop p=0.25, Keras drop rate=0.5" in finding.text


def _transpose_all(layer_name):
    def plant(model):
        layer = model.get_layer(layer_name)
        kernel = layer.get_weights()[0]
        # The classic hand port: PyTorch's (out, in, kh, kw) reversed by .T into
        # (kw, kh, in, out) instead of transpose(2, 3, 1, 0) into (kh, kw, in, out).
        canonical = kernel.transpose(3, 2, 0, 1)
        layer.set_weights([np.ascontiguousarray(canonical.T)])
    return plant


@pytest.mark.parametrize("mistake,code,words", [
    ("spatial", "kernel_layout", "spatial axes are swapped"),
    ("channels", "kernel_layout", "input and output channels are swapped"),
    ("flipped", "kernel_layout", "flipped in both spatial axes"),
    ("reshaped", "kernel_layout", "reshaped to Keras's shape, not transposed"),
    ("bn_order", "arrays_swapped", "Keras's running_mean holds PyTorch's running_var"),
])
def test_a_kernel_layout_mistake_is_named(validator, mistake, code, words):
    def plant(model):
        if mistake == "spatial":
            return _transpose_all("conv1")(model)
        if mistake == "bn_order":
            layer = model.get_layer("bn1")
            gamma, beta, mean, var = layer.get_weights()
            return layer.set_weights([gamma, beta, var, mean])
        layer = model.get_layer("conv1")
        kernel = layer.get_weights()[0]  # (kh, kw, in, out)
        canonical = kernel.transpose(3, 2, 0, 1)
        if mistake == "channels":
            wrong = kernel.transpose(0, 1, 3, 2)
        elif mistake == "flipped":
            wrong = kernel[::-1, ::-1]
        else:
            wrong = canonical.reshape(kernel.shape)
        layer.set_weights([np.ascontiguousarray(wrong)])

    result = _validate(validator, pair.keras_net(), plant, **FAST)
    finding = result.first_divergence
    assert finding.keras_layer == ("bn1" if mistake == "bn_order" else "conv1")
    assert finding.causes[0].code == code, finding.text
    assert words in finding.text


def test_a_weight_change_no_layout_explains_stays_generic(validator):
    def plant(model):
        layer = model.get_layer("conv2")
        kernel = layer.get_weights()[0]
        kernel[0, 0, 0, 0] += 0.5
        layer.set_weights([kernel])

    finding = _validate(validator, pair.keras_net(), plant, **FAST).first_divergence
    assert finding.keras_layer == "conv2" and finding.causes[0].code == "weights"


# ----- models given as files and SPECs ------------------------------------------------------

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "user_port_models.py")


def test_specs_and_files_validate_like_objects(validator, tmp_path):
    import torch

    state = tmp_path / "net.pt"
    torch.save(pair.torch_net().state_dict(), state)
    keras_file = tmp_path / "net.keras"
    pair.ported_keras_net().save(keras_file)
    result = validator.validate_port(f"{MODELS}:torch_net", str(keras_file), _inputs(),
                                     pytorch_weights=str(state), **FAST)
    assert result.passed, result.render()
    assert (result.torch_model, result.keras_model) == ("torch_net", "net")
    result = validator.validate_port(pair.torch_net(), f"{MODELS}:ported_keras_net",
                                     _inputs(), **FAST)
    assert result.passed and result.keras_model == "ported_keras_net"


def test_models_it_cannot_trace_are_named_in_one_line(validator, tmp_path):
    import keras
    import torch

    from comparator.errors import UsageError

    onnx_path = tmp_path / "net.onnx"
    onnx_path.write_bytes(b"")
    with pytest.raises(UsageError, match="is an ONNX file: the validator traces"):
        validator.validate_port(pair.torch_net(), str(onnx_path), _inputs())
    program = torch.export.export(pair.torch_net(), (torch.from_numpy(_inputs()),))
    for exported in (program, program.module()):
        with pytest.raises(UsageError, match="it is a torch.export program"):
            validator.validate_port(exported, pair.keras_net(), _inputs())

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3, name="conv")
            self.head = keras.layers.Dense(4, name="head")

        def call(self, x):
            return self.head(keras.ops.mean(self.conv(x), axis=(1, 2)))

    # Built by the validator from the inputs' shape and traced through its call(): its
    # layers are then paired as a functional model's are, and here they do not fit.
    with pytest.raises(UsageError) as err:
        validator.validate_port(pair.torch_net(), Subclassed(), _inputs())
    message = str(err.value)
    assert message.startswith("no Keras layer fits PyTorch stem (Conv2d, weights "
                              "[(6, 3, 3, 3)]) by order and shape; the next unused Keras layer "
                              "is conv (Conv2D") and "\n" not in message
    # port_weights has no inputs to trace on: it names what the model holds.
    with pytest.raises(UsageError) as err:
        validator.port_weights(pair.torch_net(), pair.keras_subclassed_net())
    message = str(err.value)
    assert "(ResidualNet, subclassed)" in message and "(stem, bn, conv1, bn1, conv2, bn2, ...)" \
        in message and "validate_port" in message and "\n" not in message


# ----- the command line -------------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "validate_port.py")


def _script(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_script_validates_a_pair_of_file_py_callables(tmp_path):
    out = tmp_path / "result.json"
    done = _script("--pytorch", "tests/user_port_models.py:torch_net",
                   "--keras", "tests/user_port_models.py:ported_with_keras_momentum",
                   "--input-shape", f"3,{pair.SIZE},{pair.SIZE}", "--batch-size", "3",
                   "--no-float64", "--json", str(out))
    assert done.returncode == 1, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("first diverging layer: PyTorch bn1 <-> Keras bn1 (training step")
    assert "BatchNorm momentum: PyTorch bn1 0.1, Keras bn1 0.01" in last
    import json

    data = json.loads(out.read_text())
    assert data["passed"] is False and data["input_shape"] == [3, 3, pair.SIZE, pair.SIZE]
    assert data["first_divergence"]["causes"][0]["code"] == "momentum"
    assert [s["diverges"] for s in data["statistics"]] == [False, True, False]


def test_script_validates_a_keras_file_against_a_state_dict(tmp_path):
    import torch

    state, keras_file, batch = tmp_path / "net.pth", tmp_path / "net.keras", tmp_path / "x.npz"
    torch.save(pair.torch_net().state_dict(), state)
    model = pair.ported_keras_net()
    _transpose_all("conv2")(model)
    model.save(keras_file)
    np.savez(batch, x=_inputs(n=2))
    done = _script("--pytorch", "tests/user_port_models.py:torch_net", "--pytorch-weights",
                   str(state), "--keras", str(keras_file), "--inputs", str(batch),
                   "--modes", "inference", "--no-gradients", "--no-float64")
    assert done.returncode == 1, done.stderr
    assert ("first diverging layer: PyTorch conv2 <-> Keras conv2 (inference, isolated): the "
            "kernel's spatial axes are swapped") in done.stdout
    assert "PyTorch torch_net vs Keras net" in done.stdout


@pytest.mark.parametrize("args,message", [
    (("tiny_cnn", "--pytorch", "a.py:f"), "--pytorch belong to your own pair"),
    (("--pytorch", "a.py:f"), "your own pair needs --keras SPEC"),
    (("--pytorch", "a.py:f", "--keras", "b.py:g"), "give the batch as --input-shape"),
    (("--pytorch", "a.py:f", "--keras", "b.py:g", "--input-shape", "3,x"),
     "--input-shape takes C,H,W, C,D,H,W, C,L or F"),
    (("--pytorch", "a.py:f", "--keras", "b.py:g", "--input-shape", "3,8,8",
      "--batch-size", "1"), "batch size must be at least 2"),
    (("--pytorch", "a.py:f", "--keras", "b.py:g", "--inputs", "NOX"), "has no array named x"),
    (("--pytorch", "a.py:f", "--keras", "b.py:g", "--inputs", "INT"),
     "x is float64; it must be float32 (or integers: token ids)"),
    (("--pytorch", "tests/user_port_models.py:torch_net", "--keras", "net.onnx",
      "--input-shape", "3,8,8"), "net.onnx is an ONNX file"),
    (("--pytorch", "tests/user_port_models.py:nothing", "--keras", "b.py:g",
      "--input-shape", "3,8,8"), "has no attribute 'nothing'"),
])
def test_script_refuses_a_bad_pair_in_one_line(tmp_path, monkeypatch, capsys, args, message):
    import importlib.util

    np.savez(tmp_path / "nox.npz", y=np.zeros(2))
    np.savez(tmp_path / "int.npz", x=np.zeros((2, 3, 8, 8), dtype=np.float64))
    paths = {"NOX": str(tmp_path / "nox.npz"), "INT": str(tmp_path / "int.npz")}
    spec = importlib.util.spec_from_file_location("validate_port_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.chdir(ROOT)
    code = script.main([paths.get(a, a) for a in args])
    err = capsys.readouterr()
    assert code == 2 and message in err.err, err.err
    assert len(err.err.strip().splitlines()) == 1 and err.out == ""


# ----- assert_port ----------------------------------------------------------------------------


def test_assert_port_passes_a_good_port_and_names_the_layer_of_a_bad_one():
    import subprocess
    import sys

    # Importing comparator.testing loads no framework.
    done = subprocess.run([sys.executable, "-c", "import sys, comparator.testing; "
                           "print(sorted({'torch', 'keras'} & set(sys.modules)))"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
    from comparator.testing import assert_port

    result = assert_port(pair.torch_net(), pair.ported_keras_net(), _inputs(), **FAST)
    assert result.passed
    with pytest.raises(AssertionError) as err:
        assert_port(pair.torch_net(), pair.ported_with_keras_momentum(), _inputs(), **FAST)
    first = str(err.value).splitlines()[0]
    assert first.startswith("first diverging layer: PyTorch bn1 <-> Keras bn1")
    assert "momentum" in first
    # Without the training step the same port passes: inference cannot tell.
    assert assert_port(pair.torch_net(), pair.ported_with_keras_momentum(), _inputs(),
                       train_step=False, **FAST).passed


def test_a_frozen_keras_batchnorm_and_a_cumulative_pytorch_momentum_are_named(validator):
    def freeze(model):
        model.get_layer("bn2").trainable = False

    result = _validate(validator, pair.keras_net(), freeze, **FAST)
    assert [(s.keras_layer, s.cause, s.keras_variance) for s in result.statistics_divergences] \
        == [("bn2", "frozen_batchnorm", "not updated")]
    torch_model, keras_model = pair.torch_net(), pair.keras_net()
    validator.port_weights(torch_model, keras_model)
    torch_model.bn.momentum = None
    torch_model.bn.num_batches_tracked.fill_(3)
    result = validator.validate_port(torch_model, keras_model, _inputs(), **FAST)
    (found,) = result.statistics_divergences
    assert found.keras_layer == "bn" and found.cause == "momentum"
    assert "PyTorch bn 0.25 (momentum=None: a cumulative average" in found.text


def test_a_pytorch_model_that_is_one_layer_is_ported_and_compared(validator):
    """Was: the validator's port raised Keras's "Layer head weight shape (6, 4) is not
    compatible with provided weight shape (4, 6)", and compare_pair refused "--port-weights
    needs the weighted layers paired, and they are not": the module's own kernel is named
    `weight`, without the `.weight` a submodule's has."""
    import keras

    import comparator

    inputs = keras.Input((pair.CHANNELS,))
    dense = keras.Model(inputs, keras.layers.Dense(pair.CLASSES, name="head")(inputs))
    x = np.random.default_rng(2).normal(size=(4, pair.CHANNELS)).astype(np.float32)
    linear = pair.torch_net().head
    result = validator.validate_port(linear, dense, x, port="pytorch-to-keras", **FAST)
    assert result.passed and result.passes[0].output.max_abs < 1e-6
    np.testing.assert_array_equal(dense.get_layer("head").kernel.numpy(),
                                  linear.weight.detach().numpy().T)
    report = comparator.compare_pair(pair.torch_net().head, dense, x,
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    assert report.checks[0].passed and report.settings["pair"]["pairing"] == {
        "paired_layers": 1}


@pytest.mark.parametrize("channels_first", [False, True])
def test_a_dense_layer_after_a_flatten_is_ported_as_its_rows_are_ordered(validator,
                                                                          channels_first):
    """Keras's Flatten orders a map's values h, w, c; with Permute((3, 1, 2)) before it,
    c, h, w as PyTorch's does, and the kernel is ported transposed only. Was: the rows of a
    permuted model's kernel were reordered as for h, w, c, so the tool's own port failed
    the port check and the validator found "cause unknown" at the dense layer."""
    import keras
    import torch
    from torch import nn

    import comparator

    torch.manual_seed(0)
    torch_model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
                                nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    inputs = keras.Input((pair.SIZE, pair.SIZE, 3))
    x = keras.layers.Conv2D(4, 3, strides=2)(keras.layers.ZeroPadding2D(1)(inputs))
    x = keras.layers.ReLU()(x)
    x = keras.layers.Permute((3, 1, 2))(x) if channels_first else x
    keras_model = keras.Model(inputs, keras.layers.Dense(5, name="fc")(
        keras.layers.Flatten()(x)))
    x = _inputs(n=4)
    result = validator.validate_port(torch_model, keras_model, x[:2], port="pytorch-to-keras",
                                     **FAST)
    assert result.passed, result.render()
    report = comparator.compare_pair(torch_model, keras_model, x,
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    assert report.checks[0].passed, report.checks[0]


def _convnext_like_pair(keras_epsilon=1e-6):
    """A ConvNeXt-style block: PyTorch permutes its map to N, H, W, C for a LayerNorm and two
    Linear layers, and back; Keras runs the same layers on its channels-last map. The stem's
    torchvision LayerNorm2d takes and gives N, C, H, W, permuting inside."""
    import keras
    import torch
    from torch import nn
    from torchvision.models.convnext import LayerNorm2d

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.stem_norm = LayerNorm2d(8, eps=1e-6)
            self.norm = nn.LayerNorm(8, eps=1e-6)
            self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 8)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            x = self.stem_norm(self.conv(x))
            y = self.fc2(nn.functional.gelu(self.fc1(self.norm(x.permute(0, 2, 3, 1)))))
            return self.head((x + y.permute(0, 3, 1, 2)).mean((2, 3)))

    torch.manual_seed(0)
    layers = keras.layers
    inputs = keras.Input((pair.SIZE, pair.SIZE, 3))
    x = layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = layers.LayerNormalization(epsilon=1e-6, name="stem_norm")(x)
    y = layers.LayerNormalization(epsilon=keras_epsilon, name="norm")(x)
    y = layers.Dense(8, name="fc2")(layers.Activation("gelu")(layers.Dense(16, name="fc1")(y)))
    x = layers.GlobalAveragePooling2D()(layers.Add()([x, y]))
    return Block(), keras.Model(inputs, layers.Dense(3, name="head")(x))


def test_layers_on_a_channels_last_map_are_compared_as_they_are(validator):
    """A Linear or LayerNorm acts on its input's last axis, so its activations are laid out
    alike in both frameworks, here on 4-D maps. Was: moved as if channels-first, so the
    correct port diverged at `norm`, "cause unknown". A subclass that permutes inside
    (LayerNorm2d) keeps PyTorch's layout and is moved."""
    torch_model, keras_model = _convnext_like_pair()
    result = validator.validate_port(torch_model, keras_model, _inputs(),
                                     port="pytorch-to-keras")
    assert result.passed, result.render()
    torch_model, keras_model = _convnext_like_pair(keras_epsilon=1e-2)
    found = validator.validate_port(torch_model, keras_model, _inputs(),
                                    port="pytorch-to-keras", **FAST).first_divergence
    assert (found.torch_module, found.keras_layer, found.causes[0].code) == (
        "norm", "norm", "epsilon")


@pytest.mark.parametrize("direction", ["pytorch-to-keras", "keras-to-pytorch"])
def test_a_transposed_convolution_is_paired_and_ported(validator, direction):
    """ConvTranspose2d's (in, out, kh, kw) kernel is Conv2DTranspose's (kh, kw, out, in),
    unflipped. Was: "the pairing knows only Conv1d, Conv2d, ...", so a decoder could be
    neither ported nor compared array by array."""
    import keras
    import torch
    from torch import nn

    import comparator

    torch.manual_seed(0)
    torch_model = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU(),
                                nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1), nn.ReLU(),
                                nn.Conv2d(4, 2, 1))
    layers = keras.layers
    keras_model = keras.Sequential([
        keras.Input((pair.SIZE, pair.SIZE, 3)), layers.ZeroPadding2D(1),
        layers.Conv2D(6, 3, strides=2), layers.ReLU(),
        layers.Conv2DTranspose(4, 4, strides=2, padding="same", name="up"), layers.ReLU(),
        layers.Conv2D(2, 1)])
    result = validator.validate_port(torch_model, keras_model, _inputs(), port=direction,
                                     **FAST)
    assert result.passed and result.pairs == 3, result.render()
    assert [c.kind for c in result.passes[0].layers] == ["conv", "conv_transpose", "conv"]
    report = comparator.compare_pair(torch_model, keras_model, _inputs(4),
                                     port_weights=direction,
                                     recipes=("pytorch:train", "keras:train"))
    assert report.settings["pair"]["pairing"] == {"paired_layers": 3}
    assert all(check.passed for check in report.checks), [
        c.name for c in report.checks if not c.passed]


def test_a_transposed_convolutions_cropping_is_named_and_a_cropping2d_after_it_counts(
        validator):
    """ConvTranspose2d(3, stride=2, padding=1, output_padding=1) crops its full output by 1
    before (top, left) and 0 after; Keras's 'same' by 0 before and 1 after (measured): the
    validator names the cropping. The port Keras can express, 'valid' then Cropping2D, is
    compared after the Cropping2D and agrees. Was: "cause unknown", and the Cropping2D port
    diverged by its output's shape."""
    import keras
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch_model = nn.Sequential(nn.Conv2d(3, 6, 1), nn.ConvTranspose2d(
        6, 4, 3, stride=2, padding=1, output_padding=1), nn.Conv2d(4, 2, 1))
    layers = keras.layers

    def keras_model(*upsampling):
        return keras.Sequential([keras.Input((pair.SIZE, pair.SIZE, 3)), layers.Conv2D(6, 1),
                                 *upsampling, layers.Conv2D(2, 1)])

    same = keras_model(layers.Conv2DTranspose(4, 3, strides=2, padding="same", name="up"))
    found = validator.validate_port(torch_model, same, _inputs(), port="pytorch-to-keras",
                                    **FAST).first_divergence
    assert (found.keras_layer, found.causes[0].code) == ("up", "transposed_cropping")
    assert ("PyTorch crops the transposed conv's full output by (top 1, bottom 0, left 1, "
            "right 0), Keras (top 0, bottom 1, left 0, right 1)") in found.text
    cropped = keras_model(layers.Conv2DTranspose(4, 3, strides=2, name="up"),
                          layers.Cropping2D(((1, 0), (1, 0))))
    result = validator.validate_port(torch_model, cropped, _inputs(), port="pytorch-to-keras")
    assert result.passed, result.render()


def _grouped_pair(channels, out, groups):
    """A 1x1 conv to `channels`, then a 3x3 conv to `out` in `groups` groups, pooled into a
    Linear head, in PyTorch and as Keras's Conv2D(groups=...)."""
    import keras
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch_model = nn.Sequential(nn.Conv2d(3, channels, 1),
                                nn.Conv2d(channels, out, 3, padding=1, groups=groups),
                                nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                nn.Linear(out, 3))
    layers = keras.layers
    keras_model = keras.Sequential([
        keras.Input((pair.SIZE, pair.SIZE, 3)), layers.Conv2D(channels, 1),
        layers.Conv2D(out, 3, padding="same", groups=groups, name="grouped"), layers.ReLU(),
        layers.GlobalAveragePooling2D(), layers.Dense(3)])
    return torch_model, keras_model


def _ported_and_compared(validator, torch_model, keras_model):
    """validate_port after its own port, and compare_pair after compare.py's."""
    import comparator

    result = validator.validate_port(torch_model, keras_model, _inputs(),
                                     port="pytorch-to-keras", **FAST)
    report = comparator.compare_pair(torch_model, keras_model, _inputs(4),
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    return result, report


def test_grouped_convolutions_are_paired_and_ported(validator):
    """A grouped kernel, (out, in / groups, ...), takes the ungrouped one's axes in Keras's
    Conv2D and Conv1D with `groups`. Was: "the pairing knows only Conv1d, Conv2d, depthwise
    Conv2d, ...": ResNeXt-style blocks could not be ported."""
    import keras
    from torch import nn

    result, report = _ported_and_compared(validator, *_grouped_pair(8, 12, groups=4))
    assert result.passed and result.pairs == 3, result.render()
    assert report.settings["pair"]["pairing"] == {"paired_layers": 3}
    assert all(check.passed for check in report.checks)
    layers = keras.layers
    sequences = np.random.default_rng(3).normal(size=(2, 8, 10)).astype(np.float32)
    conv1d = nn.Conv1d(8, 12, 3, padding=1, groups=4)
    inputs = keras.Input((10, 8))
    keras_conv1d = keras.Model(inputs, layers.Conv1D(12, 3, padding="same", groups=4)(inputs))
    assert validator.validate_port(conv1d, keras_conv1d, sequences, port="pytorch-to-keras",
                                   **FAST).passed


def test_a_softmax_fused_into_keras_output_layer_is_named(validator):
    """Each Keras layer is compared after its fused activation, applied to PyTorch's value
    too, so a Dense(activation="softmax") against a PyTorch model that returns logits agreed
    in every layer while the outputs differed. Was: "no single layer diverges, but the
    outputs or gradients do", and compare.py's port check "not located"."""
    import keras
    import torch
    from torch import nn

    import comparator

    def models(torch_softmax):
        torch.manual_seed(0)
        head = [nn.Linear(4, 5)] + ([nn.Softmax(dim=1)] if torch_softmax else [])
        torch_model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), *head)
        layers = keras.layers
        keras_model = keras.Sequential([
            keras.Input((pair.SIZE, pair.SIZE, 3)),
            layers.Conv2D(4, 3, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(), layers.Dense(5, activation="softmax", name="fc")])
        return torch_model, keras_model

    result = validator.validate_port(*models(False), _inputs(), port="pytorch-to-keras",
                                     **FAST)
    found = result.first_divergence
    assert (found.torch_module, found.keras_layer, found.seen_in, found.causes[0].code) == (
        "4", "fc", "inference, output", "output_activation")
    assert result.to_dict()["first_divergence"]["causes"][0]["code"] == "output_activation"
    assert validator.validate_port(*models(True), _inputs(), port="pytorch-to-keras",
                                   **FAST).passed
    report = comparator.compare_pair(*models(False), _inputs(4),
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    located = report.settings["pair"]["first_divergence"]
    assert (located["located"], located["causes"]) == (True, ["output_activation"])
    assert "Keras fc applies softmax inside the layer (activation='softmax')" in located["text"]


def test_a_keras_model_on_pytorchs_layout_is_validated_as_it_is(validator):
    """A Keras model built with data_format="channels_first" takes the batch as PyTorch
    does (compare.py's keras_layout "as_given"): no activation moves its channels. Was:
    "inputs of shape (2, 3, 8, 8) (PyTorch layout, Keras (2, 8, 8, 3)) do not fit the
    Keras model's input (None, 3, 8, 8)"."""
    import keras
    import torch
    from torch import nn

    import comparator

    def models(keras_epsilon=1e-5):
        torch.manual_seed(0)
        torch_model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4),
                                    nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                    nn.Linear(4, 5))
        layers = keras.layers
        keras_model = keras.Sequential([
            keras.Input((3, pair.SIZE, pair.SIZE)),
            layers.Conv2D(4, 3, padding="same", data_format="channels_first"),
            layers.BatchNormalization(axis=1, momentum=0.9, epsilon=keras_epsilon, name="bn"),
            layers.ReLU(), layers.GlobalAveragePooling2D(data_format="channels_first"),
            layers.Dense(5)])
        return torch_model, keras_model

    result = validator.validate_port(*models(), _inputs(), port="pytorch-to-keras")
    assert result.passed, result.render()
    assert "takes PyTorch's layout (3, 8, 8): activations are compared as they are" in \
        result.notes[-1]
    torch_model, keras_model = models(keras_epsilon=0.5)
    report = comparator.compare_pair(torch_model, keras_model, _inputs(4),
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    located = report.settings["pair"]["first_divergence"]
    assert (located["located"], located["keras_layer"], located["causes"]) == (
        True, "bn", ["epsilon"])


@pytest.mark.parametrize("tail", ["keras_softmax_layer", "torch_log_softmax"])
def test_what_follows_the_last_paired_layer_is_named_where_only_it_differs(validator, tail):
    """The isolated pass runs Keras's operations after the last paired layer on PyTorch's
    value of it: an output that still differs is made after it. Was: "no single layer
    diverges, but the outputs or gradients do"."""
    import keras
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch_tail = [nn.LogSoftmax(dim=1)] if tail == "torch_log_softmax" else []
    torch_model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5),
                                *torch_tail)
    layers = keras.layers
    keras_tail = [layers.Softmax(name="probabilities")] if tail == "keras_softmax_layer" else []
    keras_model = keras.Sequential([
        keras.Input((pair.SIZE, pair.SIZE, 3)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(), layers.Dense(5, name="fc"), *keras_tail])
    found = validator.validate_port(torch_model, keras_model, _inputs(),
                                    port="pytorch-to-keras", **FAST).first_divergence
    assert (found.torch_module, found.keras_layer, found.seen_in, found.causes[0].code) == (
        "4", "fc", "inference, isolated, output", "after_last_pair")
    keras_side = ("Keras's probabilities" if keras_tail else "Keras, which does nothing there,")
    assert (f"on PyTorch's values of fc, {keras_side} and PyTorch's forward give other "
            "outputs") in found.text


def test_a_depthwise_conv_ported_as_a_grouped_conv2d_is_paired(validator):
    """nn.Conv2d(C, C, groups=C) written as Keras's Conv2D(C, groups=C), as a port that
    mirrors the modules does: a convolution's kernel layout, (kh, kw, 1, C). Was: "no Keras
    layer fits PyTorch ... (Conv2d ...)" in the validator and "different kinds of layer" in
    compare.py, which paired it with DepthwiseConv2D only."""
    result, report = _ported_and_compared(validator, *_grouped_pair(6, 6, groups=6))
    assert result.passed and result.pairs == 3, result.render()
    assert [c.kind for c in result.passes[0].layers] == ["conv", "conv", "dense"]
    assert report.settings["pair"]["pairing"] == {"paired_layers": 3}
    assert all(check.passed for check in report.checks)
