"""Full float32 arithmetic on a GPU, in every framework the comparison runs.

On NVIDIA GPUs since Ampere, frameworks may compute float32 convolutions and matrix
products in TF32 (a 10-bit mantissa). Measured on an H200 (docs/gpu.md): torch's cuDNN
convolutions do by default (`torch.backends.cudnn.conv.fp32_precision` is `tf32`), moving
DenseNet121's logits by 2.0e-3, 20 times what the port checks allow; JAX's default
precision moved a stack of four convolutions by 6.8e-4 of its largest output (1e-6 at
`highest`). TensorFlow documents the same default; it was not measured here. Such a
difference belongs to neither framework's semantics. The CPU computes float32 in full, so
on a GPU every framework is asked to do the same.
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
