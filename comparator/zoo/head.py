"""The regression head the `head` scenario puts on every backbone, the same in both
frameworks: Dense(64, relu) -> Dropout(0.5) -> Dense(1)."""

HEAD_HIDDEN = 64
HEAD_DROPOUT = 0.5
# PyTorch's nn.Sequential indices (Linear, ReLU, Dropout, Linear) -> Keras layer names.
HEAD_LAYERS = {"head.0": "head_dense", "head.3": "head_output"}
HEAD_DROPOUT_LAYER = "head_dropout"
