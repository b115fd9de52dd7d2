#!/usr/bin/env python
"""Write docs/behaviors-versions.md: how Keras versions behave, from real runs.

    python tools/version_table.py [--versions 3.6.0,3.15.1] [--out PATH]

One comparison on the tiny CNN (16 px, batch 4, one SGD step) runs PyTorch, each
Keras 3 release on the torch backend (from overlays: adapters/keras/overlays.py),
keras-nightly and Keras 2 (tf_keras on TensorFlow), with the recipes that changed
meaning over time; a probe in each version's worker measures BatchNormalization's
defaults and when the loss `fit` reports is computed (adapters/keras/probe.py).
Overlays missing here are built from the package registry; a version that cannot run
with the installed torch is listed with its own error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# The newest patch of every Keras 3 minor release (the registry's list, 2026-11):
# `--versions all`.
RELEASES = ("3.0.5", "3.1.1", "3.2.1", "3.3.3", "3.4.1", "3.5.0", "3.6.0", "3.7.0", "3.8.0",
            "3.9.2", "3.10.0", "3.11.3", "3.12.4", "3.13.2", "3.14.1", "3.15.1")
# The default: every other minor release, the first and the last included (each version
# costs two worker starts; on a shared 2-core machine, about a minute each).
DEFAULT_RELEASES = ("3.0.5", "3.2.1", "3.4.1", "3.6.0", "3.8.0", "3.10.0", "3.12.4", "3.14.1",
                "3.15.1")
SETTINGS = dict(model="tiny_cnn", batch_size=4, image_size=16)
# The head scenario puts Dense(64, relu), Dropout(0.5), Dense(1) after the base
# (comparator/zoo/head.py): whether `training=False` on the base reaches that Dropout.
HEAD_SETTINGS = dict(SETTINGS, scenario="head")
KERAS_RECIPES = ("training_false", "trainable_false")
PYTORCH_RECIPES = ("pytorch:eval", "pytorch:requires_grad")
OUT = os.path.join(ROOT, "docs", "behaviors-versions.md")


def _frameworks(releases) -> list[str]:
    return ["pytorch", *(f"keras-torch@{v}" for v in releases), "keras-torch@nightly",
            "tf-keras"]


def _probe(name: str, timeout: float = 300.0) -> dict:
    """Run adapters/keras/probe.py in the framework's worker; {"unavailable": reason}."""
    from adapters.keras.client import WorkerAdapter, WorkerError, call_worker
    import shutil

    adapter = WorkerAdapter(name)
    adapter._find_overlay()
    if adapter.failure is not None:
        return {"unavailable": adapter.failure.reason}
    request = {"task": "probe", "framework": name, "backend": adapter.backend, "device": "cpu"}
    try:
        response, directory = call_worker(request, {}, timeout, adapter._worker_env())
    except WorkerError as exc:
        return {"unavailable": exc.failure.reason}
    shutil.rmtree(directory, ignore_errors=True)
    return response


