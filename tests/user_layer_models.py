"""Model pairs of the tests' own with layers beyond Conv2d, Linear and BatchNorm (LayerNorm,
GroupNorm, RMSNorm, Conv1d), on inputs that are not RGB images: a one-channel image, vectors
and sequences. Each Keras port can be built with the slip a port makes most often: Keras's
default epsilon (1e-3; PyTorch's is 1e-5), another number of groups, or Keras's 'same'
padding where PyTorch pads both sides."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

layers = keras.layers
FEATURES, SIZE, CHANNELS, STEPS, TOKENS, HEADS, VOCABULARY = 16, 8, 3, 32, 8, 2, 20
DEPTH = 4  # a volume's (or a clip's) first axis: N, C, DEPTH, SIZE, SIZE


class GroupNormNet(nn.Module):
    """A one-channel image: conv -> GroupNorm (4 groups of 2) -> ReLU -> pool -> Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.gn = nn.GroupNorm(4, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.gn(self.conv(x))).mean((2, 3)))


def keras_group_norm_net(groups: int = 4, epsilon: float = 1e-5):
    inputs = keras.Input((SIZE, SIZE, 1))
    x = layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = layers.GroupNormalization(groups=groups, epsilon=epsilon, name="gn")(x)
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(x))
    return keras.Model(inputs, layers.Dense(3, name="fc")(x), name="group_norm_net")


class LayerNormMLP(nn.Module):
    """Vectors: Linear -> LayerNorm -> GELU -> Linear, and an RMSNorm variant."""

    def __init__(self, rms: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(FEATURES, 32)
        self.norm = nn.RMSNorm(32) if rms else nn.LayerNorm(32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.norm(self.fc1(x))))


def keras_layer_norm_mlp(epsilon: float | None = 1e-5, rms: bool = False):
    """epsilon None: the Keras layer's own default."""
    inputs = keras.Input((FEATURES,))
    x = layers.Dense(32, name="fc1")(inputs)
    norm = layers.RMSNormalization if rms else layers.LayerNormalization
    x = norm(name="norm", **({} if epsilon is None else {"epsilon": epsilon}))(x)
    x = layers.Activation("gelu")(x)
    return keras.Model(inputs, layers.Dense(4, name="fc2")(x), name="layer_norm_mlp")


class SequenceNet(nn.Module):
    """Sequences (N, C, L): Conv1d (stride 2) -> BatchNorm1d -> ReLU -> mean over time ->
    Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(CHANNELS, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(2))


def keras_sequence_net(padding: str = "explicit"):
    """padding "explicit": ZeroPadding1D(1) and 'valid', as PyTorch pads; "same": Keras's
    'same', which pads a stride-2 conv on an even length by (0, 1)."""
    inputs = keras.Input((STEPS, CHANNELS))
    x = layers.ZeroPadding1D(1)(inputs) if padding == "explicit" else inputs
    x = layers.Conv1D(8, 3, strides=2, padding="valid" if padding == "explicit" else "same",
                      name="conv")(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn")(x)
    x = layers.GlobalAveragePooling1D()(layers.ReLU()(x))
    return keras.Model(inputs, layers.Dense(4, name="fc")(x), name="sequence_net")


TORCH_RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
KERAS_RECURRENT = {"lstm": layers.LSTM, "gru": layers.GRU, "rnn": layers.SimpleRNN}


class _LastStepNet(nn.Module):
    """Sequences (N, L, F), the same array in both frameworks: one recurrent layer, named by
    its kind -> last step -> Linear."""

    kind = "lstm"

    def __init__(self, **options):
        super().__init__()
        self.add_module(self.kind, TORCH_RECURRENT[self.kind](CHANNELS, 10, batch_first=True,
                                                              **options))
        self.fc = nn.Linear(10, 4)

    def forward(self, x):
        return self.fc(getattr(self, self.kind)(x)[0][:, -1])


class RecurrentNet(_LastStepNet):
    """LSTM -> last step -> Linear."""

    kind = "lstm"


class GatedRecurrentNet(_LastStepNet):
    """GRU -> last step -> Linear."""

    kind = "gru"


class ElmanNet(_LastStepNet):
    """An Elman RNN (tanh unless told otherwise) -> last step -> Linear."""

    kind = "rnn"


def keras_recurrent_twin(kind: str, **options):
    """The Keras twin of RecurrentNet ("lstm"), GatedRecurrentNet ("gru") or ElmanNet
    ("rnn"), with Keras's own random weights: for --port-weights to fill."""
    inputs = keras.Input((STEPS, CHANNELS))
    x = KERAS_RECURRENT[kind](10, name=kind, **options)(inputs)
    return keras.Model(inputs, layers.Dense(4, name="fc")(x), name=f"{kind}_twin")


