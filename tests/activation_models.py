"""Small pairs for the operation-setting tests (tests/test_validate_port_activations.py)
and the examples in docs/port-validation.md: a conv, a weightless operation (an
activation, an upsampling, a pooling), a conv, in PyTorch and as a Keras functional port.
Called without arguments, the activation pair uses each framework's default LeakyReLU
(PyTorch's slope 0.01, Keras's 0.3); the *_upsample_* and *_pool_* pairs are the
upsampling's and pooling's slips. rank=1 makes the convs Conv1d and Conv1D, on sequences
(N, 3, L). Models and layers are named: Keras's auto-names depend on
the models made before in the process."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")


def torch_conv_act_conv(activation=None, first_scale: float = 1.0, rank: int = 2):
    """conv0, the activation (a module, or a function run in forward(); default
    nn.LeakyReLU()), conv1; conv0's kernel times first_scale widens what the activation
    sees."""
    import torch
    from torch import nn

    if activation is None:
        activation = nn.LeakyReLU()

    class ConvActConv(nn.Module):
        def __init__(self):
            super().__init__()
            conv = getattr(nn, f"Conv{rank}d")
            self.conv0 = conv(3, 4, 3, padding=1)
            self.act = activation if isinstance(activation, nn.Module) else None
            self.conv1 = conv(4, 4, 3, padding=1)

        def forward(self, x):
            x = self.conv0(x)
            x = self.act(x) if self.act is not None else activation(x)
            return self.conv1(x)

    torch.manual_seed(0)
    model = ConvActConv()
    with torch.no_grad():
        model.conv0.weight.mul_(first_scale)
    return model.eval()


def keras_conv_act_conv(*activations, size: int = 8, rank: int = 2):
    """conv0, the activations (Keras layers or functions of a tensor; default one
    LeakyReLU() named leaky), conv1, on size x size x 3 images (size x 3 sequences at
    rank 1)."""
    import keras

    conv = getattr(keras.layers, f"Conv{rank}D")
    inputs = keras.Input((size,) * rank + (3,), name="image")
    x = conv(4, 3, padding="same", name="conv0")(inputs)
    for activation in activations or (keras.layers.LeakyReLU(name="leaky"),):
        x = activation(x)
    x = conv(4, 3, padding="same", name="conv1")(x)
    return keras.Model(inputs, x, name="conv_act_conv")


def torch_conv_upsample_conv():
    """Bilinear upsampling that aligns corners, as PyTorch's models often set it."""
    from torch import nn

    return torch_conv_act_conv(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True))


def keras_conv_upsample_conv():
    """Its Keras port on 5 x 5 images: UpSampling2D cannot align corners."""
    import keras

    return keras_conv_act_conv(keras.layers.UpSampling2D(2, interpolation="bilinear",
                                                         name="up"), size=5)


def torch_conv_pool_conv():
    """An average pooling that counts its zero padding (count_include_pad's default)."""
    from torch import nn

    return torch_conv_act_conv(nn.AvgPool2d(3, stride=2, padding=1))


def keras_conv_pool_conv(size: int = 5):
    """Its Keras port: AveragePooling2D with 'same' averages the values inside the input."""
    import keras

    return keras_conv_act_conv(keras.layers.AveragePooling2D(3, strides=2, padding="same",
                                                             name="pool"), size=size)


def align_corners_matrix(n_in: int, n_out: int):
    """Each output position's weights on the input positions (n_in >= 2), as bilinear
    interpolation with align_corners=True places them: the corners on the corners."""
    import numpy as np

    position = np.arange(n_out) * (n_in - 1) / (n_out - 1)
    low = np.minimum(np.floor(position).astype(int), n_in - 2)
    matrix = np.zeros((n_out, n_in), np.float32)
    matrix[np.arange(n_out), low] = 1 - (position - low)
    matrix[np.arange(n_out), low + 1] = position - low
    return matrix


def keras_conv_aligned_upsample_conv(size: int = 5):
    """The port Keras can express of torch_conv_upsample_conv: no Keras resize aligns
    corners, so the two interpolation matrices are applied with keras.ops.einsum."""
    import keras

    rows = align_corners_matrix(size, 2 * size)
    upsample = keras.layers.Lambda(
        lambda t: keras.ops.einsum("hi,nijc,wj->nhwc", rows, t, rows), name="up")
    return keras_conv_act_conv(upsample, size=size)


def torch_sequence_pool_conv():
    """Sequences: torchvision's stem pooling in 1-D, MaxPool1d(3, 2, padding=1)."""
    from torch import nn

    return torch_conv_act_conv(nn.MaxPool1d(3, 2, padding=1), rank=1)


def keras_sequence_pool_conv(size: int = 8):
    """Its Keras port with 'same', which pads an even length (0, 1)."""
    import keras

    return keras_conv_act_conv(keras.layers.MaxPooling1D(3, 2, padding="same", name="pool"),
                               size=size, rank=1)


def torch_conv_nearest_upsample_conv():
    """nn.Upsample's default mode, 'nearest', where the Keras port
    (keras_conv_upsample_conv) interpolates bilinearly."""
    from torch import nn

    return torch_conv_act_conv(nn.Upsample(scale_factor=2))


def torch_conv_softplus_conv():
    """A softplus of beta 2; Keras's softplus has none (keras_conv_softplus_conv)."""
    from torch import nn

    return torch_conv_act_conv(nn.Softplus(beta=2.0), first_scale=4.0)


def keras_conv_softplus_conv():
    import keras

    return keras_conv_act_conv(keras.layers.Activation("softplus", name="softplus"))
