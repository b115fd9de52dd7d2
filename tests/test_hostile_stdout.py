"""A closed or broken stdout is neither a failed check nor an error: the reports are
written and the exit code is the comparison's; the report records thread settings."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPARE = os.path.join(ROOT, "scripts", "compare.py")
TINY = f"{sys.executable} {COMPARE} tiny_cnn --image-size 32 --batch-size 2 --no-onnx"


def shell(command, cwd, **env):
    # head -c may cut a UTF-8 character in two
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, **env}, errors="replace")


def test_closed_stdout_still_writes_the_report_and_exits_0(tmp_path):
    done = shell(f"{TINY} --json r.json >&-", tmp_path, OMP_NUM_THREADS="1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    environment = json.loads((tmp_path / "r.json").read_text())["environment"]
    assert environment["OMP_NUM_THREADS"] == "1" and environment["torch_threads"] == "1"


def test_stdout_into_head_exits_with_the_comparisons_code(tmp_path):
    done = shell(f"set -o pipefail; {TINY} --json r.json | head -c 10", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and (tmp_path / "r.json").exists()


VALIDATE = f"{sys.executable} {os.path.join(ROOT, 'scripts', 'validate_port.py')} tiny_cnn"


def test_validate_port_into_a_reader_that_has_gone(tmp_path):
    """`| true` ends the reader before the first byte: the write fails with EPIPE."""
    done = shell(f"set -o pipefail; {VALIDATE} --image-size 32 --json v.json | true", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == "" and (tmp_path / "v.json").exists()


def test_validate_port_with_stdout_closed(tmp_path):
    done = shell(f"{VALIDATE} --image-size 32 --json v.json >&-", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == "" and (tmp_path / "v.json").exists()
