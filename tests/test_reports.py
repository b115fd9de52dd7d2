"""Markdown and HTML reports, checked the way a person reads them.

The Markdown matrix is parsed back and compared with the JSON report's numbers;
the HTML page is opened in headless Chromium (skipped when it is not installed:
scripts/install_chromium.sh), which must load it without a console error, show
every plot and one matrix row per run, and leaves a screenshot in tmp_path.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from comparator.report.html import CSP, render_html, write_html
from comparator.report.markdown import render_markdown, write_markdown
from comparator.schema import Check, Equivalence, Losses, Modes, Report, RunResult, State

HOSTILE = "<img src=x onerror=\"console.error('escaped?')\"> a|b & c"
COMMAND = ["python", "scripts/compare.py", "tiny_cnn", "--batch-size", "4", "--image-size", "16"]


def _run(id_, before, steps, after, *, bn=(2, 2), drop=(1, 1), trainable=100, moved=(0.0, 0.0),
         fit=None, description="a recipe"):
    framework, recipe = id_.split(":")
    return RunResult(
        id=id_, framework=framework, recipe=recipe, description=description,
        losses=Losses(before, tuple(steps), after, None if fit is None else tuple(fit)),
        state=State(trainable_params=trainable, frozen_params=1234567 - trainable,
                    weights_changed=moved[0] > 0, max_weight_delta=moved[0],
                    bn_stats_changed=moved[1] > 0, max_bn_stat_delta=moved[1]),
        modes=Modes(bn_layers=bn[1], bn_batch_stats=bn[0], dropout_layers=drop[1],
                    dropout_active=drop[0]),
        seconds=0.1)


def made_report(references=True, explanations=True) -> Report:
    """A small report with every optional part: several steps, fit validation, referee."""
    runs = (
        _run("pytorch:train", 2.380145311355591, [2.3634583950042725], 2.3277666568756104,
             moved=(0.0041986554861068726, 0.020811080932617188), trainable=1234567),
        _run("pytorch:eval", 2.380145311355591, [2.380145311355591, 2.31, 2.250001],
             1.2499027252197266e-05, bn=(0, 2), drop=(0, 1), moved=(0.004211828112602234, 0.0),
             description=HOSTILE),
        _run("keras:trainable_false", 16.11809539794922, [16.11809539794922], 16.118095,
             bn=(0, 2), trainable=0, fit=[16.1181, 0.3]),
        _run("keras:training_false", 0.3141592653589793, [5.312], 0.29999999, bn=(2, 2),
             moved=(1e-9, 123456.789), fit=[0.30001]),
    )
    return Report(
        model="tiny_cnn", scenario="classify",
        settings={"batch_size": 4, "image_size": 16, "seed": 0, "steps": 3,
                  "weights": "random-calibrated", "weights_sha256": "ab" * 32,
                  "weights_description": f"seeded weights {HOSTILE}",
                  "optimizer": {"name": "sgd", "lr": 0.01}, "loss": "cross-entropy",
                  "device": "cpu", "preset": None, "frameworks": ["pytorch", "keras"]},
        environment={"python": "3.11.7", "torch": "2.14.1", "keras": "3.15.1",
                     "keras_backend": "torch", "onnxruntime": "1.32.0"},
        runs=runs,
        references=({"onnx:eval": {"inference_before": 2.3801453},
                     "onnx:train_forward": {"train_forward": 2.36345}} if references else {}),
        checks=(Check("port:keras_vs_pytorch_eval_logits", True, 1.341104507446289e-07, 1e-4,
                      detail=f"max abs difference {HOSTILE}"),
                Check("loss:finite", False, 7.0, 0.0)),
        explanations=(({"run": "pytorch:train", "gap": -0.03569173812866211,
                        "causes": [{"cause": "bn_batch_statistics", "share": -0.9,
                                    "text": f"batch statistics {HOSTILE}"},
                                   {"cause": "update", "share": 1.9, "loss_delta": -0.0678,
                                    "text": "the update"}]},) if explanations else ()),
        equivalences=(Equivalence("keras:trainable_false", "pytorch:eval", False,
                                  0.00023774057626724243, expected=True, reason=HOSTILE,
                                  differences=("weights_changed: False vs True", HOSTILE),
                                  causes=({"cause": "bn_variance_bias", "text": "biased"},)),
                      Equivalence("keras:training_false", "pytorch:train", True, 0.0)),
        timings={"total_seconds": 1.5})


# ---------------------------------------------------------------- Terminal

def test_terminal_matrix_shows_every_number_whole_in_a_file():
    """Several steps, fit validation, a long run id and a diverging loss: printed into a
    file (100 columns by default), no cell is cut short with an ellipsis."""
    import dataclasses
    import io

    from rich.console import Console

    from comparator.report.terminal import _fmt, render

    report = made_report(explanations=False)
    long_id = _run("pytorch:eval_requires_grad", 0.5049, [0.3762, 4.7198, 0.5553],
                   2.8123863187456e13, bn=(0, 121), moved=(0.5, 0.0))
    report = dataclasses.replace(report, runs=report.runs + (long_id,))
    console = Console(file=io.StringIO(), width=100)
    render(report, console)
    text = console.file.getvalue()
    assert "\u2026" not in text
    for run in report.runs:
        row = next(line for line in text.splitlines() if line.startswith(f" {run.id} "))
        assert _fmt(run.losses.inference_before) in row
        assert _fmt(run.losses.inference_after) in row
        assert all(_fmt(loss) in text for loss in run.losses.train_step)
    assert "2.8124e+13" in text


# ---------------------------------------------------------------- Markdown

def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _table_after(markdown: str, heading: str) -> list[list[str]]:
    """The rows (header and separator dropped) of the first table under `heading`."""
    lines = markdown.splitlines()
    start = lines.index(heading)
    rows, inside = [], False
    for line in lines[start + 1:]:
        if line.startswith("|"):
            inside = True
            rows.append(_cells(line))
        elif inside:
            break
    return rows[2:]


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


def _same(cell: str, value) -> None:
    """A cell shows the JSON number: 6 significant digits, and parses back to it."""
    if isinstance(value, int) and not isinstance(value, bool):
        assert cell == f"{value:,}"
    else:
        assert cell == f"{value:.6g}"
    assert _number(cell) == pytest.approx(value, rel=5e-6, abs=0)


def _changed(cell: str, flag: bool, delta: float) -> None:
    if not flag and not delta:
        assert cell == "no"
        return
    match = re.fullmatch(r"(yes|no) \((\S+)\)", cell)
    assert match, cell
    assert match.group(1) == ("yes" if flag else "no")
    _same(match.group(2), delta)


@pytest.fixture(params=["made", "tiny_classify"])
def any_report(request):
    if request.param == "made":
        return made_report()
    return request.getfixturevalue("tiny_classify").report


def test_markdown_matrix_and_tables_show_the_json_numbers(any_report, tmp_path):
    path = tmp_path / "report.md"
    write_markdown(any_report, str(path), command=COMMAND)
    markdown = path.read_text()
    data = json.loads(any_report.to_json())
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # atomic: no temp left
    assert "$ python scripts/compare.py tiny_cnn --batch-size 4 --image-size 16" in markdown

    rows = _table_after(markdown, "## Matrix")
    assert len(rows) == len(data["runs"])
    fit = any(r["losses"]["fit_validation"] for r in data["runs"])
    for row, run in zip(rows, data["runs"]):
        if fit:
            validation = row.pop(4)
            expected = run["losses"]["fit_validation"] or []
            for cell, value in zip(validation.split(", "), expected):
                _same(cell, value)
        (run_id, before, steps, after, bn, dropout, weights, stats, trainable) = row
        losses, state, modes = run["losses"], run["state"], run["modes"]
        assert run_id == f"`{run['id']}`"
        _same(before, losses["inference_before"])
        assert len(steps.split(", ")) == len(losses["train_step"])
        for cell, value in zip(steps.split(", "), losses["train_step"]):
            _same(cell, value)
        _same(after, losses["inference_after"])
        assert bn == f"{modes['bn_batch_stats']} / {modes['bn_layers']}"
        assert dropout == f"{modes['dropout_active']} / {modes['dropout_layers']}"
        _changed(weights, state["weights_changed"], state["max_weight_delta"])
        _changed(stats, state["bn_stats_changed"], state["max_bn_stat_delta"])
        _same(trainable, state["trainable_params"])

    checks = _table_after(markdown, "## Checks")
    assert len(checks) == len(data["checks"])
    for row, check in zip(checks, data["checks"]):
        assert row[0] == f"`{check['name']}`"
        assert row[1] == ("pass" if check["passed"] else "**FAIL**")
        _same(row[2], check["value"])
        _same(row[3], check["tolerance"])

    pairs = _table_after(markdown, "## Recipe equivalence (measured)")
    assert len(pairs) == len(data["equivalences"])
    for row, eq in zip(pairs, data["equivalences"]):
        assert row[:2] == [f"`{eq['a']}`", f"`{eq['b']}`"]
        assert row[2].startswith("yes" if eq["equivalent"] else "no")
        _same(row[3], eq["max_diff"])

    references = _table_after(markdown, "## ONNX Runtime referee") if data["references"] \
        else []
    expected_refs = [v for values in data["references"].values() for v in values.values()]
    assert [_number(r[2]) for r in references] == pytest.approx(expected_refs, rel=5e-6)
    if not data["references"]:
        section = markdown.split("## ONNX Runtime referee", 1)[1].split("##", 1)[0]
        assert section.strip() == "not run"

    for explanation in data["explanations"]:
        assert f"gap {explanation['gap']:+.6g}" in markdown


def test_markdown_escapes_report_strings_and_renders_empty_parts():
    markdown = render_markdown(made_report(references=False, explanations=False))
    assert "<img" not in markdown and "&lt;img src=x" in markdown
    assert "a\\|b" in markdown  # a pipe inside a table cell does not split it
    assert "not run" in markdown and "No gaps to explain" in markdown
    assert "## Command\n\nnot recorded" in markdown
    rows = _table_after(markdown, "## Matrix")
    assert all(len(row) == 10 for row in rows)  # fit validation column present, 9 + 1


def test_the_referee_table_reads_as_text_not_as_python():
    """Its exports, distances and skipped runs were printed as Python dicts' repr ({'ok':
    True, 'error': None, ...}): each graph now reads as its exporter, its source and its
    loss, or why it failed or was skipped."""
    exports = {"pytorch": {"ok": False, "error": "export failed: SymbolicValueError: refused",
                           "exporter": "torchscript"},
               "keras": {"ok": True, "error": None, "exporter": "keras", "cached": True,
                         "loss": 2.38014, "file": "/cache/graph.onnx"},
               "keras-tensorflow": {"ok": False, "skipped": True, "error": None,
                                    "reason": "tf2onnx is not installed"}}
    report = made_report()
    report = Report(**{**report.__dict__, "references": {
        "onnx:eval": {"ok": False, "error": "pytorch graph: export failed", "exports": exports,
                      "max_abs_diff": {"keras_graph_vs_pytorch": 1.5e-07}},
        "onnx:train_forward": {"export": exports["keras"], "compared_runs": [],
                               "skipped_runs": {"pytorch:eval": "moving statistics"}}}})
    rows = {(row[0], row[1]): row[2] for row in _table_after(render_markdown(report),
                                                             "## ONNX Runtime referee")}
    assert rows[("`onnx:eval`", "exports")] == (
        "pytorch: torchscript, failed: export failed: SymbolicValueError: refused; keras: "
        "keras, from the cache, loss 2.38014; keras-tensorflow: skipped (tf2onnx is not "
        "installed)")
    assert rows[("`onnx:eval`", "max_abs_diff")] == "keras_graph_vs_pytorch: 1.5e-07"
    assert rows[("`onnx:train_forward`", "export")] == "keras, from the cache, loss 2.38014"
    assert rows[("`onnx:train_forward`", "compared_runs")] == "none"
    assert rows[("`onnx:train_forward`", "skipped_runs")] == "pytorch:eval: moving statistics"
    assert not any("{" in value or "None" in value for value in rows.values())


# -------------------------------------------------------------------- HTML

BN_DELTAS = {"pytorch:train": [0.0208, 0.011, 0.0041], "pytorch:eval": [0.0, 0.0, 0.0],
             "keras:training_false": [0.02, 1e-6, 123456.0]}
PORT_LAYERS = {"conv1": 1e-8, "bn1": 2e-8, "conv2": 0.0, "fc": 1.3e-7}


def test_html_is_self_contained_and_escaped(tmp_path):
    path = tmp_path / "report.html"
    write_html(made_report(), str(path), command=COMMAND, bn_deltas=BN_DELTAS,
               port_layers=PORT_LAYERS)
    page = path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert f'content="{CSP}"' in page
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(?!data:)[a-z]+:""", page, re.I)
    assert "url(" not in page and "@import" not in page
    assert page.count('<img class="plot"') == 3
    assert page.count('src="data:image/png;base64,') == 3
    assert "&lt;img src=x onerror=" in page
    assert "<img src=x" not in page
    without = render_html(made_report(references=False))
    assert without.count('<img class="plot"') == 1  # losses only: no per-layer data given
    assert "not run" in without


