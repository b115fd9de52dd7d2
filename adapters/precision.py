"""Full float32 arithmetic on a GPU, in every framework the comparison runs.

On NVIDIA GPUs since Ampere, frameworks may compute float32 convolutions and matrix
products in TF32 (a 10-bit mantissa): torch's cuDNN convolutions do by default
(`torch.backends.cudnn.conv.fp32_precision` is `tf32`), and so do JAX's and TensorFlow's.
That costs about three decimal digits, more than the 1e-4 the port checks allow, and
would make two frameworks differ for a reason that is neither's semantics. The CPU
computes float32 in full, so on a GPU every framework is asked to do the same.
"""

from __future__ import annotations

FULL_FLOAT32 = "full float32 (TF32 off for convolutions and matrix products)"


def use_full_float32(backend: str) -> str:
    """Switch TF32 off in this process's `backend` (torch, jax or tensorflow); the words
    for the report's environment."""
    if backend == "torch":
        import torch

        if hasattr(torch.backends.cudnn, "conv"):  # torch 2.9 and later
            torch.backends.cudnn.conv.fp32_precision = "ieee"
            torch.backends.cuda.matmul.fp32_precision = "ieee"
        else:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
    elif backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(False)
    return FULL_FLOAT32