class DeepRecurrentNet(nn.Module):
    """Sequences (N, L, F): a stacked, maybe bidirectional LSTM, GRU or RNN (the module is
    named by its kind) -> mean over the steps -> Linear."""

    def __init__(self, kind: str = "lstm", num_layers: int = 2, bidirectional: bool = False,
                 **options):
        super().__init__()
        self.kind = kind
        self.add_module(kind, TORCH_RECURRENT[kind](
            CHANNELS, 5, num_layers=num_layers, batch_first=True, bidirectional=bidirectional,
            **options))
        self.fc = nn.Linear(10 if bidirectional else 5, 4)

    def forward(self, x):
        return self.fc(getattr(self, self.kind)(x)[0].mean(dim=1))


def keras_deep_recurrent_twin(kind: str = "lstm", num_layers: int = 2,
                              bidirectional: bool = False, dropout_between: float = 0.0,
                              **options):
    """DeepRecurrentNet's Keras twin, one layer per PyTorch layer, with Keras's own random
    weights (and Dropout layers between them, as PyTorch's `dropout` drops there)."""
    inputs = keras.Input((STEPS, CHANNELS))
    x = inputs
    for index in range(num_layers):
        if index and dropout_between:
            x = layers.Dropout(dropout_between)(x)
        layer = KERAS_RECURRENT[kind](5, return_sequences=True, **options)
        x = (layers.Bidirectional(layer, name=f"{kind}_{index}") if bidirectional else layer)(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(4, name="fc")(x), name=f"deep_{kind}_twin")


def keras_gated_recurrent_net(torch_model: GatedRecurrentNet):
    """Keras's GRU (reset_after=True, its default) keeps both biases, as PyTorch does; the
    gates are ordered r, z, n in PyTorch and z, r, h in Keras."""
    def keras_order(array):
        r, z, n = np.split(array, 3, axis=0)
        return np.concatenate([z, r, n], axis=0)

    inputs = keras.Input((STEPS, CHANNELS))
    x = layers.GRU(10, name="gru")(inputs)
    model = keras.Model(inputs, layers.Dense(4, name="fc")(x), name="gated_recurrent_net")
    gru = {n: p.detach().numpy() for n, p in torch_model.gru.named_parameters()}
    model.get_layer("gru").set_weights([
        keras_order(gru["weight_ih_l0"]).T, keras_order(gru["weight_hh_l0"]).T,
        np.stack([keras_order(gru["bias_ih_l0"]), keras_order(gru["bias_hh_l0"])])])
    model.get_layer("fc").set_weights([torch_model.fc.weight.detach().numpy().T,
                                       torch_model.fc.bias.detach().numpy()])
    return model


def seeded_layer_norm_mlp():
    """For the command line: the seeded LayerNorm MLP, and its Keras port left at Keras's
    default LayerNormalization epsilon (compare.py --port-weights pytorch-to-keras)."""
    return seeded(LayerNormMLP())


def keras_layer_norm_mlp_default_epsilon():
    return keras_layer_norm_mlp(epsilon=None)


