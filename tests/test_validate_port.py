"""Layer-by-layer port validation: user models paired by order and shape or by mapping,
isolation finding one corrupted layer, causes, gradients, porting both ways, bad input,
and the zoo's naive ports through the command line's library call."""

import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from comparator.errors import UsageError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "validate_port.py")
INFERENCE_ONLY = dict(modes=("inference",), gradients=False)


@pytest.fixture(scope="module")
def fw():
    import torch
    from torch import nn

    import adapters.port_validation.validator as layerwise
    from adapters.keras.backend import keras

    return torch, nn, keras, layerwise


def _torch_small(fw, seed=0):
    """conv-BN-ReLU, a strided depthwise conv, BN, ReLU, flatten, dense: every layout kind."""
    torch, nn, _, _ = fw
    import torch.nn.functional as F

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(4)
            self.dw = nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, bias=False)
            self.bn2 = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4 * 4 * 4, 5)

        def forward(self, x):
            x = F.relu(self.bn(self.conv(x)))
            x = F.relu(self.bn2(self.dw(x)))
            return self.fc(torch.flatten(x, 1))

    torch.manual_seed(seed)
    model = Small()
    with torch.no_grad():
        for bn in (model.bn, model.bn2):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.1)
            bn.running_mean.normal_(0, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _keras_small(fw, eps=1e-5, same_padding=False, filters=4):
    _, _, keras, _ = fw
    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = layers.ReLU()(layers.BatchNormalization(epsilon=eps, momentum=0.9, name="bn")(x))
    if not same_padding:
        x = layers.ZeroPadding2D(1)(x)
    x = layers.DepthwiseConv2D(3, strides=2, use_bias=False, name="dw",
                               padding="same" if same_padding else "valid")(x)
    x = layers.ReLU()(layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="bn2")(x))
    x = layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(5, name="fc")(x))


def _inputs(n=2, size=8):
    return np.random.default_rng(1).normal(size=(n, 3, size, size)).astype(np.float32)


