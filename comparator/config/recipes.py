"""Freezing recipes: names, what each framework is told, and which pairs should agree.

The adapters turn a recipe's flags into framework calls; the flags say what the
user asked for, never what happened (the measurements say that).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from comparator.config.flavours import TF_KERAS, base_framework
from comparator.config.flavours import parse as parse_flavour
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
    v1_batch_norm: bool = False  # tf-keras: the frozen part's BatchNorm layers become v1's
    learning_phase_zero: bool = False  # tf-keras: keras.backend.set_learning_phase(0) first
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
    # keras:bn_trainable's step in PyTorch; out of the default matrix, it is run for a pair
    # of two Keras bn_trainable runs no other PyTorch run holds (crosscheck), or on request.
    Recipe("pytorch", "requires_grad_except_bn",
           "frozen part's parameters get requires_grad=False except its BatchNorm layers' "
           "weight and bias; the module stays in train()",
           requires_grad_false=True, bn_stays_trainable=True, in_default_matrix=False),
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
    ("keras:bn_trainable", "pytorch:requires_grad_except_bn",
     "the same step: the frozen part's weights frozen except BatchNorm's gamma and beta, "
     "BatchNorm layers in training mode"),
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


def version_pairs(frameworks) -> list[tuple[str, str, str]]:
    """Expected pairs of the Keras versions and Keras 2 among these frameworks: each against
    PyTorch as the environment's Keras is, and each Keras recipe against the environment's
    Keras on the same backend (the comparison that shows a behaviour change)."""
    pairs = []
    for framework in frameworks:
        flavour = parse_flavour(framework)
        if flavour is None or not (flavour.overlay or flavour.keras2):
            continue
        for a, b, reason in _KERAS_PYTORCH_PAIRS:
            pairs.append((a.replace("keras:", f"{framework}:", 1), b, reason))
        same_backend = "keras" if flavour.backend == "torch" else f"keras-{flavour.backend}"
        pairs += [(f"{same_backend}:{r.name}", f"{framework}:{r.name}",
                   f"the same Keras recipe in the environment's Keras and in {framework}")
                  for r in _BASE_RECIPES if r.framework == "keras"]
    return pairs


# Keras 2 (tf-keras) runs the Keras recipes and two of its own, from the seed reports' era.
_KERAS2_RECIPES: tuple[Recipe, ...] = (
    Recipe(TF_KERAS, "v1_frozen",
           "frozen part: trainable = False, with its BatchNormalization layers made Keras "
           "2.1's (tf_keras's batch_normalization_v1 class, weights unchanged): the seed "
           "reports' Keras", trainable_false=True, v1_batch_norm=True),
    Recipe(TF_KERAS, "set_learning_phase",
           "nothing frozen, keras.backend.set_learning_phase(0) before fit (the seed "
           "report's fix in Keras 2.1)", learning_phase_zero=True, scenarios=("classify",),
           in_default_matrix=False),
)


def recipes_for(framework: str) -> list[Recipe]:
    """A framework's recipes; a Keras version (keras-torch@3.6.0) runs its backend's Keras
    recipes, tf-keras those and its own."""
    own = [r for r in RECIPES if r.framework == framework]
    if own or parse_flavour(framework) is None:
        return own
    template = "keras" if framework == TF_KERAS else base_framework(framework)
    recipes = [replace(r, framework=framework) for r in RECIPES if r.framework == template]
    if framework == TF_KERAS:
        recipes += list(_KERAS2_RECIPES)
    return recipes


def select(ids: list[str] | None, frameworks: list[str], scenario: str = "classify"
           ) -> list[Recipe]:
    """The recipes to run, in table order; ids are validated against the table."""
    static = {r.framework for r in RECIPES}
    available = [r for r in RECIPES if r.framework in frameworks] + [
        r for f in frameworks if f not in static for r in recipes_for(f)]
    available = [r for r in available if scenario in r.scenarios]
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
