"""What the benchmark holds compare.py against (tools/bench.py's docstring says what counts):
the irreducible compute of its default matrix as plain framework code, and a bare process
running one plain `fit` step. Each runs in a fresh child process, as compare.py does."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

from comparator.errors import UsageError
from tools.bench_child import ROOT, figures_of, run_child

PYTORCH_RECIPES = ("train", "requires_grad", "eval", "eval_requires_grad")
KERAS_RECIPES = ("train", "trainable_false", "training_false", "bn_trainable")


def plain_batch(spec, image_size: int, batch_size: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, image_size, image_size, 3)).astype(np.float32)
    y = rng.integers(0, spec.num_classes, size=batch_size).astype(np.int64)
    return x, y


class _Clock:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    def add(self, name: str, fn):
        started = time.perf_counter()
        value = fn()
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        return value


def _pytorch_passes(net, x, y, clock: _Clock) -> None:
    import torch
    import torch.nn.functional as F

    def forward_loss(mode_train: bool, step: bool):
        net.train(mode_train)
        params = [p for p in net.parameters() if p.requires_grad]
        if step:
            optimizer = torch.optim.SGD(params, lr=0.01)
            optimizer.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad():
                loss = F.cross_entropy(net(x), y)
        return float(loss.detach())

    clock.add("pytorch:inference_before", lambda: forward_loss(False, False))
    plan = {"train": (True, True), "requires_grad": (True, False),
            "eval": (False, True), "eval_requires_grad": (False, False)}
    for recipe in PYTORCH_RECIPES:
        train_mode, trains = plan[recipe]
        clock.add(f"pytorch:{recipe}:train_pass", lambda m=train_mode, t=trains: forward_loss(m, t))
        clock.add(f"pytorch:{recipe}:inference_after", lambda: forward_loss(False, False))
    net.eval()


def _keras_passes(keras, model, x, y, clock: _Clock) -> None:
    from keras import layers

    def compile_(m):
        m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)

    def set_trainable(recipe):
        model.trainable = True
        for layer in model.layers:
            layer.trainable = True
        if recipe == "trainable_false":
            model.trainable = False
        elif recipe == "bn_trainable":
            for layer in model.layers:
                layer.trainable = isinstance(layer, layers.BatchNormalization)

    n = len(x)
    set_trainable("train")
    compile_(model)
    clock.add("keras:inference_before",
              lambda: model.evaluate(x, y, batch_size=n, verbose=0))
    inputs = keras.Input(model.input_shape[1:])
    wrapper = keras.Model(inputs, model(inputs, training=False))
    for recipe in KERAS_RECIPES:
        set_trainable(recipe)
        fitted = wrapper if recipe == "training_false" else model
        compile_(fitted)
        clock.add(f"keras:{recipe}:train_pass",
                  lambda f=fitted: f.fit(x, y, batch_size=n, epochs=1, shuffle=False,
                                         verbose=0))
        clock.add(f"keras:{recipe}:inference_after",
                  lambda f=fitted: f.evaluate(x, y, batch_size=n, verbose=0))
    set_trainable("train")


def _keras_graph(kmodel, x_nhwc, workdir: str, clock: _Clock) -> None:
    """The referee's third graph: Keras's own `model.export` (in a cold run), and its run."""
    import numpy as np

    from adapters.onnx.runtime import export_keras

    path = os.path.join(workdir, "keras.onnx")
    clock.add("onnx:keras:export", lambda: export_keras(kmodel, path))
    feed = np.ascontiguousarray(x_nhwc, dtype=np.float32)
    clock.add("onnx:keras:run", lambda: _session_run(path, feed))


def _session_run(path: str, feed):
    """One ONNX Runtime session creation and run on the CPU, as the referee does them."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: feed})


def _onnx_passes(net, x_nchw, workdir: str, clock: _Clock) -> None:
    import numpy as np
    import torch

    feed = np.ascontiguousarray(x_nchw.numpy(), dtype=np.float32)
    for mode, training in (("eval", torch.onnx.TrainingMode.EVAL),
                           ("train_forward", torch.onnx.TrainingMode.TRAINING)):
        path = os.path.join(workdir, f"{mode}.onnx")
        net.train(mode != "eval")
        clock.add(f"onnx:{mode}:export", lambda p=path, t=training, m=mode: torch.onnx.export(
            net, (x_nchw,), p, dynamo=False, training=t,
            do_constant_folding=(m == "eval"), input_names=["x"], output_names=["y"]))
        clock.add(f"onnx:{mode}:run", lambda p=path: _session_run(p, feed))
    net.eval()


