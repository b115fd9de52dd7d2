"""Why two steps of the same function report different train-step losses.

Two runs with the same BatchNorm modes and trainable weights and no active Dropout start
from the same weights on the same batch, so their first train-step losses come from one
forward pass of one function. Where those losses differ anyway, float64 reruns of that pass on
both sides split the gap: a BatchNorm epsilon that differs between the two models (PyTorch's
pass rerun with Keras's), and each framework's own float32 rounding (its float32 loss against
its float64 one). DenseNet121 at 32 px, batch 2 (2026-11-30): train-step losses 7.53247
(Keras) and 7.54980 (PyTorch); in float64 7.54561 and 7.54809, and 7.54561 for PyTorch with
Keras's epsilon of 1.001e-5: the epsilon moves the function by 0.0025, and float32 rounding
moved Keras's loss by 0.013 and PyTorch's by 0.0017.
"""

from __future__ import annotations

from comparator.analysis.equivalence import losses_agree, same_function
from comparator.analysis.tolerances import FLOAT64_LOSS_RTOL


def _agree64(x: float, y: float) -> bool:
    return abs(x - y) <= FLOAT64_LOSS_RTOL * max(abs(x), abs(y), 1.0)


def _one_pass_apart(a, b) -> bool:
    """Two runs whose first train steps ran one forward pass of one function, and whose
    reported losses differ anyway."""
    return (same_function(a, b) and not a.modes.dropout_active and not b.modes.dropout_active
            and not losses_agree(a.losses.train_step[0], b.losses.train_step[0]))


def keras_epsilons(conventions: dict, keras: str) -> dict[str, tuple[float, float]]:
    """{layer: (Keras's epsilon, PyTorch's)} for the BatchNorm layers whose epsilons differ,
    read from the layers (adapters' conventions())."""
    keras_layers = conventions.get(keras, {}).get("batchnorm", {})
    torch_layers = conventions.get("pytorch", {}).get("batchnorm", {})
    return {name: (keras_layers[name]["epsilon"], layer["epsilon"])
            for name, layer in torch_layers.items()
            if name in keras_layers and keras_layers[name]["epsilon"] != layer["epsilon"]}


def _epsilon_words(epsilons: dict, conventions: dict) -> str:
    values = set(epsilons.values())
    layers = len(conventions["pytorch"]["batchnorm"])
    where = (f"all {layers} BatchNorm layers" if len(epsilons) == layers else
             f"{len(epsilons)} of {layers} BatchNorm layers")
    if len(values) == 1:
        keras, torch = next(iter(values))
        return f"Keras {keras:g}, PyTorch {torch:g} on {where}"
    name, (keras, torch) = next(iter(epsilons.items()))
    return f"Keras's differs from PyTorch's on {where} ({name}: Keras {keras:g}, PyTorch {torch:g})"


def train_loss_causes(eq, conventions, keras_adapter, keras_recipe, rerun, runs) -> list[dict]:
    """The epsilon's and float32 rounding's shares of a gap between two train-step losses of
    one function, a Keras run's (eq.a) and a PyTorch run's (eq.b), where both adapters rerun
    the pass in float64 (a worker's Keras in a worker call of its own). Keras's float64 loss
    is kept on the rerun for the pairs of two Keras runs (keras_pair_loss_causes)."""
    a, b = runs[eq.a], runs[eq.b]
    if not (_one_pass_apart(a, b) and keras_adapter is not None
            and keras_adapter.has("float64_recipe_loss") and rerun.adapter.has("bn_epsilon")):
        return []
    loss32 = {eq.a: a.losses.train_step[0], eq.b: b.losses.train_step[0]}
    epsilons = keras_epsilons(conventions, eq.a.split(":")[0])
    try:
        keras64 = keras_adapter.recipe_forward_loss(keras_recipe, rerun.batch, exact=True)
    except Exception as exc:  # noqa: BLE001 - a model Keras cannot clone in float64
        return [_unmeasured(loss32, eq.a, exc)]
    rerun.float64_losses[eq.a] = keras64
    try:
        loss64 = {eq.a: keras64, eq.b: rerun.forward_loss64()}
        matched64 = rerun.forward_loss64({name: k for name, (k, _) in epsilons.items()})
    except Exception as exc:  # noqa: BLE001 - a PyTorch module with no float64 kernel
        return [_unmeasured(loss32, eq.b, exc)]
    causes = [_epsilon_cause(epsilons, conventions, keras64, loss64[eq.b], matched64)] \
        if epsilons else []
    # Rounding is named where it moved a loss past the loss tolerance, or where float64
    # leaves the passes apart (then it is ruled out); a gap the epsilon alone makes is not
    # said twice.
    if _rounded(loss32, loss64) or not _agree64(keras64, matched64):
        cause = _rounding_cause(eq, loss32, loss64, matched64,
                                " with Keras's epsilon" if epsilons else "")
        causes.append({**cause, "float64_with_keras_epsilon": matched64} if epsilons else cause)
    return causes


