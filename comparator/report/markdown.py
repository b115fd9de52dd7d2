"""A report as GitHub-flavoured Markdown, paste-ready into an issue or a docs page.

Every number is the JSON report's number printed with six significant digits
(`fmt`), so a reader can match the page to the JSON. The helpers that decide
what a cell says (`matrix_rows`, `settings_rows`, ...) are shared with the HTML
report, so both show the same content.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from comparator.config.frameworks import diverged_steps, unavailable_lines
from comparator.io import write_atomic
from comparator.schema import Report

DIGITS = 6

WEIGHT_KEYS = ("weights", "weights_sha256", "weights_description")

MATRIX_HEADERS = ("run", "inference before", "train step(s)", "inference after",
                  "BN batch stats / BN layers", "Dropout active / layers",
                  "weights changed (max Δ)", "BN stats changed (max Δ)", "trainable params")
FIT_VALIDATION_HEADER = "fit validation"

LEGEND = ("inference before/after: the loss in inference mode on the batch before and after "
          "the step(s); train step(s): the loss each train step reported (computed before its "
          "update); BN batch stats: BatchNorm layers that normalised with the batch's own "
          "statistics during the train step (observed, not assumed); Dropout active: Dropout "
          "layers that dropped units in the train step; max Δ: the largest absolute change of "
          "a weight or of a BatchNorm running statistic made by the step(s).")

# What the ONNX Runtime referee quantities mean, by the key they have in report.references.
REFERENCE_LABELS = {
    "inference_before": "inference loss (eval-mode graph)",
    "train_forward": "training-mode forward loss (BatchNorm with batch statistics)",
}


# ----------------------------------------------------------------- formatting

def fmt(value) -> str:
    """One number as the report prints it: 6 significant digits, ints with separators."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{DIGITS}g}"
    return str(value)


def fmt_signed(value) -> str:
    return "n/a" if value is None else f"{value:+.{DIGITS}g}"


def fmt_percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.3g}%"


def command_text(command: str | Sequence[str] | None) -> str | None:
    if command is None:
        return None
    if isinstance(command, str):
        return command
    return shlex.join(str(part) for part in command)


def _value_text(value) -> str:
    """A setting's value: nested dicts as key=value, lists comma-separated."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_value_text(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value_text(v) for v in value) or "-"
    if value is None:
        return "-"
    return fmt(value)


# ------------------------------------------------------ content shared with HTML

def settings_rows(report: Report) -> list[tuple[str, str]]:
    rows = [("model", report.model), ("scenario", report.scenario)]
    rows += [(k, _value_text(v)) for k, v in report.settings.items()
             if k not in WEIGHT_KEYS and k not in ("scenario",)]
    return rows


def environment_rows(report: Report) -> list[tuple[str, str]]:
    return [(k, _value_text(v)) for k, v in report.environment.items()]


def weight_rows(report: Report) -> list[tuple[str, str]]:
    labels = {"weights": "source", "weights_sha256": "sha256",
              "weights_description": "description"}
    return [(labels[k], _value_text(report.settings.get(k))) for k in WEIGHT_KEYS]


def has_fit_validation(report: Report) -> bool:
    return any(run.losses.fit_validation for run in report.runs)


def _changed(flag: bool, delta: float) -> str:
    if not flag and not delta:
        return "no"
    return f"{'yes' if flag else 'no'} ({fmt(delta)})"


def matrix_headers(report: Report) -> list[str]:
    headers = list(MATRIX_HEADERS)
    if has_fit_validation(report):
        headers.insert(4, FIT_VALIDATION_HEADER)
    return headers


def matrix_rows(report: Report) -> list[list[str]]:
    """One row of cell texts per run, in the order of `matrix_headers`."""
    fit = has_fit_validation(report)
    rows = []
    for run in report.runs:
        losses, modes, state = run.losses, run.modes, run.state
        row = [run.id, fmt(losses.inference_before),
               ", ".join(fmt(v) for v in losses.train_step),
               fmt(losses.inference_after),
               f"{modes.bn_batch_stats} / {modes.bn_layers}",
               f"{modes.dropout_active} / {modes.dropout_layers}",
               _changed(state.weights_changed, state.max_weight_delta),
               _changed(state.bn_stats_changed, state.max_bn_stat_delta),
               fmt(state.trainable_params)]
        if fit:
            row.insert(4, ", ".join(fmt(v) for v in losses.fit_validation or ()) or "-")
        rows.append(row)
    return rows


def reference_rows(report: Report) -> list[tuple[str, str, str]]:
    """(reference, quantity, value) for every number the referee produced; fields it left
    empty (no error) are not listed, and the JSON report keeps every field of an export."""
    rows = []
    for name, values in (report.references or {}).items():
        if isinstance(values, dict):
            for key, value in values.items():
                if value is not None:
                    rows.append((name, REFERENCE_LABELS.get(key, key), _reference_value(value)))
        else:
            rows.append((name, "", fmt(values)))
    return rows


def _reference_value(value) -> str:
    """A referee field as a reader takes it in, not as a Python dict's repr."""
    if isinstance(value, dict) and ("exporter" in value or "skipped" in value):
        return _export_summary(value)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_reference_value(item)}"
                         for key, item in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(item) for item in value) or "none"
    return fmt(value)