def _pytorch_probe() -> dict:
    """PyTorch's BatchNorm defaults and the loss its train step gives, measured alike."""
    import numpy as np
    import torch

    from adapters.keras.probe import FEATURES, _batch, images, variance_words

    x, y = (torch.from_numpy(a) for a in _batch())
    variances = {}
    for key, layer, batch in (
            ("bn_moving_variance_update", torch.nn.BatchNorm1d(FEATURES), x),
            ("bn_moving_variance_update_images", torch.nn.BatchNorm2d(FEATURES),
             torch.from_numpy(images()).permute(0, 3, 1, 2))):
        layer.train()(batch)
        used = (layer.running_var.double().numpy() - (1 - layer.momentum)) / layer.momentum
        variances[key] = variance_words(used, np.moveaxis(batch.numpy(), 1, -1))
    torch.manual_seed(0)
    model = torch.nn.Linear(FEATURES, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with torch.no_grad():
        before = float(torch.nn.functional.mse_loss(model(x), y))
    loss = torch.nn.functional.mse_loss(model(x), y)  # the loss a train step reports
    reported = float(loss.detach())
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        after = float(torch.nn.functional.mse_loss(model(x), y))
    tolerance = 1e-5 * max(1.0, abs(before))
    return {"bn_momentum": layer.momentum, "bn_epsilon": layer.eps, **variances,
            "fit_loss": "before the update" if abs(reported - before) <= tolerance else
            "after the update" if abs(reported - after) <= tolerance else "neither"}


def _training_false(run) -> str:
    from comparator.analysis.versions import behaviour

    return behaviour(run) if run.framework != "pytorch" else "-"


def _bn_frozen(run) -> str:
    if run.modes.bn_batch_stats:
        return ("batch statistics, moving ones updated" if run.state.bn_stats_changed
                else "batch statistics, moving ones kept")
    return "moving statistics (inference mode)"


def _dropout_frozen(run) -> str:
    return "active" if run.modes.dropout_active else "off"


def _after_base(run) -> str:
    """What the head's layers did in the head scenario's training_false run: trained (fit's
    training=True reached them) or ran in inference mode (the base's training=False did)."""
    if run is None:
        return "not run"
    if run.framework == "pytorch":
        return "-"
    from comparator.analysis.versions import outside_layers_trained

    if run.modes.outside_base is None:
        return "not counted"
    trained, in_inference = outside_layers_trained(run.modes.outside_base)
    if not in_inference:
        return "train"
    return "inference mode too" if not trained else "some in inference mode"


def _momentum(probe: dict, pytorch: bool) -> str:
    value = probe["bn_momentum"]
    return f"{value:g} (Keras convention {1 - value:g})" if pytorch else f"{value:g}"


def _columns(report, releases, probes, head_runs=()) -> tuple[list[str], list[list[str]]]:
    """head_runs: the head scenario's training_false runs (_after_base)."""
    frameworks = [f for f in _frameworks(releases) if f == "pytorch" or
                  any(r.framework == f for r in report.runs)]
    runs = {(r.framework, r.recipe): r for r in report.runs}
    after_base = {r.framework: r for r in head_runs}
    headers, columns = ["behaviour"], []
    for framework in frameworks:
        pytorch = framework == "pytorch"
        frozen = runs[(framework, "requires_grad" if pytorch else "trainable_false")]
        probe = probes[framework]
        version = frozen.framework_version
        kind = {"tf-keras": "tf_keras ", "keras-torch@nightly": "keras-nightly "}
        headers.append("PyTorch " + version if pytorch else kind.get(framework, "Keras ")
                       + version)
        columns.append([
            "eval() needed" if pytorch else _training_false(runs[(framework, "training_false")]),
            "-" if pytorch else _after_base(after_base.get(framework)),
            _bn_frozen(frozen), _dropout_frozen(frozen), _momentum(probe, pytorch),
            f"{probe['bn_epsilon']:g}", probe["bn_moving_variance_update"],
            probe["bn_moving_variance_update_images"], probe["fit_loss"]])
    labels = ["`training=False` inside `fit`",
              "the head after that base (head scenario)",
              "BatchNorm frozen (`trainable=False`; PyTorch: `requires_grad=False`)",
              "Dropout frozen the same way", "BatchNorm momentum default",
              "BatchNorm epsilon default", "moving variance update uses (vectors, N,F)",
              "moving variance update uses (images, N,H,W,C)", "loss `fit` reports (one step)"]
    rows = [[label] + [column[i] for column in columns] for i, label in enumerate(labels)]
    return headers, rows


def _markdown(headers, rows, report, unavailable, command, seconds,
              head_findings=()) -> str:
    environment = report.environment
    lines = ["# Framework versions side by side", "",
             "Generated from real runs by `" + command + "` "
             f"({time.strftime('%Y-%m-%d')}, {seconds:.0f} s on this machine's CPU). Every "
             "Keras 3 release runs on the torch backend, from an overlay holding only that "
             "Keras ahead of the project's environment: "
             f"torch {environment.get('torch')}, TensorFlow "
             f"{environment.get('tensorflow', 'not run')} for tf_keras. Model: the tiny CNN "
             "(three conv + BatchNorm blocks, Dropout 0.2, classifier), 16 px, batch 4, one "
             "SGD step at lr 0.01, seeded random weights.", ""]
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "Rows: `training=False` inside `fit` is the functional model's "
              "`base(x, training=False)` (the transfer-learning guide's recipe): honoured "
              "means its BatchNorm and Dropout stayed in inference mode inside `fit` and no "
              "moving statistic moved. The head row runs the same recipe in the head "
              "scenario (Dense(64, relu), Dropout(0.5), Dense(1) after the base), and says "
              "what the head's layers did in the train step: `train` where `fit`'s "
              "training=True reached them, `inference mode too` where the base's "
              "training=False did (`modes.outside_base` of its run). The frozen rows set "
              "`trainable = False` on the whole "
              "base. Momentum and epsilon are `BatchNormalization()`'s as constructed; the "
              "variance rows are measured from one training-mode call on a fixed batch of "
              "8 vectors of 4 features and on one of 8 images of 2 x 2 pixels and 4 "
              "channels (tf_keras sends images through TensorFlow's fused kernel); the "
              "last row compares the loss `fit` reported with `evaluate` before and after "
              "the step.", ""]
    findings = [f for f in report.findings if "(measured in this run)" in f]
    findings += [f"{f} (head scenario)" for f in head_findings if "(measured in this run)" in f]
    if findings:
        lines += ["Where a behaviour changed:", ""] + [f"- {f}" for f in findings] + [""]
    if unavailable:
        lines += ["Versions that did not run here:", ""]
        lines += [f"- {name}: {reason}" for name, reason in unavailable] + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", help="comma-separated Keras 3 releases, or all "
                                           f"(default: {','.join(DEFAULT_RELEASES)})")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    releases = (RELEASES if args.versions == "all" else
                tuple(args.versions.split(",")) if args.versions else DEFAULT_RELEASES)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    from comparator.config.frameworks import keep_worker_backends_out
    from comparator.config.recipes import recipes_for
    from comparator.config import CompareConfig
    from comparator.pipeline import compare

    keep_worker_backends_out()
    started = time.perf_counter()
    frameworks = _frameworks(releases)
    recipes = list(PYTORCH_RECIPES) + [r.id for f in frameworks[1:] for r in recipes_for(f)
                                       if r.name in KERAS_RECIPES]
    report = compare(CompareConfig(**SETTINGS, frameworks=tuple(frameworks),
                                   recipes=tuple(recipes))).report
    head = compare(CompareConfig(**HEAD_SETTINGS, frameworks=tuple(frameworks),
                                 recipes=tuple(f"{f}:training_false" for f in frameworks[1:])
                                 )).report
    unavailable = list(dict((r["framework"], r["reason"]) for r in report.unavailable_runs)
                       .items())
    probes = {"pytorch": _pytorch_probe()}
    for name in frameworks[1:]:
        if any(r.framework == name for r in report.runs):
            probes[name] = _probe(name)
    missing = [(n, p["unavailable"]) for n, p in probes.items() if "unavailable" in p]
    for name, _ in missing:
        probes.pop(name)
    unavailable += missing
    report_runs = [r for r in report.runs if r.framework in probes]
    report = report.__class__(**{**report.__dict__, "runs": tuple(report_runs)})
    headers, rows = _columns(report, releases, probes,
                             [r for r in head.runs if r.framework in probes])
    command = "python tools/version_table.py" + (f" --versions {args.versions}"
                                                  if args.versions else "")
    text = _markdown(headers, rows, report, unavailable, command,
                     time.perf_counter() - started, head.findings)
    with open(args.out, "w") as handle:
        handle.write(text)
    print(f"wrote {args.out}: {len(headers) - 1} versions, {len(unavailable)} unavailable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
