"""Keras on one backend, in a subprocess of its own: `python -m adapters.keras.worker DIR`.

A Keras process picks its backend once, at import, so Keras on TensorFlow or JAX
cannot run beside the comparison's Keras-on-torch. The parent
(adapters.keras.client) writes into DIR:

* request.json: {"task": "run" | "export", "framework", "backend", "model",
  "scenario", "seed", "image_size", "device", optionally "eager" (run Keras's steps
  op by op instead of compiled, as `fit` runs them by default) and "compilation_cache"
  (a folder for JAX's compilations), and for "run" "recipes" (names), "steps", "lr",
  "optimizer", "validate"}
* weights.npz (canonical arrays) and batch.npz (x, y; x0, x1, ... for several inputs);

For a user's own pair the request holds "user_model" instead of a zoo "model"
(adapters/own_pair/workers.py: the SPEC, --output, --freeze, the layer names and how Keras
takes the batch): the worker rebuilds that model, weights.npz holds the comparison's own
Keras model's weights named by position, and the states it writes back are named so too.
A user model that cannot be rebuilt as the comparison holds it (another count or shapes of
weights, a builder that fails here) is refused: {"status": "refused", "reason"}, exit 5.

and starts this module with KERAS_BACKEND set. The worker runs the same adapter
class as the in-process Keras adapter (adapters.keras.adapter.Keras3Adapter) on its
backend and writes response.json ({"status": "ok" | "missing", ...}) and, for a
run, arrays.npz (the inference outputs and each run's states before and after).
For "export" it writes model.onnx: Keras's own ONNX export, which on the TensorFlow
backend goes through tf2onnx; Keras 2 (tf-keras) has no ONNX export of its own, and
tf2onnx converts its model (adapters/keras/keras2.py, export_onnx).

For "probe" it measures this Keras's defaults (adapters/keras/probe.py).

A Keras version (keras-torch@3.6.0, nightly) runs here from an overlay the parent puts
first on PYTHONPATH (adapters/keras/overlays.py; XFRAME_KERAS_OVERLAY=1); Keras 2
(tf-keras) is imported as `keras` when XFRAME_KERAS2=1 (adapters/keras/keras2.py).

Exit status: 0 done, 3 the backend (an optional extra) is not installed or sees no GPU
for `--device cuda`, 4 this overlay's Keras cannot import or run with the installed
backend (response.json has its own error), 5 the user's model is refused (above), anything
else a failure the parent reports with the worker's last stderr line.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import numpy as np

from adapters.devices import device_missing, place_backend

FAULT_VARIABLE = "XFRAME_WORKER_FAULT"  # tests only: crash | hang | garbage
EXIT_MISSING = 3
EXIT_UNAVAILABLE = 4  # this Keras (an overlay's version) cannot be imported here
EXIT_REFUSED = 5  # the user's model cannot be rebuilt here as the comparison holds it
KERAS2_VARIABLE = "XFRAME_KERAS2"  # set by the client for tf-keras
MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
OVERLAY_VARIABLE = "XFRAME_KERAS_OVERLAY"  # set by the client: the overlay's Keras runs here


def _write_json(directory: str, name: str, data: dict) -> None:
    tmp = os.path.join(directory, name + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, os.path.join(directory, name))


def _simulate_fault(directory: str) -> None:
    """Let tests exercise the parent's handling of a bad worker, cheaply and for real."""
    fault = os.environ.get(FAULT_VARIABLE)
    if fault == "crash":
        print("keras_worker: simulated crash", file=sys.stderr, flush=True)
        os.abort()
    if fault == "hang":
        time.sleep(3600)
    if fault == "flood":  # a worker that writes without bound to stderr, then fails
        block = "x" * (1 << 20) + "\n"
        for _ in range(int(os.environ.get("XFRAME_WORKER_FLOOD_MB", "300"))):
            sys.stderr.write(block)
        print("keras_worker: the last words", file=sys.stderr, flush=True)
        sys.exit(1)
    if fault == "garbage":
        with open(os.path.join(directory, "response.json"), "w") as handle:
            handle.write("this is not JSON {")
        sys.exit(0)


def _import_backend(backend: str, task: str) -> str | None:
    """Import the backend framework first: a missing extra is a reason, not a crash."""
    modules = [MODULES[backend]] + (["tf2onnx"] if task == "export" else [])
    if os.environ.get(KERAS2_VARIABLE) == "1":
        modules.append("tf_keras")
    for module in modules:
        try:
            __import__(module)
        except ImportError as exc:
            extra = "tensorflow" if module in ("tf2onnx", "tf_keras") else backend
            return (f"{module} cannot be imported ({exc}); install the optional extra: "
                    f"pip install -e '.[{extra}]'")
    return None


