#!/usr/bin/env python
"""Compare freezing recipes on your own model pair: a small residual CNN with BatchNorm and
Dropout in PyTorch, its Keras 3 port, and one call to comparator.compare_pair.

Run from the repository root: python examples/own_pair.py
"""

import os
import sys

# Keras must run on the torch backend in this process: say so before Keras is imported.
os.environ["KERAS_BACKEND"] = "torch"
# And on the device the comparison runs on (compare_pair's default, the CPU): Keras on torch
# otherwise creates its weights on a GPU whenever there is one, and the pair is refused.
os.environ.setdefault("KERAS_TORCH_DEVICE", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import comparator  # noqa: E402

WIDTH, CLASSES = 8, 5


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, WIDTH, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(WIDTH)
        self.conv = nn.Conv2d(WIDTH, WIDTH, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(WIDTH)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(WIDTH, CLASSES)

    def forward(self, x):
        x = torch.relu(self.stem_bn(self.stem(x)))
        x = torch.relu(x + self.bn(self.conv(x)))
        return self.fc(self.dropout(x.mean(dim=(2, 3))))


def small_resnet_keras():
    """The Keras port. PyTorch's BatchNorm momentum 0.1 is Keras's 0.9 (Keras weights the old
    value); Keras's default 0.99 would be another model after the first train step."""
    layers = keras.layers
    inputs = keras.Input((None, None, 3))
    x = layers.Conv2D(WIDTH, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="stem_bn")(x))
    y = layers.Conv2D(WIDTH, 3, padding="same", use_bias=False, name="conv")(x)
    y = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn")(y)
    x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.Dropout(0.2, name="dropout")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, layers.Dense(CLASSES, name="fc")(x), name="small_resnet")


def seeded_small_resnet():
    """The PyTorch model with seeded weights, for `compare.py --pytorch
    examples/own_pair.py:seeded_small_resnet`."""
    torch.manual_seed(0)
    return SmallResNet()


def main() -> int:
    torch_model, keras_model = seeded_small_resnet(), small_resnet_keras()
    comparator.port_weights(torch_model, keras_model)  # your own port would be here
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)

    report = comparator.compare_pair(torch_model, keras_model, x)  # labels: its predictions

    for run in report.runs:
        print(f"{run.id:28s} train step {run.losses.train_step[0]:.4f}  "
              f"inference after {run.losses.inference_after:.4f}")
    for eq in report.equivalences:
        print(f"{'same' if eq.equivalent else 'differ':6s} {eq.a} ~ {eq.b}")
        for difference in eq.differences:
            print(f"         - {difference}")
    port = report.checks[0]
    print(f"{port.name}: {port.value:.2g} ({'pass' if port.passed else 'FAIL'})")
    return 0 if report.checks_passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
