"""The same recipe across framework versions: where a behaviour changed.

Reads measured runs only (modes and state), so it says what happened, not what a
changelog promised. Keras 3 versions are ordered by version, Keras 2 (tf_keras)
after them. Standard library only.
"""

from __future__ import annotations

import re

# What a recipe's measurements mean, for the recipes whose meaning changed across versions.
_SUBJECTS = {
    "training_false": "`training=False` inside `fit`",
    "trainable_false": "BatchNorm under `trainable=False`",
    "bn_trainable": "BatchNorm left trainable in a frozen base",
    "train": "nothing frozen",
}


def _version_key(version: str) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def is_keras(run) -> bool:
    return run.framework != "pytorch"


def version_label(run) -> str:
    """3.15.1, 3.16.0.dev2026102704, tf_keras 2.21.0, or PyTorch 2.14.1."""
    version = run.framework_version or "unknown version"
    if run.framework == "tf-keras":
        return f"tf_keras {version}"
    if run.framework == "pytorch":
        return f"PyTorch {version}"
    return version


def behaviour(run, dropout: bool = False) -> str:
    """The measured behaviour of one run, in words that are equal when behaviours are;
    with `dropout`, its active Dropout layers too."""
    said = _batchnorm_behaviour(run)
    # training_false's words count the Dropout layers already (honoured or overridden).
    if dropout and run.modes.dropout_layers and run.recipe != "training_false":
        said += f", Dropout active {run.modes.dropout_active}/{run.modes.dropout_layers}"
    return said


def _batchnorm_behaviour(run) -> str:
    modes, state = run.modes, run.state
    if run.recipe == "training_false":
        return _training_false_behaviour(modes, state)
    if not modes.bn_layers:
        return "no BatchNorm"
    stats = "batch statistics" if modes.bn_batch_stats else "moving statistics"
    moved = "moving statistics updated" if state.bn_stats_changed else "moving statistics kept"
    return f"{stats}, {moved}"


def _dropout_differs(runs) -> bool:
    """Whether the versions' runs of one recipe left other numbers of Dropout layers active
    (a .keras file of Keras 3.15.1 records training=False on a functional model's Dropout
    calls, which 3.16.0.dev2026102704 honours: Dropout active 1/1 against 0/1)."""
    return len({r.modes.dropout_active for r in runs}) > 1


# training_false's words where the layers outside the base ran in inference mode too: the
# recipe asks it of the base only, and fit's training=True should still reach the rest.
REACHING_OUTSIDE = "honoured, and reaching the layers outside the base"
REACHING_SOME_OUTSIDE = "honoured, and reaching some of the layers outside the base"


def outside_layers_trained(outside: dict) -> tuple[int, int]:
    """Of the layers outside the base (modes.outside_base): how many trained (BatchNorm on
    batch statistics, Dropout active) and how many ran in inference mode."""
    trained = outside["bn_batch_stats"] + outside["dropout_active"]
    return trained, outside["bn_layers"] + outside["dropout_layers"] - trained


def _training_false_behaviour(modes, state) -> str:
    """Whether the base ran in inference mode ("honoured") or not ("overridden"), and, where
    the run counted the layers outside the base apart (modes.outside_base), whether
    training=False reached them too."""
    outside = modes.outside_base
    if outside is None:  # the base is the whole model: its counts and statistics are the base's
        inference = modes.bn_batch_stats == 0 and modes.dropout_active == 0
        return "honoured" if inference and not state.bn_stats_changed else "overridden"
    base_bn = modes.bn_batch_stats - outside["bn_batch_stats"]
    base_dropout = modes.dropout_active - outside["dropout_active"]
    # The whole model's moved statistics are the base's only where nothing outside has any.
    base_moved = state.bn_stats_changed and outside["bn_layers"] == 0
    if base_bn or base_dropout or base_moved:
        return "overridden"
    trained, in_inference = outside_layers_trained(outside)
    if not in_inference:
        return "honoured"
    return REACHING_SOME_OUTSIDE if trained else REACHING_OUTSIDE


def _ordered(runs) -> list:
    def key(run):
        keras2 = run.framework == "tf-keras"
        return (keras2, _version_key(run.framework_version or ""), run.backend or "")
    return sorted(runs, key=key)


def _groups(runs, with_backend: bool) -> list[tuple[str, list[str]]]:
    """Consecutive versions that behave alike: [(behaviour, [labels])]."""
    groups: list[tuple[str, list[str]]] = []
    dropout = _dropout_differs(runs)
    for run in _ordered(runs):
        shown = with_backend and run.framework != "tf-keras"  # Keras 2 is TensorFlow's
        label = version_label(run) + (f" ({run.backend})" if shown else "")
        said = behaviour(run, dropout)
        keras2 = run.framework == "tf-keras"
        if groups and groups[-1][0] == said and not keras2 and not groups[-1][2]:
            if label not in groups[-1][1]:
                groups[-1][1].append(label)
            continue
        groups.append((said, [label], keras2))
    return [(said, labels) for said, labels, _ in groups]


def _span(labels: list[str]) -> str:
    if len(labels) == 1:
        return labels[0]
    return f"{labels[0]} to {labels[-1]}" if len(labels) > 2 else " and ".join(labels)


def versions_compared(runs) -> bool:
    """Whether the runs hold one Keras recipe in more than one Keras version."""
    versions = {(r.framework == "tf-keras", r.framework_version) for r in runs if is_keras(r)}
    return len(versions) > 1


