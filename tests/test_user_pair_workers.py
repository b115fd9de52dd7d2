"""A user pair's Keras model on other Keras backends and versions (--frameworks
pytorch,keras,keras-tensorflow,...): each worker rebuilds the model from its SPEC, holds the
in-process model's weights and trains on the same batch. Its numbers are checked against
plain Keras on TensorFlow doing the same (a fresh process with KERAS_BACKEND=tensorflow, no
comparator code in the step), and against the in-process Keras for the nightly overlay.

Worker starts are the cost here (5 to 15 s each on 2 cores): one comparison runs both
workers once, and the refusals start at most one more."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from comparator.config.frameworks import missing_modules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join("tests", "user_pair_models.py")
PAIR = ("--pytorch", f"{MODELS}:seeded_torch_net", "--keras", f"{MODELS}:ported_keras_net")
LR, STEPS = 0.05, 2
NIGHTLY = "keras-torch@nightly"

pytestmark = pytest.mark.skipif(bool(missing_modules(["tensorflow"])),
                                reason="tensorflow is not installed: pip install -e "
                                       "'.[tensorflow]'")


def compare(*args):
    # Offline: a missing overlay is skipped with its reason, never downloaded here.
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "compare.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "PYTHONPATH": ROOT,
                               "XFRAME_OVERLAYS_OFFLINE": "1"})


@pytest.fixture(scope="module")
def batch_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("batch") / "batch.npz"
    rng = np.random.default_rng(3)
    np.savez(path, x=rng.standard_normal((4, 3, 8, 8)).astype(np.float32),
             y=np.array([0, 1, 2, 3]))
    return str(path)


@pytest.fixture(scope="module")
def report(tmp_path_factory, batch_file):
    """One comparison with Keras on TensorFlow and the nightly overlay in workers. Dropout
    runs in inference mode (--dropout off): the step is then deterministic on every backend,
    and plain Keras can take it too."""
    path = tmp_path_factory.mktemp("report") / "report.json"
    result = compare(*PAIR, "--inputs", batch_file, "--dropout", "off", "--lr", str(LR),
                     "--steps", str(STEPS), "--frameworks",
                     f"pytorch,keras,keras-tensorflow,{NIGHTLY}", "--recipes",
                     f"pytorch:train,keras:train,keras-tensorflow:train,{NIGHTLY}:train",
                     "--no-onnx", "--json", str(path))
    assert result.returncode == 0, result.stderr
    return json.loads(path.read_text())


PLAIN_KERAS = """
import json, sys
import numpy as np
import keras
from tests.user_pair_models import ported_keras_net

model = ported_keras_net()
model.get_layer("dropout").rate = 0.0  # --dropout off: Dropout passes its inputs through
with np.load(sys.argv[1]) as data:
    x, y = np.moveaxis(data["x"], 1, -1), data["y"]
model.compile(optimizer=keras.optimizers.SGD(learning_rate=float(sys.argv[2])),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
before = model.evaluate(x, y, batch_size=len(x), verbose=0)
losses = [model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False,
                    verbose=0).history["loss"][0] for _ in range(int(sys.argv[3]))]
after = model.evaluate(x, y, batch_size=len(x), verbose=0)
print(json.dumps({"backend": keras.backend.backend(), "before": before, "train_step": losses,
                  "after": after}))
