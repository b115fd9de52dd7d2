"""The ONNX referee's graph of Keras 2 (tf-keras): its worker converts the tf_keras model with
tf2onnx's convert.from_keras, and the graph is cached, verified against the run's own
inference outputs and checked against the other graphs as keras-tensorflow's is
(tests/test_workers.py, test_three_onnx_graphs_agree; tests/test_referee.py for the cache).

The tiny CNN at 16 px, batch 4, as the other referee tests run it."""

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

from comparator.analysis.tolerances import LOGIT_TOLERANCE
from comparator.pipeline import referee as run_referee
from tests.conftest import run_once

for _module in ("tensorflow", "tf_keras", "tf2onnx"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed: pip install -e '.[tensorflow]'",
                    allow_module_level=True)

onnxrt = pytest.importorskip("adapters.onnx.runtime")

TINY = dict(model="tiny_cnn", batch_size=4, image_size=16)
FRAMEWORKS = ("pytorch", "keras", "tf-keras")


@pytest.fixture(scope="module")
def with_tf_keras():
    return run_once(**TINY, frameworks=FRAMEWORKS)


@pytest.fixture(scope="module")
def first(with_tf_keras, shared_cache):
    return run_referee(with_tf_keras, cache_dir=shared_cache)


def _eval(result) -> dict:
    return result.references["onnx:eval"]


def _checks(result) -> dict:
    return {c.name: c for c in result.checks}


def test_the_tf_keras_graph_is_converted_by_tf2onnx_in_inference_mode(first):
    assert not first.failed, first.reasons
    export = _eval(first)["exports"]["tf-keras"]
    assert export["ok"] and not export["cached"] and export["rebuilt"] is None
    assert export["exporter"] == "tf-keras-tf2onnx"
    assert "convert.from_keras on tf_keras 2." in export["exported_with"]["exporter"]
    assert export["graph"]["producer"].startswith("tf2onnx")
    assert export["graph"]["batchnorm_training_nodes"] == 0
    assert export["graph"]["active_dropout_nodes"] == 0
    assert "Keras 2 (tf_keras) via tf2onnx's convert.from_keras" in _eval(first)["description"]


def test_its_outputs_are_the_tf_keras_runs_inference_outputs(with_tf_keras, first):
    """ONNX Runtime on the graph against the tf-keras worker's own inference outputs, here
    and as the referee measured it, within the tolerance of every other graph."""
    batch = with_tf_keras.batch
    run = onnxrt.run_onnx(_eval(first)["exports"]["tf-keras"]["file"], batch.x_channels_last)
    theirs = with_tf_keras.adapters["tf-keras"].logits(batch)
    assert np.max(np.abs(batch.outputs_as_pytorch(run.outputs) - theirs)) <= LOGIT_TOLERANCE
    diffs = _eval(first)["max_abs_diff"]
    for label in ("tf-keras_graph_vs_tf-keras", "tf-keras_graph_vs_pytorch",
                  "tf-keras_graph_vs_keras", "pytorch_graph_vs_tf-keras_graph",
                  "keras_graph_vs_tf-keras_graph"):
        assert diffs[label] <= LOGIT_TOLERANCE, label
        check = _checks(first)[f"referee:onnx_eval_{label}"]
        assert check.passed and check.value == diffs[label]
    inference = with_tf_keras.report.run("tf-keras:train").losses.inference_before
    assert _eval(first)["losses"]["tf-keras"] == pytest.approx(inference, rel=1e-4)


