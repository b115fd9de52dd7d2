"""`torch._dynamo`, PyTorch's compiler front end, imported only once something compiles.

torch itself imports `torch._dynamo` lazily, but torchvision (`ops/roi_align.py`) and Keras
on torch (`backend/torch/random.py` and `image.py`) import it at their own import, and
`torch.optim`'s `step` calls `torch._dynamo.graph_break()`. They only mark code for the
compiler: `disable(fn)` makes the compiler skip `fn`, which runs unchanged when nothing
compiles, and `graph_break()` does nothing. Importing it after torch took 0.99 to 1.29 s
and 151 MiB (torch 2.14.1, three runs, 2026-11-27), more than torchvision and Keras
themselves; the warm default command took 16.22 s instead of 17.33 s without it (medians of
five paired runs).

`defer_dynamo_import()` puts a stand-in module at `torch._dynamo` (and `torch._dynamo.utils`)
that gives those markers their eager meaning and imports the real package the first time
anything else of it is used: an attribute, a submodule (`torch._dynamo.config`),
`torch.compile` (which reads `torch._dynamo.optimize`), or a marked function called after
that. From then on the stand-in forwards everything to the real package, and the markers it
handed out before become the real ones. XFRAME_IMPORT_DYNAMO=1 turns it off.

The real package imports triton, and importing triton after TensorFlow crashes the
interpreter with a segmentation fault (`import tensorflow; import torch._dynamo`, and so
`import tensorflow; import torchvision`: TensorFlow 2.21, torch 2.14.1, torchvision 0.29.1,
2026-11-27), while the other order works. So the stand-in goes in where TensorFlow cannot
come first: in a process that keeps TensorFlow out (the command lines' own processes and the
Keras workers on torch: comparator.config.frameworks.keep_worker_backends_out), and in one
that has imported TensorFlow already, where the stand-in is what lets torchvision import at
all. Where TensorFlow may still come later (the Python API, where Keras's set_random_seed
imports it), `torch._dynamo` is imported as torchvision and Keras import it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.util
import os
import sys
import threading
import types

PACKAGE = "torch._dynamo"
UTILS = "torch._dynamo.utils"
OPT_OUT_VARIABLE = "XFRAME_IMPORT_DYNAMO"
_lock = threading.RLock()


class _StandIn(types.ModuleType):
    """`torch._dynamo` (or its `utils`) until the real package is imported."""

    def __getattr__(self, name: str):
        if name.startswith("__"):  # inspect, pickle and the import system probe these
            raise AttributeError(name)
        real = real_dynamo()
        return getattr(real if self.__name__ == PACKAGE else sys.modules[UTILS], name)


def is_deferred() -> bool:
    """Whether `torch._dynamo` is still the stand-in (the real package not imported)."""
    return isinstance(sys.modules.get(PACKAGE), _StandIn)


def real_dynamo() -> types.ModuleType:
    """The real `torch._dynamo`, imported now if it is not yet."""
    with _lock:
        module = sys.modules.get(PACKAGE)
        if module is not None and not isinstance(module, _StandIn):
            return module  # imported already, or being imported by this thread
        for name in (UTILS, PACKAGE):
            if isinstance(sys.modules.get(name), _StandIn):
                del sys.modules[name]
        torch = sys.modules["torch"]
        if isinstance(torch.__dict__.get("_dynamo"), _StandIn):
            del torch._dynamo
        real = importlib.import_module(PACKAGE)
        importlib.import_module(UTILS)
        return real


def disable(fn=None, *args, **kwargs):
    """`torch._dynamo.disable`: the function itself while nothing has imported the
    compiler, the real marker's wrapper from then on."""
    if fn is None:
        return lambda function: disable(function, *args, **kwargs)

    @functools.wraps(fn)
    def marked(*call_args, **call_kwargs):
        if is_deferred():
            return fn(*call_args, **call_kwargs)
        if marked.real is None:
            marked.real = real_dynamo().disable(fn, *args, **kwargs)
        return marked.real(*call_args, **call_kwargs)

    marked.real = None
    return marked


def graph_break(msg: str = "") -> None:
    """`torch._dynamo.graph_break`: nothing, as in eager mode, until the compiler is in."""
    if not is_deferred():
        real_dynamo().graph_break(msg)


def is_compile_supported(device_type):
    """`torch._dynamo.utils.is_compile_supported` (torchvision's roi_align asks it)."""
    return real_dynamo().utils.is_compile_supported(device_type)


class _RealOnSubmoduleImport(importlib.abc.MetaPathFinder):
    """`import torch._dynamo.<name>` imports the real package, then that submodule."""

    def find_spec(self, name, path, target=None):
        if not name.startswith(PACKAGE + ".") or not is_deferred():
            return None
        real_dynamo()
        module = importlib.import_module(name)  # the module lock is re-entrant
        return importlib.util.spec_from_loader(name, _Imported(module))


class _Imported(importlib.abc.Loader):
    """Hands the import system a module that is imported already."""

    def __init__(self, module: types.ModuleType):
        self.module, self.spec = module, module.__spec__

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        module.__spec__ = self.spec  # the import system set the finder's spec over it


def defer_dynamo_import() -> None:
    """Install the stand-in, unless `torch._dynamo` is imported already (torchvision or Keras
    on torch came first), TensorFlow may still be imported after it, torch is not installed,
    or XFRAME_IMPORT_DYNAMO=1."""
    tensorflow_settled = "tensorflow" in sys.modules  # kept out (None) or imported already
    if (os.environ.get(OPT_OUT_VARIABLE) == "1" or PACKAGE in sys.modules
            or not tensorflow_settled):
        return
    try:
        import torch
    except ImportError:
        return
    with _lock:
        if PACKAGE in sys.modules:
            return
        package, utils = _StandIn(PACKAGE), _StandIn(UTILS)
        package.__path__ = []  # a package, so that submodule imports reach the finder
        package.disable, package.graph_break, package.utils = disable, graph_break, utils
        utils.is_compile_supported = is_compile_supported
        sys.meta_path.insert(0, _RealOnSubmoduleImport())
        sys.modules[PACKAGE], sys.modules[UTILS] = package, utils
        torch._dynamo = package
