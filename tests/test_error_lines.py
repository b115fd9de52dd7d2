"""A library's error of several lines, or of more than fits, still says what went wrong in
compare.py's one line on stderr: ONNX Runtime names a wrong dimension's index and expected
size on the lines after its first, and torch's message on a truncated checkpoint is long."""

import os
import subprocess
import sys

import pytest

from comparator.errors import one_line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPARE = os.path.join(ROOT, "scripts", "compare.py")

NET = '''import torch
from torch import nn


def torch_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(2, 3))


def keras_net():
    import keras

    layers = keras.layers
    return keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(2, 3),
                             layers.GlobalAveragePooling2D(), layers.Dense(3)])
'''
PAIR = ["--pytorch", "net.py:torch_net", "--keras", "net.py:keras_net", "--input-shape",
        "3,8,8", "--batch-size", "2", "--port-weights", "pytorch-to-keras", "--recipes",
        "pytorch:eval,keras:train", "--quiet"]


def compare(*args, cwd):
    return subprocess.run([sys.executable, COMPARE, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "net.py").write_text(NET)
    return tmp_path


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def test_an_onnx_file_of_another_fixed_batch_names_the_dimension(folder):
    import torch

    sys.path.insert(0, str(folder))
    try:
        from net import torch_net
    finally:
        sys.path.remove(str(folder))
    torch.onnx.export(torch_net().eval(), torch.zeros(4, 3, 8, 8), str(folder / "fixed4.onnx"),
                      dynamo=False)
    line = _one_error_line(compare(*PAIR, "--onnx", "fixed4.onnx", cwd=folder))
    # It ended at '... for the following indices)'.
    assert "--onnx: ONNX Runtime cannot run fixed4.onnx on the batch" in line
    assert "for the following indices; index: 0 Got: 2 Expected: 4" in line


def test_a_truncated_checkpoint_ends_on_a_whole_sentence(folder):
    import torch

    sys.path.insert(0, str(folder))
    try:
        from net import torch_net
    finally:
        sys.path.remove(str(folder))
    torch.save(torch_net().state_dict(), folder / "net.pt")
    data = (folder / "net.pt").read_bytes()
    (folder / "trunc.pt").write_bytes(data[:len(data) // 2])
    line = _one_error_line(compare(*PAIR, "--no-onnx", "--pytorch-weights", "trunc.pt",
                                   cwd=folder))
    # It ended at '... that your checkpoint file is)'.
    assert "cannot load the checkpoint trunc.pt: truncated, corrupt or not a checkpoint" in line
    assert "failed finding central directory." in line
    assert line.endswith(("corrupted.)", "error.)")), line


def test_one_line_joins_lines_and_cuts_after_a_sentence():
    assert one_line("Got invalid dimensions\n index: 0 Got: 2 Expected: 4\n\n") == \
        "Got invalid dimensions; index: 0 Got: 2 Expected: 4"
    text = "First sentence here. " + "Second one runs on and on " * 5 + "to its end."
    assert one_line(text, 50) == "First sentence here."
    assert one_line("word " * 40, 30) == "word word word word word..."
