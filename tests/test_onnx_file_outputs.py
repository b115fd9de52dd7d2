"""compare.py --onnx FILE on a model that returns several outputs: the referee runs the
file's outputs that hold those --output chose, found by name (torch.onnx.export's
output_names, the model's keys) or, for a tuple's positions, by position, and compares
them as the comparison holds them. Before, the file's first output was compared whatever
--output chose (`--output aux` failed the referee's checks by 0.38 on a correct file), and
several outputs with --onnx were refused."""

import numpy as np
import pytest
import torch

import comparator
from comparator.errors import UsageError
from tests import aux_head_models as models

X = models.images()


def _exported(tmp_path, build, names=None) -> str:
    path = str(tmp_path / f"{build.__name__}.onnx")
    torch.onnx.export(models.seeded(build).eval(), (torch.from_numpy(X),), path,
                      input_names=["x"], output_names=names, dynamic_axes={"x": {0: "n"}},
                      dynamo=False)
    return path


def _compare(build, keras_build, onnx, **options):
    return comparator.compare_pair(models.seeded(build), keras_build(), X, models.LABELS,
                                   port_weights="pytorch-to-keras", onnx=onnx,
                                   recipes=("pytorch:eval", "keras:train"), **options)


def _file_reference(report) -> dict:
    checks = {c.name: c for c in report.checks if c.name.startswith("onnx:file")}
    assert checks and all(c.passed and c.value < 1e-6 for c in checks.values())
    return report.references["onnx:file"]


@pytest.mark.parametrize("output, outputs", [("aux", ["aux"]), ("out", ["out"]),
                                             ("aux,out", ["aux", "out"])])
def test_the_files_outputs_named_as_the_keys_are_compared(tmp_path, output, outputs):
    onnx = _exported(tmp_path, models.TwoHeadsDict, ["out", "aux"])
    report = _compare(models.TwoHeadsDict, models.keras_two_heads_dict, onnx, output=output,
                      loss_weights=(1.0, 0.4) if "," in output else None)
    reference = _file_reference(report)
    assert reference["outputs"] == outputs
    # The file's loss is the comparison's own (weighted, of several): PyTorch's before a step.
    pytorch = report.run("pytorch:eval").losses.inference_before
    assert reference["inference_before"] == pytest.approx(pytorch, abs=1e-6)


def test_a_tuples_outputs_are_found_by_position(tmp_path):
    onnx = _exported(tmp_path, models.TwoHeads)  # the exporter's own output names
    reference = _file_reference(_compare(models.TwoHeads, models.keras_two_heads, onnx,
                                         output="1"))
    assert len(reference["outputs"]) == 1 and reference["outputs"][0] not in ("0", "1")


def test_a_file_without_the_keys_is_refused_naming_its_outputs(tmp_path):
    onnx = _exported(tmp_path, models.TwoHeadsDict)
    with pytest.raises(UsageError, match=r"has no output named 'aux' \(its outputs: "):
        _compare(models.TwoHeadsDict, models.keras_two_heads_dict, onnx, output="aux")


@pytest.mark.parametrize("content, words", [
    (None, "has no output named 'aux'"), (b"garbage", "cannot read"),
])
def test_a_file_that_cannot_serve_is_refused_before_the_models_load(tmp_path, content, words):
    """Neither model can load (no such file): the refusal comes before they would."""
    onnx = _exported(tmp_path, models.TwoHeadsDict)
    if content is not None:
        with open(onnx, "wb") as handle:
            handle.write(content)
    with pytest.raises(UsageError, match=words):
        comparator.compare_pair("no_such_file.py:torch_net", "no_such_file.py:keras_net", X,
                                output="aux", onnx=onnx)


def test_a_one_output_file_takes_any_name(tmp_path):
    class MainOnly(models.TwoHeads):
        def forward(self, x):
            return self.heads(x)[0]

    onnx = _exported(tmp_path, MainOnly, ["logits"])
    reference = _file_reference(_compare(models.TwoHeadsDict, models.keras_two_heads_dict,
                                         onnx, output="out"))
    assert reference["outputs"] == ["logits"]
    assert np.isfinite(reference["inference_before"])


def test_the_command_line_refuses_it_in_one_line_and_writes_nothing(tmp_path):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    onnx, report = _exported(tmp_path, models.TwoHeadsDict), tmp_path / "report.json"
    spec = os.path.join(root, "tests", "aux_head_models.py")
    result = subprocess.run(
        [sys.executable, os.path.join(root, "scripts", "compare.py"), "--pytorch",
         f"{spec}:TwoHeadsDict", "--keras", f"{spec}:keras_two_heads_dict", "--port-weights",
         "pytorch-to-keras", "--input-shape", "3,8,8", "--output", "out,aux", "--onnx", onnx,
         "--json", str(report)], capture_output=True, text=True, cwd=root,
        env={**os.environ, "PYTHONPATH": root, "KERAS_BACKEND": "torch"}, timeout=300)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "has no output named 'out'" in line and not report.exists()