def test_modules_import_without_matplotlib():
    code = ("import sys, comparator.report.html, comparator.report.markdown, "
            "comparator.report.plots; "
            "sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser",
                      "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


PROBE = """<script>
window.__errors = [];
addEventListener("error", e => __errors.push("error: " + e.message));
document.addEventListener("securitypolicyviolation",
                          e => __errors.push("csp: " + e.violatedDirective + " " + e.blockedURI));
const __consoleError = console.error;
console.error = (...a) => { __errors.push("console: " + a.join(" ")); __consoleError(...a); };
addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    errors: __errors,
    images: [...document.querySelectorAll("img.plot")].map(
      i => ({alt: i.alt, w: i.naturalWidth, h: i.naturalHeight, complete: i.complete})),
    matrix_rows: document.querySelectorAll("#matrix tbody tr").length,
    title: document.title,
  });
  document.body.appendChild(out);
});
</script>"""


def _browser(chromium: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the browser we started, and its children
            process.communicate()
            pytest.fail(f"chromium did not finish within 120 s: {' '.join(command)}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_html_opens_in_headless_chromium(tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium not installed (run scripts/install_chromium.sh, or set CHROMIUM)")
    report = made_report()
    page = tmp_path / "report.html"
    write_html(report, str(page), command=COMMAND, bn_deltas=BN_DELTAS,
               port_layers=PORT_LAYERS)

    # The page itself, as a reader opens it: no console message of any kind (CSP
    # violations, blocked loads and script errors all land there), and a screenshot.
    shot = tmp_path / "report.png"
    result = _browser(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1200,2000",
                      page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert _console_lines(result.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

    # A copy with a probe script (the page has none, so its policy gains inline scripts
    # only here) reports what the browser rendered.
    probed = tmp_path / "probed.html"
    source = page.read_text().replace(CSP, CSP + "; script-src 'unsafe-inline'")
    probed.write_text(source.replace("<head>", "<head>" + PROBE, 1))
    result = _browser(chromium, tmp_path, "--dump-dom", probed.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stdout[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["errors"] == [] and _console_lines(result.stderr) == []
    assert seen["title"] == "xframe-compare: tiny_cnn · classify"
    assert seen["matrix_rows"] == len(report.runs)
    assert len(seen["images"]) == 3
    for image in seen["images"]:
        assert image["complete"] and image["w"] > 0 and image["h"] > 0, image


def test_plots_are_skipped_without_data_and_drawn_with_it():
    from comparator.report import plots

    assert plots.bn_delta_plot(None) is None
    assert plots.bn_delta_plot({"pytorch:eval": [0.0, 0.0]}) is None  # nothing moved
    assert plots.port_divergence_plot(None) is None and plots.port_divergence_plot({}) is None
    for layers in ([("conv1", 0.0), ("fc", 0.0)], {"keras": {"conv1": 1e-7, "fc": 2e-7}}):
        assert plots.port_divergence_plot(layers)[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.reference_lines(made_report(references=False)) == {}
    assert plots.reference_lines(made_report()) == {"onnx:eval": 2.3801453,
                                                    "onnx:train_forward": 2.36345}


def test_html_plots_bn_changes_by_depth_from_the_runner(tiny_classify, tmp_path):
    from comparator.report.html import write_html

    assert set(tiny_classify.bn_deltas) >= {"pytorch:train", "keras:train"}
    assert all(len(v) == 3 for v in tiny_classify.bn_deltas.values())
    path = tmp_path / "r.html"
    write_html(tiny_classify.report, str(path), bn_deltas=tiny_classify.bn_deltas)
    assert path.read_text().count("data:image/png") == 2


def test_terminal_keeps_the_loss_of_the_graph_that_exported():
    """One graph of two failed to export: the reference printed 'failed' and hid the loss
    the other graph measured."""
    import io

    from rich.console import Console

    from comparator.report.terminal import render_references

    report = Report(**{**made_report().__dict__, "references": {
        "onnx:eval": {"ok": False, "error": "keras graph: export failed: refused",
                      "inference_before": 1.0157389, "inference_before_from": "pytorch graph"},
        "onnx:train_forward": {"ok": False, "error": "pytorch graph: export failed: no"}}})
    console = Console(file=io.StringIO(), width=200)
    render_references(report, console)
    lines = console.file.getvalue().splitlines()
    assert lines[1] == ("  onnx:eval: loss 1.01574 from the pytorch graph; keras graph: "
                        "export failed: refused")
    assert lines[2] == "  onnx:train_forward: failed pytorch graph: export failed: no"
