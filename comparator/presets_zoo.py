"""Preset data for the zoo's seed case, as a declarative description only.

The preset mechanism (comparator/presets.py, comparator/cli.py) is being built
elsewhere; nothing imports this module yet. `settings` holds only CompareConfig
fields that exist today, so wiring a description is `Preset(d.name, d.question,
d.settings)`; `requires` says what the mechanism must add for the run to be the
seed's case rather than an approximation of it.

The case (../shared/seeds, the third report): keras.applications' ResNet50 with
every layer set trainable=False, one image, one-hot label, categorical
cross-entropy on the softmax output, SGD. evaluate() reports a small loss,
fit(validation_data=(x, y)) reports a large one for the same image (BatchNorm on
the statistics of one image), val_loss equals the next evaluate(); with the
learning phase forced to inference everywhere the train loss matches evaluate,
but the unfrozen weights take one SGD step and the prediction saturates
(val_loss 16.118 = -ln(1e-7): Keras clips probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEED_LABEL = 386  # the seed's class index ("African elephant" in ImageNet)


@dataclass(frozen=True)
class Requirement:
    """Something the preset mechanism must provide; `fallback` is what runs today."""

    name: str
    what: str
    fallback: str


@dataclass(frozen=True)
class PresetVariant:
    name: str
    question: str
    recipes: tuple[str, ...]
    expect: str
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class PresetDescription:
    name: str
    question: str
    settings: dict  # CompareConfig fields, as comparator.presets.Preset.settings
    sequence: tuple[str, ...]  # the user's calls, in order
    loss: str
    labels: str
    expect: str
    variants: tuple[PresetVariant, ...] = ()
    requires: tuple[Requirement, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


REQUIREMENTS = {r.name: r for r in (
    Requirement(
        "loss:categorical_probabilities",
        "Cross-entropy on softmax probabilities with a one-hot label: the Keras model ends "
        "in softmax (classifier_activation='softmax') and compiles "
        "CategoricalCrossentropy(from_logits=False), which clips probabilities to "
        "[1e-7, 1 - 1e-7] (the 16.118 ceiling); PyTorch computes -sum(onehot * log(softmax)) "
        "on the same logits, reported both unclipped and clipped so the clipping shows as "
        "its own gap.",
        "today's loss, mean cross-entropy from logits with integer labels: the same values "
        "except where a probability falls below 1e-7"),
    Requirement(
        "labels:fixed_one_hot",
        f"A fixed class for the batch (index {SEED_LABEL}) given as a one-hot row, instead "
        "of labels drawn from the seed.",
        "a seeded random label; the loss values differ, the gaps do not depend on it"),
    Requirement(
        "recipe:keras:inference_everywhere",
        "A Keras recipe with weights trainable and every BatchNormalization and Dropout "
        "layer called with training=False inside fit() too (Keras 3 has no "
        "set_learning_phase; the adapter's _inference_calls context does this per layer "
        "class), paired in EXPECTED_PAIRS with pytorch:eval.",
        "keras:training_false, which DESIGN.md shows does not survive fit() for a layer "
        "that is not also frozen, so it is not the same case"),
    Requirement(
        "sequence:evaluate_fit_evaluate",
        "Report the three numbers the user saw side by side: evaluate before, fit's train "
        "loss and val_loss, evaluate after (today: inference_before, train_step, "
        "fit_validation, inference_after, which already hold them).",
        "already measured with validate=True; only the display order is the seed's"),
)}


SEED_RESNET50_SINGLE_IMAGE = PresetDescription(
    name="seed-resnet50-single-image",
    question="ResNet50 with every layer trainable=False, fitted on one image with SGD: why "
             "does fit report 5.3 while evaluate on the same image says 0.3, and why does "
             "val_loss equal the next evaluate?",
    settings=dict(model="resnet50", scenario="classify", batch_size=1, image_size=224,
                  steps=1, optimizer="sgd", lr=0.01, validate=True,
                  recipes=("keras:trainable_false", "pytorch:requires_grad",
                           "pytorch:eval_requires_grad")),
    sequence=("model.evaluate(x, y)",
              "model.fit(x, y, batch_size=1, epochs=1, validation_data=(x, y))",
              "model.evaluate(x, y)"),
    loss="categorical cross-entropy on softmax probabilities, one-hot label",
    labels=f"one image, class {SEED_LABEL} one-hot",
    expect="keras:trainable_false: in Keras 3 a frozen BatchNormalization stays in inference "
           "mode inside fit, so fit's loss equals evaluate's and nothing moves (the seed's "
           "5.3 vs 0.3 was Keras 2.1 behaviour). pytorch:requires_grad is that Keras 2.1 "
           "twin: BatchNorm on the statistics of one image gives a large train-step loss "
           "and moves the running statistics, so evaluate after differs from before. "
           "pytorch:eval_requires_grad agrees with keras:trainable_false. val_loss equals "
           "the inference loss after the step in every run that has one.",
    variants=(
        PresetVariant(
            name="seed-resnet50-single-image-inference-everywhere",
            question="The seed's set_learning_phase(0) fix: every layer in inference mode, "
                     "nothing frozen. Why does the train loss now match evaluate while "
                     "val_loss jumps to 16.118?",
            recipes=("keras:inference_everywhere", "pytorch:eval"),
            expect="train-step loss equals the inference loss before (no batch statistics); "
                   "the one SGD step on unfrozen weights moves the prediction far enough "
                   "that the label's probability falls below 1e-7: Keras reports -ln(1e-7) "
                   "= 16.118, PyTorch the unclipped cross-entropy.",
            requires=("recipe:keras:inference_everywhere",)),
    ),
    requires=(REQUIREMENTS["loss:categorical_probabilities"],
              REQUIREMENTS["labels:fixed_one_hot"],
              REQUIREMENTS["sequence:evaluate_fit_evaluate"]),
    notes=(
        "The Keras side is the zoo's ResNet50 v1.5 (keras.applications' layer names, "
        "torchvision's function), not keras.applications' v1: the freezing behaviour is the "
        "same, and both frameworks then compute one function.",
        "Weights are seeded random with calibrated BatchNorm statistics and the image is "
        "synthetic, so the absolute losses differ from the seed's; which run shows a gap, "
        "and why, is what reproduces.",
        "batch_size=1 is safe for PyTorch BatchNorm in train(): every BatchNorm layer of "
        "ResNet50 sees at least 7x7 values per channel at 224 px (only a (1, C) input "
        "raises).",
    ),
)

PRESETS_ZOO = {d.name: d for d in (SEED_RESNET50_SINGLE_IMAGE,)}
