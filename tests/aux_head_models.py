"""A tiny CNN trunk with a main head and an auxiliary head, as Inception and torchvision's
segmentation models train: PyTorch modules and their Keras twins, returning the two heads'
scores as a tuple (a list in Keras) or as a dict {"out", "aux"}. The aux head reads the
first block's features, the main head the second block's; both give CLASSES scores, so
both take the same labels. keras_port copies a PyTorch model's weights into a twin."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

layers = keras.layers
SIZE, CLASSES = 8, 4
LABELS = np.array([0, 1, 2, 3])


class TwoHeads(nn.Module):
    """conv -> BatchNorm -> ReLU (the aux head: pool -> linear) -> conv -> ReLU -> pool ->
    linear; returns (main, aux)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.aux_fc = nn.Linear(6, CLASSES)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.fc = nn.Linear(8, CLASSES)

    def heads(self, x):
        features = torch.relu(self.bn1(self.conv1(x)))
        aux = self.aux_fc(features.mean(dim=(2, 3)))
        main = self.fc(torch.relu(self.conv2(features)).mean(dim=(2, 3)))
        return main, aux

    def forward(self, x):
        return self.heads(x)


class TwoHeadsDict(TwoHeads):
    def forward(self, x):
        main, aux = self.heads(x)
        return {"out": main, "aux": aux}


def _keras_heads(inputs, aux_pooling=layers.GlobalAveragePooling2D, conv2_dilation=1):
    """The twin's layers; aux_pooling and conv2_dilation other than the defaults are port
    slips, on the aux branch (a max where PyTorch averages) and on the main branch alone (a
    dilated conv2, whose weights have PyTorch's shape)."""
    x = layers.Conv2D(6, 3, padding="same", name="conv1")(inputs)
    x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="bn1")(x)
    features = layers.ReLU()(x)
    aux = layers.Dense(CLASSES, name="aux_fc")(aux_pooling()(features))
    x = layers.ReLU()(layers.Conv2D(8, 3, padding="same", dilation_rate=conv2_dilation,
                                    name="conv2")(features))
    main = layers.Dense(CLASSES, name="fc")(layers.GlobalAveragePooling2D()(x))
    return main, aux


def keras_two_heads():
    """TwoHeads' twin: a functional model returning [main, aux]."""
    inputs = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inputs, list(_keras_heads(inputs)), name="two_heads_twin")


def keras_two_heads_dict():
    """TwoHeadsDict's twin: a functional model returning {"out": main, "aux": aux}."""
    inputs = keras.Input((SIZE, SIZE, 3))
    main, aux = _keras_heads(inputs)
    return keras.Model(inputs, {"out": main, "aux": aux}, name="two_heads_dict_twin")


def keras_two_heads_dict_aux_slip():
    """keras_two_heads_dict with a slip on the aux branch only: its head pools the features
    with a maximum where PyTorch's averages them."""
    inputs = keras.Input((SIZE, SIZE, 3))
    main, aux = _keras_heads(inputs, aux_pooling=layers.GlobalMaxPooling2D)
    return keras.Model(inputs, {"out": main, "aux": aux}, name="aux_slip_twin")


def keras_two_heads_main_slip():
    """keras_two_heads with a slip on the main branch only: conv2 dilated (2) where
    PyTorch's is not."""
    inputs = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inputs, list(_keras_heads(inputs, conv2_dilation=2)),
                       name="main_slip_twin")


def seeded(build) -> nn.Module:
    """The PyTorch model built from torch's seed 0: the same weights at every call."""
    torch.manual_seed(0)
    return build()


def images(n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, SIZE, SIZE)).astype(np.float32)


def keras_port(torch_model, keras_model):
    """keras_model holding torch_model's weights, ported by hand."""
    state = {name: t.detach().numpy() for name, t in torch_model.state_dict().items()}
    for name in ("conv1", "conv2"):
        keras_model.get_layer(name).set_weights([state[f"{name}.weight"].transpose(2, 3, 1, 0),
                                                 state[f"{name}.bias"]])
    for name in ("aux_fc", "fc"):
        keras_model.get_layer(name).set_weights([state[f"{name}.weight"].T,
                                                 state[f"{name}.bias"]])
    keras_model.get_layer("bn1").set_weights([state[f"bn1.{k}"] for k in
                                              ("weight", "bias", "running_mean", "running_var")])
    return keras_model
