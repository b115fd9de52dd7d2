"""Plots for the HTML report, as PNG bytes.

matplotlib is imported inside the functions, never at module import, and only
through its object-oriented API with the Agg canvas: no pyplot, no global
backend switch, no window. Each function returns None when it has nothing to
draw, and `available()` says whether matplotlib can be imported at all.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

from comparator.schema import Report

DPI = 110
# Colour-blind-safe (Okabe-Ito) colours, one per quantity or series.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
          "#000000")
QUANTITY_STYLE = {
    "inference before": dict(color="#0072B2", marker="o"),
    "train step": dict(color="#D55E00", marker="^"),
    "inference after": dict(color="#009E73", marker="s"),
}
REFERENCE_STYLE = {
    "onnx:eval": dict(color="#0072B2", linestyle="--", label="ONNX Runtime, eval graph"),
    "onnx:train_forward": dict(color="#D55E00", linestyle=":",
                               label="ONNX Runtime, training-mode forward"),
}


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _style(ax) -> None:
    ax.grid(True, axis="y", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _legend(figure, ax) -> None:
    """Above the axes, never over the lines."""
    handles, labels = ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper center", ncol=min(4, len(labels)),
                  frameon=False, fontsize=9)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def reference_lines(report: Report) -> dict[str, float]:
    """The referee's losses drawn as horizontal lines, by reference name."""
    found = {}
    for name, key in (("onnx:eval", "inference_before"), ("onnx:train_forward", "train_forward")):
        value = (report.references or {}).get(name, {})
        value = value.get(key) if isinstance(value, Mapping) else None
        if _finite(value):
            found[name] = float(value)
    return found


def loss_plot(report: Report) -> bytes | None:
    """Per framework (one panel each) and recipe: losses before, in and after the step(s)."""
    frameworks: dict[str, list] = {}
    for run in report.runs:
        frameworks.setdefault(run.framework, []).append(run)
    if not frameworks:
        return None
    references = reference_lines(report)
    widest = max(len(runs) for runs in frameworks.values())
    figure = _figure(10.0, 1.0 + 2.6 * len(frameworks))
    # Each framework its own y range: the gaps that matter are often 1e-2 on a loss of 2.
    axes = figure.subplots(len(frameworks), 1, squeeze=False)[:, 0]
    for ax, (framework, runs) in zip(axes, frameworks.items()):
        for x, run in enumerate(runs):
            losses = run.losses
            steps = [v for v in losses.train_step if _finite(v)]
            # before at x - 0.25, the steps spread over [x - 0.1, x + 0.1], after at x + 0.25
            step_x = [x + (0.0 if len(steps) == 1 else -0.1 + 0.2 * i / (len(steps) - 1))
                      for i in range(len(steps))]
            xs = [x - 0.25, *step_x, x + 0.25]
            ys = [losses.inference_before, *steps, losses.inference_after]
            points = [(a, b) for a, b in zip(xs, ys) if _finite(b)]
            ax.plot([p[0] for p in points], [p[1] for p in points], color="#9a9a9a",
                    linewidth=0.9, zorder=1)
            for label, px, py in (("inference before", [x - 0.25], [losses.inference_before]),
                                  ("train step", step_x, steps),
                                  ("inference after", [x + 0.25], [losses.inference_after])):
                keep = [(a, b) for a, b in zip(px, py) if _finite(b)]
                if keep:
                    ax.scatter([k[0] for k in keep], [k[1] for k in keep], s=34, zorder=3,
                               label=label if x == 0 else None, **QUANTITY_STYLE[label])
        for name, value in references.items():
            style = dict(REFERENCE_STYLE.get(name, dict(color="#555555", linestyle="-.",
                                                        label=name)))
            ax.axhline(value, linewidth=1.2, zorder=2, **style)
        ax.set_xticks(range(len(runs)))
        ax.set_xticklabels([run.recipe for run in runs], fontsize=9)
        ax.set_xlim(-0.6, widest - 0.4)
        ax.set_title(framework, loc="left", fontsize=11, fontweight="bold")
        ax.set_ylabel("loss")
        _style(ax)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper center", ncol=min(3, len(labels)),
                  frameon=False, fontsize=9)
    return _png(figure)


