"""The cases from the reports that motivated the project (../shared/seeds), as settings.

A preset fills the comparison's settings; flags given on the command line still
override them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from comparator.errors import UsageError

SEED_LABEL = 386  # the report's class index ("African elephant" in ImageNet)
# The third report's setup: one image, its one-hot label, softmax cross-entropy, and fit
# with validation_data on the same image.
_SINGLE_IMAGE = dict(model="resnet50", scenario="classify", batch_size=1, loss="probabilities",
                     labels=(SEED_LABEL,), validate=True)


@dataclass(frozen=True)
class Preset:
    name: str
    question: str
    settings: dict = field(default_factory=dict)


PRESETS = {p.name: p for p in (
    Preset(
        "seed-densenet-regression",
        "A DenseNet121 base frozen with trainable=False, a regression head trained with MSE "
        "on 32 images: why does fit report one loss and evaluate on the same batch another?",
        dict(model="densenet121", scenario="head", batch_size=32)),
    Preset(
        "seed-dense-update",
        "Dense(1000, relu) on 100 inputs, then Dense(1), MSE, Adam, batch 32 of random data: "
        "the train loss is reported before the update, evaluate runs after it, and "
        "fit(validation_data=...) equals the later evaluation.",
        dict(model="dense_mlp", scenario="regress", batch_size=32, optimizer="adam", lr=0.001,
             validate=True, recipes=("pytorch:train", "keras:train"))),
    Preset(
        "seed-split-features",
        "The feature-extraction recipe: features computed once by the frozen base in "
        "inference mode, only the head trained; against freezing inside one model.",
        dict(model="densenet121", scenario="head", batch_size=32,
             recipes=("pytorch:feature_extraction", "pytorch:eval_requires_grad",
                      "keras:feature_extraction", "keras:trainable_false"))),
    Preset(
        "seed-resnet50-single-image",
        "ResNet50 with every layer trainable=False, one image, categorical cross-entropy on "
        "softmax outputs with a one-hot label, SGD: evaluate, fit(validation_data=...), "
        "evaluate again. Does fit report a different loss than evaluate on the same image, "
        "and why does val_loss equal the next evaluate? pytorch:requires_grad is the "
        "behaviour the report saw in Keras 2 (BatchNorm on one image's statistics).",
        dict(_SINGLE_IMAGE, recipes=("pytorch:requires_grad", "pytorch:eval_requires_grad",
                                     "keras:trainable_false"))),
    Preset(
        "seed-resnet50-inference-everywhere",
        "The same image with the report's fix, Keras 2's set_learning_phase(0): nothing "
        "frozen and every layer in inference mode, also inside fit. The train loss now "
        "equals evaluate's, but one SGD step on all 25M unfrozen weights saturates the "
        "prediction: the clipped loss sits at one of its bounds (the report saw "
        "-ln(1e-7) = 16.118; the seeded weights here reach the other bound, 1.19e-7).",
        dict(_SINGLE_IMAGE, recipes=("pytorch:eval", "keras:inference_everywhere"))),
)}

# The same three cases on the Keras 2 lineage (tf_keras), where the reports' own Keras
# behaviour still ships: the v1 BatchNormalization (adapters/keras/keras2.py).
_KERAS2 = ("pytorch", "tf-keras")
_RANDOM_WEIGHTS = ("It cannot reproduce the report's magnitudes: the weights here are seeded "
                   "random ones, not ImageNet's, and the batch is not the report's images.")
PRESETS.update({p.name: p for p in (
    Preset(
        "seed-densenet-regression-keras2",
        "The first report on Keras 2 (tf_keras): DenseNet121 base frozen with trainable=False, "
        "a regression head trained with MSE on 32 images. Reproduces the report's gap between "
        "the loss fit reports (~2.56) and evaluate on the same batch (29.28): with Keras "
        "2.1's BatchNormalization (tf-keras:v1_frozen) the frozen base normalises with the "
        "batch's statistics inside fit, while tf-keras:trainable_false (TensorFlow 2's "
        "layer) and pytorch:eval_requires_grad do not; pytorch:requires_grad is PyTorch's "
        "twin of the old behaviour. " + _RANDOM_WEIGHTS,
        dict(model="densenet121", scenario="head", batch_size=32, frameworks=_KERAS2,
             recipes=("pytorch:requires_grad", "pytorch:eval_requires_grad",
                      "tf-keras:v1_frozen", "tf-keras:trainable_false"))),
    Preset(
        "seed-resnet50-single-image-keras2",
        "The third report on Keras 2 (tf_keras): ResNet50 with every layer frozen, one image, "
        "its one-hot label, softmax cross-entropy, SGD, fit(validation_data=...) on the same "
        "image. Reproduces that fit reports a different loss than evaluate on the same image "
        "(the report: 6.19 against 0.52) when BatchNorm is Keras 2.1's (tf-keras:v1_frozen), "
        "and that val_loss equals the evaluation after the step. " + _RANDOM_WEIGHTS,
        dict(_SINGLE_IMAGE, frameworks=_KERAS2,
             recipes=("pytorch:requires_grad", "pytorch:eval_requires_grad",
                      "tf-keras:v1_frozen", "tf-keras:trainable_false"))),
    Preset(
        "seed-resnet50-learning-phase-keras2",
        "The third report's fix on Keras 2 (tf_keras): keras.backend.set_learning_phase(0), "
        "which tf_keras 2.21 still offers, before fit on the same image, nothing frozen "
        "(tf-keras:set_learning_phase), beside every BatchNorm and Dropout layer called with "
        "training=False (tf-keras:inference_everywhere, what the fix did in Keras 2.1) and "
        "PyTorch's eval(). Measured on the tiny CNN: tf_keras 2.21's fit passes "
        "training=True itself, so set_learning_phase(0) no longer changes it (BatchNorm on "
        "the batch's statistics, moving statistics updated, Dropout active). Cannot "
        "reproduce the report's 16.118 whatever the weights: -ln(1e-7) is the bound of "
        "cross-entropy on probabilities clipped to [1e-7, 1 - 1e-7], and tf_keras 2.21's "
        "CategoricalCrossentropy() on a softmax output takes the softmax's logits instead, "
        "unclipped (measured 2026-11-29: a saturated prediction gives 0.0 or the logit gap, "
        "100.69 for logits [-100, 0, 0], where the clipped function gives 1.19e-7 or 16.118; "
        "settings.loss_by_framework). " + _RANDOM_WEIGHTS,
        dict(_SINGLE_IMAGE, frameworks=_KERAS2,
             recipes=("pytorch:eval", "tf-keras:set_learning_phase",
                      "tf-keras:inference_everywhere"))),
)})


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
