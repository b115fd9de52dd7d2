"""Freezing recipes: names, what each framework is told, and which pairs should agree.

The adapters turn a recipe's flags into framework calls; the flags say what the
user asked for, never what happened (the measurements say that).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from comparator.errors import UsageError
from comparator.config.frameworks import KERAS_BACKENDS


@dataclass(frozen=True)
class Recipe:
    framework: str
    name: str
    description: str
    requires_grad_false: bool = False
    eval_mode: bool = False
    trainable_false: bool = False
    training_false: bool = False
    bn_stays_trainable: bool = False
    feature_extraction: bool = False
    inference_everywhere: bool = False
    scenarios: tuple[str, ...] = ("classify", "head", "regress")
    in_default_matrix: bool = True

    @property
    def id(self) -> str:
        return f"{self.framework}:{self.name}"


_BASE_RECIPES: tuple[Recipe, ...] = (
    Recipe("pytorch", "train",
           "nothing frozen: model.train(), every parameter requires_grad"),
    Recipe("pytorch", "requires_grad",
           "frozen part's parameters get requires_grad=False; the module stays in train()",
           requires_grad_false=True),
    Recipe("pytorch", "eval",
           "frozen part put in eval(); its parameters still require grad",
           eval_mode=True),
    Recipe("pytorch", "eval_requires_grad",
           "frozen part in eval() and its parameters requires_grad=False",
           requires_grad_false=True, eval_mode=True),
    Recipe("keras", "train",
           "nothing frozen: every layer trainable, fit() as is"),
    Recipe("keras", "trainable_false",
           "frozen part: trainable = False",
           trainable_false=True),
    Recipe("keras", "training_false",
           "frozen part called with training=False in a functional model (the transfer-learning "
           "guide's recipe); its weights stay trainable",
           training_false=True),
    Recipe("keras", "bn_trainable",
           "every layer of the frozen part trainable = False except its BatchNormalization layers",
           trainable_false=True, bn_stays_trainable=True),
    Recipe("pytorch", "feature_extraction",
           "features computed once by the frozen part in eval() under no_grad; only the head "
           "trains on them", feature_extraction=True, scenarios=("head",)),
    Recipe("keras", "feature_extraction",
           "features computed once with base.predict() (inference mode); a head-only model "
           "is fit on them", feature_extraction=True, scenarios=("head",)),
    Recipe("keras", "inference_everywhere",
           "nothing frozen, every BatchNormalization and Dropout layer called with "
           "training=False inside fit() too (Keras 2's set_learning_phase(0))",
           inference_everywhere=True, scenarios=("classify",), in_default_matrix=False),
)


def _on_every_keras_backend(recipes):
    """The Keras recipes again for Keras on each other backend (keras-tensorflow, ...)."""
    others = [f for f in KERAS_BACKENDS if f != "keras"]
    return tuple(recipes) + tuple(replace(r, framework=f) for f in others
                                  for r in recipes if r.framework == "keras")


RECIPES: tuple[Recipe, ...] = _on_every_keras_backend(_BASE_RECIPES)

# Pairs a user would expect to behave alike, with the reason a user expects it.
_KERAS_PYTORCH_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("keras:train", "pytorch:train", "nothing frozen in either framework"),
    ("keras:trainable_false", "pytorch:eval_requires_grad",
     "the frozen part neither trains nor moves its BatchNorm statistics"),
    ("keras:training_false", "pytorch:eval",
     "the guide's intent: frozen part in inference mode, weights trainable"),
    ("keras:bn_trainable", "pytorch:requires_grad",
     "frozen weights, BatchNorm layers in training mode"),
    ("keras:feature_extraction", "pytorch:feature_extraction",
     "features from the frozen part in inference mode; only the head trains"),
    ("keras:inference_everywhere", "pytorch:eval",
     "BatchNorm and Dropout in inference mode while the weights train"),
)


def _expected_pairs():
    pairs = []
    for framework in KERAS_BACKENDS:  # every Keras backend against PyTorch
        for a, b, reason in _KERAS_PYTORCH_PAIRS:
            pairs.append((a.replace("keras:", f"{framework}:", 1), b, reason))
    names = [r.name for r in _BASE_RECIPES if r.framework == "keras"]
    frameworks = list(KERAS_BACKENDS)
    for i, first in enumerate(frameworks):  # the same Keras recipe on two backends
        for second in frameworks[i + 1:]:
            pairs += [(f"{first}:{n}", f"{second}:{n}",
                       f"the same Keras recipe on the {KERAS_BACKENDS[first]} and "
                       f"{KERAS_BACKENDS[second]} backends") for n in names]
    return tuple(pairs)


EXPECTED_PAIRS: tuple[tuple[str, str, str], ...] = _expected_pairs()


def select(ids: list[str] | None, frameworks: list[str], scenario: str = "classify"
           ) -> list[Recipe]:
    """The recipes to run, in table order; ids are validated against the table."""
    available = [r for r in RECIPES if r.framework in frameworks and scenario in r.scenarios]
    if not ids:
        return [r for r in available if r.in_default_matrix]
    known = {r.id: r for r in available}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise UsageError(
            f"unknown recipe {', '.join(unknown)} for the {scenario} scenario; known recipes: "
            f"{', '.join(known)}"
        )
    return [r for r in available if r.id in set(ids)]