class SubclassedRecurrentNet(keras.Model):
    """A subclassed Keras model declares no input shape: the tool builds it on the batch."""

    def __init__(self):
        super().__init__(name="subclassed_recurrent_net")
        self.lstm, self.fc = layers.LSTM(10), layers.Dense(4)

    def call(self, x):
        return self.fc(self.lstm(x))


def keras_recurrent_net(torch_model: RecurrentNet):
    """The Keras LSTM with the PyTorch one's weights: both keep the gates in the order input,
    forget, cell, output; PyTorch adds two biases where Keras keeps their sum."""
    inputs = keras.Input((STEPS, CHANNELS))
    x = layers.LSTM(10, name="lstm")(inputs)
    model = keras.Model(inputs, layers.Dense(4, name="fc")(x), name="recurrent_net")
    lstm = {n: p.detach().numpy() for n, p in torch_model.lstm.named_parameters()}
    model.get_layer("lstm").set_weights([lstm["weight_ih_l0"].T, lstm["weight_hh_l0"].T,
                                         lstm["bias_ih_l0"] + lstm["bias_hh_l0"]])
    model.get_layer("fc").set_weights([torch_model.fc.weight.detach().numpy().T,
                                       torch_model.fc.bias.detach().numpy()])
    return model


class AttentionNet(nn.Module):
    """Tokens (N, L, D), L == D so that both layouts fit the Keras model's declared shape:
    self-attention -> residual -> LayerNorm -> mean over tokens -> Linear."""

    def __init__(self, **options):
        super().__init__()
        self.attn = nn.MultiheadAttention(TOKENS, HEADS, batch_first=True, **options)
        self.norm = nn.LayerNorm(TOKENS)
        self.fc = nn.Linear(TOKENS, 3)

    def forward(self, x):
        attended, _ = self.attn(x, x, x, need_weights=False)
        return self.fc(self.norm(x + attended).mean(1))


def keras_attention_twin(use_bias: bool = True):
    """AttentionNet's Keras twin with Keras's own random weights."""
    d = TOKENS
    inputs = keras.Input((d, d))
    attended = layers.MultiHeadAttention(HEADS, d // HEADS, use_bias=use_bias, name="attn")(
        inputs, inputs)
    x = layers.LayerNormalization(epsilon=1e-5, name="norm")(layers.Add()([inputs, attended]))
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(3, name="fc")(x), name="attention_twin")


class CrossAttentionNet(nn.Module):
    """Tokens (N, L, D): attention whose keys and values are projections of other widths
    (kdim 6, vdim 4), which PyTorch holds as q_proj_weight, k_proj_weight and v_proj_weight
    -> residual -> LayerNorm -> mean over tokens -> Linear."""

    def __init__(self):
        super().__init__()
        self.to_key, self.to_value = nn.Linear(TOKENS, 6), nn.Linear(TOKENS, 4)
        self.attn = nn.MultiheadAttention(TOKENS, HEADS, kdim=6, vdim=4, batch_first=True)
        self.norm = nn.LayerNorm(TOKENS)
        self.fc = nn.Linear(TOKENS, 3)

    def forward(self, x):
        attended, _ = self.attn(x, self.to_key(x), self.to_value(x), need_weights=False)
        return self.fc(self.norm(x + attended).mean(1))


def keras_cross_attention_twin():
    """CrossAttentionNet's Keras twin with Keras's own random weights."""
    inputs = keras.Input((TOKENS, TOKENS))
    key, value = layers.Dense(6, name="to_key")(inputs), layers.Dense(4, name="to_value")(inputs)
    attended = layers.MultiHeadAttention(HEADS, TOKENS // HEADS, name="attn")(inputs, value,
                                                                             key=key)
    x = layers.LayerNormalization(epsilon=1e-5, name="norm")(layers.Add()([inputs, attended]))
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(3, name="fc")(x), name="cross_attention_twin")


