"""compare.py on a user's own pair, end to end in a subprocess: the file.py:callable route,
the files route (.keras plus a state_dict, with an ONNX file as referee), bad input and a
diverging run; and examples/own_pair.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests import user_pair_models as pair

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join("tests", "user_pair_models.py")
FAST = ("--batch-size", "4", "--recipes", "pytorch:train,keras:train,pytorch:eval_requires_grad,"
        "keras:trainable_false")


def compare(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "compare.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "PYTHONPATH": ROOT})


def test_file_spec_route_writes_the_report(tmp_path):
    report_path = tmp_path / "report.json"
    result = compare("--pytorch", f"{MODELS}:seeded_torch_net",
                     "--keras", f"{MODELS}:keras_with_keras_momentum",
                     "--port-weights", "pytorch-to-keras", "--input-shape", "3,8,8",
                     "--no-onnx", "--json", str(report_path), *FAST)
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["model"] == "seeded_torch_net (PyTorch) vs keras_with_keras_momentum (Keras)"
    assert report["settings"]["pair"]["weights"] == "ported pytorch-to-keras"
    (eq,) = [e for e in report["equivalences"] if e["a"] == "keras:train"]
    assert "bn_momentum_convention" in {c["cause"] for c in eq["causes"]}
    assert "Keras 0.01 (its momentum=0.99), PyTorch 0.1" in " ".join(result.stdout.split())


@pytest.fixture(scope="module")
def saved_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    torch_model = pair.seeded_torch_net().eval()
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    paths = {"keras": str(folder / "net.keras"), "state": str(folder / "net.pt"),
             "onnx": str(folder / "net.onnx"), "inputs": str(folder / "batch.npz")}
    pair.ported_keras_net().save(paths["keras"])
    torch.save(torch_model.state_dict(), paths["state"])
    torch.onnx.export(torch_model, (torch.from_numpy(x),), paths["onnx"], dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})
    np.savez(paths["inputs"], x=x, y=np.array([0, 1, 2, 3]))
    return paths


def test_files_route_with_an_onnx_referee(tmp_path, saved_pair):
    report_path = tmp_path / "report.json"
    result = compare("--pytorch", f"{MODELS}:ResidualNet", "--pytorch-weights",
                     saved_pair["state"], "--keras", saved_pair["keras"], "--inputs",
                     saved_pair["inputs"], "--onnx", saved_pair["onnx"],
                     "--json", str(report_path), *FAST[2:])
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["settings"]["labels"] == "given"
    assert report["settings"]["pair"]["keras"]["source"] == saved_pair["keras"]
    reference = report["references"]["onnx:file"]
    assert reference["input_layout"] == "channels-first (PyTorch's layout)"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["onnx:file_vs_pytorch_eval_logits"]["value"] < 1e-5
    assert checks["onnx:file_vs_keras_eval_logits"]["passed"]


def test_bad_inputs_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((2, 3, 8, 8), np.float32))
    report_path = tmp_path / "report.json"
    result = compare("--pytorch", f"{MODELS}:ResidualNet", "--keras",
                     f"{MODELS}:keras_residual_net", "--inputs", str(bad),
                     "--json", str(report_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"compare.py: error: --inputs: {bad} has no array named x (it has: images)"]
    assert not report_path.exists()


def test_a_model_holding_torchscript_is_one_line_exit_2(tmp_path):
    report_path = tmp_path / "report.json"
    result = compare("--pytorch", f"{MODELS}:scripted_block_net", "--keras",
                     f"{MODELS}:keras_residual_net", "--input-shape", "3,8,8",
                     "--json", str(report_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"compare.py: error: the PyTorch model {MODELS}:scripted_block_net holds TorchScript "
        "modules (features), on which torch allows no forward hooks, and the comparison "
        "observes and traces layers through them: give the nn.Module it was scripted from"]
    assert not report_path.exists()


def test_diverging_run_exits_1_naming_it_with_the_report_written(tmp_path):
    report_path = tmp_path / "report.json"
    result = compare("--pytorch", f"{MODELS}:seeded_torch_net", "--keras",
                     f"{MODELS}:ported_keras_net", "--input-shape", "3,8,8", "--lr", "1e38",
                     "--no-onnx", "--json", str(report_path), "--batch-size", "4",
                     "--recipes", "pytorch:train,keras:trainable_false")
    assert result.returncode == 1
    assert "compare.py: run pytorch:train diverged at step 1" in result.stderr
    report = json.loads(report_path.read_text())
    assert [r["id"] for r in report["runs"]] == ["keras:trainable_false"]
    assert report["unavailable_runs"][0]["status"] == "diverged"


def test_example_runs():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "own_pair.py")],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "port:keras_vs_pytorch_eval_logits" in result.stdout
    assert "differ keras:train ~ pytorch:train" in result.stdout


@pytest.mark.parametrize("script,target", [
    ("compare.py", "keras"), ("compare.py", "state"), ("compare.py", "inputs"),
    ("validate_port.py", "keras"), ("validate_port.py", "inputs"),
])
def test_a_report_over_a_pair_input_is_refused(saved_pair, script, target):
    before = open(saved_pair[target], "rb").read()
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", script), "--pytorch",
         f"{MODELS}:ResidualNet", "--pytorch-weights", saved_pair["state"],
         "--keras", saved_pair["keras"], "--inputs", saved_pair["inputs"],
         "--json", saved_pair[target]],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "PYTHONPATH": ROOT})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "a report must not overwrite an input" in lines[0], lines
    assert open(saved_pair[target], "rb").read() == before


@pytest.mark.parametrize("content", ["text", "zip"])
def test_a_bad_pt2_file_is_one_line(tmp_path, content):
    path = tmp_path / "model.pt2"
    if content == "zip":  # a ZIP archive that is not a torch.export program
        import zipfile

        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("model/data.txt", "not a program")
    else:
        path.write_text("not a program")
    result = compare("--pytorch", str(path), "--keras", f"{MODELS}:keras_with_keras_momentum",
                     "--input-shape", "3,8,8", "--no-onnx")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
    assert str(path) in lines[0]


def test_a_map_of_a_dict_of_outputs_end_to_end(tmp_path):
    report_path = tmp_path / "report.json"
    maps = os.path.join("tests", "map_pair_models.py")
    result = compare("--pytorch", f"{maps}:SegmentationWithAux", "--keras",
                     f"{maps}:keras_segmentation_with_aux_twin", "--input-shape", "3,8,8",
                     "--output", "out", "--port-weights", "pytorch-to-keras",
                     "--cache-dir", str(tmp_path / "cache"), "--json", str(report_path), *FAST)
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["settings"]["pair"]["output"] == {"pytorch": "out", "keras": "out",
                                                    "left_out": ["aux"], "keras_left_out": []}
    assert report["settings"]["inputs"]["outputs_shape"] == [4, 3, 8, 8]
    assert report["settings"]["inputs"]["keras_outputs"] == "channels_last"
    # The referee's graphs of both models, Keras's giving N,H,W,K, are held as PyTorch's maps.
    assert all(check["passed"] for check in report["checks"]), report["checks"]
    referee = report["references"]["onnx:eval"]
    assert set(referee["losses"]) == {"pytorch", "keras"}
    (train,) = [r for r in report["runs"] if r["id"] == "pytorch:train"]
    for loss in referee["losses"].values():
        assert loss == pytest.approx(train["losses"]["inference_before"], rel=1e-5)
