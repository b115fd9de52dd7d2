"""PyTorch models that compute their activation with a function in forward(), for the
command-line example in docs/port-validation.md; their Keras port is
tests/activation_models.py's keras_conv_act_conv (Keras's default LeakyReLU, slope 0.3)."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")


def torch_conv_called_leaky_relu_conv():
    """conv0, F.leaky_relu(x, 0.2) in forward(), conv1."""
    import torch.nn.functional as F

    from tests.activation_models import torch_conv_act_conv

    return torch_conv_act_conv(lambda t: F.leaky_relu(t, 0.2))