def _torchvision_before_tensorflow(request: dict) -> None:
    """Import torchvision first where a user's Keras SPEC file imports it and this worker
    runs TensorFlow. Measured 2026-11-30 (tensorflow-cpu 2.21, torchvision 0.29.1): `import
    tensorflow; import torchvision` ends in a segmentation fault, and the other order runs;
    a port of torchvision's ConvNeXt or EfficientNet often keeps both sides in one file."""
    if request["backend"] != "tensorflow" or "user_model" not in request:
        return
    from adapters.own_pair.workers import spec_imports

    if spec_imports(request["user_model"]["keras"], "torchvision"):
        try:
            import torchvision  # noqa: F401
        except ImportError:
            pass  # the user's own import will say so


def _adapter(framework: str, backend: str, device: str, eager: bool = False,
             user: bool = False):
    """The in-process adapter's class on this backend (with `user`, the user pair's)."""
    os.environ["KERAS_BACKEND"] = backend
    os.environ["XFRAME_KERAS_BACKEND"] = backend
    if os.environ.get(KERAS2_VARIABLE) == "1":
        from adapters.keras.keras2 import install_as_keras

        install_as_keras()
    from adapters.keras.adapter import Keras3Adapter

    base = Keras3Adapter
    if user:
        from adapters.keras.user import KerasUserAdapter as base

    class WorkerKerasAdapter(base):
        name = framework

    WorkerKerasAdapter.backend = backend
    return WorkerKerasAdapter(device=device, eager=eager)