"""


def plain_keras(backend: str, batch_file: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PLAIN_KERAS, batch_file, str(LR), str(STEPS)],
                            capture_output=True, text=True, cwd=ROOT, timeout=600,
                            env={**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": backend})
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["backend"] == backend
    return found


def run(report, run_id):
    (found,) = [r for r in report["runs"] if r["id"] == run_id]
    return found["losses"]


def test_keras_on_tensorflow_trains_the_pair_as_plain_keras_on_tensorflow(report, batch_file):
    worker, in_process = run(report, "keras-tensorflow:train"), run(report, "keras:train")
    assert abs(worker["inference_before"] - in_process["inference_before"]) <= 1e-5
    plain = plain_keras("tensorflow", batch_file)
    assert abs(worker["inference_before"] - plain["before"]) <= 1e-6
    assert np.allclose(worker["train_step"], plain["train_step"], rtol=0, atol=1e-6)
    assert abs(worker["inference_after"] - plain["after"]) <= 1e-6
    (tf_run,) = [r for r in report["runs"] if r["id"] == "keras-tensorflow:train"]
    assert tf_run["backend"] == "tensorflow"
    assert "port:keras-tensorflow_vs_pytorch_eval_logits" in {c["name"] for c in report["checks"]}
    # The worker's states are named as the in-process Keras's are: PyTorch's names.
    (eq,) = [e for e in report["equivalences"]
             if (e["a"], e["b"]) == ("keras-tensorflow:train", "pytorch:train")]
    assert eq["max_weight_diff"] is not None and eq["max_bn_stat_diff"] is not None
    assert set(report["settings"]["conventions"]["keras-tensorflow"]["batchnorm"]) == {
        "features.1", "bn1", "bn2"}
    assert report["environment"]["keras_train_steps"]["keras-tensorflow"] == \
        "compiled (tf.function)"


def test_keras_nightly_on_torch_trains_the_pair_as_this_keras_on_torch(report):
    skipped = [r for r in report["unavailable_runs"] if r["framework"] == NIGHTLY]
    if skipped:
        pytest.skip(f"{NIGHTLY}: {skipped[0]['reason']}")
    worker, in_process = run(report, f"{NIGHTLY}:train"), run(report, "keras:train")
    # Both are Keras on torch with Dropout off: the same step (bitwise equal when measured
    # on 2026-11-29); a float32 tolerance leaves room for a kernel's summation order.
    for key in ("inference_before", "inference_after"):
        assert abs(worker[key] - in_process[key]) <= 1e-6, key
    assert np.allclose(worker["train_step"], in_process["train_step"], rtol=0, atol=1e-6)
    assert report["environment"]["keras_versions"][NIGHTLY] != report["environment"]["keras"]


def _pairs():
    from tests import user_layer_models as layer_models
    from tests import user_pair_models as pair_models
    from tests.test_user_pair_layers import SEQUENCES

    images = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    tokens = np.random.default_rng(3).standard_normal(
        (4, layer_models.TOKENS, layer_models.TOKENS)).astype(np.float32)
    steps = np.ascontiguousarray(SEQUENCES.transpose(0, 2, 1))
    return {
        "batchnorm, paired": lambda: (pair_models.seeded_torch_net(),
                                      pair_models.ported_keras_net(), images),
        "lstm, paired": lambda: (layer_models.seeded(layer_models.RecurrentNet()),
                                 layer_models.keras_recurrent_twin("lstm"), steps),
        "attention, paired": lambda: (layer_models.seeded(layer_models.AttentionNet()),
                                      layer_models.keras_attention_twin(), tokens),
        "not paired": lambda: (layer_models.seeded(layer_models.DeepRecurrentNet("lstm", 2)),
                               layer_models.keras_deep_recurrent_twin("lstm", 1), steps),
    }


@pytest.mark.parametrize("kind", ["batchnorm, paired", "lstm, paired", "attention, paired",
                                  "not paired"])
def test_a_workers_state_is_named_as_the_in_process_keras_names_its_own(kind):
    """No worker: a state named by position (as a worker's come back) against the same values
    set in the in-process model and named by it, for each way the pairing names states."""
    from adapters import open_user_pair
    from comparator.config import CompareConfig
    from comparator.config.pair import UserPair

    torch_model, keras_model, x = _pairs()[kind]()
    opened = open_user_pair(UserPair(pytorch=torch_model, keras=keras_model, x=x),
                            CompareConfig(model="user pair", batch_size=len(x)))
    keras_side = opened.adapters["keras"]
    moved = {name: value + np.float32(0.5) for name, value in
             keras_side.positional_arrays().items()}
    named = keras_side.canonical_from_positions(moved)
    keras_side.user_model.set_weights(list(moved.values()))
    own = keras_side.canonical_weights()
    keras_side.reset()
    assert named.keys() == own.keys() and any("." in name for name in own)
    assert all(np.array_equal(named[name], own[name]) for name in own)
    assert any(name.endswith(".running_var") for name in own) == (kind == "batchnorm, paired")


@pytest.mark.parametrize("frameworks, words", [
    ("pytorch,keras,tf-keras", "tf-keras runs Keras 2, which cannot load a user pair's Keras 3"),
    ("pytorch,keras-tensorflow", "--frameworks must include keras"),
])
def test_what_a_pair_cannot_run_is_refused_in_one_line(tmp_path, batch_file, frameworks, words):
    path = tmp_path / "report.json"
    result = compare(*PAIR, "--inputs", batch_file, "--frameworks", frameworks, "--no-onnx",
                     "--json", str(path))
    assert result.returncode == 2
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not path.exists()


def test_a_builder_that_makes_another_model_on_the_backend_is_refused(tmp_path, batch_file):
    path = tmp_path / "report.json"
    result = compare("--pytorch", f"{MODELS}:seeded_torch_net", "--keras",
                     f"{MODELS}:another_model_off_torch", "--inputs", batch_file,
                     "--frameworks", "pytorch,keras,keras-tensorflow", "--recipes",
                     "keras:train,keras-tensorflow:train", "--no-onnx", "--json", str(path))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "the Keras model rebuilt for keras-tensorflow holds 3 weights, the comparison's " \
           "own 17" in line
    assert "Traceback" not in result.stderr and not path.exists()
