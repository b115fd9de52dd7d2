"""Keras on TensorFlow and JAX in worker subprocesses: faults, missing extras, real runs.

The fault tests go through the real subprocess path; the worker reads
XFRAME_WORKER_FAULT before importing any framework, so they are cheap and run
whether or not the optional extras are installed.
"""

import json
import os
import subprocess
import sys

import pytest

from comparator.cli.compare import main
from comparator.errors import EXIT_OK, EXIT_WORKER_FAILED
from comparator.schema import report_from_dict
from comparator.config import CompareConfig
from comparator.config.frameworks import missing_modules, threads_sleep_beside_workers
from comparator.pipeline import compare
from tests.conftest import python_code

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(model="tiny_cnn", batch_size=4, image_size=16)
ALL = ("pytorch", "keras", "keras-tensorflow", "keras-jax")


def _with_extras_assumed(monkeypatch):
    """Let the parent start a worker even where the extra is missing: the fault fires first."""
    monkeypatch.setattr("adapters.keras.client.missing_extra_reason", lambda backend: None)


def _tiny_with_worker(monkeypatch, fault, **options):
    _with_extras_assumed(monkeypatch)
    monkeypatch.setenv("XFRAME_WORKER_FAULT", fault)
    return compare(CompareConfig(**TINY, frameworks=("pytorch", "keras-jax"), **options)).report


def _only_worker_runs_unavailable(report, status):
    assert {r.framework for r in report.runs} == {"pytorch"}
    assert len(report.runs) == 4 and report.checks_passed
    records = report.unavailable_runs
    assert [r["id"] for r in records] == ["keras-jax:train", "keras-jax:trainable_false",
                                          "keras-jax:training_false", "keras-jax:bn_trainable"]
    assert {r["status"] for r in records} == {status}
    assert {r["backend"] for r in records} == {"jax"}
    return records[0]["reason"]


def test_a_crashed_worker_fails_only_its_runs(monkeypatch):
    reason = _only_worker_runs_unavailable(_tiny_with_worker(monkeypatch, "crash"), "failed")
    assert reason == ("the keras-jax worker was killed by signal SIGABRT: "
                      "keras_worker: simulated crash")


def test_a_hung_worker_is_stopped_at_the_worker_timeout(monkeypatch):
    report = _tiny_with_worker(monkeypatch, "hang", worker_timeout=3)
    reason = _only_worker_runs_unavailable(report, "failed")
    assert "did not finish within the worker timeout of 3 s" in reason


def test_malformed_worker_output_fails_its_runs_and_the_exit_code_says_so(monkeypatch, tmp_path,
                                                                          capsys):
    _with_extras_assumed(monkeypatch)
    monkeypatch.setenv("XFRAME_WORKER_FAULT", "garbage")
    path = tmp_path / "report.json"
    code = main(["tiny_cnn", "--image-size", "16", "--batch-size", "4", "--no-onnx",
                 "--frameworks", "pytorch,keras-jax", "--json", str(path), "--quiet"])
    assert code == EXIT_WORKER_FAILED
    report = report_from_dict(json.loads(path.read_text()))
    reason = _only_worker_runs_unavailable(report, "failed")
    assert reason.startswith("the keras-jax worker wrote a response that is not JSON")
    assert "keras-jax runs failed" in capsys.readouterr().err


def test_a_missing_extra_skips_its_runs_with_the_reason(monkeypatch, tmp_path, capsys):
    # A module named jax that cannot be imported stands first on the worker's path.
    shadow = tmp_path / "shadow" / "jax"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named jax (test)')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "shadow"))
    _with_extras_assumed(monkeypatch)
    path = tmp_path / "report.json"
    code = main(["tiny_cnn", "--image-size", "16", "--batch-size", "4", "--no-onnx",
                 "--frameworks", "pytorch,keras-jax", "--json", str(path), "--quiet"])
    assert code == EXIT_OK
    reason = _only_worker_runs_unavailable(report_from_dict(json.loads(path.read_text())),
                                           "skipped")
    assert reason.startswith("jax cannot be imported (No module named jax (test)); install "
                             "the optional extra: pip install -e '.[jax]'")
    assert "keras-jax runs skipped" in capsys.readouterr().err