def version_findings(runs) -> list[str]:
    """One line per recipe whose measured behaviour differs between Keras versions:
    "`training=False` inside `fit`: overridden in 3.6.0 and 3.15.1; honoured in
    3.16.0.dev2026102704; honoured in tf_keras 2.21.0"."""
    runs = [r for r in runs if is_keras(r)]
    if not versions_compared(runs):
        return []
    findings = []
    by_recipe: dict[str, list] = {}
    for run in runs:
        by_recipe.setdefault(run.recipe, []).append(run)
    for recipe, group in by_recipe.items():
        dropout = _dropout_differs(group)
        if len({behaviour(r, dropout) for r in group}) < 2:
            continue
        with_backend = len({r.backend for r in group if r.framework != "tf-keras"}) > 1
        parts = [f"{said} in {_span(labels)}" for said, labels in _groups(group, with_backend)]
        subject = _SUBJECTS.get(recipe, f"`{recipe}`")
        findings.append(f"{subject} ({recipe}): {'; '.join(parts)} (measured in this run)")
    return findings


def side_by_side(runs) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: one row per recipe run by two or more Keras flavours, one column
    per flavour ("keras-torch@nightly 3.16.0.dev..."); empty when no versions are compared."""
    keras = [r for r in runs if is_keras(r)]
    if not versions_compared(keras):
        return [], []
    frameworks = []
    for run in _ordered(keras):
        if run.framework not in frameworks:
            frameworks.append(run.framework)
    version = {r.framework: version_label(r) for r in keras}
    cells = {(r.recipe, r.framework): r for r in keras}
    recipes = [name for name in dict.fromkeys(r.recipe for r in keras)
               if sum((name, f) in cells for f in frameworks) > 1]
    headers = ["recipe"] + [f if f.endswith(version[f]) else
                            f"{f} {version[f].removeprefix('tf_keras ')}" for f in frameworks]
    rows = []
    for name in recipes:
        row = [name]
        for framework in frameworks:
            run = cells.get((name, framework))
            row.append("-" if run is None else _cell(run))
        rows.append(row)
    return headers, rows


def _cell(run) -> str:
    train = run.losses.train_step[-1] if run.losses.train_step else float("nan")
    text = (f"fit {train:.4g} / eval {run.losses.inference_after:.4g}; "
            f"BN batch {run.modes.bn_batch_stats}/{run.modes.bn_layers}"
            f"{', stats moved' if run.state.bn_stats_changed else ''}")
    if run.recipe != "training_false":
        return text
    said = behaviour(run)
    if said in (REACHING_OUTSIDE, REACHING_SOME_OUTSIDE):
        said += f" ({_outside_counts(run.modes.outside_base)})"
    return f"{text}; {said}"


def _outside_counts(outside: dict) -> str:
    """"BN batch 0/1, Dropout active 0/1": what the layers outside the base did, by kind."""
    counts = [f"BN batch {outside['bn_batch_stats']}/{outside['bn_layers']}"
              if outside["bn_layers"] else "",
              f"Dropout active {outside['dropout_active']}/{outside['dropout_layers']}"
              if outside["dropout_layers"] else ""]
    return ", ".join(c for c in counts if c)


def recorded_training_calls(path: str) -> tuple[str, list[str]]:
    """(the Keras version that saved a .keras file, the layers whose calls its config records
    with training=False); ("", []) for anything else. Keras 3.15.1 writes training=False into
    a functional model's Dropout calls though the model's code never passes it (measured:
    get_config of keras.Model(i, Dropout(0.5)(Dense(8)(i)))), and 3.16.0.dev2026102704,
    loading such a file, keeps those Dropout layers off in training."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            saved_by = json.loads(archive.read("metadata.json")).get("keras_version", "")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return "", []
    return str(saved_by), list(dict.fromkeys(_called_with_training_false(config)))


def _called_with_training_false(config) -> list[str]:
    """The names of the layers in a saved config (nested models' too) one of whose calls
    records training=False."""
    found = []
    layers = config.get("config", {}).get("layers", []) if isinstance(config, dict) else []
    for layer in layers:
        nodes = layer.get("inbound_nodes") or []
        if any(isinstance(node, dict) and (node.get("kwargs") or {}).get("training") is False
               for node in nodes):
            found.append(layer.get("config", {}).get("name") or layer.get("name", "?"))
        found += _called_with_training_false(layer)
    return found


def saved_training_finding(runs, keras_source: str) -> list[str]:
    """Where Keras versions left other numbers of Dropout layers active and the Keras model
    came from a .keras file whose config records training=False on some calls: which."""
    runs = [r for r in runs if is_keras(r)]
    by_recipe: dict[str, list] = {}
    for run in runs:
        by_recipe.setdefault(run.recipe, []).append(run)
    if not versions_compared(runs) or not any(_dropout_differs(g) for g in by_recipe.values()):
        return []
    if not str(keras_source).endswith(".keras"):
        return []
    saved_by, layers = recorded_training_calls(keras_source)
    if not layers:
        return []
    return [f"the .keras file (saved by Keras {saved_by or 'an unknown version'}) records "
            f"training=False on the calls of {', '.join(layers)}: a version that honours a "
            "call's recorded arguments keeps those layers in inference mode inside fit, one "
            "that passes fit's training=True to every layer does not (Keras 3.15.1 records it "
            "on a functional model's Dropout calls that its code never passed)"]
