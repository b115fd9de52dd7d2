"""The layer-by-layer port validator: both models traced pair by pair in inference and
training mode, with gradients (`validator`), and one BatchNorm step per pair (`training`)."""
