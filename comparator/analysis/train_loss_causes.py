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
    one function, where both adapters rerun the pass in float64 (a worker's Keras in a worker
    call of its own)."""
    a, b = runs[eq.a], runs[eq.b]
    if not (_one_pass_apart(a, b) and keras_adapter is not None
            and keras_adapter.has("float64_recipe_loss") and rerun.adapter.has("bn_epsilon")):
        return []
    keras32, torch32 = a.losses.train_step[0], b.losses.train_step[0]
    try:
        keras64 = keras_adapter.recipe_forward_loss(keras_recipe, rerun.batch, exact=True)
    except Exception as exc:  # noqa: BLE001 - a model Keras cannot clone in float64
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return [{"cause": "float32_loss_rounding", "value": abs(keras32 - torch32),
                 "before": abs(keras32 - torch32), "explains": False, "inconclusive": True,
                 "text": f"The train-step losses differ ({keras32:.6g} vs {torch32:.6g}); "
                         f"Keras's model could not be rerun in float64 ({first_line}), so "
                         "neither a BatchNorm epsilon nor float32 rounding is measured."}]
    torch64 = rerun.forward_loss64()
    epsilons = keras_epsilons(conventions, eq.a.split(":")[0])
    matched64 = rerun.forward_loss64({name: k for name, (k, _) in epsilons.items()})
    causes = [_epsilon_cause(epsilons, conventions, keras64, torch64, matched64)] if epsilons \
        else []
    # Rounding is named where it moved a loss past the loss tolerance, or where float64
    # leaves the passes apart (then it is ruled out); a gap the epsilon alone makes is not
    # said twice.
    rounded = not (losses_agree(keras32, keras64) and losses_agree(torch32, torch64))
    if rounded or not _agree64(keras64, matched64):
        causes.append(_rounding_cause(eq, keras32, torch32, keras64, torch64, matched64,
                                      bool(epsilons)))
    return causes


def _epsilon_cause(epsilons, conventions, keras64, torch64, matched64) -> dict:
    explains = _agree64(keras64, matched64)
    outcome = ("the two agree" if explains else
               f"they still differ by {abs(keras64 - matched64):.2g}")
    return {"cause": "bn_epsilon", "value": abs(keras64 - matched64),
            "before": abs(keras64 - torch64), "explains": explains,
            "text": f"BatchNorm epsilon: {_epsilon_words(epsilons, conventions)}. In float64 "
                    f"the train-step forward pass gives {keras64:.6g} in Keras and {torch64:.6g} "
                    f"in PyTorch, {matched64:.6g} with Keras's epsilon: {outcome}."}


def _rounding_cause(eq, keras32, torch32, keras64, torch64, matched64, epsilon: bool) -> dict:
    same = _agree64(keras64, matched64)
    given = " with Keras's epsilon" if epsilon else ""
    verdict = (f"in float64 the two passes compute the same function{given}, so float32 "
               "rounding parts the rest" if same else
               f"in float64 the two passes still differ by {abs(keras64 - matched64):.2g}"
               f"{given}: they compute different functions, beyond float32 rounding")
    cause = {"cause": "float32_loss_rounding", "value": abs(keras64 - matched64),
             "before": abs(keras32 - torch32), "explains": same,
             "float64_losses": {eq.a: keras64, eq.b: torch64},
             "text": f"Float32 rounding moved Keras's train-step loss by {keras32 - keras64:+.2g} "
                     f"({keras32:.6g} against {keras64:.6g} in float64) and PyTorch's by "
                     f"{torch32 - torch64:+.2g} ({torch32:.6g} against {torch64:.6g}); "
                     f"{verdict}."}
    if epsilon:
        cause["float64_with_keras_epsilon"] = matched64
    return cause