def test_a_second_run_takes_the_graph_from_the_cache(with_tf_keras, first, shared_cache,
                                                     monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("exported although the cache holds the graph")

    monkeypatch.setattr("adapters.keras.client.WorkerAdapter.export_onnx", refuse)
    again = run_referee(with_tf_keras, cache_dir=shared_cache)
    assert not again.failed, again.reasons
    export = _eval(again)["exports"]["tf-keras"]
    assert export["cached"] and export["export_seconds"] == 0
    assert export["file"] == _eval(first)["exports"]["tf-keras"]["file"]
    assert [c.to_dict() for c in again.checks] == [c.to_dict() for c in first.checks]


def _other_outputs(path: str) -> None:
    """The graph under its own key with every weight doubled: the key and the digest pass,
    the outputs are not the model's (as a graph of the model's old code would be)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    for tensor in model.graph.initializer:
        values = numpy_helper.to_array(tensor)
        if values.dtype == np.float32 and values.size > 1:
            tensor.CopyFrom(numpy_helper.from_array(values * 2.0, tensor.name))
    onnx.save(model, path)


def _changed_bytes(path: str) -> None:
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) // 2)
        handle.write(b"\0\0\0\0")


@pytest.mark.parametrize("tamper,rebuilt", [
    ("changed_bytes", "does not match its content digest"),
    ("foreign", "does not carry its key"),
    ("other_outputs", "the cached graph's outputs were"),
])
def test_a_tampered_cached_graph_is_exported_again(with_tf_keras, first, tmp_path, tamper,
                                                   rebuilt):
    exports = _eval(first)["exports"]
    for entry in exports.values():
        for suffix in ("", onnxrt.DIGEST_SUFFIX):
            shutil.copy(entry["file"] + suffix, tmp_path)
    mine = str(tmp_path / os.path.basename(exports["tf-keras"]["file"]))
    if tamper == "changed_bytes":
        _changed_bytes(mine)
    elif tamper == "foreign":  # a valid entry of the cache, but another graph's
        keras = str(tmp_path / os.path.basename(exports["keras"]["file"]))
        for suffix in ("", onnxrt.DIGEST_SUFFIX):
            shutil.copy(keras + suffix, mine + suffix)
    else:
        _other_outputs(mine)
        with open(mine + onnxrt.DIGEST_SUFFIX, "w") as handle:
            handle.write(onnxrt._file_sha256(mine) + "\n")
    result = run_referee(with_tf_keras, cache_dir=str(tmp_path))
    assert not result.failed, result.reasons
    export = _eval(result)["exports"]["tf-keras"]
    assert not export["cached"] and rebuilt in export["rebuilt"]
    assert _eval(result)["exports"]["pytorch"]["cached"]
    assert _eval(result)["exports"]["keras"]["cached"]
    assert all(c.passed for c in result.checks)
    assert _eval(result)["max_abs_diff"] == _eval(first)["max_abs_diff"]
    onnxrt.load_checked(mine)  # the entry was written again, whole


def test_without_tf2onnx_the_graph_is_skipped_with_the_reason(with_tf_keras, tmp_path,
                                                              monkeypatch):
    monkeypatch.setattr("comparator.config.frameworks.ONNX_EXTRA_MODULES",
                        ("no_such_module_xframe",))
    result = run_referee(with_tf_keras, cache_dir=str(tmp_path))
    assert not result.failed, result.reasons
    assert _eval(result)["exports"]["tf-keras"] == {
        "ok": False, "skipped": True, "error": None,
        "reason": "no_such_module_xframe is not installed (install the optional extra: "
                  "pip install -e '.[tensorflow]')"}
    assert not any("tf-keras_graph" in label for label in _eval(result)["max_abs_diff"])


def test_a_failed_conversion_is_a_failed_graph_with_the_reason(with_tf_keras, tmp_path,
                                                               monkeypatch):
    from adapters.keras.client import WorkerError

    def refused(*_args, **_kwargs):
        raise WorkerError("failed", "the tf-keras worker exited with status 1: ValueError: "
                                    "tf2onnx cannot convert this (test)")

    monkeypatch.setattr("adapters.keras.client.WorkerAdapter.export_onnx", refused)
    result = run_referee(with_tf_keras, cache_dir=str(tmp_path))
    export = _eval(result)["exports"]["tf-keras"]
    assert not export["ok"] and export["exporter"] == "tf-keras-tf2onnx"
    assert export["error"] == ("export failed: WorkerError: the tf-keras worker exited with "
                               "status 1: ValueError: tf2onnx cannot convert this (test)")
    assert result.failed and result.reasons[0].startswith("onnx:eval: tf-keras graph: export "
                                                          "failed")
    assert _eval(result)["exports"]["pytorch"]["ok"] and _eval(result)["exports"]["keras"]["ok"]


def test_the_report_names_the_tf_keras_graph(first, shared_cache, tmp_path):
    from comparator.cli.compare import main
    from comparator.errors import EXIT_OK

    report_path, markdown_path = tmp_path / "r.json", tmp_path / "r.md"
    code = main(["tiny_cnn", "--image-size", "16", "--batch-size", "4", "--frameworks",
                 ",".join(FRAMEWORKS), "--cache-dir", shared_cache, "--json", str(report_path),
                 "--markdown", str(markdown_path), "--quiet"])
    assert code == EXIT_OK
    referee = json.loads(report_path.read_text())["references"]["onnx:eval"]
    assert referee["ok"]
    assert referee["exports"]["tf-keras"]["exporter"] == "tf-keras-tf2onnx"
    assert set(referee["losses"]) == {"pytorch", "keras", "tf-keras"}
    assert "tf-keras_graph_vs_tf-keras" in referee["max_abs_diff"]
    assert "tf-keras: tf-keras-tf2onnx" in markdown_path.read_text()