def _export_summary(export: dict) -> str:
    """One graph's export: its exporter, whether it came from the cache, its loss, or why
    it was skipped or failed."""
    if export.get("skipped"):
        return f"skipped ({export.get('reason')})"
    parts = [str(export["exporter"])] if export.get("exporter") else []
    if export.get("ok") is False:
        return ", ".join(parts + [f"failed: {export.get('error')}"])
    if "cached" in export:
        parts.append("from the cache" if export["cached"] else "exported")
    if export.get("rebuilt"):
        parts.append(f"not from the cache: {export['rebuilt']}")
    if export.get("loss") is not None:
        parts.append(f"loss {fmt(export['loss'])}")
    return ", ".join(parts) or "-"


def cause_delta(cause: dict, gap) -> float | None:
    """A cause's signed loss change: `loss_delta` when recorded, else share x gap."""
    if cause.get("loss_delta") is not None:
        return cause["loss_delta"]
    if cause.get("share") is not None and gap is not None:
        return cause["share"] * gap
    return None


def explanation_heading(explanation: dict) -> str:
    parts = [f"gap {fmt_signed(explanation.get('gap'))}"]
    for key, label in (("train_step", "train step"), ("inference_after", "inference after")):
        if explanation.get(key) is not None:
            parts.append(f"{label} {fmt(explanation[key])}")
    return " · ".join(parts)


def checks_passed_text(report: Report) -> str:
    failed = [c.name for c in report.checks if not c.passed]
    if not report.checks:
        return "no checks"
    return "all checks passed" if not failed else f"checks FAILED: {', '.join(failed)}"


def verdict(report: Report) -> str:
    same = sum(e.equivalent for e in report.equivalences)
    seconds = report.timings.get("total_seconds")
    tail = f"; {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
    return (f"{len(report.runs)} runs, {checks_passed_text(report)}; {same} of "
            f"{len(report.equivalences)} listed recipe pairs equivalent{tail}")


def cause_label(cause: dict) -> str:
    """A cause a rerun tested: `why` when switching it brought the two runs together (or,
    for the BatchNorm conventions, says by how much), `part of why` when the rerun closed
    at least half of the gap but not all of it, `inconclusive` when it could not judge
    (float32 cannot pin an ill-conditioned step), `ruled out` when it left the difference
    about where it was. (Adam's epsilon placement on a user's pair over one step closed
    0.0077 to 0.00022: that was printed as ruled out.)"""
    if cause.get("explains", True):
        return "why"
    if cause.get("inconclusive"):
        return "inconclusive"
    value, before = cause.get("value"), cause.get("before")
    if isinstance(value, (int, float)) and isinstance(before, (int, float)) and \
            0 <= value <= before / 2:
        return "part of why"
    return "ruled out"


def equivalence_text(eq) -> str:
    text = "yes" if eq.equivalent else "no"
    if eq.expected and not eq.equivalent:
        text += " (expected yes)"
    return text


# ------------------------------------------------------------------ Markdown

def _cell(text) -> str:
    """Safe inside a GitHub table cell: no pipes, newlines or raw HTML tags."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("\r", " ").replace("\n", " "))


def _inline(text) -> str:
    """Safe in running Markdown text (no raw HTML, no line breaks)."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", " ").replace("\n", " "))


def _code(text, cell: bool = True) -> str:
    """A code span; in a table cell its pipes are escaped (GFM requires it even there)."""
    text = str(text).replace("\r", " ").replace("\n", " ")
    if cell:
        text = text.replace("|", "\\|")
    return f"`{text}`" if "`" not in text else f"`` {text} ``"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> list:
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |",
             "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _kv_table(header: tuple[str, str], rows, code_keys=()) -> list:
    body = [[_cell(k), _code(v) if k in code_keys else _cell(v)] for k, v in rows]
    return _table(header, body, "ll")


def _matrix(report: Report) -> list:
    headers = matrix_headers(report)
    rows = [[_code(r[0])] + [_cell(c) for c in r[1:]] for r in matrix_rows(report)]
    return _table(headers, rows, "l" + "r" * (len(headers) - 1))


