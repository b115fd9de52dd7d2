"""PyTorch models that compute an operation with a function in forward(), and Keras ports:
an activation (for the command-line example in docs/port-validation.md, against
tests/activation_models.py's keras_conv_act_conv, Keras's default LeakyReLU, slope 0.3) and
an F.pad between two convs (tests/test_validate_port_functional_pad.py, keras_conv_conv), and
an F.pad before a pooling between them (tests/test_validate_port_pool_pads.py)."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")


def torch_conv_called_leaky_relu_conv():
    """conv0, F.leaky_relu(x, 0.2) in forward(), conv1."""
    import torch.nn.functional as F

    from tests.activation_models import torch_conv_act_conv

    return torch_conv_act_conv(lambda t: F.leaky_relu(t, 0.2))


def torch_conv_pad_conv(pad=(1, 1, 1, 1), mode: str = "constant", pool: bool = False,
                        stride: int = 1):
    """conv0, F.pad(x, pad, mode=mode) in forward(), conv1 without padding of its own
    (stride `stride`); with pool, conv0, ReLU, the pad, MaxPool2d(3, 2), conv1 padded 1
    (TensorFlow's 'same' pooling as PyTorch ports write it)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ConvPadConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv0 = nn.Conv2d(3, 4, 3, padding=1)
            self.pool = nn.MaxPool2d(3, 2) if pool else None
            self.conv1 = nn.Conv2d(4, 4, 3, stride=stride, padding=1 if pool else 0)

        def forward(self, x):
            x = self.conv0(x)
            if self.pool is not None:
                return self.conv1(self.pool(F.pad(torch.relu(x), pad, mode=mode)))
            return self.conv1(F.pad(x, pad, mode=mode))

    torch.manual_seed(0)
    return ConvPadConv().eval()


def keras_conv_conv(between=(), stride: int = 1, conv1_padding: str = "same"):
    """conv0 ('same'), the layers `between`, conv1 (stride `stride`, conv1_padding) on
    8 x 8 x 3 images."""
    import keras

    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv0")(inputs)
    for layer in between:
        x = layer(x)
    x = keras.layers.Conv2D(4, 3, strides=stride, padding=conv1_padding, name="conv1")(x)
    return keras.Model(inputs, x, name="conv_conv")


def torch_conv_called_reflect_pad_conv():
    """conv0, F.pad(x, (1, 1, 1, 1), mode='reflect') in forward(), conv1 (no padding of its
    own), for the command-line example; keras_conv_conv is its port with 'same'."""
    return torch_conv_pad_conv(mode="reflect")


def torch_conv_pad_pool_conv(pad=(1, 1, 1, 1), value: float | None = None,
                             average: bool = False, padded_by_module: bool = False):
    """conv0 (bias -1.5, so that whole windows of its output are negative), F.pad(x, pad)
    in forward() (value `value`; an nn.ZeroPad2d(pad) module with padded_by_module), a
    3 x 3 pooling of stride 2 (MaxPool2d, or AvgPool2d with average), conv1 padded 1."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ConvPadPoolConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv0 = nn.Conv2d(3, 4, 3, padding=1)
            self.pad = nn.ZeroPad2d(pad) if padded_by_module else None
            self.pool = (nn.AvgPool2d if average else nn.MaxPool2d)(3, 2)
            self.conv1 = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            x = self.conv0(x)
            if self.pad is not None:
                x = self.pad(x)
            else:
                x = F.pad(x, pad) if value is None else F.pad(x, pad, value=value)
            return self.conv1(self.pool(x))

    torch.manual_seed(0)
    model = ConvPadPoolConv().eval()
    with torch.no_grad():
        model.conv0.bias.fill_(-1.5)
    return model


def keras_conv_pool_conv(padding: str = "same", average: bool = False, zero_padding=None):
    """keras_conv_conv with a 3 x 3 pooling of stride 2 (MaxPooling2D, or AveragePooling2D
    with average) between, `padding`, after ZeroPadding2D(zero_padding) where given."""
    import keras

    pooling = keras.layers.AveragePooling2D if average else keras.layers.MaxPooling2D
    between = [keras.layers.ZeroPadding2D(zero_padding, name="pad")] \
        if zero_padding is not None else []
    return keras_conv_conv([*between, pooling(3, 2, padding=padding, name="pool")])


def torch_conv_called_zero_pad_max_pool_conv():
    """conv0, F.pad(x, (0, 1, 0, 1)) (zeros) in forward(), MaxPool2d(3, 2), conv1, for the
    command-line example; keras_conv_pool_conv ('same') is its port."""
    return torch_conv_pad_pool_conv((0, 1, 0, 1))
