"""One adapter per framework. Importing this package imports no framework."""

from __future__ import annotations

import importlib
import os

from comparator.errors import FrameworkUnavailable

_ADAPTERS = {
    "pytorch": ("adapters.pytorch", "PyTorchAdapter"),
    "keras": ("adapters.keras3", "Keras3Adapter"),
}


def adapter_names() -> list[str]:
    return list(_ADAPTERS)


def load_adapter(name: str, **options):
    """Import the adapter's module only now, so a run imports only what it uses.

    Keras on TensorFlow or JAX runs in a worker subprocess; its adapter here is a
    client (adapters.worker_client) that imports no framework. `worker_timeout`
    (seconds), `cache_dir` (where JAX keeps its compilations) and `eager` (Keras's
    steps op by op, the compiled steps' reference) apply to those only."""
    from comparator.frameworks import WORKERS, canonical

    name = canonical(name)
    timeout = options.pop("worker_timeout", None)
    cache_dir = options.pop("cache_dir", None)  # workers keep compilations there
    eager = options.pop("eager", False)  # workers run Keras's steps op by op
    if name in WORKERS:
        from adapters.worker_client import DEFAULT_TIMEOUT, WorkerAdapter

        return WorkerAdapter(name, device=options.get("device", "cpu"),
                             timeout=timeout or DEFAULT_TIMEOUT,
                             cache_dir=cache_dir,
                             eager=eager)
    module_name, class_name = _ADAPTERS[name]
    # Keras fixes its device when it is imported, so the device travels ahead of the import.
    os.environ.setdefault("XFRAME_DEVICE", options.get("device", "cpu"))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FrameworkUnavailable(
            f"the {name} adapter needs a framework that is not installed ({exc.name or exc}); "
            "install the project with: pip install -e '.[dev]'"
        ) from None
    return getattr(module, class_name)(**options)