def _explanations(report: Report) -> list:
    lines = ["### Why the reported loss and the inference loss differ (measured)", ""]
    if not report.explanations:
        return lines + ["No gaps to explain: every run's losses agree within tolerance.", ""]
    for explanation in report.explanations:
        gap = explanation.get("gap")
        lines.append(f"- **{_code(explanation.get('run', '?'), cell=False)}**: "
                     f"{_inline(explanation_heading(explanation))}")
        for cause in explanation.get("causes", ()):
            delta = cause_delta(cause, gap)
            lines.append(f"  - {_code(cause.get('cause', '?'), cell=False)} {fmt_signed(delta)} "
                         f"({fmt_percent(cause.get('share'))} of the gap): "
                         f"{_inline(cause.get('text', ''))}")
        residual = explanation.get("residual")
        if residual:
            lines.append(f"  - unexplained residual {fmt_signed(residual)}")
        for note in explanation.get("notes", ()):
            lines.append(f"  - note: {_inline(note)}")
    return lines + [""]


def _references(report: Report) -> list:
    lines = ["## ONNX Runtime referee", ""]
    rows = reference_rows(report)
    if not rows:
        return lines + ["not run", ""]
    body = [[_code(name), _cell(what), _cell(value)] for name, what, value in rows]
    return lines + _table(("reference", "quantity", "value"), body, "llr") + [""]


def _checks(report: Report) -> list:
    lines = ["## Checks", ""]
    if not report.checks:
        return lines + ["none", ""]
    body = [[_code(c.name), "pass" if c.passed else "**FAIL**", _cell(fmt(c.value)),
             _cell(fmt(c.tolerance)), _cell(c.detail)] for c in report.checks]
    return lines + _table(("check", "result", "value", "tolerance", "what it measures"),
                          body, "lcrrl") + [""]


def _equivalences(report: Report) -> list:
    lines = ["## Recipe equivalence (measured)", ""]
    if not report.equivalences:
        return lines + ["none listed", ""]
    body = []
    for eq in report.equivalences:
        notes = [f"note: {_cell(eq.judged_on)}"] if eq.judged_on else []
        notes += [_cell(d) for d in eq.differences]
        notes += [f"{cause_label(c)}: {_cell(c.get('text', ''))}" for c in eq.causes]
        body.append([_code(eq.a), _code(eq.b), _cell(equivalence_text(eq)),
                     _cell(fmt(eq.max_diff)), _cell(eq.reason or "-"),
                     "<br>".join(notes) or "-"])
    return lines + _table(("a", "b", "equivalent", "max loss diff", "paired because",
                           "differences"), body, "llcrll") + [""]


def _versions(report: Report) -> list:
    from comparator.analysis.versions import side_by_side, version_findings

    headers, rows = side_by_side(report.runs)
    if not rows:
        return []
    lines = ["## Versions side by side", "",
             "Loss `fit` reported / inference loss after the step; BatchNorm layers on batch "
             "statistics in the train step.", ""]
    lines += _table(headers, [[_code(row[0])] + [_cell(c) for c in row[1:]] for row in rows],
                    "l" * len(headers))
    lines += [""] + [f"- {_inline(f)}" for f in version_findings(report.runs)]
    return lines + [""]


def render_markdown(report: Report, command: str | Sequence[str] | None = None) -> str:
    """The whole report as GitHub-flavoured Markdown."""
    lines = [f"# xframe-compare: {_inline(report.model)} · {_inline(report.scenario)}", "",
             f"**Verdict:** {_inline(verdict(report))}", ""]
    text = command_text(command)
    lines += ["## Command", ""]
    lines += ["```console", f"$ {text}", "```", ""] if text else ["not recorded", ""]
    lines += ["## Settings", ""] + _kv_table(("setting", "value"), settings_rows(report)) + [""]
    lines += ["## Versions", ""] + _kv_table(("package", "version"), environment_rows(report))
    lines += ["", "## Weights", ""]
    lines += _kv_table(("", "value"), weight_rows(report), code_keys=("sha256",)) + [""]
    lines += ["## Matrix", "", *_matrix(report), "", f"<sub>{_inline(LEGEND)}</sub>", ""]
    unavailable = unavailable_lines(report)
    lines += [f"- not measured, {_inline(line)}" for line in unavailable]
    lines += [""] if unavailable else []
    warned = [(run.id, warning) for run in report.runs for warning in run.warnings]
    warned += diverged_steps(report.runs)
    for run_id, warning in warned:
        lines.append(f"- warning, {_code(run_id, cell=False)}: {_inline(warning)}")
    if warned:
        lines.append("")
    lines += _versions(report)
    lines += ["<details><summary>What each run did</summary>", ""]
    lines += _table(("run", "recipe"), [[_code(r.id), _cell(r.description)]
                                        for r in report.runs], "ll")
    lines += ["", "</details>", ""]
    lines += _explanations(report)
    lines += _references(report) + _checks(report) + _equivalences(report)
    lines += [f"<sub>{_inline(report.schema)}</sub>", ""]
    return "\n".join(lines)


def write_markdown(report: Report, path: str, command: str | Sequence[str] | None = None) -> None:
    """Write `render_markdown` to `path` atomically."""
    write_atomic(path, render_markdown(report, command=command))
