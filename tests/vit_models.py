"""Vision transformers in small, in PyTorch (timm's and torchvision's own classes) and their
Keras ports, written as a user would: the patch convolution, a layer that holds the class
token and concatenates it before the tokens, one that holds the learned positions and adds
them, and each block's Dense layers (timm's attention as one qkv projection and keras.ops)
or MultiHeadAttention (torchvision's nn.MultiheadAttention)."""

import dataclasses
import os

import torch

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402



@dataclasses.dataclass(frozen=True)
class Shape:
    """A ViT's sizes: image, patch, token width, heads, blocks and classes."""

    size: int = 16
    patch: int = 4
    width: int = 16
    heads: int = 2
    depth: int = 2
    classes: int = 5

    @property
    def tokens(self) -> int:
        return (self.size // self.patch) ** 2


SMALL = Shape()
VIT_B_16 = Shape(size=224, patch=16, width=768, heads=12, depth=12, classes=1000)
SIZE, WIDTH, CLASSES = SMALL.size, SMALL.width, SMALL.classes


def timm_vit(class_token: bool = True, registers: int = 0):
    """timm's VisionTransformer: class token and positions over it, pooled on the token; or
    without a class token, pooled on the mean token; or with register tokens after the
    class token, the positions then added to the patches alone, as its DINOv2 models with
    registers do (pretrained=False: no download)."""
    import timm

    torch.manual_seed(0)
    pooled = {} if class_token else {"class_token": False, "global_pool": "avg"}
    if registers:
        pooled.update(reg_tokens=registers, no_embed_class=True)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=SMALL.size,
                             patch_size=SMALL.patch, embed_dim=SMALL.width,
                             num_heads=SMALL.heads, depth=SMALL.depth,
                             num_classes=SMALL.classes, **pooled)


def timm_deit_distilled():
    """timm's DeiT with its distillation token after the class token (pretrained=False)."""
    import timm

    torch.manual_seed(0)
    return timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False,
                             img_size=SMALL.size, patch_size=SMALL.patch,
                             embed_dim=SMALL.width, num_heads=SMALL.heads, depth=SMALL.depth,
                             num_classes=SMALL.classes)


def torchvision_vit():
    """torchvision's VisionTransformer, its head and class token drawn at random: it starts
    them at zeros, which would make every output and token the same on both sides."""
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=SMALL.size, patch_size=SMALL.patch,
                              num_layers=SMALL.depth, num_heads=SMALL.heads,
                              hidden_dim=SMALL.width, mlp_dim=4 * SMALL.width,
                              num_classes=SMALL.classes)
    for tensor in (model.heads.head.weight, model.class_token):
        torch.nn.init.normal_(tensor)
    return model


class Tokens(layers.Layer):
    """One weight (1, count, D), repeated over the batch before the tokens: a class token,
    or register tokens."""

    def __init__(self, count: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.count = count

    def build(self, input_shape):
        self.tokens = self.add_weight(shape=(1, self.count, input_shape[-1]),
                                      initializer="zeros", name="tokens")

    def call(self, x):
        tokens = ops.broadcast_to(self.tokens, (ops.shape(x)[0], self.count, ops.shape(x)[2]))
        return ops.concatenate([tokens, x], axis=1)


class AddPositions(layers.Layer):
    """One weight (1, L, D), added to the tokens."""

    def build(self, input_shape):
        self.positions = self.add_weight(shape=(1, *input_shape[1:]), initializer="zeros",
                                         name="positions")

    def call(self, x):
        return x + self.positions


def _tokens(inputs, shape: Shape, class_token: bool, registers: int = 0):
    """Patches, then the tokens before them and the positions over all; with registers,
    the positions over the patches alone, then the registers and the class token."""
    x = layers.Conv2D(shape.width, shape.patch, strides=shape.patch, name="patch")(inputs)
    x = layers.Reshape((shape.tokens, shape.width))(x)
    if registers:
        x = Tokens(registers, name="registers")(AddPositions(name="positions")(x))
    if class_token:
        x = Tokens(name="class_token")(x)
    return x if registers else AddPositions(name="positions")(x)


def _timm_attention(x, shape: Shape, block: int):
    """timm's Attention: one qkv projection split into heads, softmax(q k^T / sqrt(d)) v."""
    tokens, width = x.shape[1], shape.width // shape.heads
    qkv = layers.Dense(3 * shape.width, name=f"block{block}_qkv")(x)
    qkv = ops.transpose(ops.reshape(qkv, (-1, tokens, 3, shape.heads, width)), (2, 0, 3, 1, 4))
    q, k, v = qkv[0], qkv[1], qkv[2]
    weights = ops.softmax(ops.matmul(q * width ** -0.5, ops.transpose(k, (0, 1, 3, 2))),
                          axis=-1)
    x = ops.reshape(ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3)),
                    (-1, tokens, shape.width))
    return layers.Dense(shape.width, name=f"block{block}_proj")(x)


def _mlp(x, shape: Shape, block: int):
    x = layers.Dense(4 * shape.width, activation="gelu", name=f"block{block}_fc1")(x)
    return layers.Dense(shape.width, name=f"block{block}_fc2")(x)


def _timm_blocks(x, shape: Shape):
    for block in range(shape.depth):
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{block}_norm1")(x)
        x = x + _timm_attention(y, shape, block)
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{block}_norm2")(x)
        x = x + _mlp(y, shape, block)
    return x


def keras_timm_vit(class_token: bool = True, shape: Shape = SMALL, registers: int = 0):
    inputs = keras.Input((shape.size, shape.size, 3))
    x = _timm_blocks(_tokens(inputs, shape, class_token, registers), shape)
    if class_token:
        x = layers.LayerNormalization(epsilon=1e-6, name="norm")(x)[:, 0]
    else:
        x = layers.LayerNormalization(epsilon=1e-6, name="fc_norm")(
            layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, layers.Dense(shape.classes, name="head")(x))


def keras_timm_deit_distilled(shape: Shape = SMALL):
    """The distillation token first, next to the patches, then the class token before it;
    in inference timm's DeiT gives the mean of its two heads, on the two tokens."""
    inputs = keras.Input((shape.size, shape.size, 3))
    x = layers.Conv2D(shape.width, shape.patch, strides=shape.patch, name="patch")(inputs)
    x = layers.Reshape((shape.tokens, shape.width))(x)
    x = Tokens(name="class_token")(Tokens(name="distillation_token")(x))
    x = _timm_blocks(AddPositions(name="positions")(x), shape)
    x = layers.LayerNormalization(epsilon=1e-6, name="norm")(x)
    heads = [layers.Dense(shape.classes, name=name)(x[:, token])
             for token, name in enumerate(("head", "head_dist"))]
    return keras.Model(inputs, (heads[0] + heads[1]) / 2)


def keras_torchvision_vit(shape: Shape = SMALL):
    """torchvision's VisionTransformer of these sizes (VIT_B_16: its vit_b_16)."""
    inputs = keras.Input((shape.size, shape.size, 3))
    x = _tokens(inputs, shape, class_token=True)
    for block in range(shape.depth):
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{block}_ln_1")(x)
        x = x + layers.MultiHeadAttention(shape.heads, shape.width // shape.heads,
                                          name=f"block{block}_attention")(y, y)
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{block}_ln_2")(x)
        x = x + _mlp(y, shape, block)
    x = layers.LayerNormalization(epsilon=1e-6, name="ln")(x)[:, 0]
    return keras.Model(inputs, layers.Dense(shape.classes, name="head")(x))