def time_irreducible(spec, image_size: int, batch_size: int) -> dict:
    """Seconds of the plain-framework passes (see the module docstring), once, in this
    process: run it in a fresh process (irreducible_in_child), as compare.py runs."""
    os.environ["KERAS_BACKEND"] = "torch"
    os.environ.setdefault("KERAS_TORCH_DEVICE", "cpu")
    import keras  # noqa: F401  (torch backend, set above)
    import torch

    if keras.backend.backend() != "torch":
        raise UsageError("Keras was imported with another backend before the benchmark")
    from adapters.keras.models import build_base
    from adapters.pytorch.models import build_network

    x, y = plain_batch(spec, image_size, batch_size)
    torch.manual_seed(0)
    net = build_network(spec)
    x_nchw = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    y_t = torch.from_numpy(y)
    keras.utils.set_random_seed(0)
    kmodel = build_base(spec, image_size, include_top=True)

    warnings.filterwarnings("ignore", category=UserWarning)  # exporter/Keras chatter
    workdir = tempfile.mkdtemp(prefix="xframe-bench-onnx-")
    try:
        clock = _Clock()
        _pytorch_passes(net, x_nchw, y_t, clock)
        _keras_passes(keras, kmodel, x, y, clock)
        _onnx_passes(net, x_nchw, workdir, clock)
        _keras_graph(kmodel, x, workdir, clock)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return clock.seconds


_CHILD = """
import os, sys
sys.path.insert(0, {root!r})
os.environ["XFRAME_IMPORT_DYNAMO"] = "1"  # plain code: torch._dynamo comes with torchvision
from comparator.config.frameworks import keep_worker_backends_out
keep_worker_backends_out()  # Keras on torch alone, as in compare.py
from tools.bench_child import print_own_figures
from tools.bench_plain import time_irreducible
from comparator.zoo import get_spec
print_own_figures(passes=time_irreducible(get_spec({model!r}), {image_size}, {batch_size}))
"""


def irreducible_in_child(model: str, image_size: int, batch_size: int) -> dict:
    """One repetition of the irreducible compute in a fresh Python process: its passes'
    seconds and the process's peak RSS."""
    code = _CHILD.format(root=ROOT, model=model, image_size=image_size, batch_size=batch_size)
    return figures_of(run_child([sys.executable, "-c", code]), "the irreducible-compute process")


def _is_export(name: str) -> bool:
    return name.endswith(":export")


def median_repetition(repetitions: list[dict[str, float]]) -> dict:
    """The repetition with the median total. A warm run makes no exports (they come from
    the cache), so its irreducible compute is the same passes without the exports."""
    totals = [sum(r.values()) for r in repetitions]
    chosen = repetitions[totals.index(statistics.median_low(totals))]
    groups = {}
    for name, seconds in chosen.items():
        framework = name.split(":")[0]
        groups[framework] = groups.get(framework, 0.0) + seconds
    warm = [sum(v for k, v in r.items() if not _is_export(k)) for r in repetitions]
    return {"seconds": round(sum(chosen.values()), 3),
            "seconds_by_run": {"cold": round(sum(chosen.values()), 3),
                               "warm": round(sum(v for k, v in chosen.items()
                                                 if not _is_export(k)), 3)},
            "by_framework": {k: round(v, 3) for k, v in groups.items()},
            "passes": {k: round(v, 4) for k, v in chosen.items()},
            "runs": len(repetitions), "all_runs_seconds": [round(t, 3) for t in totals],
            "all_runs_seconds_by_run": {"cold": [round(t, 3) for t in totals],
                                        "warm": [round(t, 3) for t in warm]}}


_BARE_FIT = """
import os, sys
sys.path.insert(0, {root!r})
os.environ["KERAS_BACKEND"] = "torch"
os.environ["XFRAME_IMPORT_DYNAMO"] = "1"  # plain code: torch._dynamo comes with torchvision
from comparator.config.frameworks import keep_worker_backends_out
keep_worker_backends_out()
from comparator.zoo import get_spec
from tools.bench_plain import plain_batch
spec = get_spec({model!r})
x, y = plain_batch(spec, {image_size}, {batch_size})
if {framework!r} == "keras":
    import keras
    from adapters.keras.models import build_base
    model = build_base(spec, {image_size}, include_top=True)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
else:
    import torch
    import torch.nn.functional as F
    from adapters.pytorch.models import build_network
    net = build_network(spec).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    loss = F.cross_entropy(net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())),
                           torch.from_numpy(y))
    loss.backward()
    optimizer.step()
from tools.bench_child import print_own_figures
print_own_figures()
"""


def bare_fit_peaks(model: str, image_size: int, batch_size: int) -> dict:
    """Peak RSS (MiB) of a fresh process that builds the model and runs one train step in
    plain framework code: Keras's own `fit` (torch backend), PyTorch's forward, backward
    and SGD step. The larger of the two is what the tool is held against."""
    peaks, at_exit = {}, {}
    for framework in ("keras", "pytorch"):
        code = _BARE_FIT.format(root=ROOT, model=model, image_size=image_size,
                                batch_size=batch_size, framework=framework)
        run = run_child([sys.executable, "-c", code])
        peaks[framework] = figures_of(run, f"the bare {framework} fit process")["peak_rss_mib"]
        at_exit[framework] = run["peak_rss_mib"]
    larger = max(peaks, key=peaks.get)
    return {"peak_rss_mib": peaks, "larger": larger, "larger_peak_rss_mib": peaks[larger],
            # Not held against: the same processes' peak read from wait4, teardown included.
            "peak_rss_mib_with_teardown": at_exit}