class EncoderNet(nn.Module):
    """Tokens (N, L, D): PyTorch's own Transformer encoder block (post-norm) -> mean -> Linear."""

    def __init__(self):
        super().__init__()
        self.block = nn.TransformerEncoderLayer(TOKENS, HEADS, dim_feedforward=16, dropout=0.0,
                                                batch_first=True)
        self.fc = nn.Linear(TOKENS, 3)

    def forward(self, x):
        return self.fc(self.block(x).mean(1))


def keras_encoder_twin():
    """EncoderNet's block written out in Keras layers, with Keras's own random weights."""
    inputs = keras.Input((TOKENS, TOKENS))
    attended = layers.MultiHeadAttention(HEADS, TOKENS // HEADS, name="attn")(inputs, inputs)
    x = layers.LayerNormalization(epsilon=1e-5, name="norm1")(layers.Add()([inputs, attended]))
    fed = layers.Dense(16, activation="relu", name="linear1")(x)
    x = layers.Add()([x, layers.Dense(TOKENS, name="linear2")(fed)])
    x = layers.GlobalAveragePooling1D()(layers.LayerNormalization(epsilon=1e-5, name="norm2")(x))
    return keras.Model(inputs, layers.Dense(3, name="fc")(x), name="encoder_twin")


def keras_attention_net(torch_model: AttentionNet):
    """Keras's MultiHeadAttention with the PyTorch layer's projections: Keras keeps each of
    query, key and value as a (D, heads, head_dim) kernel, PyTorch all three in one
    (3D, D) in_proj_weight."""
    d, heads = TOKENS, HEADS
    inputs = keras.Input((d, d))
    attended = layers.MultiHeadAttention(heads, d // heads, name="attn")(inputs, inputs)
    x = layers.LayerNormalization(epsilon=1e-5, name="norm")(layers.Add()([inputs, attended]))
    x = layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, layers.Dense(3, name="fc")(x), name="attention_net")
    attn = torch_model.attn
    w, b = attn.in_proj_weight.detach().numpy(), attn.in_proj_bias.detach().numpy()
    projections = []
    for i in range(3):
        projections += [w[i * d:(i + 1) * d].T.reshape(d, heads, d // heads),
                        b[i * d:(i + 1) * d].reshape(heads, d // heads)]
    projections += [attn.out_proj.weight.detach().numpy().T.reshape(heads, d // heads, d),
                    attn.out_proj.bias.detach().numpy()]
    model.get_layer("attn").set_weights(projections)
    for name in ("norm", "fc"):
        module = getattr(torch_model, name)
        weight = module.weight.detach().numpy()
        model.get_layer(name).set_weights([weight.T if weight.ndim == 2 else weight,
                                           module.bias.detach().numpy()])
    return model


class TokenNet(nn.Module):
    """Token ids (N, L), integers: Embedding -> LayerNorm per token -> mean -> Linear. Its
    activations are N,L,F in both frameworks."""

    def __init__(self, norm: bool = True):
        super().__init__()
        self.emb = nn.Embedding(VOCABULARY, TOKENS)
        self.norm = nn.LayerNorm(TOKENS) if norm else nn.Identity()
        self.fc = nn.Linear(TOKENS, 3)

    def forward(self, ids):
        return self.fc(self.norm(self.emb(ids)).mean(1))


def keras_token_net(epsilon: float | None = 1e-5, norm: bool = True):
    inputs = keras.Input((STEPS,), dtype="int32")
    x = layers.Embedding(VOCABULARY, TOKENS, name="emb")(inputs)
    if norm:
        x = layers.LayerNormalization(name="norm", **({} if epsilon is None else
                                                      {"epsilon": epsilon}))(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(3, name="fc")(x), name="token_net")


def plain_token_net():
    """Without LayerNorm: Keras 3.15.1's own ONNX export refuses LayerNormalization on torch
    (a shape read from the input, measured), and this pair's referee takes both graphs."""
    return TokenNet(norm=False)


def keras_plain_token_net():
    return keras_token_net(norm=False)


def token_ids(n: int = 4, seed: int = 4):
    return np.random.default_rng(seed).integers(0, VOCABULARY, size=(n, STEPS))


def seeded(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for parameter in module.parameters():  # away from 1 and 0, so swapped arrays show
        with torch.no_grad():
            parameter.copy_(torch.randn_like(parameter) * 0.5)
    return module


def ported_and_validated(torch_model: nn.Module, keras_model, x: np.ndarray, **options):
    """The PyTorch model seeded, ported into the Keras model and validated layer by layer
    (inference only, no gradients or training step, unless options say otherwise)."""
    import comparator

    torch_model = seeded(torch_model).eval()
    comparator.port_weights(torch_model, keras_model)
    quick = dict(modes=("inference",), gradients=False, train_step=False)
    return comparator.validate_port(torch_model, keras_model, x, **{**quick, **options})


def keras_lstm_twin():
    """keras_recurrent_twin("lstm"), as a SPEC for compare.py."""
    return keras_recurrent_twin("lstm")


class SlopeNet(nn.Module):
    """An image: conv -> BatchNorm -> PReLU per channel -> depthwise conv with a depth
    multiplier of 2 -> PReLU with one slope -> pool -> Linear (a face-recognition net's
    pieces)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.PReLU(4)
        self.dw = nn.Conv2d(4, 8, 3, padding=1, groups=4)
        self.act2 = nn.PReLU()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.act2(self.dw(self.act(self.bn(self.conv(x)))))
        return self.fc(x.mean((2, 3)))


def keras_slope_net(depthwise: bool = True, shared: bool = True):
    """depthwise False: the depthwise conv as Conv2D(groups=4); shared False: the first
    PReLU without shared_axes, one slope per position, as Keras defaults it."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn")(x)
    x = layers.PReLU(**({"shared_axes": [1, 2]} if shared else {}), name="act")(x)
    x = (layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw") if depthwise
         else layers.Conv2D(8, 3, padding="same", groups=4, name="dw"))(x)
    x = layers.PReLU(shared_axes=[1, 2, 3], name="act2")(x)
    x = layers.Dense(3, name="fc")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, x, name="slope_net")


class InstanceNormNet(nn.Module):
    """An image: conv -> InstanceNorm (with weights, no running statistics) -> ReLU -> pool ->
    Linear (a style-transfer net's pieces)."""

    def __init__(self, track_running_stats: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.InstanceNorm2d(4, affine=True, track_running_stats=track_running_stats)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.norm(self.conv(x))).mean((2, 3)))


def keras_instance_norm_net(groups: int = -1, epsilon: float | None = 1e-5):
    """groups -1: one per channel, as PyTorch's InstanceNorm; epsilon None: Keras's own."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = layers.GroupNormalization(groups=groups, name="norm",
                                  **({} if epsilon is None else {"epsilon": epsilon}))(x)
    x = layers.Dense(3, name="fc")(layers.GlobalAveragePooling2D()(layers.ReLU()(x)))
    return keras.Model(inputs, x, name="instance_norm_net")


class SeparableNet(nn.Module):
    """An image: conv -> depthwise conv without bias -> 1x1 conv -> pool -> Linear, which
    Keras builds with one SeparableConv2D."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
        self.pointwise = nn.Conv2d(4, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.pointwise(self.depthwise(self.conv(x))).mean((2, 3)))


def keras_separable_net(split: bool = False):
    """split: the SeparableConv2D as DepthwiseConv2D(use_bias=False) and a 1x1 Conv2D."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    if split:
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="depthwise")(x)
        x = layers.Conv2D(6, 1, name="pointwise")(x)
    else:
        x = layers.SeparableConv2D(6, 3, padding="same", name="sep")(x)
    x = layers.Dense(3, name="fc")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, x, name="separable_net")


class VectorNet(nn.Module):
    """Vectors: three Linear layers."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(FEATURES, 8), nn.Linear(8, 8)
        self.fc3 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def keras_einsum_net():
    """A Keras model with an EinsumDense, a layer the pairing does not know."""
    inputs = keras.Input((FEATURES,))
    x = layers.EinsumDense("ab,bc->ac", output_shape=8, bias_axes="c", name="projection")(inputs)
    x = layers.Dense(3, name="fc")(layers.ReLU()(x))
    return keras.Model(inputs, x, name="einsum_net")


class DepthwiseSequenceNet(nn.Module):
    """A sequence: conv -> depthwise conv (depth multiplier 2, no bias) -> pointwise conv ->
    mean over the steps -> Linear (a speech model's convolution block)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(CHANNELS, 4, 3, padding=1)
        self.depthwise = nn.Conv1d(4, 8, 3, padding=1, groups=4, bias=False)
        self.pointwise = nn.Conv1d(8, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.pointwise(self.depthwise(self.conv(x))).mean(2))


def keras_depthwise_sequence_net(separable: bool = False):
    """separable: the depthwise and pointwise convs as one SeparableConv1D."""
    inputs = keras.Input((STEPS, CHANNELS))
    x = layers.Conv1D(4, 3, padding="same", name="conv")(inputs)
    if separable:
        x = layers.SeparableConv1D(6, 3, padding="same", depth_multiplier=2, name="sep")(x)
    else:
        x = layers.DepthwiseConv1D(3, padding="same", depth_multiplier=2, use_bias=False,
                                   name="depthwise")(x)
        x = layers.Conv1D(6, 1, name="pointwise")(x)
    x = layers.Dense(3, name="fc")(layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, x, name="depthwise_sequence_net")


class VolumeNet(nn.Module):
    """A volume (or a video clip), N, 2, DEPTH, SIZE, SIZE: conv -> BatchNorm -> ReLU ->
    grouped stride-2 conv -> ReLU -> transposed conv (stride 2) -> mean -> Linear (a 3-D
    segmentation net's pieces)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm3d(4)
        self.down = nn.Conv3d(4, 8, 3, stride=2, padding=1, groups=2)
        self.up = nn.ConvTranspose3d(8, 4, 4, stride=2, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.down(torch.relu(self.bn(self.conv(x)))))
        return self.fc(self.up(x).mean((2, 3, 4)))


def keras_volume_net(same_padding: bool = False):
    """same_padding: the stride-2 conv with Keras's 'same', which pads (0, 1) on an even size
    where PyTorch's padding=1 pads (1, 1); else ZeroPadding3D(1) and 'valid', as PyTorch."""
    inputs = keras.Input((DEPTH, SIZE, SIZE, 2))
    x = layers.Conv3D(4, 3, padding="same", name="conv")(inputs)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn")(x))
    if not same_padding:
        x = layers.ZeroPadding3D(1, name="pad")(x)
    x = layers.Conv3D(8, 3, strides=2, padding="same" if same_padding else "valid", groups=2,
                      name="down")(x)
    x = layers.Conv3DTranspose(4, 4, strides=2, padding="same", name="up")(layers.ReLU()(x))
    x = layers.Dense(3, name="fc")(layers.GlobalAveragePooling3D()(x))
    return keras.Model(inputs, x, name="volume_net")


class UpsamplingSequenceNet(nn.Module):
    """A sequence: conv -> transposed conv (stride 2, doubling the steps) -> mean -> Linear (a
    vocoder's upsampling block)."""

    def __init__(self, kernel: int = 4, output_padding: int = 0):
        super().__init__()
        self.conv = nn.Conv1d(CHANNELS, 4, 3, padding=1)
        self.up = nn.ConvTranspose1d(4, 6, kernel, stride=2, padding=1,
                                     output_padding=output_padding)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.up(torch.relu(self.conv(x))).mean(2))


def keras_upsampling_sequence_net(kernel: int = 4):
    """The transposed conv with 'same' padding: PyTorch's kernel 4, padding 1 crops as it
    does; kernel 3 with output_padding 1 does not (Keras's 'same' crops (0, 1))."""
    inputs = keras.Input((STEPS, CHANNELS))
    x = layers.Conv1D(4, 3, padding="same", name="conv")(inputs)
    x = layers.Conv1DTranspose(6, kernel, strides=2, padding="same", name="up")(
        layers.ReLU()(x))
    x = layers.Dense(3, name="fc")(layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, x, name="upsampling_sequence_net")


class PooledVolumeNet(nn.Module):
    """A volume: conv -> ReLU -> max pooling (3, stride 2, padding 1) -> conv -> mean ->
    Linear (a video net's stem)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(2, 4, 3, padding=1)
        self.pool = nn.MaxPool3d(3, stride=2, padding=1)
        self.conv2 = nn.Conv3d(4, 4, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.conv2(self.pool(torch.relu(self.conv(x)))).mean((2, 3, 4)))


def keras_pooled_volume_net(same_padding: bool = False):
    """same_padding: MaxPooling3D with 'same', which pads (0, 1) on an even size; else
    ZeroPadding3D(1) and 'valid' (zeros stand for PyTorch's -inf after the ReLU)."""
    inputs = keras.Input((DEPTH, SIZE, SIZE, 2))
    x = layers.ReLU()(layers.Conv3D(4, 3, padding="same", name="conv")(inputs))
    if not same_padding:
        x = layers.ZeroPadding3D(1)(x)
    x = layers.MaxPooling3D(3, strides=2, padding="same" if same_padding else "valid",
                            name="pool")(x)
    x = layers.Conv3D(4, 1, name="conv2")(x)
    x = layers.Dense(3, name="fc")(layers.GlobalAveragePooling3D()(x))
    return keras.Model(inputs, x, name="pooled_volume_net")


class UpsampledVolumeNet(nn.Module):
    """A volume: conv -> Upsample (2, the given mode) -> 1x1 conv -> mean -> Linear."""

    def __init__(self, mode: str = "nearest"):
        super().__init__()
        self.conv = nn.Conv3d(2, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode=mode)
        self.conv2 = nn.Conv3d(4, 4, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.conv2(self.up(self.conv(x))).mean((2, 3, 4)))


def keras_upsampled_volume_net():
    """UpSampling3D(2): each value repeated along each axis."""
    inputs = keras.Input((DEPTH, SIZE, SIZE, 2))
    x = layers.UpSampling3D(2, name="up")(layers.Conv3D(4, 3, padding="same", name="conv")(inputs))
    x = layers.Conv3D(4, 1, name="conv2")(x)
    x = layers.Dense(3, name="fc")(layers.GlobalAveragePooling3D()(x))
    return keras.Model(inputs, x, name="upsampled_volume_net")


class TwoInputNet(nn.Module):
    """An image and a vector of features (forward(image, features)): conv -> BatchNorm ->
    ReLU -> pool, and Linear -> ReLU, concatenated -> Linear (a model that reads an image
    with its metadata)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.meta = nn.Linear(FEATURES, 6)
        self.fc = nn.Linear(10, 3)

    def forward(self, image, features):
        pooled = torch.relu(self.bn(self.conv(image))).mean((2, 3))
        return self.fc(torch.cat([pooled, torch.relu(self.meta(features))], 1))


def keras_two_input_net(epsilon: float = 1e-5, swapped: bool = False):
    """TwoInputNet in Keras: inputs [image, features] (swapped: [features, image])."""
    image = keras.Input((SIZE, SIZE, 3), name="image")
    features = keras.Input((FEATURES,), name="features")
    x = layers.Conv2D(4, 3, padding="same", name="conv")(image)
    x = layers.BatchNormalization(momentum=0.9, epsilon=epsilon, name="bn")(x)
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(x))
    meta = layers.Dense(6, activation="relu", name="meta")(features)
    outputs = layers.Dense(3, name="fc")(layers.Concatenate()([x, meta]))
    inputs = [features, image] if swapped else [image, features]
    return keras.Model(inputs, outputs, name="two_input_net")


def two_inputs(n: int = 4, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3, SIZE, SIZE)).astype(np.float32),
            rng.standard_normal((n, FEATURES)).astype(np.float32))
