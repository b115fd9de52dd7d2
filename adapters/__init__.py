"""The adapter registry: the one entry from the core to framework code.

PyTorch is the reference side (`adapters.pytorch`), a Keras flavour the subject side
(`adapters.keras`), ONNX Runtime the referee (`adapters.onnx`), and `load_port_validator`
compares a port layer by layer. Importing this package imports no framework; each
function below imports what it needs when called."""

from __future__ import annotations

import importlib
import os

from comparator.errors import FrameworkUnavailable

_ADAPTERS = {
    "pytorch": ("adapters.pytorch.adapter", "PyTorchAdapter"),
    "keras": ("adapters.keras.adapter", "Keras3Adapter"),
}


def load_adapter(name: str, **options):
    """Import the adapter's module only now, so a run imports only what it uses.

    Keras on TensorFlow or JAX runs in a worker subprocess; its adapter here is a
    client (adapters.keras.client) that imports no framework. `worker_timeout`
    (seconds), `cache_dir` (where JAX keeps its compilations) and `eager` (Keras's
    steps op by op, the compiled steps' reference) apply to those only."""
    from comparator.config.frameworks import canonical, runs_in_worker

    name = canonical(name)
    timeout = options.pop("worker_timeout", None)
    cache_dir = options.pop("cache_dir", None)  # workers keep compilations there
    eager = options.pop("eager", False)  # workers run Keras's steps op by op
    if runs_in_worker(name):
        from adapters.keras.client import DEFAULT_TIMEOUT, WorkerAdapter

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


_CHECKPOINT_LOADERS = {"pytorch": "adapters.pytorch.pretrained",
                       "keras": "adapters.keras.pretrained"}


def checkpoint_loader(framework: str):
    """The module that loads a framework's pretrained checkpoints (`load_imagenet`,
    `load_file`, and for Keras `canonical_arrays`)."""
    return importlib.import_module(_CHECKPOINT_LOADERS[framework])


def onnx_runtime():
    """The ONNX referee's framework side: exports, their cache, ONNX Runtime sessions."""
    return importlib.import_module("adapters.onnx.runtime")


def load_port_validator():
    """The layer-by-layer port validator (`validate_port`, `port_weights`,
    `validate_zoo_model`). A registry function is never named like a submodule: importing
    the submodule rebinds the package attribute and shadows the function."""
    return importlib.import_module("adapters.port_validation.validator")


def open_user_pair(pair, config):
    """Load a user's pair (comparator.config.pair.UserPair) into adapters: the models as
    given, Keras on torch in this process (adapters.own_pair.setup)."""
    os.environ.setdefault("XFRAME_DEVICE", config.device)
    try:
        from adapters.devices import require_torch_device

        require_torch_device(config.device)  # before the user's code builds anything there
        from adapters.own_pair.setup import open_pair
    except ImportError as exc:
        raise FrameworkUnavailable(
            f"a user pair needs PyTorch and Keras ({exc.name or exc}); install the project "
            "with: pip install -e '.[dev]'") from None
    return open_pair(pair, config)


def locate_port_divergence(adapters, batch, leave_out=(), output_chosen=None):
    """Where a user's pair first differs, after its port check failed
    (adapters.own_pair.divergence)."""
    from adapters.own_pair.divergence import locate

    return locate(adapters, batch, leave_out, output_chosen)
