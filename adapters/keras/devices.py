"""Where a Keras worker's backend computes: placed on the comparison's device before the
backend is imported, and read back from a variable for the report (docs/gpu.md)."""

from __future__ import annotations

import os


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
