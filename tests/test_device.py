"""`--device cuda` on a machine without a GPU: a clear refusal, and ONNX Runtime's fallback
is said, not hidden; the float32 settings used on a GPU. (The GPU path itself needs a GPU;
these machines have none. What it measured on one is in docs/gpu.md.)"""

import json
import os
import subprocess
import sys

import pytest

from adapters.devices import tensorflow_device
from adapters.keras.client import WorkerError, call_worker
from comparator.config.frameworks import missing_modules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize("models", [
    ["tiny_cnn", "--image-size", "16"],
    # A user's Keras model is built when its function is called: before the refusal, that
    # call failed inside the user's function with a CUDA driver error.
    ["--pytorch", "examples/own_pair.py:seeded_small_resnet",
     "--keras", "examples/own_pair.py:small_resnet_keras", "--input-shape", "3,16,16"],
], ids=["zoo", "own_pair"])
def test_cuda_without_a_gpu_is_one_line_and_no_report(tmp_path, models):
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "scripts/compare.py", *models,
         "--batch-size", "2", "--device", "cuda", "--json", str(report)],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == ("compare.py: error: --device cuda was given but PyTorch sees no CUDA "
                         "device")
    assert "Traceback" not in done.stderr
    assert not report.exists()


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(),
                    reason="this onnxruntime has a CUDA provider")
def test_onnxruntime_without_cuda_runs_on_cpu_and_says_so():
    from adapters.onnx.runtime import providers_for

    providers, note = providers_for("cuda")
    assert providers == ["CPUExecutionProvider"]
    assert "has no CUDAExecutionProvider" in note and "ran on CPU" in note
    assert providers_for("cpu") == (["CPUExecutionProvider"], None)


def _needs(module):
    if missing_modules([module]):
        pytest.skip(f"{module} is not installed (optional extra)")


@pytest.mark.parametrize("backend,framework,start", [
    ("jax", "keras-jax", "JAX sees no CUDA device ("),
    ("tensorflow", "keras-tensorflow", "TensorFlow 2."),
])
def test_a_worker_asked_for_cuda_without_a_gpu_skips_with_the_reason(backend, framework, start):
    _needs(backend)
    request = {"task": "run", "framework": framework, "backend": backend, "device": "cuda"}
    with pytest.raises(WorkerError) as raised:
        call_worker(request, {}, timeout=120)
    failure = raised.value.failure
    assert failure.status == "skipped"
    assert failure.reason.startswith(start)
    assert "--device cuda needs" in failure.reason


@pytest.mark.parametrize("backend,read", [
    ("torch", "import torch; print(torch.backends.cudnn.conv.fp32_precision, "
              "torch.backends.cuda.matmul.fp32_precision)"),
    ("jax", "import jax; print(jax.config.jax_default_matmul_precision)"),
    ("tensorflow", "import tensorflow as tf; "
                   "print(tf.config.experimental.tensor_float_32_execution_enabled())"),
])
def test_full_float32_switches_tf32_off(backend, read):
    _needs(backend)
    expected = {"torch": "ieee ieee", "jax": "highest", "tensorflow": "False"}[backend]
    code = ("from adapters.devices import use_full_float32; "
            f"use_full_float32({backend!r}); {read}")
    # Importing TensorFlow under KERAS_BACKEND=torch crashes this machine's process (SIGSEGV,
    # seen): each backend runs with Keras set to it, as in the workers.
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "KERAS_BACKEND": backend})
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip().splitlines()[-1] == expected


@pytest.mark.parametrize("placement,name", [
    ("/job:localhost/replica:0/task:0/device:GPU:0", "gpu:0"),
    ("/job:localhost/replica:0/task:0/device:CPU:0", "cpu"),
    ("", "cpu"),
])
def test_tensorflow_placements_read_as_devices(placement, name):
    assert tensorflow_device(placement) == name


@pytest.mark.parametrize("backend,device,expected", [
    ("jax", "cpu", {"JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "-1"}),
    ("jax", "cuda", {"JAX_PLATFORMS": "cuda", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}),
    ("jax", "cuda:1", {"JAX_PLATFORMS": "cuda", "CUDA_VISIBLE_DEVICES": "1"}),
    ("tensorflow", "cpu", {"CUDA_VISIBLE_DEVICES": "-1"}),
    ("tensorflow", "cuda", {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}),
    ("torch", "cuda:1", {"XFRAME_DEVICE": "cuda:1"}),
])
def test_a_worker_places_its_backend_before_importing_it(backend, device, expected):
    # A fresh process: the placement sets this process's environment for the worker's life.
    code = ("import json, os; from adapters.devices import place_backend; "
            f"place_backend({backend!r}, {device!r}); print(json.dumps(dict(os.environ)))")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("JAX_PLATFORMS", "CUDA_VISIBLE_DEVICES", "XFRAME_DEVICE")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=clean)
    environment = json.loads(done.stdout)
    assert {k: environment.get(k) for k in expected} == expected
    assert environment["XFRAME_DEVICE"] == device
    if backend == "torch" or device == "cuda":
        assert "CUDA_VISIBLE_DEVICES" not in environment


def test_a_keras_model_on_another_device_than_the_comparison_is_refused():
    """On a GPU machine Keras on torch puts a user's model on the GPU by default; a pair
    compared on the CPU ran its Keras side there (docs/gpu.md). Here a model on torch's
    `meta` device stands in for one on a GPU."""
    from types import SimpleNamespace

    from adapters.devices import require_keras_model_on
    from comparator.errors import UsageError

    on = lambda device: SimpleNamespace(  # noqa: E731
        weights=[SimpleNamespace(value=torch.empty(2, device=device))])
    require_keras_model_on(on("cpu"), "cpu")
    require_keras_model_on(SimpleNamespace(weights=[]), "cpu")
    with pytest.raises(UsageError, match="the Keras model's weights are on meta but the "
                                         "comparison runs on cpu"):
        require_keras_model_on(on("meta"), "cpu")
