"""A report as one self-contained HTML page with plots.

Nothing is fetched: the style sheet is inline, plots are base64 PNG data URIs,
there is no script, and a Content-Security-Policy forbids loading anything
else, so the file opens the same offline, attached to an issue or archived.
Every string taken from the report is HTML-escaped. The content is the
Markdown report's (the same helpers decide what each cell says) plus plots.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape

from comparator.report import plots
from comparator.config.frameworks import diverged_steps, unavailable_lines
from comparator.io import write_atomic
from comparator.report.markdown import (
    LEGEND,
    cause_delta,
    cause_label,
    command_text,
    environment_rows,
    equivalence_text,
    explanation_heading,
    fmt,
    fmt_percent,
    fmt_signed,
    matrix_headers,
    matrix_rows,
    reference_rows,
    settings_rows,
    verdict,
    weight_rows,
)
from comparator.schema import Report

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa;
        --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "Liberation Sans", Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 28px 32px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
code, pre, td.num { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono",
                  "Liberation Mono", Menlo, Consolas, monospace; }
code { font-size: 13px; background: var(--soft); padding: 1px 5px; border-radius: 4px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
      padding: 10px 14px; font-size: 13px; white-space: pre-wrap; word-break: break-all; }
.verdict { margin: 10px 0 0; padding: 10px 14px; border-radius: 6px; border: 1px solid var(--line);
           background: var(--soft); }
.verdict.ok { border-left: 5px solid var(--ok); }
.verdict.bad { border-left: 5px solid var(--bad); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(330px, 1fr)); gap: 8px 28px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; margin: 4px 0 6px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 9px; text-align: left;
         vertical-align: top; }
th { background: var(--soft); font-weight: 600; font-size: 13px; }
table.kv.weights th { width: 12%; }
table.kv th { width: 34%; background: none; font-weight: 500; color: var(--muted); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; font-size: 13px; }
#matrix td.steps { white-space: normal; min-width: 9ch; }
#matrix th, #matrix td { padding: 5px 7px; }
table.kv code { word-break: break-all; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
tr.first-of-framework td { border-top: 2px solid #8c959f; }
.scroll { overflow-x: auto; }
.yes { color: #953800; font-weight: 600; }
.no { color: var(--muted); }
.pass { color: var(--ok); font-weight: 600; }
.fail { color: var(--bad); font-weight: 700; }
.same { color: var(--ok); font-weight: 600; }
.differ { color: var(--bad); font-weight: 600; }
td.same, td.differ { white-space: nowrap; }
.legend, .caption, .muted { color: var(--muted); font-size: 13px; }
.explanation { margin: 12px 0 16px; }
.explanation table td:first-child { width: 23%; }
.explanation .run { font-weight: 600; }
ul.notes { margin: 4px 0; padding-left: 20px; font-size: 14px; }
figure { margin: 14px 0 22px; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid var(--line);
             border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
details summary { cursor: pointer; color: var(--muted); margin: 8px 0; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
@media print { main { max-width: none; padding: 0; } h2 { break-after: avoid; } }
"""


def _e(value) -> str:
    return escape(str(value), quote=True)


def _kv(rows, code_keys=(), css="kv") -> str:
    body = "".join(
        f"<tr><th scope=\"row\">{_e(k)}</th>"
        f"<td>{f'<code>{_e(v)}</code>' if k in code_keys else _e(v)}</td></tr>"
        for k, v in rows)
    return f"<table class=\"{css}\"><tbody>{body}</tbody></table>"


def _yes_no(text: str) -> str:
    css = "yes" if text.startswith("yes") else "no" if text.startswith("no") else ""
    return f"<span class=\"{css}\">{_e(text)}</span>" if css else _e(text)


def _matrix(report: Report) -> str:
    headers = matrix_headers(report)
    num = ' class="num"'
    head = "".join(f"<th{num if i else ''} scope=\"col\">{_e(h)}</th>"
                   for i, h in enumerate(headers))
    changed = {headers.index("weights changed (max Δ)"),
               headers.index("BN stats changed (max Δ)")}
    steps = headers.index("train step(s)")
    rows, previous = [], None
    for run, cells in zip(report.runs, matrix_rows(report)):
        first = previous is not None and run.framework != previous
        previous = run.framework
        tds = [f"<td><code>{_e(cells[0])}</code></td>"]
        for i, cell in enumerate(cells[1:], start=1):
            content = _yes_no(cell) if i in changed else _e(cell)
            cls = "num steps" if i == steps else "num"
            tds.append(f"<td class=\"{cls}\">{content}</td>")
        css = " class=\"run first-of-framework\"" if first else " class=\"run\""
        rows.append(f"<tr{css} data-run=\"{_e(run.id)}\" title=\"{_e(run.description)}\">"
                    f"{''.join(tds)}</tr>")
    return (f"<div class=\"scroll\"><table id=\"matrix\"><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
            f"<p class=\"legend\">{_e(LEGEND)}</p>")


