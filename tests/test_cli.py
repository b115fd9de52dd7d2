"""The command line: one clear line and exit code 2 for bad input, no traceback, no files."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "compare.py")


def compare(*args, cwd=None):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.mark.parametrize("args,message", [
    (["resnet9"], "unknown model 'resnet9'; known models: "),
    (["tiny_cnn", "--batch-size", "0"], "batch size must be positive"),
    (["tiny_cnn", "--image-size", "-3"], "image size must be positive"),
    (["densenet121", "--image-size", "16"], "too small for densenet121"),
    (["tiny_cnn", "--recipes", "pytorch:freeze_all"], "unknown recipe pytorch:freeze_all"),
    (["tiny_cnn", "--steps", "0"], "steps must be positive"),
    (["tiny_cnn", "--lr", "nan"], "learning rate must be a positive number"),
    (["tiny_cnn", "--json", "/nonexistent-dir/r.json"], "does not exist"),
    (["tiny_cnn", "--scenario", "segment"], "invalid choice"),
    (["tiny_cnn", "--scenario", "head", "--loss", "probabilities"],
     "the probabilities loss is for the classify scenario"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    result = compare(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args,scenario", [
    (["dense_mlp"], "regress"), (["tiny_cnn"], "classify"),
    (["tiny_cnn", "--scenario", "head"], "head"),
    (["--preset", "seed-split-features"], "head"),
])
def test_a_model_runs_its_own_scenario_when_none_is_given(args, scenario):
    """`compare.py dense_mlp` said 'dense_mlp takes the scenario regress, not classify'."""
    from comparator.cli.compare import _config, build_parser

    assert _config(build_parser().parse_args(args)).scenario == scenario


def test_unwritable_report_path_is_refused_before_any_work(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        if os.access(directory, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        result = compare("tiny_cnn", "--json", str(directory / "r.json"))
        assert result.returncode == 2 and "not writable" in result.stderr
    finally:
        directory.chmod(0o700)


def test_referee_failure_exits_4_with_the_reason(tmp_path):
    # The dynamo exporter writes BatchNorm in inference mode even in train(): the referee
    # refuses its training-mode graph, and the exit code says the referee failed.
    result = compare("tiny_cnn", "--image-size", "8", "--batch-size", "2", "--quiet",
                     "--recipes", "pytorch:eval", "--onnx-exporter", "dynamo",
                     "--cache-dir", str(tmp_path))
    assert result.returncode == 4, result.stderr
    assert "referee failed" in result.stderr and "Traceback" not in result.stderr


def test_json_path_that_is_a_directory_is_refused(tmp_path):
    result = compare("tiny_cnn", "--json", str(tmp_path))
    assert result.returncode == 2 and "is a directory" in result.stderr


def test_help_imports_no_framework():
    code = ("import sys; sys.argv=['compare.py','--help']; import runpy;\n"
            "try:\n runpy.run_path(%r, run_name='__main__')\n"
            "except SystemExit: pass\n"
            "print(sorted(m for m in ('torch','keras','onnxruntime') if m in sys.modules))"
            % SCRIPT)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().endswith("[]")


def test_end_to_end_json_and_artifacts(tmp_path):
    report_path, artifacts = tmp_path / "r.json", tmp_path / "art"
    result = compare("tiny_cnn", "--image-size", "16", "--batch-size", "4",
                     "--recipes", "pytorch:eval,keras:trainable_false",
                     "--cache-dir", str(tmp_path / "cache"), "--markdown", str(tmp_path / "r.md"),
                     "--json", str(report_path), "--save-artifacts", str(artifacts))
    assert result.returncode == 0, result.stderr
    assert "tiny_cnn/classify: 2 runs, checks passed" in result.stdout
    report = json.loads(report_path.read_text())
    assert report["schema"] == "xframe-compare/report/1"
    assert set(report) >= {"model", "scenario", "settings", "environment", "runs", "references",
                           "checks", "explanations", "equivalences", "timings"}
    run = report["runs"][0]
    # DESIGN.md's keys, extended (never renamed) with fit_validation.
    assert set(run["losses"]) >= {"inference_before", "train_step", "inference_after"}
    assert set(run["state"]) == {"trainable_params", "frozen_params", "weights_changed",
                                 "max_weight_delta", "bn_stats_changed", "max_bn_stat_delta"}
    # Extended with outside_base (null here: the classify base is the whole model) and
    # stochastic_depth_layers (0: tiny_cnn drops no residual branch).
    assert set(run["modes"]) == {"bn_layers", "bn_batch_stats", "dropout_layers",
                                 "dropout_active", "outside_base", "stochastic_depth_layers"}
    assert run["modes"]["stochastic_depth_layers"] == 0
    assert run["modes"]["outside_base"] is None
    assert report["environment"]["keras_backend"] == "torch"
    assert set(report["references"]) == {"onnx:eval", "onnx:train_forward"}
    assert any(c["name"].startswith("referee:") for c in report["checks"])
    assert "| `pytorch:eval` |" in (tmp_path / "r.md").read_text()
    assert sorted(os.listdir(artifacts)) == ["batch.npz", "pytorch_state_dict.pt", "report.json"]


def test_quiet_prints_only_the_verdict(tmp_path):
    result = compare("tiny_cnn", "--image-size", "8", "--batch-size", "2", "--quiet",
                     "--recipes", "pytorch:train", "--no-onnx")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().count("\n") == 0
    assert result.stdout.startswith("tiny_cnn/classify: 1 runs")


def test_keras_imported_with_another_backend_is_refused():
    # A stand-in for a Keras imported elsewhere on the JAX backend (jax is not installed here).
    code = ("import sys, types; fake = types.ModuleType('keras')\n"
            "fake.backend = types.SimpleNamespace(backend=lambda: 'jax')\n"
            "sys.modules['keras'] = fake\n"
            "from comparator.errors import FrameworkUnavailable\n"
            "from adapters import load_adapter\n"
            "try:\n load_adapter('keras')\n"
            "except FrameworkUnavailable as e: print('refused:', e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT)
    assert "refused: Keras was already imported with the 'jax' backend" in result.stdout
