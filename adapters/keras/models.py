"""Keras model construction for the model table: keras.applications builders and
this project's own small models. Imported only by adapters.keras.adapter, after it has
fixed the backend."""

from __future__ import annotations

from adapters.keras.backend import keras
from keras import layers

from comparator.zoo import ModelSpec



def tiny_cnn(spec: ModelSpec, image_size: int, include_top: bool):
    """The Keras twin of adapters.pytorch.adapter.TinyCNN (explicit padding, as PyTorch pads)."""
    eps, momentum = spec.bn_epsilon["keras"], spec.bn_momentum["keras"]
    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    for i, (filters, stride) in enumerate(((8, 1), (16, 2), (32, 2)), start=1):
        x = layers.ZeroPadding2D(1, name=f"pad{i}")(x)
        x = layers.Conv2D(filters, 3, strides=stride, use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(epsilon=eps, momentum=momentum, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if include_top:
        x = layers.Dropout(0.2, name="dropout")(x)
        x = layers.Dense(spec.num_classes, name="classifier")(x)
    return keras.Model(inputs, x, name="tiny_cnn")


def input_shape(spec: ModelSpec, image_size: int) -> tuple[int, ...]:
    if spec.input_features:
        return (spec.input_features,)
    return (image_size, image_size, 3)


def dense_mlp(spec: ModelSpec):
    """The Keras twin of adapters.pytorch.models.DenseMLP."""
    inputs = keras.Input((spec.input_features,))
    x = layers.Dense(spec.feature_dim, activation="relu", name="fc1")(inputs)
    return keras.Model(inputs, layers.Dense(1, name="fc2")(x), name="dense_mlp")


def _bn(spec: ModelSpec, name: str):
    return layers.BatchNormalization(epsilon=spec.bn_epsilon["keras"],
                                     momentum=spec.bn_momentum["keras"], name=name)


def _top(spec: ModelSpec, x, include_top: bool, pool_name: str):
    x = layers.GlobalAveragePooling2D(name=pool_name)(x)
    if include_top:
        x = layers.Dense(spec.num_classes, name="predictions")(x)
    return x


def _resnet_v1_5_block(spec, x, filters: int, stride: int, shortcut: bool, name: str):
    """torchvision's Bottleneck (v1.5: the 3x3 conv strides; no conv bias), Keras names."""
    if shortcut:
        residual = layers.Conv2D(4 * filters, 1, strides=stride, use_bias=False,
                                 name=f"{name}_0_conv")(x)
        residual = _bn(spec, f"{name}_0_bn")(residual)
    else:
        residual = x
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_1_conv")(x)
    x = layers.ReLU(name=f"{name}_1_relu")(_bn(spec, f"{name}_1_bn")(x))
    if stride > 1:  # PyTorch pads 1 on every side; Keras "same" would pad (0, 1)
        x = layers.ZeroPadding2D(1, name=f"{name}_2_pad")(x)
        x = layers.Conv2D(filters, 3, strides=stride, use_bias=False, name=f"{name}_2_conv")(x)
    else:
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x)
    x = layers.ReLU(name=f"{name}_2_relu")(_bn(spec, f"{name}_2_bn")(x))
    x = layers.Conv2D(4 * filters, 1, use_bias=False, name=f"{name}_3_conv")(x)
    x = layers.Add(name=f"{name}_add")([residual, _bn(spec, f"{name}_3_bn")(x)])
    return layers.ReLU(name=f"{name}_out")(x)


def resnet50_v1_5(spec: ModelSpec, image_size: int, include_top: bool):
    """ResNet50 v1.5 as torchvision builds it, with keras.applications.ResNet50's layer names.

    keras.applications.ResNet50 is v1 (the first 1x1 conv of a strided block strides, convs
    carry a bias); torchvision's resnet50 is v1.5. Their weights have the same shapes, so a
    port into keras.applications' model loads and computes something else.
    """
    inputs = keras.Input((image_size, image_size, 3))
    x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = layers.ReLU(name="conv1_relu")(_bn(spec, "conv1_bn")(x))
    # Zero padding before a max pool of non-negative values equals PyTorch's -inf padding.
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, (filters, blocks, stride) in enumerate(
            ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), start=2):
        for block in range(1, blocks + 1):
            x = _resnet_v1_5_block(spec, x, filters, stride if block == 1 else 1,
                                   shortcut=block == 1, name=f"conv{stage}_block{block}")
    return keras.Model(inputs, _top(spec, x, include_top, "avg_pool"), name="resnet50_v1_5")