def _warnings(report: Report) -> str:
    warned = [(run.id, w) for run in report.runs for w in run.warnings]
    items = [f"<li><code>{_e(run_id)}</code>: {_e(w)}</li>"
             for run_id, w in warned + diverged_steps(report.runs)]
    return f"<ul class=\"notes\">{''.join(items)}</ul>" if items else ""


def _recipes(report: Report) -> str:
    rows = "".join(f"<tr><td><code>{_e(r.id)}</code></td><td>{_e(r.description)}</td></tr>"
                   for r in report.runs)
    return ("<details><summary>What each run did</summary><table><thead><tr>"
            "<th>run</th><th>recipe</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></details>")


def _explanations(report: Report) -> str:
    out = ["<h3>Why the reported loss and the inference loss differ (measured)</h3>"]
    if not report.explanations:
        out.append("<p class=\"muted\">No gaps to explain: every run's losses agree within "
                   "tolerance.</p>")
        return "".join(out)
    for explanation in report.explanations:
        gap = explanation.get("gap")
        rows = []
        for cause in explanation.get("causes", ()):
            rows.append(
                f"<tr><td><code>{_e(cause.get('cause', '?'))}</code></td>"
                f"<td class=\"num\">{_e(fmt_signed(cause_delta(cause, gap)))}</td>"
                f"<td class=\"num\">{_e(fmt_percent(cause.get('share')))}</td>"
                f"<td>{_e(cause.get('text', ''))}</td></tr>")
        residual = explanation.get("residual")
        if residual:
            rows.append(f"<tr><td>unexplained residual</td><td class=\"num\">"
                        f"{_e(fmt_signed(residual))}</td><td></td><td></td></tr>")
        table = ("<table><thead><tr><th>cause</th><th class=\"num\">loss Δ</th>"
                 "<th class=\"num\">share of gap</th><th>what was measured</th></tr></thead>"
                 f"<tbody>{''.join(rows)}</tbody></table>") if rows else ""
        notes = "".join(f"<li>{_e(n)}</li>" for n in explanation.get("notes", ()))
        notes = f'<ul class="notes">{notes}</ul>' if notes else ""
        out.append(
            f"<div class=\"explanation\"><div><code class=\"run\">"
            f"{_e(explanation.get('run', '?'))}</code> "
            f"<span class=\"muted\">{_e(explanation_heading(explanation))}</span></div>"
            f"{table}{notes}</div>")
    return "".join(out)


def _references(report: Report) -> str:
    rows = reference_rows(report)
    if not rows:
        return "<p class=\"muted\">not run</p>"
    body = "".join(f"<tr><td><code>{_e(n)}</code></td><td>{_e(q)}</td>"
                   f"<td class=\"num\">{_e(v)}</td></tr>" for n, q, v in rows)
    return ("<table id=\"references\"><thead><tr><th>reference</th><th>quantity</th>"
            f"<th class=\"num\">value</th></tr></thead><tbody>{body}</tbody></table>")


def _checks(report: Report) -> str:
    if not report.checks:
        return "<p class=\"muted\">none</p>"
    body = "".join(
        f"<tr><td><code>{_e(c.name)}</code></td>"
        f"<td class=\"{'pass' if c.passed else 'fail'}\">{'pass' if c.passed else 'FAIL'}</td>"
        f"<td class=\"num\">{_e(fmt(c.value))}</td><td class=\"num\">{_e(fmt(c.tolerance))}</td>"
        f"<td>{_e(c.detail)}</td></tr>" for c in report.checks)
    return ("<table id=\"checks\"><thead><tr><th>check</th><th>result</th>"
            "<th class=\"num\">value</th><th class=\"num\">tolerance</th>"
            f"<th>what it measures</th></tr></thead><tbody>{body}</tbody></table>")