def test_the_parent_skips_a_framework_whose_extra_is_not_installed(monkeypatch):
    monkeypatch.setattr("comparator.config.frameworks.EXTRAS",
                        {"tensorflow": ("tensorflow", ("no_such_module_xframe",))})
    report = compare(CompareConfig(**TINY, frameworks=("pytorch", "keras-tensorflow"))).report
    assert {r["status"] for r in report.unavailable_runs} == {"skipped"}
    assert report.unavailable_runs[0]["reason"] == (
        "no_such_module_xframe is not installed (install the optional extra: "
        "pip install -e '.[tensorflow]')")


@pytest.mark.parametrize("args,message", [
    (["tiny_cnn", "--frameworks", "pytorch,tensorflow"], "unknown framework 'tensorflow'"),
    (["tiny_cnn", "--frameworks", "keras-torch,keras-jax"], "frameworks must include pytorch"),
    (["tiny_cnn", "--worker-timeout", "0"], "worker timeout must be a positive number"),
])
def test_bad_framework_options_are_one_line_and_exit_2(args, message, tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "compare.py"), *args],
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert os.listdir(tmp_path) == []


def test_keras_torch_is_the_in_process_keras():
    from comparator.config.frameworks import resolve_frameworks

    assert resolve_frameworks(["pytorch", "keras-torch", "keras"]) == ("pytorch", "keras")


def test_reports_without_the_new_keys_still_load(tiny_classify):
    data = tiny_classify.report.to_dict()
    assert data["runs"][0]["backend"] is None and data["unavailable_runs"] == []
    assert {r["backend"] for r in data["runs"] if r["framework"] == "keras"} == {"torch"}
    for run in data["runs"]:
        del run["backend"]
    del data["unavailable_runs"]
    assert report_from_dict(data).runs[4].id == "keras:train"


# ----- this process's threads beside workers --------------------------------------------------

@pytest.mark.parametrize("frameworks,environ,imported,expected", [
    (("pytorch", "keras"), {}, {}, None),
    (("pytorch", "keras-torch"), {}, {}, None),  # the in-process Keras, by its other name
    (("pytorch", "keras", "keras-jax"), {}, {}, "PASSIVE"),
    (("pytorch", "keras-torch@3.6.0"), {}, {}, "PASSIVE"),  # a version runs in a worker too
    (("pytorch", "tf-keras"), {}, {}, "PASSIVE"),
    (("pytorch", "keras-jax"), {"OMP_WAIT_POLICY": "ACTIVE"}, {}, "ACTIVE"),  # the user's own
    (("pytorch", "keras-jax"), {}, {"torch": object()}, None),  # too late: libgomp has read it
])
def test_openmp_threads_sleep_only_beside_workers(frameworks, environ, imported, expected):
    set_it = threads_sleep_beside_workers(frameworks, environ, imported)
    assert environ.get("OMP_WAIT_POLICY") == expected
    assert set_it == (expected == "PASSIVE")


@pytest.mark.parametrize("frameworks,expected", [("pytorch,keras-jax", "PASSIVE True"),
                                                 ("pytorch,keras", "None True")])
