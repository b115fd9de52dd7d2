"""Pairs of the tests' own whose outputs are not one row per input: a segmentation net whose
map is N,K,H,W in PyTorch and N,H,W,K in Keras, and a sequence tagger whose per-step scores
are N,L,K in both. Each Keras twin has Keras's own random weights, for --port-weights to fill."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

layers = keras.layers
SIZE, CLASSES, STEPS, FEATURES = 8, 3, 6, 4


class SegmentationNet(nn.Module):
    """conv 3x3 -> BatchNorm -> ReLU -> Dropout -> conv 1x1: CLASSES scores per pixel."""

    def __init__(self, dropout: float = 0.25):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(dropout)
        self.classify = nn.Conv2d(8, CLASSES, 1)

    def forward(self, x):
        return self.classify(self.drop(torch.relu(self.bn(self.conv(x)))))


def keras_segmentation_twin(dropout: float = 0.25):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="bn")(x)
    x = layers.Dropout(dropout, name="drop")(layers.ReLU()(x))
    outputs = layers.Conv2D(CLASSES, 1, name="classify")(x)
    return keras.Model(inputs, outputs, name="segmentation_twin")


class SequenceTagger(nn.Module):
    """LSTM over the steps -> Linear on every step: CLASSES scores per step, N,L,K."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, 5, batch_first=True)
        self.tag = nn.Linear(5, CLASSES)

    def forward(self, x):
        return self.tag(self.lstm(x)[0])


def keras_sequence_tagger_twin():
    inputs = keras.Input((STEPS, FEATURES))
    x = layers.LSTM(5, return_sequences=True, name="lstm")(inputs)
    return keras.Model(inputs, layers.Dense(CLASSES, name="tag")(x), name="tagger_twin")


def seeded(build, *args, **kwargs) -> nn.Module:
    """The PyTorch model built from torch's seed 0: the same weights at every call."""
    torch.manual_seed(0)
    return build(*args, **kwargs)


def images(n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, SIZE, SIZE)).astype(np.float32)


def sequences(n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, STEPS, FEATURES)).astype(np.float32)


class SegmentationWithAux(nn.Module):
    """SegmentationNet's map as {"out": ..., "aux": ...}, as torchvision's segmentation models
    return theirs: an auxiliary 1x1 conv on the features beside the classifier."""

    def __init__(self):
        super().__init__()
        self.backbone = SegmentationNet(dropout=0.0)
        self.aux = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        out = self.backbone(x)
        return {"out": out, "aux": self.aux(out)}


def keras_segmentation_with_aux_twin():
    """A functional model with a dict of outputs, the same structure, in one flat graph."""
    twin = keras_segmentation_twin(dropout=0.0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = inputs
    for layer in twin.layers[1:]:
        x = layer(x)
    out = x
    aux = layers.Conv2D(2, 1, name="aux")(out)
    return keras.Model(inputs, {"out": out, "aux": aux}, name="aux_twin")


class KerasSegmentationWithAux(keras.Model):
    """keras_segmentation_with_aux_twin as a subclassed model: it keeps its aux head as a
    layer whichever output a caller takes."""

    def __init__(self):
        super().__init__(name="subclassed_aux_twin")
        self.conv = layers.Conv2D(8, 3, padding="same", name="conv")
        self.bn = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="bn")
        self.classify = layers.Conv2D(CLASSES, 1, name="classify")
        self.aux = layers.Conv2D(2, 1, name="aux")

    def call(self, x, training=None):
        out = self.classify(keras.ops.relu(self.bn(self.conv(x), training=training)))
        return {"out": out, "aux": self.aux(out)}


def keras_subclassed_segmentation_with_aux_twin():
    model = KerasSegmentationWithAux()
    model(np.zeros((1, SIZE, SIZE, 3), np.float32))
    return model
