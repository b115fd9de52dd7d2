"""`--device cuda` on a machine without a GPU: a clear refusal, and ONNX Runtime's fallback
is said, not hidden. (The GPU path itself needs a GPU; these machines have none.)"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_gpu_is_one_line_and_no_report(tmp_path):
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "scripts/compare.py", "tiny_cnn", "--image-size", "16",
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