def bn_delta_plot(bn_deltas: Mapping[str, Sequence[float]] | None) -> bytes | None:
    """Running-statistic change per BatchNorm layer by depth, one line per run that moved them.

    `bn_deltas` maps a run id to the largest absolute change of each BatchNorm
    layer's running statistics, in depth order. Runs whose deltas are all zero
    are left out; None, or nothing moved, draws nothing.
    """
    if not bn_deltas:
        return None
    moved = {run: [float(v) if _finite(v) else math.nan for v in values]
             for run, values in bn_deltas.items()
             if any(_finite(v) and v != 0 for v in values)}
    if not moved:
        return None
    positive = [v for values in moved.values() for v in values if v > 0]
    log = min(positive) > 0 and max(positive) / min(positive) > 100
    deepest = max(len(values) for values in moved.values())
    from matplotlib.ticker import MaxNLocator

    figure = _figure(10.0, 3.6)
    ax = figure.subplots()
    for i, (run, values) in enumerate(moved.items()):
        ys = [v if (v > 0 or not log) else math.nan for v in values]
        ax.plot(range(1, len(ys) + 1), ys, color=COLORS[i % len(COLORS)], linewidth=1.4,
                marker="o" if deepest <= 40 else None, markersize=3.5, label=run)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("BatchNorm layer (1 = closest to the input)")
    ax.set_ylabel("max |Δ running statistic|")
    ax.set_xlim(0.5, deepest + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _style(ax)
    _legend(figure, ax)
    return _png(figure)


def _series(port_layers) -> dict[str, list[tuple[str, float]]]:
    """{label: [(layer, diff), ...]} from either accepted shape of `port_layers`."""
    if isinstance(port_layers, Mapping):
        values = list(port_layers.values())
        if values and all(isinstance(v, Mapping) for v in values):
            return {str(k): [(str(n), d) for n, d in v.items()] for k, v in port_layers.items()}
        return {"": [(str(n), d) for n, d in port_layers.items()]}
    return {"": [(str(n), d) for n, d in port_layers]}


def port_divergence_plot(port_layers) -> bytes | None:
    """Per-layer divergence of the ported model from the original, by depth (log scale).

    `port_layers` is {layer: max abs difference} or [(layer, difference), ...] in
    depth order, or {label: {layer: difference}} for several comparisons (e.g.
    one per framework). None or empty draws nothing.
    """
    if not port_layers:
        return None
    series = {label: pairs for label, pairs in _series(port_layers).items() if pairs}
    if not series:
        return None
    figure = _figure(10.0, 3.6)
    ax = figure.subplots()
    longest = max(series.values(), key=len)
    floor = None
    positive = [d for pairs in series.values() for _, d in pairs if _finite(d) and d > 0]
    if positive:
        floor = min(positive) / 10
    for i, (label, pairs) in enumerate(series.items()):
        if floor:
            ys = [max(float(d), floor) if _finite(d) else math.nan for _, d in pairs]
        else:  # nothing above zero: a linear axis shows the zeros as they are
            ys = [float(d) if _finite(d) else math.nan for _, d in pairs]
        ax.plot(range(1, len(ys) + 1), ys, color=COLORS[i % len(COLORS)], linewidth=1.4,
                marker="o" if len(ys) <= 40 else None, markersize=3.5,
                label=label or None)
    if floor:
        ax.set_yscale("log")
    if len(longest) <= 24:
        ax.set_xticks(range(1, len(longest) + 1))
        ax.set_xticklabels([name for name, _ in longest], rotation=45, ha="right", fontsize=8)
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer (1 = closest to the input)")
    ax.set_ylabel("max |difference|")
    _style(ax)
    if any(series):
        _legend(figure, ax)
    return _png(figure)