def keras_pair_loss_causes(eq, reruns: dict, recipes, adapters, batch, runs) -> list[dict]:
    """Two Keras runs of one function (backends, versions, Keras 2 against Keras 3) whose
    train-step losses differ: each run's float64 loss, kept where its pair with PyTorch
    measured it, else measured now; both Keras models carry the same epsilons."""
    if runs is None or not _one_pass_apart(runs[eq.a], runs[eq.b]):
        return []
    loss32 = {run: runs[run].losses.train_step[0] for run in (eq.a, eq.b)}
    loss64 = {}
    for run in (eq.a, eq.b):
        held = [rerun.float64_losses[run] for rerun in reruns.values()
                if run in getattr(rerun, "float64_losses", {})]
        adapter = (adapters or {}).get(run.split(":")[0])
        if not held and (adapter is None or not adapter.has("float64_recipe_loss")):
            return []
        try:
            loss64[run] = held[0] if held else adapter.recipe_forward_loss(
                {r.id: r for r in recipes}[run], batch, exact=True)
        except Exception as exc:  # noqa: BLE001 - a model Keras cannot clone in float64
            return [_unmeasured(loss32, run, exc)]
    return [_rounding_cause(eq, loss32, loss64, loss64[eq.b], "")]


def _rounded(loss32: dict, loss64: dict) -> bool:
    return not all(losses_agree(loss32[run], loss64[run]) for run in loss32)


def _unmeasured(loss32: dict, run: str, exc: Exception) -> dict:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    a, b = loss32.values()
    return {"cause": "float32_loss_rounding", "value": abs(a - b), "before": abs(a - b),
            "explains": False, "inconclusive": True,
            "text": f"The train-step losses differ ({a:.6g} vs {b:.6g}); {run}'s model could "
                    f"not be rerun in float64 ({first_line}), so neither a BatchNorm epsilon "
                    "nor float32 rounding is measured."}


def _epsilon_cause(epsilons, conventions, keras64, torch64, matched64) -> dict:
    explains = _agree64(keras64, matched64)
    outcome = ("the two agree" if explains else
               f"they still differ by {abs(keras64 - matched64):.2g}")
    return {"cause": "bn_epsilon", "value": abs(keras64 - matched64),
            "before": abs(keras64 - torch64), "explains": explains,
            "text": f"BatchNorm epsilon: {_epsilon_words(epsilons, conventions)}. In float64 "
                    f"the train-step forward pass gives {keras64:.6g} in Keras and {torch64:.6g} "
                    f"in PyTorch, {matched64:.6g} with Keras's epsilon: {outcome}."}


def _rounding_cause(eq, loss32: dict, loss64: dict, against: float, given: str) -> dict:
    """float32 rounding's share: each run's float32 loss against its own float64 one, and
    whether eq.a's float64 loss is `against` (eq.b's, or PyTorch's given Keras's epsilon)."""
    same = _agree64(loss64[eq.a], against)
    verdict = (f"in float64 the two passes compute the same function{given}, so float32 "
               "rounding parts the rest" if same else
               f"in float64 the two passes still differ by {abs(loss64[eq.a] - against):.2g}"
               f"{given}: they compute different functions, beyond float32 rounding")
    moved = " and ".join(
        f"{run}'s by {loss32[run] - loss64[run]:+.2g} ({loss32[run]:.6g} against "
        f"{loss64[run]:.6g} in float64)" for run in (eq.a, eq.b))
    return {"cause": "float32_loss_rounding", "value": abs(loss64[eq.a] - against),
            "before": abs(loss32[eq.a] - loss32[eq.b]), "explains": same,
            "float64_losses": dict(loss64),
            "text": f"Float32 rounding moved the train-step losses: {moved}; {verdict}."}