def _state(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


# ----- agreement and porting --------------------------------------------------------------


def test_ported_user_models_agree_everywhere_by_order_and_shape(fw):
    _, _, _, layerwise = fw
    torch_model, keras_model = _torch_small(fw), _keras_small(fw)
    pairs = layerwise.port_weights(torch_model, keras_model)
    # The dense layer after Keras's Flatten gets its rows permuted automatically.
    assert {p.torch_module: p.kind for p in pairs}["fc"] == "flatten_dense:4,4,4"
    assert {p.torch_module: p.kind for p in pairs}["dw"] == "depthwise"
    result = layerwise.validate_port(torch_model, keras_model, _inputs())
    assert result.passed, result.render()
    assert [(p.mode, p.isolated) for p in result.passes] == [
        ("inference", False), ("inference", True), ("training", False), ("training", True)]
    assert result.pairing == "order and shape" and result.pairs == 5
    assert len(result.gradients) == 8 and not result.gradient_divergences
    assert result.to_dict()["schema"] == "xframe-compare/port-validation/1"
    # The models keep their state: validation ran training mode and a backward pass.
    assert not torch_model.training


def test_round_trips_return_the_arrays_bit_for_bit(fw):
    torch, _, _, layerwise = fw
    torch_model, keras_model = _torch_small(fw), _keras_small(fw)
    original = _state(torch_model)
    layerwise.port_weights(torch_model, keras_model)
    fresh = _torch_small(fw, seed=7)
    layerwise.port_weights(fresh, keras_model, direction="keras_to_torch")
    back = _state(fresh)
    assert set(back) == set(original)
    assert all(np.array_equal(back[k], original[k]) for k in original)
    # And the other way: Keras arrays through PyTorch back into another Keras model.
    keras_weights = [w.copy() for w in keras_model.get_weights()]
    other = _keras_small(fw)
    layerwise.port_weights(fresh, other)
    assert all(np.array_equal(a, b) for a, b in zip(other.get_weights(), keras_weights))


def test_gradients_of_the_tiny_cnn_agree(fw):
    from comparator import validate_model

    result = validate_model("tiny_cnn", image_size=16, batch_size=2)
    assert result.passed, result.render()
    grads = {g.name: g for g in result.gradients}
    assert len(grads) == 11  # 3 convs, 3 BatchNorm (gamma, beta), classifier (w, b)
    assert all(g.metrics.cosine > 0.99999 and g.metrics.max_rel < 1e-4
               for g in grads.values()), result.render()


# ----- finding the layer that differs -----------------------------------------------------


def test_isolation_finds_a_single_corrupted_layer(fw):
    _, _, keras, layerwise = fw
    from adapters.keras.models import tiny_cnn
    from adapters.pytorch.models import TinyCNN
    from comparator.zoo import get_spec

    import torch

    torch.manual_seed(0)
    torch_model = TinyCNN().eval()
    keras_model = tiny_cnn(get_spec("tiny_cnn"), 16, include_top=True)
    layerwise.port_weights(torch_model, keras_model)
    layer = keras_model.get_layer("conv2")
    kernel = layer.get_weights()[0]
    kernel[..., 3] *= 1.01  # one output channel off by 1%
    layer.set_weights([kernel])
    result = layerwise.validate_port(torch_model, keras_model, _inputs(size=16),
                                     gradients=False)
    isolated = result.pass_result("inference", isolated=True)
    forward = result.pass_result("inference", isolated=False)
    assert [c.keras_layer for c in isolated.diverging] == ["conv2"]
    assert [c.code for c in isolated.first_divergence.causes] == ["weights"]
    # In the forward pass the error reaches every later layer, attributed upstream.
    assert [c.keras_layer for c in forward.diverging][:3] == ["conv2", "bn2", "conv3"]
    assert forward.diverging[1].causes[0].code == "upstream"
    finding = result.first_divergence
    assert (finding.keras_layer, finding.torch_module) == ("conv2", "conv2")
    assert "weights differ" in result.render()


def test_causes_epsilon_padding_flatten_order_and_frozen_batchnorm(fw):
    _, _, _, layerwise = fw
    x = _inputs()

    def first(keras_model, naive=False, **options):
        torch_model = _torch_small(fw)
        layerwise.port_weights(torch_model, keras_model, naive=naive)
        result = layerwise.validate_port(torch_model, keras_model, x, **options)
        return result.first_divergence

    found = first(_keras_small(fw, eps=0.1), **INFERENCE_ONLY)
    assert found.keras_layer == "bn" and found.causes[0].code == "epsilon"
    found = first(_keras_small(fw, same_padding=True), **INFERENCE_ONLY)
    assert found.keras_layer == "dw" and found.causes[0].code == "padding"
    assert "top 0, bottom 1" in found.text
    found = first(_keras_small(fw), naive=True, **INFERENCE_ONLY)
    assert found.keras_layer == "fc" and found.causes[0].code == "flatten_order"
    frozen = _keras_small(fw)
    frozen.get_layer("bn2").trainable = False
    found = first(frozen, modes=("training",))
    assert found.keras_layer == "bn2" and found.causes[0].code == "frozen_batchnorm"


def test_naive_resnet50_parts_at_the_first_strided_block(fw):
    from comparator import validate_model

    result = validate_model("resnet50", image_size=32, naive=True, **INFERENCE_ONLY)
    finding = result.first_divergence
    assert (finding.torch_module, finding.keras_layer) == ("layer2.0.conv1",
                                                          "conv3_block1_1_conv")
    assert finding.causes[0].code == "stride_placement"
    forward = result.pass_result("inference", isolated=False)
    # The stem and the whole first stage (stride 1) agree; the output does not.
    clean = [c.keras_layer for c in forward.layers[:forward.layers.index(
        forward.first_divergence)]]
    assert clean[:2] == ["conv1_conv", "conv1_bn"] and "conv2_block3_3_bn" in clean
    assert forward.output_diverges


def test_naive_mobilenet_v2_parts_at_the_asymmetric_padding(fw):
    from comparator import validate_model

    result = validate_model("mobilenet_v2", image_size=32, naive=True, **INFERENCE_ONLY)
    assert result.first_divergence.keras_layer == "Conv1"
    assert result.first_divergence.causes[0].code == "padding"
    isolated = result.pass_result("inference", isolated=True)
    assert {c.code for c in isolated.layers[1].causes} == {"epsilon"}  # bn_Conv1, 1e-3
    # The zoo keeps torchvision's classifier Dropout and Keras's momentum 0.999 on purpose:
    # both are measured and noted, neither counted.
    assert [d.torch_module for d in result.dropout] == ["classifier.0"]
    assert not result.dropout_divergences and not result.statistics_divergences
    assert any(n.startswith("Dropout differs in 1 of 1 pairs") for n in result.notes)
    assert ("dropout: 1/1 Dropout layers differ (paired in the order they run), 1 of them as "
            "the zoo entry states: not counted as a divergence") in result.render()
    assert any("Keras 0.001 in PyTorch's convention" in n for n in result.notes)


# ----- bad input ----------------------------------------------------------------------------


def test_a_shape_mismatch_names_both_layers_and_shapes(fw):
    _, _, _, layerwise = fw
    mapping = {"conv": "conv", "bn": "bn", "dw": "dw", "bn2": "bn2", "fc": "fc"}
    with pytest.raises(UsageError) as err:
        layerwise.validate_port(_torch_small(fw), _keras_small(fw, filters=6), _inputs(),
                                mapping=mapping)
    assert "PyTorch conv" in str(err.value) and "Keras conv" in str(err.value)
    assert "(4, 3, 3, 3)" in str(err.value) and "(6, 3, 3, 3)" in str(err.value)
    with pytest.raises(UsageError, match="no Keras layer fits PyTorch conv"):
        layerwise.port_weights(_torch_small(fw), _keras_small(fw, filters=6))


def test_a_mapping_that_misses_layers_lists_them(fw):
    _, _, _, layerwise = fw
    with pytest.raises(UsageError) as err:
        layerwise.validate_port(_torch_small(fw), _keras_small(fw), _inputs(),
                                mapping={"conv": "conv", "bn": "bn", "dw": "dw"})
    message = str(err.value)
    assert "leaves out" in message and "PyTorch bn2, fc" in message and "Keras bn2, fc" in message


def test_untraceable_models_and_wrong_inputs_get_clear_messages(fw):
    torch, nn, keras, layerwise = fw

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 5)

        def forward(self, x):
            return self.fc(self.fc(x))

    inputs = keras.Input((5,))
    plain = keras.Model(inputs, keras.layers.Dense(5, name="fc")(inputs))
    layerwise.port_weights(Twice(), plain)
    with pytest.raises(UsageError, match="cannot trace PyTorch module fc: it ran 2 times"):
        layerwise.validate_port(Twice(), plain, np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(UsageError, match=r"do not fit the Keras model's input"):
        layerwise.validate_port(_torch_small(fw), _keras_small(fw), _inputs(size=10))


def test_a_sequential_model_is_traced_through_its_graph(fw):
    torch, nn, keras, layerwise = fw
    torch.manual_seed(0)
    torch_model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)).eval()
    layers = keras.layers
    sequential = keras.Sequential([keras.Input((6,)), layers.Dense(4, activation="relu"),
                                   layers.Dense(3)])
    pairs = layerwise.port_weights(torch_model, sequential)
    assert [p.torch_module for p in pairs] == ["0", "2"]
    x = np.random.default_rng(2).normal(size=(3, 6)).astype(np.float32)
    result = layerwise.validate_port(torch_model, sequential, x)
    assert result.passed and result.pairs == 2, result.render()
    # validate_port builds a Sequential model without an input on the inputs given; a port
    # has no inputs to build it on.
    unbuilt = keras.Sequential([layers.Dense(4, activation="relu"), layers.Dense(3)])
    with pytest.raises(UsageError, match="Sequential model .* has no input yet"):
        layerwise.port_weights(torch_model, unbuilt)
    layerwise.validate_port(torch_model, unbuilt, x)
    layerwise.port_weights(torch_model, unbuilt)
    assert layerwise.validate_port(torch_model, unbuilt, x).passed


def _script(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


@pytest.mark.parametrize("args,message", [
    (("nosuch",), "unknown model 'nosuch'"),
    (("densenet121", "--naive"), "its Keras model already is keras.applications' DenseNet121;"),
    (("tiny_cnn", "--naive"), "its Keras model is this project's own (adapters/keras/models.py)"),
    (("vgg16", "--naive", "--image-size", "64"), "only takes 224 px"),
    (("resnet50", "--modes", "sideways"), "unknown mode sideways"),
    (("resnet50", "--image-size", "16"), "too small"),
])
def test_script_refuses_bad_input_with_one_line(args, message):
    done = _script(*args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_script_validates_a_zoo_model(tmp_path):
    out = tmp_path / "result.json"
    done = _script("tiny_cnn", "--image-size", "16", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "every layer agrees" in done.stdout
    import json

    data = json.loads(out.read_text())
    assert data["passed"] is True and data["first_divergence"] is None
