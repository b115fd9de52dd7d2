"""Vision transformers in small, in PyTorch (timm's and torchvision's own classes) and their
Keras ports, written as a user would: the patch convolution, a layer that holds the class
token and concatenates it before the tokens, one that holds the learned positions and adds
them, and each block's Dense layers (timm's attention as one qkv projection and keras.ops)
or MultiHeadAttention (torchvision's nn.MultiheadAttention)."""

import os

import torch

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

SIZE, PATCH, WIDTH, HEADS, DEPTH, CLASSES = 16, 4, 16, 2, 2, 5
TOKENS = (SIZE // PATCH) ** 2


def timm_vit(class_token: bool = True):
    """timm's VisionTransformer: class token and positions over it, pooled on the token; or
    without a class token, pooled on the mean token (pretrained=False: no download)."""
    import timm

    torch.manual_seed(0)
    pooled = {} if class_token else {"class_token": False, "global_pool": "avg"}
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=SIZE,
                             patch_size=PATCH, embed_dim=WIDTH, num_heads=HEADS, depth=DEPTH,
                             num_classes=CLASSES, **pooled)


def torchvision_vit():
    """torchvision's VisionTransformer, its head and class token drawn at random: it starts
    them at zeros, which would make every output and token the same on both sides."""
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=SIZE, patch_size=PATCH, num_layers=DEPTH,
                              num_heads=HEADS, hidden_dim=WIDTH, mlp_dim=4 * WIDTH,
                              num_classes=CLASSES)
    for tensor in (model.heads.head.weight, model.class_token):
        torch.nn.init.normal_(tensor)
    return model


class ClassToken(layers.Layer):
    """One weight (1, 1, D), repeated over the batch before the tokens."""

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, WIDTH), initializer="zeros", name="token")

    def call(self, x):
        return ops.concatenate([ops.broadcast_to(self.token, (ops.shape(x)[0], 1, WIDTH)), x],
                               axis=1)


class AddPositions(layers.Layer):
    """One weight (1, L, D), added to the tokens."""

    def build(self, input_shape):
        self.positions = self.add_weight(shape=(1, *input_shape[1:]), initializer="zeros",
                                         name="positions")

    def call(self, x):
        return x + self.positions


def _tokens(inputs, class_token: bool):
    x = layers.Conv2D(WIDTH, PATCH, strides=PATCH, name="patch")(inputs)
    x = layers.Reshape((TOKENS, WIDTH))(x)
    if class_token:
        x = ClassToken(name="class_token")(x)
    return AddPositions(name="positions")(x)


def _timm_attention(x, block: int, tokens: int):
    """timm's Attention: one qkv projection split into heads, softmax(q k^T / sqrt(d)) v."""
    width = WIDTH // HEADS
    qkv = layers.Dense(3 * WIDTH, name=f"block{block}_qkv")(x)
    qkv = ops.transpose(ops.reshape(qkv, (-1, tokens, 3, HEADS, width)), (2, 0, 3, 1, 4))
    q, k, v = qkv[0], qkv[1], qkv[2]
    weights = ops.softmax(ops.matmul(q * width ** -0.5, ops.transpose(k, (0, 1, 3, 2))),
                          axis=-1)
    x = ops.reshape(ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3)), (-1, tokens, WIDTH))
    return layers.Dense(WIDTH, name=f"block{block}_proj")(x)


def _mlp(x, block: int):
    x = layers.Dense(4 * WIDTH, activation="gelu", name=f"block{block}_fc1")(x)
    return layers.Dense(WIDTH, name=f"block{block}_fc2")(x)


def keras_timm_vit(class_token: bool = True):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = _tokens(inputs, class_token)
    for block in range(DEPTH):
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{block}_norm1")(x)
        x = x + _timm_attention(y, block, TOKENS + int(class_token))
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{block}_norm2")(x)
        x = x + _mlp(y, block)
    if class_token:
        x = layers.LayerNormalization(epsilon=1e-6, name="norm")(x)[:, 0]
    else:
        x = layers.LayerNormalization(epsilon=1e-6, name="fc_norm")(
            layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, layers.Dense(CLASSES, name="head")(x))


def keras_torchvision_vit():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = _tokens(inputs, class_token=True)
    for block in range(DEPTH):
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{block}_ln_1")(x)
        x = x + layers.MultiHeadAttention(HEADS, WIDTH // HEADS,
                                          name=f"block{block}_attention")(y, y)
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{block}_ln_2")(x)
        x = x + _mlp(y, block)
    x = layers.LayerNormalization(epsilon=1e-6, name="ln")(x)[:, 0]
    return keras.Model(inputs, layers.Dense(CLASSES, name="head")(x))