def _equivalences(report: Report) -> str:
    if not report.equivalences:
        return "<p class=\"muted\">none listed</p>"
    rows = []
    for eq in report.equivalences:
        items = [f"<li><b>note:</b> {_e(eq.judged_on)}</li>"] if eq.judged_on else []
        items += [f"<li>{_e(d)}</li>" for d in eq.differences]
        items += [f"<li><b>{cause_label(c)}:</b> {_e(c.get('text', ''))}</li>" for c in eq.causes]
        notes = f"<ul class=\"notes\">{''.join(items)}</ul>" if items else "-"
        css = "same" if eq.equivalent else "differ"
        rows.append(
            f"<tr><td><code>{_e(eq.a)}</code><br><code>{_e(eq.b)}</code></td>"
            f"<td class=\"{css}\">{_e(equivalence_text(eq))}</td>"
            f"<td class=\"num\">{_e(fmt(eq.max_diff))}</td>"
            f"<td>{_e(eq.reason or '-')}</td><td>{notes}</td></tr>")
    return ("<table id=\"equivalences\"><thead><tr><th>a / b</th><th>equivalent</th>"
            "<th class=\"num\">max loss diff</th><th>paired because</th><th>differences</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _figure(png: bytes, alt: str, caption: str, name: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f"<figure id=\"plot-{_e(name)}\"><img class=\"plot\" alt=\"{_e(alt)}\" "
            f"src=\"data:image/png;base64,{data}\"><figcaption>{_e(caption)}</figcaption>"
            "</figure>")


def _plots(report: Report, bn_deltas, port_layers) -> str:
    if not plots.available():
        return ("<p class=\"muted\">Plots need matplotlib, which is not installed "
                "(pip install matplotlib).</p>")
    out = []
    png = plots.loss_plot(report)
    if png:
        refs = plots.reference_lines(report)
        ref_text = (" Horizontal lines: the ONNX Runtime referee's losses." if refs else
                    " The ONNX Runtime referee was not run, so no reference lines.")
        out.append(_figure(png, "losses per framework and recipe",
                           "Losses per framework and recipe: inference before the step "
                           "(circle), the loss each train step reported (triangle), inference "
                           "after the step(s) (square)." + ref_text, "losses"))
    png = plots.bn_delta_plot(bn_deltas)
    if png:
        out.append(_figure(png, "BatchNorm running-statistic change per layer",
                           "Largest change of each BatchNorm layer's running statistics made "
                           "by the step(s), by depth, for every run that moved them.",
                           "bn-deltas"))
    png = plots.port_divergence_plot(port_layers)
    if png:
        out.append(_figure(png, "per-layer divergence of the port",
                           "Port validation: largest absolute difference between the original "
                           "and the ported model's outputs after each layer, by depth (log "
                           "scale; exact zeros drawn at the floor).", "port"))
    return "".join(out)


def render_html(report: Report, command: str | Sequence[str] | None = None,
                bn_deltas: Mapping[str, Sequence[float]] | None = None,
                port_layers=None) -> str:
    """The whole report as a self-contained HTML page.

    bn_deltas: optional {run_id: [max |running-statistic change| per BatchNorm
    layer, in depth order]}; port_layers: optional per-layer port divergence,
    {layer: max abs diff} in depth order (or {label: {layer: diff}}). Plots for
    them are drawn only when given.
    """
    title = f"xframe-compare: {report.model} · {report.scenario}"
    ok = report.checks_passed
    text = command_text(command)
    command_html = (f"<pre class=\"command\">$ {_e(text)}</pre>" if text
                    else "<p class=\"muted\">not recorded</p>")
    figures = _plots(report, bn_deltas, port_layers)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{_e(report.schema)}">
<title>{_e(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>{_e(title)}</h1>
<div class="verdict {'ok' if ok else 'bad'}">{_e(verdict(report))}</div>
<h2>Command</h2>
{command_html}
<div class="grid">
<section><h2>Settings</h2>{_kv(settings_rows(report))}</section>
<section><h2>Versions</h2>{_kv(environment_rows(report))}</section>
</div>
<h2>Weights</h2>
{_kv(weight_rows(report), code_keys=("sha256",), css="kv weights")}
<h2>Matrix</h2>
{_matrix(report)}
{"".join(f'<p class="bad">not measured, {_e(line)}</p>' for line in unavailable_lines(report))}
{_warnings(report)}
{_recipes(report)}
{_explanations(report)}
<h2>Plots</h2>
{figures or '<p class="muted">nothing to plot</p>'}
<h2>ONNX Runtime referee</h2>
{_references(report)}
<h2>Checks</h2>
{_checks(report)}
<h2>Recipe equivalence (measured)</h2>
{_equivalences(report)}
<footer>{_e(report.schema)} · written by xframe-compare</footer>
</main>
</body>
</html>
"""


def write_html(report: Report, path: str, command: str | Sequence[str] | None = None,
               bn_deltas: Mapping[str, Sequence[float]] | None = None,
               port_layers=None) -> None:
    """Write `render_html` to `path` atomically."""
    write_atomic(path, render_html(report, command=command, bn_deltas=bn_deltas,
                                   port_layers=port_layers))
