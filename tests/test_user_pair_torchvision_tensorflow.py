"""A Keras-on-TensorFlow worker for a user pair whose SPEC file imports torchvision, as a
port of torchvision's ConvNeXt or EfficientNet does. Measured here (tensorflow-cpu 2.21,
torchvision 0.29.1): `import tensorflow; import torchvision` ends in a segmentation fault, and
the worker imports TensorFlow before the user's file; the other order runs. One real worker
start (5 to 10 s on 2 cores)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from comparator.config.frameworks import missing_modules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(bool(missing_modules(["tensorflow"])),
                                reason="tensorflow is not installed: pip install -e "
                                       "'.[tensorflow]'")

PAIR_FILE = '''
import torchvision  # noqa: F401 - what a ConvNeXt port's file imports

from tests.user_pair_models import ported_keras_net, seeded_torch_net  # noqa: F401
'''


def test_a_tensorflow_worker_runs_a_spec_file_that_imports_torchvision(tmp_path):
    pair_file = tmp_path / "convnext_like_pair.py"
    pair_file.write_text(PAIR_FILE)
    batch = tmp_path / "batch.npz"
    rng = np.random.default_rng(3)
    np.savez(batch, x=rng.standard_normal((4, 3, 8, 8)).astype(np.float32),
             y=np.array([0, 1, 2, 3]))
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "compare.py"),
         "--pytorch", f"{pair_file}:seeded_torch_net", "--keras", f"{pair_file}:ported_keras_net",
         "--inputs", str(batch), "--frameworks", "pytorch,keras,keras-tensorflow",
         "--recipes", "pytorch:train,keras:train,keras-tensorflow:train", "--no-onnx",
         "--json", str(report)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr[-2000:]
    runs = {run["id"]: run for run in json.loads(report.read_text())["runs"]}
    assert json.loads(report.read_text())["unavailable_runs"] == []
    worker, in_process = runs["keras-tensorflow:train"], runs["keras:train"]
    assert worker["losses"]["inference_before"] == pytest.approx(
        in_process["losses"]["inference_before"], rel=1e-5)


@pytest.mark.parametrize("source, found", [
    ("import torchvision\n", True),
    ("from torchvision.ops import StochasticDepth\n", True),
    ("import torchvision.models as tvm\n", True),
    ("def build():\n    import torchvision\n", True),
    ("import torch\nimport torchvisionx\n", False),
    ("# import torchvision\nx = 'import torchvision'\n", False),
])
def test_spec_imports_reads_the_file_without_running_it(tmp_path, source, found):
    from adapters.own_pair.workers import spec_imports

    path = tmp_path / "pair.py"
    path.write_text(source + "raise SystemExit('the file was run')\n")
    assert spec_imports(f"{path}:build", "torchvision") is found


def test_spec_imports_of_a_module_spec_and_a_keras_file(tmp_path):
    from adapters.own_pair.workers import spec_imports

    assert spec_imports("tests.stochastic_depth_models:keras_residual_depth", "torchvision")
    assert not spec_imports("tests.user_pair_models:ported_keras_net", "torchvision")
    assert not spec_imports(str(tmp_path / "model.keras"), "torchvision")
    assert not spec_imports(f"{tmp_path / 'missing.py'}:build", "torchvision")
