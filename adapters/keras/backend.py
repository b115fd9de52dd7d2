"""The one place that imports Keras, with its backend fixed before the import.

Keras picks its backend once, at import. In the comparison's own process it runs on
torch; a worker subprocess (adapters.keras.worker) names another backend in
XFRAME_KERAS_BACKEND before anything imports this module.
"""

from __future__ import annotations

import os
import sys

from comparator.errors import FrameworkUnavailable

BACKEND = "torch"  # the in-process adapter's backend
# Set only by adapters.keras.worker, in a subprocess of its own.
WORKER_BACKEND_VARIABLE = "XFRAME_KERAS_BACKEND"


def import_keras(backend: str = BACKEND, device: str = "cpu"):
    """Import Keras with the given backend, or explain why that is impossible now."""
    loaded = sys.modules.get("keras")
    if loaded is not None:
        current = loaded.backend.backend()
        if current != backend:
            raise FrameworkUnavailable(
                f"Keras was already imported with the {current!r} backend in this process; "
                f"this adapter needs {backend!r}: set KERAS_BACKEND={backend} before importing "
                "Keras, or run the comparison in a fresh process")
        return loaded
    os.environ["KERAS_BACKEND"] = backend
    if backend == "torch":
        os.environ["KERAS_TORCH_DEVICE"] = device
    try:
        import keras
    except ImportError as exc:
        raise FrameworkUnavailable(f"Keras is not installed ({exc})") from None
    return keras


keras = import_keras(os.environ.get(WORKER_BACKEND_VARIABLE) or BACKEND,
                     device=os.environ.get("XFRAME_DEVICE", "cpu"))
