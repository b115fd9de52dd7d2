"""What one inference pass adds to a process's peak memory, DenseNet121 at 224 px, batch 8:
`python tools/keras_memory_probe.py CASE`, one fresh process per case.

CASE: `pytorch` (torchvision, eval mode, under torch.no_grad), `keras-call` (the Keras model
called with training=False), `keras-predict` (Keras's predict), or `keras-sizes` (the sum of
every layer's output at batch 8, the memory a pass holds if no output is freed before the
call returns). The Keras cases run on KERAS_BACKEND, torch by default. Prints the resident
memory before the pass and how far the pass raised the process's peak (ru_maxrss).
"""

from __future__ import annotations

import os
import resource
import sys

import numpy as np

CASES = ("pytorch", "keras-call", "keras-predict", "keras-sizes")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _pytorch_pass(x):
    import torch
    import torchvision

    net = torchvision.models.densenet121(weights=None).eval()
    inputs = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    return lambda: _no_grad(lambda: net(inputs))


def _no_grad(call):
    import torch

    with torch.no_grad():
        return call()


def _keras_pass(case, x):
    import keras

    model = keras.applications.DenseNet121(weights=None, input_shape=x.shape[1:])
    if case == "keras-sizes":
        total = sum(int(np.prod(layer.output.shape[1:])) for layer in model.layers[1:])
        print(f"every layer's output at batch {len(x)}: {total * len(x) * 4 / 2**20:.0f} MiB")
        sys.exit(0)
    if case == "keras-predict":
        return lambda: model.predict(x, batch_size=len(x), verbose=0)
    if keras.backend.backend() == "torch":
        return lambda: _no_grad(lambda: model(x, training=False))
    return lambda: model(x, training=False)


def main(case: str) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    x = np.random.default_rng(0).standard_normal((8, 224, 224, 3)).astype(np.float32)
    run = _pytorch_pass(x) if case == "pytorch" else _keras_pass(case, x)
    start, before = _resident_mib(), _peak_mib()
    run()
    backend = "" if case == "pytorch" else f" ({os.environ['KERAS_BACKEND']})"
    print(f"{case}{backend}: resident {start:.0f} MiB before the pass; the pass raised the "
          f"peak by {_peak_mib() - max(start, before):.0f} MiB")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit(f"usage: python tools/keras_memory_probe.py {{{','.join(CASES)}}}")
    main(sys.argv[1])
