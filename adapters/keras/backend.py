"""The one place that imports Keras, with its backend fixed before the import.

Keras picks its backend once, at import. In the comparison's own process it runs on
torch; a worker subprocess (adapters.keras.worker) names another backend in
XFRAME_KERAS_BACKEND before anything imports this module.
"""

from __future__ import annotations

import contextlib
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
        from adapters.pytorch.dynamo import defer_dynamo_import

        defer_dynamo_import()  # Keras on torch imports torch._dynamo at its own import
    try:
        with _matplotlib_hidden():
            import keras
    except ImportError:
        _forget_partial_import("keras")  # a Keras that needs matplotlib: import it as it is
        try:
            import keras
        except ImportError as exc:
            raise FrameworkUnavailable(f"Keras is not installed ({exc})") from None
    return keras


@contextlib.contextmanager
def _matplotlib_hidden():
    """Within the block, importing matplotlib fails as if it were not installed.

    Keras 3 imports matplotlib.pyplot at its own import when it can, for its image-gallery
    plots (keras.src.visualization), which nothing here calls: that took 0.45 s and 24 MiB of
    every run (`import keras` on torch, 3.69 s against 3.24 s, median of 7 paired runs,
    2026-11-27). Afterwards matplotlib imports as usual (the HTML report's plots)."""
    if "matplotlib" in sys.modules:
        yield
        return
    sys.modules["matplotlib"] = None  # the import system's mark of a module that is absent
    try:
        yield
    finally:
        if "matplotlib" in sys.modules and sys.modules["matplotlib"] is None:
            del sys.modules["matplotlib"]


def _forget_partial_import(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


keras = import_keras(os.environ.get(WORKER_BACKEND_VARIABLE) or BACKEND,
                     device=os.environ.get("XFRAME_DEVICE", "cpu"))
