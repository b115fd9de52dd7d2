"""The ONNX export cache under tampering: an entry whose bytes changed after it was
written (its key kept), a FIFO, a link to /dev/zero or a missing digest is rebuilt, and
the rebuild's reason is what the report records."""

import os
import threading

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from adapters.onnx.runtime import DIGEST_SUFFIX, ExportCache, cache_fields  # noqa: E402

FIELDS = cache_fields(framework="pytorch", model="tiny_cnn", scenario="classify",
                      weights_sha256="0" * 64, input_shape=(1, 2), exporter="torchscript",
                      mode="eval")


def _write_add_bias(path, bias=0.0):
    """A one-node graph, y = x + bias, that onnx.checker accepts."""
    node = helper.make_node("Add", ["x", "bias"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(np.full(2, bias, np.float32), "bias")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return {"exporter": "test"}


def _bias(path):
    return float(numpy_helper.to_array(onnx.load(path).graph.initializer[0])[0])


@pytest.fixture
def cache(tmp_path):
    cache = ExportCache(str(tmp_path))
    first = cache.get_or_build(FIELDS, _write_add_bias)
    assert not first.cached and os.path.isfile(first.path + DIGEST_SUFFIX)
    assert cache.get_or_build(FIELDS, _write_add_bias).cached
    return cache, first.path


def test_an_entry_changed_with_its_key_kept_is_rebuilt(cache):
    cache, path = cache
    model = onnx.load(path)  # the key lives in the metadata, which is kept
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.full(2, 0.5, np.float32),
                                                                "bias"))
    onnx.save(model, path)
    again = cache.get_or_build(FIELDS, _write_add_bias)
    assert not again.cached and "does not match its content digest" in again.rebuilt
    assert _bias(path) == 0.0


def test_an_entry_without_a_digest_is_rebuilt(cache):
    cache, path = cache
    os.unlink(path + DIGEST_SUFFIX)
    again = cache.get_or_build(FIELDS, _write_add_bias)
    assert not again.cached and "no content digest" in again.rebuilt


@pytest.mark.parametrize("replace_with", ["fifo", "dev_zero", "directory"])
def test_an_entry_that_is_not_a_regular_file_is_rebuilt_without_reading_it(cache, replace_with):
    cache, path = cache
    os.unlink(path)
    if replace_with == "fifo":
        os.mkfifo(path)
    elif replace_with == "directory":  # a rename cannot replace a directory
        os.mkdir(path)
        open(os.path.join(path, "inside"), "w").close()
    else:
        os.symlink("/dev/zero", path)
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        entry=cache.get_or_build(FIELDS, _write_add_bias)), daemon=True)
    worker.start()
    worker.join(60)
    assert "entry" in result, "the cache read a FIFO or /dev/zero and never returned"
    assert "regular file" in result["entry"].rebuilt and os.path.isfile(path)
    assert not os.path.islink(path)
