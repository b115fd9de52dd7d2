"""Loading the user's own models from SPECs and files (adapters/own_pair/loader.py)."""

import os

import numpy as np
import pytest
import torch

from adapters.own_pair import loader as user_models
from comparator.errors import UsageError
from tests import user_pair_models as pair
from tests.user_pair_models import keras

MODELS_FILE = os.path.abspath(pair.__file__)
X = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)


def torch_outputs(model):
    with torch.no_grad():
        return model.eval()(torch.from_numpy(X)).numpy()


def keras_outputs(model):
    return keras.ops.convert_to_numpy(model(X.transpose(0, 2, 3, 1), training=False))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The seeded pair saved as a user would: .keras, .weights.h5, .pt, .safetensors, .pt2."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("pair")
    torch_model, keras_model = pair.seeded_torch_net().eval(), pair.ported_keras_net()
    paths = {name: str(folder / name) for name in
             ("net.keras", "net.weights.h5", "net.pt", "net.safetensors", "net.pt2")}
    keras_model.save(paths["net.keras"])
    keras_model.save_weights(paths["net.weights.h5"])
    torch.save(torch_model.state_dict(), paths["net.pt"])
    save_file(torch_model.state_dict(), paths["net.safetensors"])
    torch.export.save(torch.export.export(torch_model, (torch.from_numpy(X),)), paths["net.pt2"])
    return paths, torch_outputs(torch_model)


def test_file_and_module_specs_build_the_models():
    by_file = user_models.load_pytorch(f"{MODELS_FILE}:ResidualNet")
    by_module = user_models.load_keras("tests.user_pair_models:keras_residual_net")
    assert isinstance(by_file.model, torch.nn.Module) and by_file.name == "ResidualNet"
    assert isinstance(by_module.model, keras.Model) and by_module.name == "keras_residual_net"
    assert by_file.inference_only is None


def test_weights_files_are_what_is_loaded(saved):
    paths, expected = saved
    for weights in (paths["net.pt"], paths["net.safetensors"]):
        loaded = user_models.load_pytorch(f"{MODELS_FILE}:ResidualNet", weights)
        np.testing.assert_array_equal(torch_outputs(loaded.model), expected)
    from_h5 = user_models.load_keras(f"{MODELS_FILE}:keras_residual_net", paths["net.weights.h5"])
    from_file = user_models.load_keras(paths["net.keras"])
    for loaded in (from_h5, from_file):
        np.testing.assert_allclose(keras_outputs(loaded.model), expected, atol=1e-5)
    assert from_file.name == "net"


def test_exported_program_loads_as_inference_only(saved):
    paths, expected = saved
    loaded = user_models.load_pytorch(paths["net.pt2"])
    assert "training-mode runs cannot be represented" in loaded.inference_only
    with torch.no_grad():
        np.testing.assert_allclose(loaded.model(torch.from_numpy(X)).numpy(), expected,
                                   atol=1e-6)


@pytest.mark.parametrize("direction", ["pytorch-to-keras", "keras-to-pytorch"])
def test_weights_are_not_ported_into_or_from_an_exported_program(saved, direction):
    """compare.py --port-weights on a .pt2 said the PyTorch modules and Keras layers 'meet
    in running order, and the pairing knows only Conv1d and Conv2d, ...', where the
    program's modules are flattened into one graph: the validator's words say so."""
    import comparator

    paths, _ = saved
    with pytest.raises(UsageError, match=r"--port-weights cannot port into or from .*net\.pt2: "
                                         r"it is a torch.export program, whose modules are "
                                         r"flattened"):
        comparator.compare_pair(paths["net.pt2"], pair.ported_keras_net(), X,
                                port_weights=direction)


