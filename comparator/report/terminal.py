"""The terminal view of a report: a matrix of runs, checks and equivalences (rich)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from comparator.config.frameworks import diverged_steps, unavailable_lines
from comparator.report.markdown import cause_label
from comparator.schema import Report


def _fmt(value: float) -> str:
    """Four decimals, or scientific notation where those would hide the value (below 1e-3)
    or stretch the column past the console's width (1e5 and above)."""
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}"
    return f"{value:.2e}" if abs(value) < 1e-3 else f"{value:.4e}"


def _input_words(settings: dict) -> str:
    if settings["image_size"]:
        return f"{settings['image_size']} px"
    shape = (settings.get("inputs") or {}).get("shape") or ()
    if shape and isinstance(shape[0], list):  # several inputs: each one's sample shape
        return "inputs " + " and ".join("x".join(map(str, one[1:])) for one in shape)
    if len(shape) == 3 and settings["inputs"].get("keras_layout") == "as_given":
        return f"sequences of {shape[1]} steps, {shape[2]} features"  # N, L, F (an RNN's)
    if len(shape) == 3:  # N, C, L: as Conv1d takes them
        return f"sequences of {shape[2]} steps, {shape[1]} channels"
    return "vector input"


def run_table(report: Report) -> Table:
    inputs = _input_words(report.settings)
    table = Table(title=f"{report.model} · {report.scenario} · batch "
                        f"{report.settings['batch_size']} · {inputs}",
                  title_justify="left", header_style="bold", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    # Fold, never elide: a console too narrow for the table wraps a cell onto the next line
    # instead of cutting its number short with an ellipsis.
    table.add_column("run", overflow="fold")
    validated = any(run.losses.fit_validation for run in report.runs)
    # The extra column fits 100 columns with shorter headers (the legend names both).
    headers = (("before", "step", "val_loss", "after", "BN batch", "drop", "Δ w", "Δ BN")
               if validated else
               ("before", "train step", "after", "BN batch", "drop", "Δ weight", "Δ BN stat"))
    for header in headers:
        table.add_column(header, justify="right", overflow="fold")
    previous = None
    for run in report.runs:
        if previous and previous != run.framework:
            table.add_section()
        previous = run.framework
        # One loss per line: a row grows taller with --steps, never wider than the console.
        steps = "\n".join(_fmt(v) for v in run.losses.train_step)
        validation = ("\n".join(_fmt(v) for v in run.losses.fit_validation or ()) or "-",)
        table.add_row(run.id, _fmt(run.losses.inference_before), steps,
                      *(validation if validated else ()), _fmt(run.losses.inference_after),
                      f"{run.modes.bn_batch_stats}/{run.modes.bn_layers}",
                      f"{run.modes.dropout_active}/{run.modes.dropout_layers}",
                      _delta(run.state.weights_changed, run.state.max_weight_delta),
                      _delta(run.state.bn_stats_changed, run.state.max_bn_stat_delta))
    return table


def _delta(flag: bool, delta: float) -> str:
    return f"{delta:.1e}" if flag else "-"


LEGEND = ("before/after: inference loss before and after the step; train step (step): the loss "
          "the framework reported; val_loss, when asked: what fit(validation_data=...) "
          "reported; BN batch: BatchNorm layers that normalised with the batch's "
          "statistics in the train-step pass (observed, not assumed); drop: active Dropout "
          "layers; Δ weight (w), Δ BN stat (BN): largest change of a weight or a BatchNorm running "
          "statistic, '-' for none.")


def render_references(report: Report, console: Console) -> None:
    if not report.references:
        console.print("ONNX Runtime referee: not run (--no-onnx)", style="dim")
        return
    console.print("[bold]ONNX Runtime referee[/]")
    for name, ref in report.references.items():
        value = ref.get("inference_before", ref.get("train_forward"))
        if not ref.get("ok", True):
            if isinstance(value, (int, float)):  # one graph of two: its loss still stands
                source = ref.get("inference_before_from")
                console.print(f"  [yellow]{name}: loss {value:.6g}[/]"
                              + (f" from the {source}" if source else "")
                              + f"; {ref.get('error', '')}", highlight=False)
            else:
                console.print(f"  [red]{name}: failed[/] {ref.get('error', '')}",
                              highlight=False)
            continue
        shown = f"{value:.6g}" if isinstance(value, (int, float)) else "-"
        summary = str(ref.get("description", "")).split(":")[0]
        console.print(f"  {name}: loss {shown}  ({summary})",
                      highlight=False)
    console.print()


def render_explanations(report: Report, console: Console) -> None:
    if not report.explanations:
        return
    console.print("[bold]Why the reported loss and the inference loss differ (measured)[/]")
    for explanation in report.explanations:
        console.print(f"  {explanation['summary']}", highlight=False)
        for cause in explanation["causes"]:
            console.print(f"    {cause['loss_delta']:+.4g}  {cause['text']}", style="dim",
                          highlight=False)
        for note in explanation.get("notes", []):
            console.print(f"    note: {note}", style="dim", highlight=False)
    console.print()


def render_equivalences(report: Report, console: Console) -> None:
    console.print("[bold]Recipe equivalence (measured)[/]")
    for eq in report.equivalences:
        mark = "[green]same[/]" if eq.equivalent else "[red]differ[/]"
        # A pair can differ in modes or states while every loss compared agrees.
        amount = (f"max loss diff {eq.max_diff:.1e}" if eq.equivalent or eq.max_diff > 0
                  else "the compared losses agree; the differences are below")
        console.print(f"  {mark}  {eq.a} ~ {eq.b}  ({amount})")
        if eq.judged_on:
            console.print(f"          note: {eq.judged_on}", style="dim", highlight=False)
        for difference in eq.differences:
            console.print(f"          - {difference}", style="dim", highlight=False)
        for cause in eq.causes:
            console.print(f"          {cause_label(cause)}: {cause['text']}", style="dim",
                          highlight=False)
    for finding in report.findings:
        console.print(f"  {finding}", highlight=False)


def render_versions(report: Report, console: Console) -> None:
    """The same recipe across Keras versions (comparator/analysis/versions.py)."""
    from comparator.analysis.versions import side_by_side

    headers, rows = side_by_side(report.runs)
    if not rows:
        return
    table = Table(title="Versions side by side: loss fit reported / inference after; "
                        "BatchNorm layers on batch statistics", title_justify="left")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_whole(console: Console, table: Table) -> None:
    """Print `table` at its natural width into a file or pipe, which has no width of its
    own, where that is wider than the console's default; a terminal keeps its width and
    folds the cells that do not fit."""
    natural = Measurement.get(console, console.options.update(max_width=1000), table).maximum
    if console.is_terminal or natural <= console.width:
        console.print(table)
        return
    width, console.width = console.width, natural  # print() caps its width at the console's
    try:
        console.print(table)
    finally:
        console.width = width


def render(report: Report, console: Console, quiet: bool = False) -> None:
    preset = report.settings.get("preset")
    if preset and not quiet:
        from comparator.config.presets import PRESETS

        question = PRESETS[preset].question if preset in PRESETS else ""
        console.print(f"[bold]Preset {preset}[/]: {question}", highlight=False)
        console.print()
    if not quiet:
        for note in report.settings.get("notes", ()):
            console.print(f"note: {note}", style="yellow", highlight=False)
        print_whole(console, run_table(report))
        for line in unavailable_lines(report):
            console.print(line, style="red" if "failed" in line.split(":")[1] else "yellow",
                          highlight=False)
        for run_id, text in diverged_steps(report.runs):
            console.print(f"warning, {run_id}: {text}", style="yellow", highlight=False)
        console.print(LEGEND, style="dim", highlight=False)
        render_versions(report, console)
        console.print()
        render_explanations(report, console)
        render_equivalences(report, console)
        console.print()
        render_references(report, console)
        for check in report.checks:
            mark = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
            console.print(f"{mark} {check.name}: {check.value:.3g} (tolerance {check.tolerance:g})")
    console.print(verdict_line(report), highlight=False)


def verdict_line(report: Report) -> str:
    failed = [c.name for c in report.checks if not c.passed]
    same = sum(e.equivalent for e in report.equivalences)
    status = "checks passed" if not failed else f"checks FAILED: {', '.join(failed)}"
    missing = ""
    if report.unavailable_runs:
        statuses = [r["status"] for r in report.unavailable_runs]
        failed_runs, diverged = statuses.count("failed"), statuses.count("diverged")
        skipped_runs = len(statuses) - failed_runs - diverged
        missing = "".join(f" ({n} {what})" for n, what in ((failed_runs, "FAILED"),
                                                            (diverged, "DIVERGED"),
                                                            (skipped_runs, "skipped")) if n)
    return (f"{report.model}/{report.scenario}: {len(report.runs)} runs{missing}, {status}; "
            f"{same} of {len(report.equivalences)} listed recipe pairs equivalent; "
            f"{report.timings.get('total_seconds', 0):.1f} s")
