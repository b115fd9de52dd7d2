"""Where and how each framework computes: a Keras worker's backend placed on the
comparison's device before it is imported, the device as the report names it, and full
float32 on a GPU.

Why full float32: on NVIDIA GPUs since Ampere, frameworks may compute float32
convolutions and matrix products in TF32 (a 10-bit mantissa). Measured on an H200
(docs/gpu.md): torch's cuDNN convolutions do by default
(`torch.backends.cudnn.conv.fp32_precision` is `tf32`), moving DenseNet121's logits by
2.0e-3, 20 times what the port checks allow; JAX's default precision moved a stack of four
convolutions by 6.8e-4 of its largest output (1e-6 at `highest`). TensorFlow documents the
same default; it was not measured here. Such a difference belongs to neither framework's
semantics. The CPU computes float32 in full, so on a GPU every framework is asked to do the
same.
"""

from __future__ import annotations

import os

from comparator.errors import UsageError

FULL_FLOAT32 = "full float32 (TF32 off for convolutions and matrix products)"


def require_torch_device(device: str) -> None:
    """Refuse `--device cuda` where torch sees no GPU, before anything is built there. A
    user's Keras model is built on torch's device when its code is called, and on a machine
    without a GPU that failed inside the user's own function with a CUDA driver error."""
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise UsageError("--device cuda was given but PyTorch sees no CUDA device")


def require_keras_model_on(model, device: str) -> None:
    """Refuse a Keras model (torch backend) whose weights live on another kind of device
    than the comparison's. Keras on torch creates weights on its default device, a GPU
    whenever torch sees one; a pair compared on the CPU then ran its Keras side on the GPU,
    in TF32 (measured on an H200: examples/own_pair.py's port check gave 9.4e-6 there, 3e-8
    on the CPU), while the report said `cpu`."""
    value = model.weights[0].value if model.weights else None
    found = getattr(value, "device", None)
    if found is None or found.type == device.split(":")[0]:
        return
    raise UsageError(f"the Keras model's weights are on {found} but the comparison runs on "
                     f"{device}: Keras on torch creates them on its default device; set "
                     f"KERAS_TORCH_DEVICE={device} before importing Keras, or compare on "
                     f"{found.type}")


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


def place_backend(backend: str, device: str) -> None:
    """Put this worker's backend on the comparison's device; it must happen before the
    backend is imported. JAX computes on a GPU whenever its CUDA plugin is installed, and
    then takes most of the GPU's memory up front, beside PyTorch's in the parent."""
    os.environ["XFRAME_DEVICE"] = device  # Keras on torch reads it (adapters/keras/backend)
    on_gpu = device.startswith("cuda")
    index = device.partition(":")[2]
    if backend == "jax":
        os.environ["JAX_PLATFORMS"] = "cuda" if on_gpu else "cpu"
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    elif backend == "tensorflow":
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if backend in ("jax", "tensorflow") and (index or not on_gpu):
        os.environ["CUDA_VISIBLE_DEVICES"] = index if on_gpu else "-1"


def device_missing(backend: str, device: str) -> str | None:
    """Why this backend cannot compute on the GPU asked for, or None."""
    if not device.startswith("cuda") or backend == "torch":
        return None  # Keras on torch: the adapter checks KERAS_TORCH_DEVICE itself
    if backend == "jax":
        import jax

        try:
            jax.devices("cuda")
            return None
        except Exception as exc:  # noqa: BLE001 - JAX raises several types for this
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            return (f"JAX sees no CUDA device ({detail}); --device cuda needs a CUDA build "
                    "of jaxlib (pip install 'jax[cuda13]')")
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return None
    return (f"TensorFlow {tf.__version__} sees no GPU; --device cuda needs the CUDA build "
            "of TensorFlow (pip install 'tensorflow[and-cuda]'), not tensorflow-cpu")


def tensorflow_device(placement: str) -> str:
    """`/job:localhost/replica:0/task:0/device:GPU:0` as `gpu:0`."""
    name = placement.rpartition("/")[2].lower().replace("device:", "")
    return "cpu" if not name or name.startswith("cpu") else name


def torch_device(device) -> str:
    """A torch device as the report names it: `cpu`, or `cuda:0 (NVIDIA H200)`."""
    if device.type != "cuda":
        return str(device)
    import torch

    return f"{device} ({torch.cuda.get_device_name(device)})"
