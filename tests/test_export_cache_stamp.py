"""A new ONNX cache entry is the exporter's file with the cache's key appended to its
metadata, not a second serialisation of it: the entry parses with the key, passes
onnx.checker, runs in ONNX Runtime, and is byte for byte what onnx.save writes for the
stamped model. An export whose tensors lie in a file beside it is made self-contained."""

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from adapters.onnx import runtime  # noqa: E402
from adapters.onnx.runtime import (  # noqa: E402
    DIGEST_SUFFIX, FIELDS_PROPERTY, KEY_PROPERTY, ExportCache, cache_fields, cache_key)

FIELDS = cache_fields(framework="pytorch", model="tiny_cnn", scenario="classify",
                      weights_sha256="1" * 64, input_shape=(1, 4), exporter="torchscript",
                      mode="eval")
BIAS = np.arange(4, dtype=np.float32)


def _add_bias_model():
    node = helper.make_node("Add", ["x", "bias"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(BIAS, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"written_by": "the exporter"})
    return model


def _export_inline(path):
    with open(path, "wb") as handle:  # not onnx.save: the first test stops that
        handle.write(_add_bias_model().SerializeToString())
    return {"exporter": "test"}


def _export_with_external_data(path):
    onnx.save(_add_bias_model(), path, save_as_external_data=True, all_tensors_to_one_file=True,
              location="tensors.bin", size_threshold=0)
    return {"exporter": "test"}


def _properties(model):
    return {p.key: p.value for p in model.metadata_props}


def _run(path):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.ones((1, 4), np.float32)})[0]


def test_a_new_entry_is_the_export_with_its_key_appended_and_not_saved_again(tmp_path,
                                                                          monkeypatch):
    def no_second_serialisation(*args, **kwargs):
        raise AssertionError("the exporter's file was serialised again")

    monkeypatch.setattr(onnx, "save", no_second_serialisation)
    monkeypatch.setattr(onnx, "save_model", no_second_serialisation)
    entry = ExportCache(str(tmp_path)).get_or_build(FIELDS, _export_inline)
    monkeypatch.undo()

    assert not entry.cached and sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(entry.path), os.path.basename(entry.path) + DIGEST_SUFFIX])
    onnx.checker.check_model(entry.path)
    stored = onnx.load(entry.path)
    props = _properties(stored)
    assert props[KEY_PROPERTY] == cache_key(FIELDS) and props["written_by"] == "the exporter"
    assert entry.export_notes == {"exporter": "test"} and FIELDS_PROPERTY in props
    np.testing.assert_array_equal(_run(entry.path), (1.0 + BIAS)[None])

    resaved = str(tmp_path / "resaved.onnx")
    onnx.save(stored, resaved)
    with open(entry.path, "rb") as ours, open(resaved, "rb") as theirs:
        assert ours.read() == theirs.read()
    with open(entry.path + DIGEST_SUFFIX) as digest:
        assert digest.read().strip() == runtime._file_sha256(entry.path)
    assert ExportCache(str(tmp_path)).get_or_build(FIELDS, _export_inline).cached


def test_an_export_with_external_data_becomes_one_self_contained_entry(tmp_path):
    cache = ExportCache(str(tmp_path / "cache"))
    entry = cache.get_or_build(FIELDS, _export_with_external_data)
    assert sorted(os.listdir(cache.directory)) == sorted(
        [os.path.basename(entry.path), os.path.basename(entry.path) + DIGEST_SUFFIX])
    moved = str(tmp_path / "elsewhere.onnx")
    os.rename(entry.path, moved)  # nothing beside it to find
    np.testing.assert_array_equal(_run(moved), (1.0 + BIAS)[None])
    assert _properties(onnx.load(moved))[KEY_PROPERTY] == cache_key(FIELDS)
