"""The models' outputs at the end of a validation pass: the one output, or each of several
that --output chose (KEY1,KEY2,...), Keras's against PyTorch's in PyTorch's layout. The
layers that feed any of them are compared by the validator (validator.py); here only what
the outputs themselves say, and how a finding seen at one of several is named."""

from __future__ import annotations

import dataclasses

import numpy as np

from adapters.port_validation.graph import Failed, numpy_of, outputs_of, to_torch_values
from comparator.analysis.validation import (
    Finding,
    OutputComparison,
    diverges,
    judge,
    metrics,
    output_label,
)


def output_comparison(keras_out, torch_out, torch_out64, tolerance):
    """(metrics against PyTorch float32, diverges, PyTorch's own float32 error) of one
    output; (None, True, None) where Keras's was not computed or has another shape."""
    if isinstance(keras_out, Failed) or keras_out is None:
        return None, True, None
    value = to_torch_values(numpy_of(keras_out))
    if value.shape != torch_out.shape:
        return None, True, None
    m = metrics(value, torch_out)
    if torch_out64 is None:
        return m, diverges(m, tolerance), None
    noise = metrics(torch_out, torch_out64)
    return m, judge(metrics(value, torch_out64), noise, m, tolerance)[0], noise.max_rel


def _each(keys, keras_out, torch_out, torch_out64):
    """(TORCH_KEY, KERAS_KEY), Keras's value, PyTorch's and PyTorch's float64 one (None
    without the reference) of each of several outputs, in --output's order."""
    torch_outs64 = outputs_of(torch_out64) if torch_out64 is not None else (None,) * len(keys)
    return zip(keys, outputs_of(keras_out), outputs_of(torch_out), torch_outs64)


def outputs_compared(keys, keras_out, torch_out, torch_out64, tolerance):
    """output_comparison of the model's output, or of each of several (keys: their
    (TORCH_KEY, KERAS_KEY), where --output chose several): (metrics, diverges, PyTorch's own
    float32 error, each output's OutputComparison). Of several, the metrics and error are
    those of the output that differs most, and the pass diverges where any does."""
    if len(keys) < 2:
        return (*output_comparison(keras_out, torch_out, torch_out64, tolerance), ())
    each = tuple(OutputComparison(*pair, *output_comparison(keras_value, torch_value,
                                                            torch_value64, tolerance))
                 for pair, keras_value, torch_value, torch_value64
                 in _each(keys, keras_out, torch_out, torch_out64))
    worst = max(each, key=lambda o: (o.diverges, np.inf if o.metrics is None
                                     else o.metrics.max_rel))
    return worst.metrics, any(o.diverges for o in each), worst.noise_rel, each


def outputs_apart(keys, graph_outputs, keras_out, torch_out, torch_out64, tolerance,
                  comparable: bool = False) -> list[tuple]:
    """The outputs that diverge at the end of a pass, each as (Keras's value, PyTorch's, the
    Keras graph's output tensor, its --output label, None for a model's only output); where
    `comparable`, only those of one shape in both. keys: as outputs_compared takes them."""
    if len(keys) > 1:
        values = [(keras_value, torch_value, torch_value64, tensor, output_label(*pair))
                  for (pair, keras_value, torch_value, torch_value64), tensor
                  in zip(_each(keys, keras_out, torch_out, torch_out64), graph_outputs)]
    else:
        values = [(keras_out, torch_out, torch_out64, graph_outputs[0], None)]
    apart = []
    for keras_value, torch_value, torch_value64, tensor, label in values:
        m, bad, _ = output_comparison(keras_value, torch_value, torch_value64, tolerance)
        if bad and (m is not None or not comparable):
            apart.append((keras_value, torch_value, tensor, label))
    return apart


def at_output(finding: Finding, label: str | None) -> Finding:
    """A finding at the end of one of several outputs names that output where it was seen
    ("inference, output 'aux'")."""
    if label is None:
        return finding
    return dataclasses.replace(finding, seen_in=f"{finding.seen_in} {label!r}")


def output_note(output: str, keys: list, leave_out: tuple[str, ...], gradients: bool) -> str:
    """What --output chose, and the PyTorch modules left out for it."""
    if len(keys) < 2:
        left = (f"; PyTorch's {', '.join(leave_out)}, whose weights do not reach it, left out"
                if leave_out else "")
        return f"output {output!r} validated{left}"
    left = (f"; PyTorch's {', '.join(leave_out)}, whose weights reach none of them, left out"
            if leave_out else "")
    return (f"outputs {', '.join(repr(part) for part in output.split(','))} validated: the "
            "layers that feed any of them, and each output at the end of the forward passes"
            + ("; the gradients are those of the sum of their losses" if gradients else "")
            + left)
