"""The behaviour matrix of a sweep: rows are behaviours of each recipe, columns are the
swept axes (a cell's settings that vary, times the frameworks it ran); a value that differs
from its row's majority stands out.

The JSON (`summary.json`) holds only categorical behaviours and the cells' statuses, no
timings or raw losses, so that a CI job can diff it after a framework upgrade and see
only behaviour that changed.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections import Counter

from comparator.analysis.equivalence import DROPOUT_ACTIVE_DIFFERENCE
from comparator.io import write_atomic

SCHEMA = "xframe-compare/sweep-summary/1"
BEHAVIOURS = ("BatchNorm on batch statistics", "moving statistics updated", "Dropout active",
              "train-step loss vs inference loss", "equivalent PyTorch twin")
# Train-step and inference losses of the same weights agree to float32 rounding.
SAME_LOSS_RTOL = 1e-5
MISSING = "–"


def _share(active: int, layers: int, none_word: str) -> str:
    if layers == 0:
        return none_word
    if active == 0:
        return "none"
    return "all" if active == layers else f"{active} of {layers}"


def _loss_relation(losses: dict) -> str:
    step, before = (losses.get("train_step") or [None])[0], losses.get("inference_before")
    if step is None or before is None or not (math.isfinite(step) and math.isfinite(before)):
        return "not finite"
    same = abs(step - before) <= SAME_LOSS_RTOL * max(1.0, abs(before))
    return "equal" if same else "differs"


NOT_COMPARED = "not compared"  # reports before judged_on: Dropout masks differed
WITHOUT_DROPOUT = " without Dropout"  # judged on the Dropout-free passes (judged_on)


def _verdict(pair: dict) -> str:
    """`equivalent`, `differs`, with ` without Dropout` where judged on the Dropout-free
    passes; where the one difference found is that one run had Dropout active and the other
    none, `differs in Dropout alone (active in 1 vs 0 layers)`: the Dropout-free passes
    agree, so `differs without Dropout` would say what was not measured."""
    judged = WITHOUT_DROPOUT if pair.get("judged_on") else ""
    if pair.get("equivalent"):
        return "equivalent" + judged
    differences = pair.get("differences") or []
    if differences and all(NOT_COMPARED in d for d in differences):
        return NOT_COMPARED
    if len(differences) == 1 and differences[0].startswith(DROPOUT_ACTIVE_DIFFERENCE + ": "):
        counts = differences[0][len(DROPOUT_ACTIVE_DIFFERENCE) + 2:].split(" (", 1)[0]
        return f"differs in Dropout alone (active in {counts} layers)"
    return "differs" + judged


def _twins(report: dict, run: dict) -> str:
    """The PyTorch recipes this run is expected to match, or found to match, and whether it
    does: `eval_requires_grad: equivalent`, `eval: differs`; with Dropout active (each
    framework draws its own masks) `... without Dropout`: judged on the Dropout-free
    passes. Reports written before that judgement say `... not compared`."""
    if run["framework"] == "pytorch":
        return MISSING
    twins = set()
    for pair in report.get("equivalences", []):
        if not (pair.get("expected") or pair.get("equivalent")):
            continue
        for mine, other in ((pair["a"], pair["b"]), (pair["b"], pair["a"])):
            if mine == run["id"] and other.startswith("pytorch:"):
                twins.add(f"{other.split(':', 1)[1]}: {_verdict(pair)}")
    return ", ".join(sorted(twins)) or "none"


def run_behaviours(report: dict, run: dict) -> dict[str, str]:
    modes, state = run["modes"], run["state"]
    return {
        BEHAVIOURS[0]: _share(modes["bn_batch_stats"], modes["bn_layers"], "no BatchNorm"),
        BEHAVIOURS[1]: ("no BatchNorm" if modes["bn_layers"] == 0 else
                        "yes" if state["bn_stats_changed"] else "no"),
        BEHAVIOURS[2]: _share(modes["dropout_active"], modes["dropout_layers"], "no Dropout"),
        BEHAVIOURS[3]: _loss_relation(run["losses"]),
        BEHAVIOURS[4]: _twins(report, run),
    }


def load_reports(out_dir: str, entries: list[dict]) -> dict[str, dict]:
    reports = {}
    for entry in entries:
        if entry.get("status") in ("done", "reused") and entry.get("report"):
            with open(os.path.join(out_dir, entry["report"])) as handle:
                reports[entry["id"]] = json.load(handle)
    return reports


def _varying(entries: list[dict]) -> list[str]:
    keys: list[str] = []
    for entry in entries:
        keys += [k for k in entry["settings"] if k not in keys]
    return [k for k in keys
            if len({json.dumps(e["settings"].get(k)) for e in entries}) > 1]


SHORT = {"image_size": "{} px", "batch_size": "batch {}", "seed": "seed {}", "scenario": "{}"}
# Not in labels: the column names its framework, the name its preset, and a recipe list is
# long and already visible in the rows.
UNLABELLED = ("model", "preset", "recipes", "frameworks")


def _label(settings: dict, varying: list[str], with_frameworks: bool = False) -> str:
    name = settings.get("model") or f"preset {settings.get('preset')}"
    keys = [k for k in varying if k in settings and k not in UNLABELLED]
    keys += ["frameworks"] if with_frameworks and "frameworks" in settings else []
    rest = [SHORT[k].format(settings[k]) if k in SHORT else f"{k}={_value(settings[k])}"
            for k in keys]
    return " ".join([name, *rest])


def _value(value) -> str:
    """A float as people write it (lr=1e+09, not lr=1000000000.0)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _labels(finished: list[dict], varying: list[str]) -> dict[str, str]:
    """A cell's label, naming its framework list only where cells would look alike."""
    labels = {e["id"]: _label(e["settings"], varying) for e in finished}
    seen = Counter(labels.values())
    for entry in finished:
        if seen[labels[entry["id"]]] > 1:
            labels[entry["id"]] = _label(entry["settings"], varying, with_frameworks=True)
    seen = Counter(labels.values())
    return {cell: label if seen[label] == 1 else f"{label} ({cell})"
            for cell, label in labels.items()}