def vgg16_adaptive_pool(spec: ModelSpec, image_size: int, include_top: bool):
    """keras.applications' VGG16, with torchvision's 7x7 adaptive average pool before Flatten.

    The pool is the identity at 224 px and lets the classifier take any size, as
    torchvision's does. The classifier is keras.applications' (fc1, fc2, predictions, no
    Dropout): torchvision's two Dropout(0.5) layers stay a visible difference.
    """
    shape = (image_size, image_size, 3)
    if not include_top:
        return keras.applications.VGG16(weights=None, include_top=False, pooling="avg",
                                        input_shape=shape)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=shape)
    x = layers.AdaptiveAveragePooling2D((7, 7), name="avgpool")(base.output)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(4096, activation="relu", name="fc1")(x)
    x = layers.Dense(4096, activation="relu", name="fc2")(x)
    x = layers.Dense(spec.num_classes, name="predictions")(x)
    return keras.Model(base.input, x, name="vgg16")


# (expansion, output channels, repeats, first stride): torchvision's and Keras's table.
MOBILENET_V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _inverted_residual(spec, x, expansion: int, filters: int, stride: int, block_id: int):
    channels = x.shape[-1]
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    inputs = x
    if block_id:
        x = layers.Conv2D(expansion * channels, 1, use_bias=False, name=prefix + "expand")(x)
        x = layers.ReLU(6.0, name=prefix + "expand_relu")(_bn(spec, prefix + "expand_BN")(x))
    if stride == 2:  # symmetric, as PyTorch pads; keras.applications pads (0, 1)
        x = layers.ZeroPadding2D(1, name=prefix + "pad")(x)
    x = layers.DepthwiseConv2D(3, strides=stride, use_bias=False,
                               padding="same" if stride == 1 else "valid",
                               name=prefix + "depthwise")(x)
    x = layers.ReLU(6.0, name=prefix + "depthwise_relu")(_bn(spec, prefix + "depthwise_BN")(x))
    x = layers.Conv2D(filters, 1, use_bias=False, name=prefix + "project")(x)
    x = _bn(spec, prefix + "project_BN")(x)
    if stride == 1 and channels == filters:
        x = layers.Add(name=prefix + "add")([inputs, x])
    return x


def mobilenet_v2_symmetric(spec: ModelSpec, image_size: int, include_top: bool):
    """MobileNetV2 (alpha 1) as torchvision computes it, with keras.applications' names.

    Differs from keras.applications.MobileNetV2 in two places only: stride-2 convs pad 1
    on every side (PyTorch) instead of (0, 1), and BatchNorm epsilon is the spec's (1e-5,
    PyTorch's) instead of 1e-3. The momentum stays Keras's 0.999.
    """
    inputs = keras.Input((image_size, image_size, 3))
    x = layers.ZeroPadding2D(1, name="Conv1_pad")(inputs)
    x = layers.Conv2D(32, 3, strides=2, use_bias=False, name="Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(_bn(spec, "bn_Conv1")(x))
    block_id = 0
    for expansion, filters, repeats, stride in MOBILENET_V2_BLOCKS:
        for i in range(repeats):
            x = _inverted_residual(spec, x, expansion, filters, stride if i == 0 else 1,
                                   block_id)
            block_id += 1
    x = layers.Conv2D(1280, 1, use_bias=False, name="Conv_1")(x)
    x = layers.ReLU(6.0, name="out_relu")(_bn(spec, "Conv_1_bn")(x))
    x = _top(spec, x, include_top, "global_average_pooling2d")
    return keras.Model(inputs, x, name="mobilenet_v2_symmetric")


# The project's own Keras builders, by the name a ModelSpec gives as keras_builder;
# any other name is a keras.applications builder.
BUILDERS = {"resnet50_v1_5": resnet50_v1_5, "vgg16_adaptive_pool": vgg16_adaptive_pool,
            "mobilenet_v2_symmetric": mobilenet_v2_symmetric}


def build_application(builder_name: str, image_size: int, include_top: bool):
    """A keras.applications model, untrained, with logits (no softmax) when it has a top."""
    builder = getattr(keras.applications, builder_name)
    shape = (image_size, image_size, 3)
    if include_top:
        return builder(weights=None, classifier_activation=None, input_shape=shape)
    return builder(weights=None, include_top=False, pooling="avg", input_shape=shape)


def build_base(spec: ModelSpec, image_size: int, include_top: bool):
    if spec.family == "mlp":
        return dense_mlp(spec)
    if spec.family == "tiny":
        return tiny_cnn(spec, image_size, include_top)
    if spec.keras_builder in BUILDERS:
        return BUILDERS[spec.keras_builder](spec, image_size, include_top)
    return build_application(spec.keras_builder, image_size, include_top)
