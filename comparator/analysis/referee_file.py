"""The ONNX Runtime referee on an ONNX file the user brought (compare.py --onnx FILE): the
file run on the batch, its inference outputs and loss against every framework's inference
outputs in the initial state. Where --output chose outputs of a model that returns several,
the file's outputs that hold them are found by name (the PyTorch or the Keras key, as
torch.onnx.export's `output_names` give them) or, for a tuple's positions, by position; they
are compared one after another along the batch axis, as the comparison holds them. Only
numpy is imported here; adapters.onnx.runtime is imported when the referee runs."""

from __future__ import annotations

import os
import time

import numpy as np

from comparator.analysis.referee import (
    RefereeResult,
    _max_abs,
    _one_line,
    loss_of,
    output_weights,
)
from comparator.analysis.tolerances import LOGIT_TOLERANCE
from comparator.errors import UsageError, one_line
from comparator.schema import Check, _clean

USER_FILE = "onnx:file"


_KERAS_LAYOUT = "channels-last (Keras's layout)"


def _layouts_for(graph_inputs, batch) -> tuple[object, str]:
    """The batch as the graph takes it (one array, or a list for several inputs) and the
    layout it took: each input as _layout_for reads it against the graph's input of the
    same position; Keras's layout where any input took it."""
    if len(graph_inputs) != len(batch.inputs):
        raise UsageError(f"--onnx: the graph takes {len(graph_inputs)} inputs and the batch "
                         f"has {len(batch.inputs)}")
    laid = [_layout_for(shape, x) for shape, x in zip(graph_inputs, batch.inputs)]
    layouts = [layout for _, layout in laid]
    layout = _KERAS_LAYOUT if _KERAS_LAYOUT in layouts else layouts[0]
    return ([x for x, _ in laid] if batch.several else laid[0][0]), layout


def _layout_for(session_shape, x: np.ndarray) -> tuple[np.ndarray, str]:
    """x as the graph takes it: PyTorch's layout, or channels-last for a Keras export (images
    and sequences)."""
    if x.ndim < 3 or len(session_shape) != x.ndim:
        return x, "as given"
    fixed = list(session_shape[1:])
    last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    if all(not isinstance(d, int) or d == s for d, s in zip(fixed, x.shape[1:])):
        return x, "channels-first (PyTorch's layout)"
    if all(not isinstance(d, int) or d == s for d, s in zip(fixed, last.shape[1:])):
        return last, _KERAS_LAYOUT
    raise UsageError(f"--onnx: the graph takes inputs of shape {list(session_shape)}, which "
                     f"fits neither {list(x.shape)} nor its channels-last copy")


def _fed_inputs(graph) -> list:
    """The graph's inputs that are fed: not those an initializer gives (older exporters list
    the weights among the inputs)."""
    given = {tensor.name for tensor in graph.initializer}
    return [graph_input for graph_input in graph.input if graph_input.name not in given]


def check_file(path: str, key_pairs: list[tuple[str, str]]) -> None:
    """Before the comparison runs: the file reads as an ONNX model and holds the outputs that
    --output chose (key_pairs: their (TORCH_KEY, KERAS_KEY)). Without the onnx package the
    referee says so when it runs. The command line checks a pair before it imports the
    frameworks and the comparison again as it starts: an unchanged file is read once."""
    stat = os.stat(path)
    checked = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size, tuple(key_pairs))
    if checked in _CHECKED:
        return
    try:
        import onnx
    except ImportError:
        return
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - a file that is not an ONNX model is bad input
        raise UsageError(f"--onnx: cannot read {path} as an ONNX model ({_one_line(exc)})"
                         ) from None
    file_outputs([output.name for output in model.graph.output], key_pairs, path)
    _CHECKED.add(checked)


_CHECKED: set[tuple] = set()


def file_outputs(names: list[str], key_pairs: list[tuple[str, str]],
                 path: str) -> list[str] | None:
    """The file's outputs that hold those --output chose, in its order; None where it chose
    none (the file's first output is the model's one). One output of a file that has one is
    that output, whatever its name."""
    if not key_pairs:
        return None
    if len(key_pairs) == 1 and len(names) == 1:
        return names
    return [_file_output(names, torch_key, keras_key, path)
            for torch_key, keras_key in key_pairs]