def build_summary(entries: list[dict], reports: dict[str, dict]) -> dict:
    finished = [e for e in entries if e["id"] in reports]
    varying = _varying(finished)
    labels = _labels(finished, varying)
    columns, values = [], {}
    for entry in finished:
        report = reports[entry["id"]]
        frameworks = list(dict.fromkeys(r["framework"] for r in report["runs"]))
        frameworks += [u["framework"] for u in report.get("unavailable_runs", [])
                       if u["framework"] not in frameworks]
        for framework in frameworks:
            column = f"{entry['id']}/{framework}"
            columns.append({"id": column, "cell": entry["id"], "framework": framework,
                            "label": f"{labels[entry['id']]} · {framework}"})
            for run in report["runs"]:
                if run["framework"] == framework:
                    for behaviour, value in run_behaviours(report, run).items():
                        values[(run["recipe"], behaviour, column)] = value
            for missing in report.get("unavailable_runs", []):
                if missing["framework"] == framework:
                    for behaviour in BEHAVIOURS:
                        values[(missing["recipe"], behaviour, column)] = missing["status"]
    recipes = list(dict.fromkeys(recipe for recipe, _, _ in values))
    rows = []
    for recipe in recipes:
        for behaviour in BEHAVIOURS:
            row = {c["id"]: values[(recipe, behaviour, c["id"])] for c in columns
                   if (recipe, behaviour, c["id"]) in values}
            present = {c: v for c, v in row.items() if v != MISSING}
            if not present:
                continue
            ranked = Counter(present.values()).most_common()
            majority = ranked[0][0] if len(ranked) == 1 or ranked[0][1] > ranked[1][1] else None
            outliers = ([c for c, v in present.items() if v != majority]
                        if majority is not None else [])
            rows.append({"recipe": recipe, "behaviour": behaviour, "values": row,
                         "majority": majority, "outliers": outliers})
    cells = [{"id": e["id"], "status": e["status"], "settings": e["settings"],
              "reason": e.get("reason")} for e in entries]
    return {"schema": SCHEMA, "axes": varying, "columns": columns, "rows": rows,
            "cells": cells}


def _cell_text(row: dict, column: str) -> tuple[str, bool]:
    value = row["values"].get(column, MISSING)
    return value, column in row["outliers"]


def to_markdown(summary: dict, title: str = "Sweep summary") -> str:
    columns = summary["columns"]
    out = [f"# {title}", "",
           "Rows: what each recipe did in its train step; columns: the swept settings and "
           "frameworks. **Bold**: differs from the row's majority; `–`: not applicable.", ""]
    out.append("| recipe | behaviour | " + " | ".join(c["label"] for c in columns) + " |")
    out.append("|---|---|" + "---|" * len(columns))
    for row in summary["rows"]:
        cells = []
        for column in columns:
            value, odd = _cell_text(row, column["id"])
            cells.append(f"**{value}**" if odd else value)
        out.append(f"| `{row['recipe']}` | {row['behaviour']} | " + " | ".join(cells) + " |")
    failed = [c for c in summary["cells"] if c["status"] not in ("done", "reused")]
    if failed:
        out += ["", "Cells without a report:", ""]
        out += [f"* `{c['id']}` ({c['status']}): {c['reason']}" for c in failed]
    return "\n".join(out) + "\n"


CSS = ("body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
       "td,th{border:1px solid #ccc;padding:.3em .6em;font-size:90%}"
       "th{background:#f3f3f3;writing-mode:sideways-lr}th.row{writing-mode:horizontal-tb}"
       "td.odd{background:#ffe08a;font-weight:bold}td.na{color:#999}")


def to_html(summary: dict, title: str = "Sweep summary") -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c['label'])}</th>" for c in summary["columns"])
    body = []
    for row in summary["rows"]:
        cells = []
        for column in summary["columns"]:
            value, odd = _cell_text(row, column["id"])
            kind = "odd" if odd else "na" if value == MISSING else ""
            cells.append(f'<td class="{kind}">{esc(value)}</td>')
        body.append(f"<tr><td><code>{esc(row['recipe'])}</code></td><td>"
                    f"{esc(row['behaviour'])}</td>{''.join(cells)}</tr>")
    failed = "".join(f"<li><code>{esc(c['id'])}</code> ({esc(c['status'])}): "
                     f"{esc(c['reason'] or '')}</li>" for c in summary["cells"]
                     if c["status"] not in ("done", "reused"))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>"
            "<p>Rows: what each recipe did in its train step; columns: the swept settings "
            "and frameworks. Highlighted: differs from the row's majority.</p>"
            f"<table><tr><th class='row'>recipe</th><th class='row'>behaviour</th>{head}</tr>"
            f"{''.join(body)}</table>"
            + (f"<h2>Cells without a report</h2><ul>{failed}</ul>" if failed else "")
            + "</body></html>\n")


def write_summaries(spec, out_dir: str, entries: list[dict]) -> list[str]:
    summary = build_summary(entries, load_reports(out_dir, entries))
    paths = [os.path.join(out_dir, f"summary.{ext}") for ext in ("json", "md", "html")]
    write_atomic(paths[0], json.dumps(summary, indent=2) + "\n")
    write_atomic(paths[1], to_markdown(summary))
    write_atomic(paths[2], to_html(summary))
    return paths
