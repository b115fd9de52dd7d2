"""Small pairs for the softmax-axis tests (tests/test_validate_port_softmax.py) and the
examples in docs/port-validation.md: a softmax between two paired layers on an image map
(conv, softmax, conv: tests/activation_models.py's pair), on a sequence of features (Linear,
softmax, Linear on N, L, F, the same layout in both frameworks) and at a map's output
(conv, softmax: a segmentation head's class probabilities); the *_called_* models compute
their softmax with a function in forward() instead of a module, unread_softmax's Keras
layers with a lambda or a function of the user's own, whose axis cannot be read. Called
without arguments, each pair is the slip: the same axis number on both sides. Models and
layers are named: Keras's auto-names depend on the models made before in the process."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

from tests.activation_models import keras_conv_act_conv, torch_conv_act_conv  # noqa: E402

STEPS, FEATURES = 5, 6


def torch_conv_softmax_conv(dim: int = -1, log: bool = False):
    """conv0, nn.Softmax(dim) (nn.LogSoftmax with log), conv1 on N, C, H, W: dim=-1
    normalises over the width."""
    from torch import nn

    return torch_conv_act_conv((nn.LogSoftmax if log else nn.Softmax)(dim=dim))


def keras_conv_softmax_conv(axis: int = -1, log: bool = False):
    """The Keras port on 8 x 8 x 3 images: keras.layers.Softmax(axis) (keras.ops.log_softmax
    with log), where axis=-1 normalises over the channels. PyTorch's dim=1 is axis=-1 here,
    its dim=-1 axis=2."""
    import keras

    if log:
        return keras_conv_act_conv(lambda t: keras.ops.log_softmax(t, axis=axis))
    return keras_conv_act_conv(keras.layers.Softmax(axis=axis, name="softmax"))


def torch_sequence_softmax(dim: int = 1):
    """Linear, nn.Softmax(dim), Linear on N, L, F sequences (STEPS steps of FEATURES
    features): dim=1 normalises over the steps, as attention's weights over keys do."""
    import torch
    from torch import nn

    class SequenceSoftmax(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc0 = nn.Linear(FEATURES, 8)
            self.act = nn.Softmax(dim=dim)
            self.fc1 = nn.Linear(8, 4)

        def forward(self, x):
            return self.fc1(self.act(self.fc0(x)))

    torch.manual_seed(0)
    return SequenceSoftmax().eval()


def keras_sequence_softmax(axis: int = -1):
    """Its Keras port, Dense, Softmax(axis), Dense: the same layout as PyTorch's, so
    PyTorch's dim=1 is axis=1; axis=-1 (Keras's default) normalises over the features."""
    import keras

    inputs = keras.Input((STEPS, FEATURES), name="sequence")
    x = keras.layers.Dense(8, name="fc0")(inputs)
    x = keras.layers.Softmax(axis=axis, name="softmax")(x)
    x = keras.layers.Dense(4, name="fc1")(x)
    return keras.Model(inputs, x, name="sequence_softmax")


def torch_conv_softmax(dim: int = 1):
    """A segmentation head: conv, then nn.Softmax(dim) as the output (dim=1: the classes
    of N, C, H, W)."""
    import torch
    from torch import nn

    class ConvSoftmax(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.act = nn.Softmax(dim=dim)

        def forward(self, x):
            return self.act(self.conv(x))

    torch.manual_seed(0)
    return ConvSoftmax().eval()


def keras_conv_softmax(axis: int = 1, size: int = 8, softmax=None):
    """Its Keras port on size x size x 3 images: axis=1 (PyTorch's number) normalises over
    the height; the classes are axis=-1. softmax: another layer in place of
    Softmax(axis) (unread_softmax's)."""
    import keras

    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = (softmax or keras.layers.Softmax(axis=axis, name="softmax"))(x)
    return keras.Model(inputs, x, name="conv_softmax")


def softmax_function(call: str, dim: int):
    """The softmax forward() computes without a module, written as `call` is: 'F.softmax',
    'F.log_softmax', 'torch.softmax', 'torch.log_softmax', 'x.softmax', 'x.log_softmax'."""
    import torch
    import torch.nn.functional as F

    return {
        "F.softmax": lambda x: F.softmax(x, dim=dim),
        "F.log_softmax": lambda x: F.log_softmax(x, dim=dim),
        "torch.softmax": lambda x: torch.softmax(x, dim),
        "torch.log_softmax": lambda x: torch.log_softmax(x, dim),
        "x.softmax": lambda x: x.softmax(dim),
        "x.log_softmax": lambda x: x.log_softmax(dim),
    }[call]


def torch_conv_called_softmax_conv(dim: int = -1, call: str = "F.softmax"):
    """conv0, the softmax function `call` over dim in forward() (no module), conv1."""
    return torch_conv_act_conv(softmax_function(call, dim))


def torch_conv_called_softmax(dim: int = 1, call: str = "F.softmax"):
    """A segmentation head as a module of its own, `head`, whose forward() ends with the
    softmax function `call` over dim (dim=1: the classes of N, C, H, W; dim=-1 the
    width)."""
    import torch
    from torch import nn

    function = softmax_function(call, dim)

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return function(self.conv(x))

    class Segmenter(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = Head()

        def forward(self, x):
            return self.head(x)

    torch.manual_seed(0)
    return Segmenter().eval()


def unread_softmax(axis=1, holder: str = "Activation", function: str = "ops.softmax"):
    """A Keras layer named softmax whose axis cannot be read off it: `holder` (Activation or
    Lambda) holding a lambda that calls `function` ('ops.softmax', 'ops.log_softmax', or
    'ops.relu', which takes no axis), or (function='by_hand') holding softmax_by_hand, a
    function of the user's own, given the axis by functools.partial."""
    import functools

    import keras

    if function == "by_hand":
        return getattr(keras.layers, holder)(functools.partial(softmax_by_hand, axis=axis),
                                             name="softmax")
    call = {"ops.softmax": lambda t: keras.ops.softmax(t, axis=axis),
            "ops.log_softmax": lambda t: keras.ops.log_softmax(t, axis=axis),
            "ops.relu": lambda t: keras.ops.relu(t)}[function]
    return getattr(keras.layers, holder)(call, name="softmax")


def keras_conv_lambda_softmax(axis=1, holder: str = "Activation"):
    """keras_conv_softmax with its softmax in a lambda (unread_softmax): axis=1, PyTorch's
    number, normalises over the height."""
    return keras_conv_softmax(softmax=unread_softmax(axis, holder))


def softmax_by_hand(t, axis=1):
    """A softmax written out, as a port may hold one: exp of the shifted values over their
    sum."""
    import keras

    e = keras.ops.exp(t - keras.ops.max(t, axis=axis, keepdims=True))
    return e / keras.ops.sum(e, axis=axis, keepdims=True)