def test_safe_mode_refusal_is_one_line(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    with pytest.raises(UsageError, match="safe_mode=True") as caught:
        user_models.load_keras(path)
    assert "\n" not in str(caught.value)


def test_a_file_with_classes_keras_cannot_find_names_them(tmp_path):
    """Was Keras's own: "<class '...Functional'> could not be deserialized properly. Please
    ensure that components ... are explicitly deserialized in the model's from_config()"."""

    class Doubling(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = keras.layers.Dense(4, name="inner")

        def call(self, x):
            return self.inner(x) * 2.0

    inputs = keras.Input((4,))
    model = keras.Model(inputs, Doubling(name="doubling")(inputs))
    path = str(tmp_path / "own.keras")
    model.save(path)
    with pytest.raises(UsageError) as caught:
        user_models.load_keras(path)
    message = str(caught.value)
    assert message == (f"cannot load {path}: it holds classes of your own that Keras cannot "
                       f"find here, Doubling (from {__name__}); give the model as "
                       "file.py:callable to --keras and its weights as --keras-weights "
                       "FILE.weights.h5")


@pytest.mark.parametrize("side, spec, message", [
    ("pytorch", "no_such_package_xyz.models:Net", "cannot import module 'no_such_package_xyz"),
    ("pytorch", "missing/file.py:Net", "no such file: missing/file.py"),
    ("pytorch", f"{MODELS_FILE}:NoSuchNet", "has no attribute 'NoSuchNet'; it defines: "),
    # The closest of what the file defines itself, not what it imports (np, torch, keras).
    ("pytorch", f"{MODELS_FILE}:ResidualNt",
     r"has no attribute 'ResidualNt' \(did you mean 'ResidualNet'\?\); it defines: "
     r"ResidualNet, another_model_off_torch, broken_factory, keras_residual_net, "),
    ("pytorch", f"{MODELS_FILE}:broken_factory",
     r"calling broken_factory\(\) raised ValueError: the factory needs a config file"),
    ("pytorch", f"{MODELS_FILE}:not_a_model",
     r"not_a_model\(\) returned builtins.str; expected a torch.nn.Module"),
    ("keras", f"{MODELS_FILE}:ResidualNet",
     r"ResidualNet\(\) returned .*ResidualNet; expected a keras.Model \(functional, "
     r"Sequential or subclassed\)"),
    ("pytorch", f"{MODELS_FILE}:CLASSES", "is of type int, not a torch.nn.Module"),
    ("pytorch", "ResidualNet", "cannot read the model SPEC 'ResidualNet'"),
    ("pytorch", "weights.pt", "holds no architecture: give the model as file.py:callable"),
    ("keras", "net.weights.h5", "without the architecture"),
    ("pytorch", "net.keras", "is a Keras model file: give it to --keras"),
    ("keras", "net.onnx", r"referee \(--onnx\)"),
])
def test_bad_specs_are_one_clear_line(side, spec, message):
    load = user_models.load_pytorch if side == "pytorch" else user_models.load_keras
    with pytest.raises(UsageError, match=message) as caught:
        load(spec)
    assert "\n" not in str(caught.value)


def test_a_file_that_fails_to_import_is_named(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\nraise RuntimeError('needs a GPU')\n")
    with pytest.raises(UsageError, match="cannot import .*broken.py: RuntimeError: needs a GPU"):
        user_models.load_pytorch(f"{broken}:Net")


def test_weights_that_do_not_fit_are_named(tmp_path, saved):
    paths, _ = saved
    state = torch.load(paths["net.pt"], weights_only=True)
    state["fc.weight"] = torch.zeros(3, pair.WIDTH)
    del state["bn1.running_var"]
    wrong = str(tmp_path / "wrong.pt")
    torch.save(state, wrong)
    with pytest.raises(UsageError, match=r"missing bn1.running_var; shapes differ: fc.weight "
                                         r"\(3, 6\) vs the model's \(4, 6\)"):
        user_models.load_pytorch(f"{MODELS_FILE}:ResidualNet", wrong)
    pickled = str(tmp_path / "pickled.pt")
    torch.save({"fc": pair.ResidualNet()}, pickled)  # a module: refused by weights_only
    with pytest.raises(UsageError, match="weights_only=True"):
        user_models.load_pytorch(f"{MODELS_FILE}:ResidualNet", pickled)
    with pytest.raises(UsageError, match="does not fit the Keras model"):
        user_models.load_keras("tests.user_pair_models:keras_with_keras_momentum",
                               _single_dense_weights(tmp_path))


def _single_dense_weights(tmp_path) -> str:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = str(tmp_path / "other.weights.h5")
    model.save_weights(path)
    return path


def test_freeze_names_are_found_or_listed():
    torch_model, keras_model = pair.ResidualNet(), pair.keras_residual_net()
    assert user_models.pytorch_submodule(torch_model, "features") is torch_model.features
    assert user_models.keras_layer(keras_model, "features").name == "features"
    assert user_models.keras_layer(keras_model, "stem_bn").name == "stem_bn"  # nested
    with pytest.raises(UsageError, match="no submodule 'backbone'; its top-level submodules: "
                                         "features, conv1, bn1"):
        user_models.pytorch_submodule(torch_model, "backbone")
    with pytest.raises(UsageError, match="no layer 'backbone'; its layers: "):
        user_models.keras_layer(keras_model, "backbone")


def test_objects_pass_through_the_api_and_wrong_ones_are_named():
    module = pair.ResidualNet()
    assert user_models.as_pytorch(module).model is module
    with pytest.raises(UsageError, match="the Keras side is a ResidualNet; expected a keras.Model"):
        user_models.as_keras(module)


def test_torchscript_modules_are_refused_in_one_line():
    """torch refuses forward hooks on a ScriptModule; before, the first hook raised
    'register_forward_hook is not supported on ScriptModules' inside the run."""
    import warnings

    with pytest.raises(UsageError, match=r"the PyTorch model holds TorchScript modules "
                                         r"\(features\), on which torch allows no forward "
                                         "hooks.*give the nn.Module it was scripted from"):
        user_models.as_pytorch(pair.scripted_block_net())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        whole = torch.jit.script(pair.ResidualNet())
    with pytest.raises(UsageError, match="the PyTorch model is a TorchScript module, on"):
        user_models.as_pytorch(whole)
    with pytest.raises(UsageError, match=f"the PyTorch model {MODELS_FILE}:scripted_block_net "
                                         "holds TorchScript modules"):
        user_models.load_pytorch(f"{MODELS_FILE}:scripted_block_net")


@pytest.mark.parametrize("arrays, message", [
    ({"images": np.zeros((2, 3, 4, 4), np.float32)}, "has no array named x .it has: images."),
    ({"x": np.zeros((2, 3, 4, 4), np.float64)}, "x is float64; it must be float32"),
    ({"x": np.zeros((2, 3, 4, 4, 4, 4), np.float32)},
     r"x has shape \(2, 3, 4, 4, 4, 4\); it must be N,C,H,W .*, N,C,D,H,W .*, N,C,L .* or N,F"),
    ({"x": np.zeros((2, 3), np.float32), "y": np.zeros(3)}, "y has shape .3,.; it needs one"),
    ({"x": np.zeros((2, 3), np.float32), "x0": np.zeros((2, 3), np.float32),
      "x1": np.zeros((2, 4), np.float32)},
     "has both x and x0: give one input as x, or several as x0, x1, ..."),
    ({"x0": np.zeros((2, 3), np.float32), "x2": np.zeros((2, 4), np.float32)},
     "has x2 but no x1: name several inputs x0, x1, ... with no gap"),
    ({"x1": np.zeros((2, 3), np.float32)}, "has x1 but no x0"),
])
def test_inputs_files_are_checked(tmp_path, arrays, message):
    from comparator.config.pair import load_inputs

    path = tmp_path / "batch.npz"
    np.savez(path, **arrays)
    with pytest.raises(UsageError, match=message):
        load_inputs(str(path))


def test_input_shapes_and_pair_options_are_checked():
    from comparator.config.pair import UserPair, check_pair, parse_input_shape

    assert parse_input_shape("3,16,16") == (3, 16, 16)
    assert parse_input_shape("3,4,16,16") == (3, 4, 16, 16)
    for bad in ("3,4,16,16,16", "3,x,4", "0,4,4"):
        with pytest.raises(UsageError, match="--input-shape takes C,H,W, C,D,H,W, C,L or F"):
            parse_input_shape(bad)
    with pytest.raises(UsageError, match="--freeze takes NAME or TORCH_NAME:KERAS_NAME"):
        check_pair(UserPair(pytorch="a", keras="b", freeze="features:"))
    with pytest.raises(UsageError, match="give one of --inputs and --input-shape"):
        check_pair(UserPair(pytorch="a", keras="b", inputs="x.npz", input_shape=(3, 4, 4)))