def _load(directory: str, name: str) -> dict:
    with np.load(os.path.join(directory, name), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _use_compilation_cache(request: dict) -> None:
    """JAX keeps its XLA compilations in the cache folder, so a second run of the same
    model and settings compiles nothing (measured on DenseNet121, 96 px, batch 4: 71 s of
    CPU cold, 16 s warm). Every compilation is kept, also the small ones of eager ops."""
    folder = request.get("compilation_cache")
    if request["backend"] != "jax" or not folder:
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


class _Compilations:
    """XLA programs this process asked for, and how many of them JAX read from its
    compilation cache instead of compiling, counted from JAX's own monitoring events."""

    def __init__(self):
        import jax.monitoring

        self.programs, self.seconds, self.from_cache = 0, 0.0, 0
        jax.monitoring.register_event_listener(self._event)
        jax.monitoring.register_event_duration_secs_listener(self._duration)

    def _event(self, event: str, **_) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            self.from_cache += 1

    def _duration(self, event: str, seconds: float, **_) -> None:
        if event == "/jax/core/compile/backend_compile_duration":  # compiled or read
            self.programs += 1
            self.seconds += seconds

    def to_dict(self) -> dict:
        return {"compiled": self.programs - self.from_cache, "from_cache": self.from_cache,
                "seconds": round(self.seconds, 3)}


def _keep_other_backends_out(request: dict) -> None:
    """Keep out what this worker's backend never uses, so that Keras treats it as absent:
    TensorFlow on JAX or torch (Keras's set_random_seed imports it whenever it is installed:
    1.7 s and 419 MiB, measured), and JAX on TensorFlow (Keras 3.15.1 imports it at
    `import keras` only to patch its Orbax callback: 0.31 s and 112 MiB, measured
    2026-11-27)."""
    from comparator.config.frameworks import keep_worker_backends_out

    if os.environ.get(KERAS2_VARIABLE) == "1" or request["backend"] == "tensorflow":
        keep_worker_backends_out(("jax",))
    else:
        keep_worker_backends_out(("tensorflow",))


@contextlib.contextmanager
def _initial_values_on_host(backend: str, ported: bool):
    """On JAX each call of a Keras initializer is a compiled program per shape (a cold
    DenseNet121 worker compiled 35 for its random weights and 67 for the optimizers' zero
    slots: 6 s, measured 2026-11-27). Inside this block zeros are made by numpy and placed
    on the device, bitwise Keras's own; with `ported`, every other initializer gives zeros
    too, for weights the port sets right after (Keras3Adapter._load_impl refuses a layer it
    would leave out). A variable made without an Initializer (a seed generator's state)
    keeps Keras's own value. Another Keras version (an overlay) builds as it would."""
    if backend != "jax" or os.environ.get(OVERLAY_VARIABLE) == "1":
        yield
        return
    import jax
    from keras import initializers
    from keras.src.backend.common.variables import Variable

    keras_own = Variable._initialize_with_initializer
    replaced = initializers.Initializer if ported else initializers.Zeros

    def on_host(variable, initializer):
        if not isinstance(initializer, replaced):
            return keras_own(variable, initializer)
        # device_put: jnp.asarray of a numpy array would compile a program per shape too.
        return variable._initialize(jax.device_put(np.zeros(variable._shape, variable._dtype)))

    Variable._initialize_with_initializer = on_host
    try:
        yield
    finally:
        Variable._initialize_with_initializer = keras_own


def _build(request: dict, directory: str):
    from comparator.inputs.batch import Batch
    from comparator.zoo import get_spec

    _use_compilation_cache(request)
    user = request.get("user_model")
    adapter = _adapter(request["framework"], request["backend"], request.get("device", "cpu"),
                       eager=bool(request.get("eager", False)), user=user is not None)
    adapter.loss_kind = request.get("loss_kind", "logits")
    weights = _load(directory, "weights.npz")
    if user is not None:
        return adapter, _build_user(adapter, request, weights, _load(directory, "batch.npz"))
    spec = get_spec(request["model"])
    with _initial_values_on_host(request["backend"], ported=True):
        adapter.build(spec, request["scenario"], request["seed"], request["image_size"])
    adapter.load_weights(weights)
    arrays = _load(directory, "batch.npz")
    return adapter, Batch(x=arrays["x"], y=arrays["y"])


def _build_user(adapter, request: dict, weights: dict, arrays: dict):
    """A user pair's Keras model rebuilt here holding the comparison's weights, and its
    batch (adapters/own_pair/workers.py)."""
    from adapters.own_pair.workers import batch_layouts, rebuild, require_same_model
    from comparator.inputs.batch import Batch

    user = request["user_model"]
    rebuild(adapter, user, request["scenario"], request["seed"])
    require_same_model(adapter, weights, user["naming"])
    adapter.load_weights(weights)
    several = tuple(arrays[f"x{i}"] for i in range(len(arrays) - 1)) if "x0" in arrays else None
    return Batch(x=several or arrays["x"], y=arrays["y"], **batch_layouts(user))


def _import_keras(request: dict) -> str | None:
    """Import this worker's Keras (an overlay's version may not run with the installed
    backend): None, or the framework's own message."""
    try:
        _adapter(request["framework"], request["backend"], request.get("device", "cpu"))
    except Exception as exc:  # noqa: BLE001 - any import failure is the version's verdict
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return None


def _run_recipes(adapter, batch, request: dict, arrays: dict):
    """Every requested recipe: the runs, their ablation losses and the runs that
    diverged; their states go into `arrays`, for the .npz."""
    from comparator.config.recipes import recipes_for
    from comparator.errors import Diverged

    recipes = {r.name: r for r in recipes_for(request["framework"])}
    runs, ablations, diverged = [], {}, []
    for name in request["recipes"]:
        try:
            measurement = adapter.run_recipe(recipes[name], batch, request["steps"],
                                             request["lr"], request["optimizer"],
                                             request["validate"])
        except Diverged as exc:  # one run's finding: the others go on
            diverged.append({"id": recipes[name].id, "step": exc.step, "reason": str(exc)})
            continue
        result = measurement.result
        runs.append(result.to_dict())
        losses = dict(measurement.ablations)
        # Arrays travel in the .npz, numbers in the JSON.
        statistics = losses.pop("dropout_off_statistics", {})
        ablations[result.id] = losses
        for which, state in (("initial", measurement.initial_state),
                             ("final", measurement.final_state),
                             ("dropout_free", statistics)):
            for key, value in state.items():
                arrays[f"{which}/{result.id}/{key}"] = value
    return runs, ablations, diverged


def run(request: dict, directory: str) -> dict:
    started = time.perf_counter()
    compilations = _Compilations() if request["backend"] == "jax" else None
    adapter, batch = _build(request, directory)
    arrays = {"logits": adapter.logits(batch)}
    with _initial_values_on_host(request["backend"], ported=False):  # the optimizers' slots
        runs, ablations, diverged = _run_recipes(adapter, batch, request, arrays)
    np.savez(os.path.join(directory, "arrays.npz"), **arrays)
    from adapters.onnx.runtime import structure_fingerprint

    response = {"status": "ok", "runs": runs, "ablations": ablations, "diverged": diverged,
                "structure": structure_fingerprint(adapter.exportable_model()),
                "conventions": adapter.conventions(),
                "environment": {**adapter.environment(), **adapter.backend_versions()},
                "seconds": round(time.perf_counter() - started, 3)}
    if compilations is not None:
        response["compilations"] = compilations.to_dict()
    return response


def export(request: dict, directory: str) -> dict:
    """Keras's ONNX export of the inference model in its initial state."""
    from adapters.onnx.runtime import structure_fingerprint

    adapter, batch = _build(request, directory)
    model = adapter.exportable_model()
    adapter.logits(batch)  # on TensorFlow, Keras exports only a model that has been called
    adapter.reset()
    path = os.path.join(directory, "model.onnx")
    started = time.perf_counter()
    if os.environ.get(KERAS2_VARIABLE) == "1":  # Keras 2 has no ONNX format of its own
        from adapters.keras.keras2 import export_onnx

        notes = export_onnx(model, path)
    else:
        model.export(path, format="onnx", verbose=False)
        import tf2onnx

        notes = {"exporter": f"keras model.export(format='onnx') on the {request['backend']}"
                             f" backend (tf2onnx {tf2onnx.__version__})", "mode": "eval"}
    return {"status": "ok", "export_seconds": round(time.perf_counter() - started, 3),
            "structure": structure_fingerprint(model), "notes": notes}


def forward64(request: dict, directory: str) -> dict:
    """The recipes' train-step forward passes in float64 from the initial state, their
    losses (FrameworkAdapter.recipe_forward_loss): what splits a gap between two train-step
    losses of one function (comparator/analysis/train_loss_causes.py)."""
    from comparator.config.recipes import recipes_for

    if request["backend"] == "jax":  # else JAX computes float64 arrays in float32
        import jax

        jax.config.update("jax_enable_x64", True)
    adapter, batch = _build(request, directory)
    recipes = {r.name: r for r in recipes_for(request["framework"])}
    return {"status": "ok", "losses": {
        name: adapter.recipe_forward_loss(recipes[name], batch, exact=True)
        for name in request["recipes"]}}


def probe(request: dict, directory: str) -> dict:
    """This Keras's defaults, measured (adapters/keras/probe.py)."""
    from adapters.keras.probe import probe as measure

    _adapter(request["framework"], request["backend"], request.get("device", "cpu"))
    from adapters.keras.backend import keras

    return measure(keras)


PARENT_VARIABLE = "XFRAME_PARENT_PID"  # set by adapters.keras.client
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _quit(directory: str) -> None:
    """End now, removing the request folder (the parent's, named xframe-worker-*) so that
    a parent that was killed outright leaves no temporary folder behind."""
    import shutil

    if os.path.basename(os.path.normpath(directory)).startswith("xframe-worker-"):
        shutil.rmtree(directory, ignore_errors=True)
    os._exit(143)


def _end_with_parent(directory: str) -> None:
    """Die with the parent: Linux sends SIGTERM when it goes (prctl PR_SET_PDEATHSIG);
    elsewhere a thread notices that the parent changed."""
    import signal
    import threading

    signal.signal(signal.SIGTERM, lambda *_: _quit(directory))
    parent = os.environ.get(PARENT_VARIABLE)
    if not parent:
        return
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        except (OSError, AttributeError):
            pass

    def watch():
        while os.getppid() == int(parent):
            time.sleep(1.0)
        _quit(directory)

    if os.getppid() != int(parent):  # the parent died before the watch began
        _quit(directory)
    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str]) -> int:
    directory = argv[0]
    _end_with_parent(directory)
    with open(os.path.join(directory, "request.json")) as handle:
        request = json.load(handle)
    _simulate_fault(directory)
    device = request.get("device", "cpu")
    place_backend(request["backend"], device)
    if request["task"] == "run":  # before any Keras import, an overlay's included
        _keep_other_backends_out(request)
    _torchvision_before_tensorflow(request)
    missing = (_import_backend(request["backend"], request["task"])
               or device_missing(request["backend"], device))
    if missing:
        _write_json(directory, "response.json", {"status": "missing", "reason": missing})
        return EXIT_MISSING
    unavailable = _import_keras(request) if os.environ.get(OVERLAY_VARIABLE) == "1" else None
    if unavailable:
        _write_json(directory, "response.json", {"status": "unavailable", "reason": (
            f"{request['framework']} cannot run with the installed {request['backend']}: "
            f"{unavailable}")})
        return EXIT_UNAVAILABLE
    task = {"run": run, "export": export, "forward64": forward64,
            "probe": probe}[request["task"]]
    from comparator.errors import UsageError

    try:
        response = task(request, directory)
    except Exception as exc:
        if isinstance(exc, UsageError) and "user_model" in request:
            # The user's model, not this Keras, is at fault: the comparison stops.
            _write_json(directory, "response.json", {"status": "refused", "reason": str(exc)})
            return EXIT_REFUSED
        if os.environ.get(OVERLAY_VARIABLE) != "1":
            raise
        # An older or newer Keras than the adapter was written against, on today's backend:
        # its own error is the verdict on that version, not a crash of the tool.
        import traceback

        traceback.print_exc()
        _write_json(directory, "response.json", {"status": "unavailable", "reason": (
            f"{request['framework']} fails with the installed {request['backend']}: "
            f"{type(exc).__name__}: {exc}".splitlines()[0][:400])})
        return EXIT_UNAVAILABLE
    _write_json(directory, "response.json", response)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
