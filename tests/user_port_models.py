"""A user's own model pair for the port tests (not in the zoo): a stem, one residual
block with BatchNorm, global pooling, Dropout and a dense head, in PyTorch and as a
Keras 3 functional port. The Keras factory takes the porting mistakes the tests plant."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

CHANNELS, CLASSES, SIZE = 6, 4, 8


def torch_net():
    import torch
    from torch import nn
    import torch.nn.functional as F

    class ResidualNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, CHANNELS, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(CHANNELS)
            self.conv1 = nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(CHANNELS)
            self.conv2 = nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(CHANNELS)
            self.drop = nn.Dropout(0.25)
            self.head = nn.Linear(CHANNELS, CLASSES)

        def forward(self, x):
            x = F.relu(self.bn(self.stem(x)))
            y = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(x + self.bn2(self.conv2(y)))
            return self.head(self.drop(x.mean((2, 3))))

    torch.manual_seed(0)
    model = ResidualNet()
    with torch.no_grad():
        for bn in (model.bn, model.bn1, model.bn2):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.1)
            bn.running_mean.normal_(0, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def keras_net(momentum=0.9, epsilon=1e-5, dropout=0.25, wrong_bn=None):
    """momentum is Keras's (0.9 is PyTorch's 0.1); wrong_bn names the one BatchNorm that
    gets the given momentum and epsilon (None: all of them)."""
    import keras
    from keras import layers

    def bn(name):
        mine = wrong_bn is None or wrong_bn == name
        return layers.BatchNormalization(momentum=momentum if mine else 0.9,
                                         epsilon=epsilon if mine else 1e-5, name=name)

    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Conv2D(CHANNELS, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.ReLU()(bn("bn")(x))
    y = layers.Conv2D(CHANNELS, 3, padding="same", use_bias=False, name="conv1")(x)
    y = layers.ReLU()(bn("bn1")(y))
    y = layers.Conv2D(CHANNELS, 3, padding="same", use_bias=False, name="conv2")(y)
    x = layers.ReLU()(layers.Add()([x, bn("bn2")(y)]))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout, name="drop")(x)
    return keras.Model(inputs, layers.Dense(CLASSES, name="head")(x), name="residual_net")


def ported_keras_net(model=None):
    """The Keras model (by default the correct port) holding the PyTorch model's weights."""
    from adapters.port_validation.validator import port_weights

    model = keras_net() if model is None else model
    port_weights(torch_net(), model)
    return model


def ported_with_keras_momentum():
    """The classic mistake: Keras's default momentum 0.99 left in bn1 (PyTorch's 0.01)."""
    return ported_keras_net(keras_net(momentum=0.99, wrong_bn="bn1"))


def ported_with_keras_default_epsilon():
    """The other classic: BatchNormalization's default epsilon, 1e-3, where PyTorch's is 1e-5."""
    return ported_keras_net(keras_net(epsilon=1e-3))


def keras_subclassed_net(momentum=0.9, wrong_bn=None, training_branch=False, epsilon=1e-5):
    """keras_net as a subclassed model (momentum and epsilon as keras_net takes them), built;
    its layers are made in the order its call() runs them, so its weights come in keras_net's
    order. training_branch: call() doubles the logits in training mode only, a Python branch
    that a trace on a symbolic input misses."""
    import keras
    import numpy as np
    from keras import layers

    def bn(name):
        return layers.BatchNormalization(
            momentum=momentum if wrong_bn in (None, name) else 0.9,
            epsilon=epsilon if wrong_bn in (None, name) else 1e-5, name=name)

    class ResidualNet(keras.Model):
        def __init__(self):
            super().__init__(name="subclassed_residual_net")
            self.stem, self.bn = layers.Conv2D(CHANNELS, 3, padding="same", use_bias=False,
                                               name="stem"), bn("bn")
            self.conv1, self.bn1 = layers.Conv2D(CHANNELS, 3, padding="same", use_bias=False,
                                                 name="conv1"), bn("bn1")
            self.conv2, self.bn2 = layers.Conv2D(CHANNELS, 3, padding="same", use_bias=False,
                                                 name="conv2"), bn("bn2")
            self.drop = layers.Dropout(0.25, name="drop")
            self.head = layers.Dense(CLASSES, name="head")

        def call(self, x, training=None):
            x = keras.ops.relu(self.bn(self.stem(x), training=training))
            y = keras.ops.relu(self.bn1(self.conv1(x), training=training))
            x = keras.ops.relu(x + self.bn2(self.conv2(y), training=training))
            logits = self.head(self.drop(keras.ops.mean(x, axis=(1, 2)), training=training))
            return logits * 2.0 if training and training_branch else logits

    model = ResidualNet()
    model(np.zeros((1, SIZE, SIZE, 3), np.float32))
    return model


def ported_keras_subclassed_net(**options):
    """keras_subclassed_net holding the correct port's weights."""
    model = keras_subclassed_net(**options)
    model.set_weights(ported_keras_net().get_weights())
    return model


def keras_block_net():
    """keras_net with its residual block as a layer class of the user's own, which holds
    conv1, bn1, conv2 and bn2; the stem and the head stay in the functional graph."""
    import keras
    from keras import layers

    def bn(name):
        return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)

    class ResidualBlock(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv1 = layers.Conv2D(CHANNELS, 3, padding="same", use_bias=False,
                                       name="conv1")
            self.bn1 = bn("bn1")
            self.conv2 = layers.Conv2D(CHANNELS, 3, padding="same", use_bias=False,
                                       name="conv2")
            self.bn2 = bn("bn2")

        def call(self, x, training=None):
            y = keras.ops.relu(self.bn1(self.conv1(x), training=training))
            return keras.ops.relu(x + self.bn2(self.conv2(y), training=training))

    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Conv2D(CHANNELS, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = ResidualBlock(name="block")(layers.ReLU()(bn("bn")(x)))
    x = layers.Dropout(0.25, name="drop")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, layers.Dense(CLASSES, name="head")(x), name="block_net")


def keras_nested_net():
    """keras_net as a base model up to its pooling, called with training=False inside a
    functional model that adds the Dropout and the head: the transfer-learning layout."""
    import keras
    from keras import layers

    flat = keras_net()
    base = keras.Model(flat.inputs, flat.get_layer("drop").input, name="base")
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Dropout(0.25, name="top_drop")(base(inputs, training=False))
    return keras.Model(inputs, layers.Dense(CLASSES, name="top_head")(x), name="nested_net")
