"""A model pair of the tests' own, not in the zoo: a residual CNN with BatchNorm and Dropout,
written once in PyTorch and once in Keras 3, with the mistakes a port can plant."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

CLASSES = 4
WIDTH = 6


class ResidualNet(nn.Module):
    """stem (conv, BN, ReLU) -> one residual block -> pool -> Dropout -> Linear."""

    def __init__(self, dropout: float = 0.25):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, WIDTH, 3, padding=1, bias=False), nn.BatchNorm2d(WIDTH), nn.ReLU())
        self.conv1 = nn.Conv2d(WIDTH, WIDTH, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTH)
        self.conv2 = nn.Conv2d(WIDTH, WIDTH, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(WIDTH)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(WIDTH, CLASSES)

    def forward(self, x):
        x = self.features(x)
        y = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(x + self.bn2(self.conv2(y)))
        return self.fc(self.dropout(x.mean(dim=(2, 3))))


def keras_residual_net(momentum: float = 0.9, epsilon: float = 1e-5, dropout: float = 0.25,
                       name: str = "residual_net"):
    """The Keras port; momentum 0.9 in Keras's convention is PyTorch's 0.1."""
    layers = keras.layers

    def bn(layer_name):
        return layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name=layer_name)

    stem_in = keras.Input((None, None, 3))
    x = layers.Conv2D(WIDTH, 3, padding="same", use_bias=False, name="stem_conv")(stem_in)
    x = layers.ReLU()(bn("stem_bn")(x))
    features = keras.Model(stem_in, x, name="features")

    inputs = keras.Input((None, None, 3))
    x = features(inputs)
    y = layers.Conv2D(WIDTH, 3, padding="same", use_bias=False, name="conv1")(x)
    y = layers.ReLU()(bn("bn1")(y))
    y = bn("bn2")(layers.Conv2D(WIDTH, 3, padding="same", use_bias=False, name="conv2")(y))
    x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, layers.Dense(CLASSES, name="fc")(x), name=name)


def keras_with_keras_momentum():
    """The planted momentum mistake: Keras's default 0.99 left in place (PyTorch's 0.01)."""
    return keras_residual_net(momentum=0.99)


# PyTorch module -> Keras layer, for the tests' own port (the Keras model nests its backbone,
# which the layer-by-layer porter does not walk into).
PORT = {"features.0": "stem_conv", "features.1": "stem_bn", "conv1": "conv1", "bn1": "bn1",
        "conv2": "conv2", "bn2": "bn2", "fc": "fc"}


def port_to_keras(torch_model, keras_model) -> None:
    """Copy the PyTorch weights into the Keras model (kernels O,I,H,W -> H,W,I,O)."""
    layers = {layer.name: layer for layer in keras_model._flatten_layers(recursive=True)}
    modules = dict(torch_model.named_modules())
    for module_name, layer_name in PORT.items():
        module = modules[module_name]
        if isinstance(module, nn.BatchNorm2d):
            values = [module.weight, module.bias, module.running_mean, module.running_var]
        elif isinstance(module, nn.Linear):
            values = [module.weight.T, module.bias]
        else:
            values = [module.weight.permute(2, 3, 1, 0)]
        layers[layer_name].set_weights([v.detach().numpy() for v in values])


def ported_keras_net():
    """The Keras port holding ResidualNet's seeded weights (torch.manual_seed(0))."""
    torch.manual_seed(0)
    keras_model = keras_residual_net()
    port_to_keras(ResidualNet(), keras_model)
    return keras_model


def another_model_off_torch():
    """ported_keras_net on the torch backend; on any other, a smaller model (3 weights for its
    17): a builder whose model depends on the backend it runs on."""
    if keras.backend.backend() == "torch":
        return ported_keras_net()
    layers = keras.layers
    return keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(WIDTH, 3, use_bias=False),
                             layers.GlobalAveragePooling2D(), layers.Dense(CLASSES)])


def seeded_torch_net():
    torch.manual_seed(0)
    return ResidualNet()


def not_a_model():
    return "a string"


def broken_factory():
    raise ValueError("the factory needs a config file")


def scripted_block_net():
    """ResidualNet with its stem (conv, BN, ReLU) scripted by torch.jit.script, as some
    repositories ship their blocks: torch refuses forward hooks on the scripted part."""
    import warnings

    model = ResidualNet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        model.features = torch.jit.script(model.features)
    return model