def test_the_command_line_sets_the_wait_policy_before_torch_is_imported(frameworks, expected):
    # The comparison itself is replaced: what counts is the process's state when it starts.
    code = ("import os, sys\n"
            "import comparator.pipeline as pipeline\n"
            "def started(config, progress=None, preset=None):\n"
            "    print(os.environ.get('OMP_WAIT_POLICY'), 'torch' not in sys.modules)\n"
            "    raise SystemExit(0)\n"
            "pipeline.compare = started\n"
            "from comparator.cli.compare import main\n"
            f"main(['tiny_cnn', '--frameworks', {frameworks!r}, '--no-onnx', '--quiet'])\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    result = python_code(code, env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == expected


# ----- real frameworks -------------------------------------------------------------------------

def _extras():
    # PathFinder, as missing_modules does: keep_worker_backends_out hides these from
    # importlib.util.find_spec in this process once a comparison has run here.
    for module in missing_modules(("tensorflow", "jax", "tf2onnx")):
        if module:
            pytest.skip(f"{module} is not installed (optional extras: pip install -e "
                        "'.[tensorflow,jax]')")


@pytest.mark.parametrize("backend,kept_out,imported", [
    ("tensorflow", "jax", "tensorflow"), ("jax", "tensorflow", "jax")])
def test_a_worker_keeps_the_backend_it_never_uses_out_of_keras(backend, kept_out, imported):
    # Keras 3.15.1 imports JAX at its own import on every backend (to patch its Orbax
    # callback) and TensorFlow in set_random_seed: a worker's Keras must import without them.
    _extras()
    code = ("import os, sys\n"
            "from adapters.keras.worker import _keep_other_backends_out\n"
            f"_keep_other_backends_out({{'backend': {backend!r}}})\n"
            f"os.environ['KERAS_BACKEND'] = {backend!r}\n"
            "import keras\n"
            "keras.utils.set_random_seed(0)\n"
            "print(keras.backend.backend(), sorted(n for n in ('jax', 'tensorflow')"
            " if sys.modules.get(n) is not None))")
    result = python_code(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [backend, f"['{imported}']"]


@pytest.fixture(scope="module")
def four_frameworks():
    _extras()
    return compare(CompareConfig(**TINY, frameworks=ALL))


def test_every_backend_runs_the_same_recipes_on_the_same_function(four_frameworks):
    report = four_frameworks.report
    assert report.unavailable_runs == ()
    backends = {r.id: r.backend for r in report.runs}
    assert backends["keras:train"] == "torch"
    assert backends["keras-tensorflow:train"] == "tensorflow"
    assert backends["keras-jax:bn_trainable"] == "jax"
    names = {c.name: c for c in report.checks}
    for framework in ALL[1:]:
        assert names[f"port:{framework}_vs_pytorch_eval_logits"].passed
    before = {r.losses.inference_before for r in report.runs}
    assert max(before) - min(before) < 1e-5
    assert report.environment["tensorflow"] and report.environment["jax"]


@pytest.mark.parametrize("backend", ["keras", "keras-tensorflow", "keras-jax"])
def test_training_false_does_not_survive_fit_on_any_backend(four_frameworks, backend):
    report = four_frameworks.report
    guide = report.run(f"{backend}:training_false")
    frozen = report.run(f"{backend}:trainable_false")
    assert guide.modes.bn_batch_stats == guide.modes.bn_layers == 3
    assert guide.state.bn_stats_changed
    assert frozen.modes.bn_batch_stats == 0 and not frozen.state.bn_stats_changed
    assert not frozen.state.weights_changed


def test_every_backend_reports_its_layers_conventions_and_their_causes(four_frameworks):
    """A worker reads its own layers' conventions: the BatchNorm reruns explain its runs too
    (keras-tensorflow's and keras-jax's running variances had no cause before)."""
    report = four_frameworks.report
    conventions = report.settings["conventions"]
    assert set(conventions) == set(ALL)
    for framework in ALL[1:]:
        assert conventions[framework]["batchnorm"] == conventions["keras"]["batchnorm"]
        assert conventions[framework]["batchnorm"]["bn1"]["running_variance"] == (
            "biased batch variance")
        (eq,) = [e for e in report.equivalences
                 if (e.a, e.b) == (f"{framework}:train", "pytorch:train")]
        assert [c["cause"] for c in eq.causes] == ["bn_variance_bias"]


def test_cross_backend_pairs_are_listed(four_frameworks):
    pairs = {(e.a, e.b) for e in four_frameworks.report.equivalences}
    assert ("keras:train", "keras-tensorflow:train") in pairs
    assert ("keras-tensorflow:train", "keras-jax:train") in pairs
    assert ("keras-jax:trainable_false", "pytorch:eval_requires_grad") in pairs


def test_three_onnx_graphs_agree(four_frameworks, tmp_path):
    from comparator.pipeline import referee as run_referee

    result = run_referee(four_frameworks, cache_dir=str(tmp_path))
    assert not result.failed, result.reasons
    diffs = result.references["onnx:eval"]["max_abs_diff"]
    for label in ("pytorch_graph_vs_keras_graph", "pytorch_graph_vs_keras-tensorflow_graph",
                  "keras_graph_vs_keras-tensorflow_graph", "keras-tensorflow_graph_vs_keras-jax"):
        assert diffs[label] < 1e-4
    export = result.references["onnx:eval"]["exports"]["keras-tensorflow"]
    assert "tf2onnx" in export["exported_with"]["exporter"]


def test_each_framework_reports_the_device_its_weights_were_on(four_frameworks):
    devices = four_frameworks.report.environment["devices"]
    assert devices == {"pytorch": "cpu", "keras": "cpu", "keras-tensorflow": "cpu",
                       "keras-jax": "cpu"}
    assert "gpu_float32" not in four_frameworks.report.environment
