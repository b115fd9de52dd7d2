"""Pairs of models that take several inputs (forward(image, sequence); the Keras model's
inputs in the same order), for the comparison on several inputs."""

import torch
from torch import nn

from adapters.keras.backend import keras
from keras import layers, ops

SIZE, CHANNELS, STEPS, FEATURES = 8, 3, 6, 5


class ImageAndSequenceNet(nn.Module):
    """An image (N,C,H,W, which Keras takes channels-last) and a sequence (N,L,F, which an LSTM
    takes batch-first and Keras as given): conv -> BatchNorm -> ReLU -> mean, and an LSTM's
    last state, concatenated -> Dropout -> Linear."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.conv = nn.Conv2d(CHANNELS, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.lstm = nn.LSTM(FEATURES, 7, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(11, 3)

    def forward(self, image, sequence):
        pooled = torch.relu(self.bn(self.conv(image))).mean((2, 3))
        _, (last, _) = self.lstm(sequence)
        return self.fc(self.drop(torch.cat([pooled, last[0]], 1)))


def keras_image_and_sequence_net(epsilon: float = 1e-5, dropout: float = 0.0,
                                 swapped: bool = False):
    """swapped: the inputs declared [sequence, image], against PyTorch's (image, sequence)."""
    image = keras.Input((SIZE, SIZE, CHANNELS), name="image")
    sequence = keras.Input((STEPS, FEATURES), name="sequence")
    x = layers.Conv2D(4, 3, padding="same", name="conv")(image)
    x = layers.BatchNormalization(momentum=0.9, epsilon=epsilon, name="bn")(x)
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(x))
    last = layers.LSTM(7, name="lstm")(sequence)
    joined = layers.Dropout(dropout, name="drop")(layers.Concatenate()([x, last]))
    outputs = layers.Dense(3, name="fc")(joined)
    inputs = [sequence, image] if swapped else [image, sequence]
    return keras.Model(inputs, outputs, name="image_and_sequence_net")


def keras_image_and_sequence_net_wrong_epsilon():
    return keras_image_and_sequence_net(epsilon=0.1)


def keras_image_and_sequence_net_on_a_dict():
    """The same graph built on a dict of inputs, {"sequence": ..., "image": ...}."""
    model = keras_image_and_sequence_net()
    image, sequence = model.inputs
    return keras.Model({"sequence": sequence, "image": image}, model.outputs[0])


def keras_image_and_sequence_net_swapped():
    return keras_image_and_sequence_net(swapped=True)


def seeded_image_and_sequence_net():
    torch.manual_seed(0)
    return ImageAndSequenceNet()


class SubclassedImageAndSequenceNet(keras.Model):
    """keras_image_and_sequence_net as a subclassed model, whose call() takes [image,
    sequence]."""

    def __init__(self, epsilon: float = 1e-5):
        super().__init__(name="subclassed_image_and_sequence_net")
        self.conv = layers.Conv2D(4, 3, padding="same", name="conv")
        self.bn = layers.BatchNormalization(momentum=0.9, epsilon=epsilon, name="bn")
        self.pool = layers.GlobalAveragePooling2D(name="pool")
        self.lstm = layers.LSTM(7, name="lstm")
        self.drop = layers.Dropout(0.0, name="drop")
        self.fc = layers.Dense(3, name="fc")

    def call(self, inputs, training=None):
        image, sequence = inputs
        pooled = self.pool(ops.relu(self.bn(self.conv(image), training=training)))
        joined = ops.concatenate([pooled, self.lstm(sequence)], axis=-1)
        return self.fc(self.drop(joined, training=training))
