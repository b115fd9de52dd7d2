"""Every tolerance the tool judges with, in one place, each with the reason for its size.

Checks state their tolerance in the report; where float32 rounding alone can exceed a
fixed tolerance, the check measures that rounding with a float64 rerun and allows
FLOAT32_FACTOR times it instead.
"""

from __future__ import annotations

# A second float32 implementation of the same function may round up to a few times as far
# from the exact value as the first (measured against float64 reruns of PyTorch).
FLOAT32_FACTOR = 4

# Max abs difference of inference-mode outputs of a faithful float32 port of the same
# function (DenseNet121 at 224 px: about 1e-6).
PORT_TOLERANCE = 1e-4
# Max abs difference of logits between two runtimes (ONNX Runtime against a framework) on
# the same function in float32.
LOGIT_TOLERANCE = 1e-4
# Relative difference of two frameworks' losses on the same function: float32 kernels of
# two frameworks differ around 1e-6 relative.
LOSS_RTOL = 1e-4
# Relative difference of two frameworks' float64 reruns of one train-step forward pass below
# which they compute the same function. Keras's loss classes compute in float32 even on
# float64 outputs (their dtype is floatx), which rounds the loss by up to 6e-8 relative;
# DenseNet121 at 32 px, batch 2, gave 7.545610428 (Keras) and 7.545610455 (PyTorch with
# Keras's epsilon), 3.6e-9 relative, where their float32 losses were 2.3e-3 apart.
FLOAT64_LOSS_RTOL = 1e-6
# Weights and running statistics after the same step in two frameworks.
STATE_TOLERANCE = 1e-5
# Keras's val_loss against the inference loss after the step: the same evaluation of the
# same state, but two programs. tf_keras 2.21 runs fit's validation and evaluate() as two
# tf.functions, and TensorFlow's oneDNN graph kernels round float32 differently from its
# eager ones: on the tf-keras:set_learning_phase state of
# `compare.py --preset seed-resnet50-learning-phase-keras2 --image-size 32` (2026-11-29)
# the logits of a forward pass in a tf.function were up to 2.0e-4 from the eager pass's
# (largest logit 5.9), fit's val_loss 2.4653168 (the eager value) and evaluate() 2.4653578,
# 4.1e-5 (1.7e-5 relative) apart; with TF_ENABLE_ONEDNN_OPTS=0 the two passes and the two
# losses agree bitwise, at 2.4652734, 4.4e-5 and 8.4e-5 from the oneDNN ones. So the
# rounding grows with the loss: the tolerance is LOSS_RTOL of the inference loss, never
# below this absolute floor (fit_validation_tolerance). Another state stays far outside:
# there the val_loss before the step was 7.683 and in training mode 7.039.
FIT_VALIDATION_TOLERANCE = 1e-5

# Port validation, per layer: a layer diverges when Keras's value differs from PyTorch's
# by more than this fraction of PyTorch's largest magnitude, and by more than
# FLOAT32_FACTOR times PyTorch's own float32 rounding error (measured against a float64 run
# of the PyTorch model). A wrong stride, padding, epsilon or flatten order shows up at 1e-3
# and far above; rounding alone stays near 1e-6 per layer, but grows with depth, in
# BatchNorm on few values per channel and in gradients, which is what the float64
# reference tells apart.
LAYER_TOLERANCE = 1e-4
GRADIENT_TOLERANCE = 1e-3
# A gradient also has to point elsewhere: 1 - cosine beyond this (and beyond FLOAT32_FACTOR
# times PyTorch float32's own). Gradients through ReLU flip where a pre-activation sits
# within rounding of zero, so one element can differ by a lot while the direction holds:
# measured at 224 px on the zoo, correct ports stay above cosine 0.9998, the naive ResNet50
# port is near 0.
GRADIENT_COSINE_GAP = 1e-3
# A kernel "is" PyTorch's under a layout mistake (spatial axes swapped, ...) when it matches
# that rearrangement to this fraction of its largest value: a copy is exact, this only
# absorbs a round trip through another float dtype.
LAYOUT_MATCH_TOLERANCE = 1e-6
# A weightless operation's output under PyTorch's setting and under Keras's (LeakyReLU's
# slope, GELU's exact or tanh form, an upsampling's align_corners, an average pooling's
# count_include_pad) differ when they are this fraction of the largest value apart, and the
# setting explains Keras's output when the other one reproduces it within it: one
# elementwise function in float32 rounds near 1e-7 (GELU against float64: 7e-8, measured
# on torch 2.14.1), while GELU's tanh form is 5e-5 from the exact one on a normal sample of
# standard deviation 3; bilinear upsampling without aligned corners and an average over the
# values inside the input give Keras 3.15.1's UpSampling2D and AveragePooling2D bit for bit.
# Finer than LAYER_TOLERANCE on purpose: the layer after the operation sums its differences
# (the tests' GELU pair: its outputs 8.7e-5 of their largest value apart, the conv after it
# 1.3e-4).
SETTING_MATCH_TOLERANCE = 1e-6
# Two BatchNorm momenta (PyTorch's convention) differ beyond this. Both are Python floats
# read from the layers: Keras's 1 - 0.9 is PyTorch's 0.1 up to 3e-17.
MOMENTUM_TOLERANCE = 1e-6


def fit_validation_tolerance(inference_after: float) -> float:
    """The allowed difference between val_loss and the inference loss after the step."""
    return max(FIT_VALIDATION_TOLERANCE, LOSS_RTOL * abs(inference_after))


def loss_tolerance(value: float) -> float:
    """The allowed difference between two frameworks' losses near `value`."""
    return LOSS_RTOL * max(1.0, abs(value))