def _chosen_key_pairs(output: dict | None) -> list[tuple[str, str]]:
    """(TORCH_KEY, KERAS_KEY) of each output --output chose, from settings.pair.output."""
    if not output:
        return []
    keys = output.get("keys") or [{"pytorch": output["pytorch"], "keras": output["keras"]}]
    return [(pair["pytorch"], pair["keras"]) for pair in keys]


def _file_output(names: list[str], torch_key: str, keras_key: str, path: str) -> str:
    """The file's output named by either key or, for a position (a tuple's or a list's),
    at that position."""
    for key in (torch_key, keras_key):
        if key in names:
            return key
    if torch_key.isdigit() and int(torch_key) < len(names):
        return names[int(torch_key)]
    raise UsageError(f"--onnx: {path} has no output named {torch_key!r}"
                     + (f" or {keras_key!r}" if keras_key != torch_key else "")
                     + f" (its outputs: {', '.join(names)}): name the outputs as the model's "
                     "keys when exporting (torch.onnx.export's output_names)")


def referee_file(outcome, path: str, load_runtime, device: str = "cpu") -> RefereeResult:
    """The user's own ONNX file run in ONNX Runtime on the batch: its inference outputs and
    loss against both frameworks' inference outputs (the initial state). load_runtime:
    imports the ONNX adapter (adapters.onnx_runtime), called only now."""
    onnxrt = load_runtime()
    started = time.perf_counter()
    try:
        model = onnxrt.load_checked(path, check=False)
        shapes = [[d.dim_value or d.dim_param for d in graph_input.type.tensor_type.shape.dim]
                  for graph_input in _fed_inputs(model.graph)]
    except Exception as exc:  # noqa: BLE001 - a file that is not an ONNX model is bad input
        raise UsageError(f"--onnx: cannot read {path} as an ONNX model ({_one_line(exc)})"
                         ) from None
    batch, report = outcome.batch, outcome.report
    x, layout = _layouts_for(shapes, batch)
    chosen = file_outputs([output.name for output in model.graph.output],
                          _chosen_key_pairs(report.settings.get("pair", {}).get("output")), path)
    try:
        run = onnxrt.run_onnx(path, x, device, names=chosen)
    except Exception as exc:  # noqa: BLE001
        # Every line: ONNX Runtime names a wrong dimension's index and size after its first.
        raise UsageError(f"--onnx: ONNX Runtime cannot run {path} on the batch "
                         f"({type(exc).__name__}: {one_line(str(exc))})") from None
    # A graph taking Keras's layout was exported from Keras: its outputs are Keras's too.
    outputs = (batch.outputs_as_pytorch(run.outputs) if layout == _KERAS_LAYOUT
               else run.outputs)
    checks = []
    for name, adapter in outcome.adapters.items():
        theirs = np.asarray(adapter.logits(batch))
        if theirs.shape != outputs.shape:
            raise UsageError(f"--onnx: the graph's outputs have shape {run.outputs.shape}, "
                             f"{name}'s {theirs.shape}")
        diff = _max_abs(outputs, theirs)
        checks.append(Check(name=f"{USER_FILE}_vs_{name}_eval_logits",
                            passed=diff <= LOGIT_TOLERANCE, value=diff,
                            tolerance=LOGIT_TOLERANCE,
                            detail="max abs difference of the user's ONNX graph's outputs and "
                                   "the framework's inference-mode outputs on the batch"))
    loss = loss_of(report.scenario, outputs, batch.y,
                   report.settings.get("loss_kind", "logits"), batch.class_axis,
                   output_weights(report))
    reference = {"ok": True, "file": path, "input_layout": layout, "provider": run.provider,
                 "outputs": chosen, "inference_before": loss,
                 "description": "the user's ONNX file: inference outputs on the batch"}
    seconds = {"run": run.seconds, "total": round(time.perf_counter() - started, 3)}
    return RefereeResult(references=_clean({USER_FILE: reference}), checks=tuple(checks),
                         failed=False, reasons=(), seconds=seconds)
