"""The comparison's side of a Keras worker (adapters.keras.worker): Keras on TensorFlow or
JAX, each in a subprocess with its own KERAS_BACKEND.

`WorkerAdapter` stands where an in-process adapter stands in the runner and the
referee: it is built and loaded like one; `launch` starts the worker, which runs
every recipe of its framework in one call (TensorFlow's import is paid once), in a
thread of this process that waits on it, so that workers and this process's own
runs overlap; `wait` collects it. Whatever goes wrong with the worker (a crash, a
hang past the timeout, output that is not what the protocol says) becomes `failure`,
a reason in one line; a missing optional extra becomes a `skipped` failure. Nothing here raises
for a worker's fault, and no framework is imported in this process. A user pair's model that
the worker refuses to rebuild (adapters/own_pair/workers.py) is the user's input, not the
worker's fault: `wait` raises UsageError for it.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np

from adapters.base import Adapter, Measurement
from comparator.analysis.states import split_state
from comparator.errors import Diverged, UsageError
from comparator.config.flavours import parse as parse_flavour
from comparator.config.frameworks import missing_extra_reason, missing_modules
from comparator.io import cache_folder
from comparator.schema import Losses, Modes, RunResult, State

DEFAULT_TIMEOUT = 600.0
KERAS2_VARIABLE = "XFRAME_KERAS2"  # 1: the worker runs Keras 2 (tf_keras) as `keras`
WORKER_MODULE = "adapters.keras.worker"
PARENT_VARIABLE = "XFRAME_PARENT_PID"  # the worker ends itself when this process is gone
STDERR_TAIL_BYTES = 64 * 1024
EXIT_MISSING = 3  # adapters.keras.worker: the backend is not installed
EXIT_UNAVAILABLE = 4  # adapters.keras.worker: this Keras cannot import or run with this backend
EXIT_REFUSED = 5  # adapters.keras.worker: the user's model cannot be rebuilt there
COMPILATION_CACHE = "jax-compilation"  # the cache folder of JAX's XLA compilations
# The repository root (this file is adapters/keras/client.py): the worker imports from it.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class WorkerFailure:
    # "skipped" (an optional extra or an overlay is missing), "unavailable" (this Keras
    # version cannot run with the installed backend; the reason is its own message),
    # "refused" (a user's model the worker cannot rebuild as the comparison holds it) or
    # "failed"
    status: str
    reason: str


class WorkerError(Exception):
    """The worker did not produce a usable answer; the message says why, in one line."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.failure = WorkerFailure(status, reason)


def _last_line(text: str) -> str:
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= 300 else line[:297] + "..."


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class _Tail:
    """The last `limit` bytes of a stream: a worker may write without bound to stderr
    (one wrote 400 MB), and only its last line is reported."""

    def __init__(self, limit: int):
        self.limit, self.data = limit, b""

    def read_from(self, stream) -> None:
        for chunk in iter(lambda: stream.read1(1 << 16), b""):
            self.data = (self.data + chunk)[-self.limit:]
        stream.close()


_LIVE: dict = {}  # worker processes running now -> their request folders; ended at exit


def _end_live_workers() -> None:
    """At interpreter exit (a finished run, Ctrl-C, SIGTERM turned into an exception): end
    every worker still running and remove its request folder. A worker removes its folder
    itself on SIGTERM, but not one that is still importing when the signal comes, and the
    thread that waits on it may not run again once the interpreter ends."""
    live = dict(_LIVE)
    for process in live:
        process.terminate()
    for process, directory in live.items():
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


atexit.register(_end_live_workers)


def run_bounded(command: list[str], env: dict, timeout: float):
    """Run the worker; (returncode, stderr's tail as text). The worker is killed if this
    process is interrupted (Ctrl-C, SIGTERM) or the timeout passes, and it ends itself if
    this process dies (adapters.keras.worker watches its parent)."""
    process = subprocess.Popen(command, cwd=ROOT, env={**env, PARENT_VARIABLE: str(os.getpid())},
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _LIVE[process] = command[-1]  # the request folder is the worker's argument
    tail = _Tail(STDERR_TAIL_BYTES)
    reader = threading.Thread(target=tail.read_from, args=(process.stderr,), daemon=True)
    reader.start()
    try:
        process.wait(timeout=timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        _LIVE.pop(process, None)
        reader.join(timeout=10)
    return Finished(process.returncode, tail.data.decode("utf-8", "replace"))


@dataclass(frozen=True)
class Finished:
    returncode: int
    stderr: str


def call_worker(request: dict, arrays: dict[str, dict], timeout: float,
                extra_env: dict | None = None) -> tuple[dict, str]:
    """Run one worker task; (response, directory holding its files). The caller removes
    the directory. Raises WorkerError for anything but a well-formed answer."""
    directory = tempfile.mkdtemp(prefix="xframe-worker-")
    try:
        with open(os.path.join(directory, "request.json"), "w") as handle:
            json.dump(request, handle)
        for name, content in arrays.items():
            np.savez(os.path.join(directory, name), **content)
        env = {**os.environ, "KERAS_BACKEND": request["backend"],
               "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.pathsep.join(
                   p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
               **(extra_env or {})}
        env.pop("XFRAME_KERAS_BACKEND", None)
        started = time.perf_counter()
        try:
            done = run_bounded([sys.executable, "-m", WORKER_MODULE, directory], env, timeout)
        except subprocess.TimeoutExpired:  # run_bounded has killed the worker
            raise WorkerError("failed", f"the {request['framework']} worker did not finish "
                                        f"within the worker timeout of {timeout:g} s; it was "
                                        "stopped") from None
        seconds = time.perf_counter() - started
        response = _read_response(directory, request, done)
        response.setdefault("wall_seconds", round(seconds, 3))
        return response, directory
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _read_response(directory: str, request: dict, done) -> dict:
    who = f"the {request['framework']} worker"
    path = os.path.join(directory, "response.json")
    response = None
    if os.path.exists(path):
        try:
            with open(path) as handle:
                response = json.load(handle)
        except (OSError, ValueError) as exc:
            raise WorkerError("failed", f"{who} wrote a response that is not JSON ({exc})"
                              ) from None
    if done.returncode == EXIT_MISSING and isinstance(response, dict) \
            and response.get("status") == "missing":
        raise WorkerError("skipped", str(response.get("reason")))
    if done.returncode == EXIT_UNAVAILABLE and isinstance(response, dict) \
            and response.get("status") == "unavailable":
        raise WorkerError("unavailable", str(response.get("reason")))
    if done.returncode == EXIT_REFUSED and isinstance(response, dict) \
            and response.get("status") == "refused":
        raise WorkerError("refused", str(response.get("reason")))
    if done.returncode != 0:
        detail = _last_line(done.stderr)
        raise WorkerError("failed", f"{who} {_describe_exit(done.returncode)}"
                                    + (f": {detail}" if detail else ""))
    if not isinstance(response, dict) or response.get("status") != "ok":
        raise WorkerError("failed", f"{who} exited without a valid response")
    return response


def _modes(data: dict) -> Modes:
    """The worker's Modes; outside_base, where given, with its four counts as integers (a
    malformed one raises KeyError, TypeError or ValueError, as other malformed keys do)."""
    if not isinstance(data, dict):
        raise TypeError(f"modes is {type(data).__name__}, not an object")
    outside = data.get("outside_base")
    if outside is not None:
        outside = {key: int(outside[key]) for key in
                   ("bn_layers", "bn_batch_stats", "dropout_layers", "dropout_active")}
    return Modes(**{**data, "outside_base": outside})


def _run_result(data: dict) -> RunResult:
    try:
        losses = data["losses"]
        validation = losses.get("fit_validation")
        without_dropout = losses.get("train_step_without_dropout")
        return RunResult(
            id=data["id"], framework=data["framework"], recipe=data["recipe"],
            description=data["description"],
            losses=Losses(float(losses["inference_before"]),
                          tuple(float(v) for v in losses["train_step"]),
                          float(losses["inference_after"]),
                          None if validation is None else tuple(float(v) for v in validation),
                          None if without_dropout is None else float(without_dropout)),
            state=State(**data["state"]), modes=_modes(data["modes"]),
            seconds=float(data["seconds"]), warnings=tuple(data.get("warnings", ())),
            backend=data.get("backend"), framework_version=data.get("framework_version"))
    except (KeyError, TypeError, ValueError) as exc:
        raise WorkerError("failed", f"a run in the worker's response is malformed ({exc!r})"
                          ) from None


class WorkerAdapter(Adapter):
    """Keras on TensorFlow or JAX through a worker: every recipe runs in one worker call
    (`start`), and the pipeline reads the measurements back."""

    runs_in_worker = True
    capabilities = frozenset({"float64_recipe_loss"})  # in a worker call of its own

    def __init__(self, name: str, device: str = "cpu", timeout: float = DEFAULT_TIMEOUT,
                 cache_dir: str | None = None, eager: bool = False):
        super().__init__(device)
        self.flavour = parse_flavour(name)
        self.name, self.backend = name, self.flavour.backend
        self.overlay = None  # adapters.keras.overlays.Overlay, once built or found
        self.timeout = timeout
        self.eager = eager  # Keras's steps op by op (the compiled step's reference)
        self.compilation_cache = cache_folder(cache_dir, COMPILATION_CACHE)
        self._request: dict = {}
        self._weights: dict = {}
        self._batch = None
        self._pending: tuple | None = None  # the worker call `launch` began: request, run ids
        self._thread: threading.Thread | None = None  # the thread running it, if any
        self._logits = None
        self._measurements: dict[str, Measurement] = {}
        self._diverged: dict[str, dict] = {}  # run id -> {"id", "step", "reason"}
        self._environment: dict = {}
        self.seconds: float | None = None
        self.compilations: dict | None = None  # JAX workers: the XLA programs of the run
        self.structure: str | None = None  # by the worker: onnx.runtime.structure_fingerprint
        self._conventions: dict | None = None  # by the worker: its layers' conventions()
        # A user pair's model: its states come back named by position, and this turns one
        # into the names of the in-process Keras side's states (adopt_user_model).
        self._canonical_states = None
        reason = missing_extra_reason(self.backend)
        if not reason and self.flavour.keras2 and missing_modules(["tf_keras"]):
            reason = ("tf_keras is not installed (install the optional extra: "
                      "pip install -e '.[tensorflow]')")
        if reason:
            self.failure = WorkerFailure("skipped", reason)

    def _find_overlay(self) -> None:
        """A Keras version's overlay, built now if needed (adapters/keras/overlays.py)."""
        if not self.flavour.overlay or self.overlay is not None or self.failure is not None:
            return
        from adapters.keras.overlays import OverlayUnavailable, ensure

        try:
            self.overlay = ensure(self.flavour)
        except OverlayUnavailable as exc:
            self.failure = WorkerFailure(exc.status, exc.reason)

    def _worker_env(self) -> dict:
        """The overlay ahead of everything else on the worker's path; the Keras 2 switch."""
        env = {}
        if self.overlay is not None:
            env["XFRAME_KERAS_OVERLAY"] = "1"
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (self.overlay.path, ROOT, os.environ.get("PYTHONPATH")) if p)
        if self.flavour.keras2:
            env[KERAS2_VARIABLE] = "1"
        return env

    # the runner's side ----------------------------------------------------------------

    def build(self, spec, scenario, seed, image_size) -> None:
        self._request.update(model=spec.name, scenario=scenario, seed=seed,
                             image_size=image_size)

    def load_weights(self, arrays) -> None:
        self._weights = dict(arrays)

    def adopt_user_model(self, user_model: dict, weights: dict, scenario: str, seed: int,
                         canonical_states) -> None:
        """A user pair's Keras model instead of a zoo model: what the worker rebuilds it from
        (adapters.own_pair.workers.keras_side_request), the weights it then holds, named by
        position, and the function that names the worker's states as the comparison does."""
        self._request.update(model=None, user_model=user_model, scenario=scenario, seed=seed,
                             image_size=None)
        self._weights = dict(weights)
        self._canonical_states = canonical_states

    def start(self, recipes, batch, steps, lr, optimizer, validate) -> None:
        """Run every recipe of this framework in one worker call (unless it cannot run)."""
        self.launch(recipes, batch, steps, lr, optimizer, validate, background=False)
        self.wait()

    def launch(self, recipes, batch, steps, lr, optimizer, validate,
               background: bool = True) -> None:
        """Start the worker call that runs every recipe of this framework; with
        `background` it runs beside this process's own work until `wait`."""
        self._batch = batch
        self._find_overlay()
        if self.failure is not None:
            return
        request = {**self._base_request("run"), "recipes": [r.name for r in recipes],
                   "steps": steps, "lr": lr, "optimizer": optimizer, "validate": validate}
        self._pending = (request, [r.id for r in recipes])
        if background:
            self._thread = threading.Thread(target=self._run, args=self._pending,
                                            name=f"{self.name} worker", daemon=True)
            self._thread.start()

    def wait(self) -> None:
        """The end of the worker call `launch` began (made here if it was not started in
        the background); then `failure` and the measurements are known. The thread is
        joined in short slices so that Ctrl-C and SIGTERM reach this one; the worker is
        then ended at exit (_end_live_workers)."""
        pending, thread = self._pending, self._thread
        self._pending = self._thread = None
        if pending is None:  # no call begun since the last wait: nothing new to collect
            return
        if thread is not None:
            while thread.is_alive():
                thread.join(0.2)
        elif pending is not None:
            self._run(*pending)
        if self.failure is not None and self.failure.status == "refused":
            raise UsageError(f"{self.name}: {self.failure.reason}")
        if self._canonical_states is not None and self.failure is None:
            self._name_states_as_compared()

    def _run(self, request: dict, expected: list[str]) -> None:
        try:
            response, directory = call_worker(request, self._arrays(), self.timeout,
                                              self._worker_env())
        except WorkerError as exc:
            self.failure = exc.failure
            return
        except Exception as exc:  # noqa: BLE001 - in a thread: becomes the runs' reason
            self.failure = WorkerFailure("failed", _last_line(
                f"the {self.name} worker could not be run: {type(exc).__name__}: {exc}"))
            return
        try:
            self._take(response, directory, expected)
        except WorkerError as exc:
            self.failure = exc.failure
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _base_request(self, task: str) -> dict:
        return {"task": task, "framework": self.name, "backend": self.backend,
                "device": self.device, "loss_kind": self.loss_kind, "eager": self.eager,
                "compilation_cache": self.compilation_cache, **self._request}

    def _arrays(self) -> dict:
        return {"weights.npz": self._weights, "batch.npz": self._batch_arrays()}

    def _batch_arrays(self) -> dict:
        """x, or x0, x1, ... for a user model that takes several inputs; y."""
        inputs = self._batch.inputs
        x = {f"x{i}": v for i, v in enumerate(inputs)} if self._batch.several \
            else {"x": inputs[0]}
        return {**x, "y": self._batch.y}

    def _take(self, response: dict, directory: str, expected: list[str]) -> None:
        try:
            with np.load(os.path.join(directory, "arrays.npz"), allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise WorkerError("failed", f"the worker's arrays cannot be read ({exc})") from None
        runs = [_run_result(r) for r in response.get("runs", [])]
        self._diverged = {d["id"]: d for d in response.get("diverged", [])}
        if sorted([r.id for r in runs] + list(self._diverged)) != sorted(expected) or \
                "logits" not in arrays:
            raise WorkerError("failed", "the worker's response does not hold the runs asked "
                                        "for")
        for run in runs:
            states = {}
            for which in ("initial", "final", "dropout_free"):
                prefix = f"{which}/{run.id}/"
                states[which] = {k[len(prefix):]: v for k, v in arrays.items()
                                 if k.startswith(prefix)}
            ablations = dict(response.get("ablations", {}).get(run.id, {}))
            if states["dropout_free"]:
                ablations["dropout_off_statistics"] = states["dropout_free"]
            self._measurements[run.id] = Measurement(run, states["final"], states["initial"],
                                                     ablations)
        self._logits = arrays["logits"]
        self._environment = {k: v if isinstance(v, dict) else str(v)
                             for k, v in response.get("environment", {}).items()
                             if k not in ("keras_backend", "keras_train_step")}
        # How this worker's Keras ran its step: by framework, beside the in-process one's.
        step = response.get("environment", {}).get("keras_train_step")
        if step:
            self._environment["keras_train_steps"] = {self.name: str(step)}
        if self.flavour.overlay or self.flavour.keras2:
            # Not the environment's Keras: the report's `keras` stays the in-process one's.
            version = self._environment.pop("keras", "unknown")
            self._environment["keras_versions"] = {self.name: version}
            if self.overlay is not None:
                self._environment["keras_overlays"] = {self.name: self.overlay.path}
                if self.overlay.note:
                    self._environment["keras_overlay_notes"] = {self.name: self.overlay.note}
        self.seconds = response.get("wall_seconds")
        self.compilations = response.get("compilations")
        self.structure = response.get("structure")
        self._conventions = response.get("conventions")

    def _name_states_as_compared(self) -> None:
        """A user model's states, named by position, under the comparison's names; here,
        after the worker, not in the thread that waited on it, while this process's own
        Keras model may have been training. The Dropout-free statistics come without the
        weights they were taken with: they are named with the final state's, then taken
        apart again."""
        rename = self._canonical_states
        try:
            for run_id, found in list(self._measurements.items()):
                ablations = dict(found.ablations)
                free = ablations.get("dropout_off_statistics")
                if free:
                    ablations["dropout_off_statistics"] = split_state(
                        rename({**found.final_state, **free}))[1]
                self._measurements[run_id] = Measurement(
                    found.result, rename(found.final_state), rename(found.initial_state),
                    ablations)
        except (KeyError, ValueError) as exc:
            self.failure = WorkerFailure("failed", f"the {self.name} worker's states do not "
                                                   f"name the user model's weights ({exc!r})")

    def logits(self, batch) -> np.ndarray:
        if self._logits is None:
            raise WorkerError("failed", self.failure.reason if self.failure
                              else f"the {self.name} worker has not run")
        return self._logits

    def run_recipe(self, recipe, *_args, **_kwargs) -> Measurement:  # ran in start()
        if recipe.id in self._diverged:
            record = self._diverged[recipe.id]
            raise Diverged(record["reason"], record["step"])
        return self._measurements[recipe.id]

    def environment(self) -> dict[str, str]:
        return dict(self._environment)

    def conventions(self) -> dict | None:
        """The worker's layers' conventions (Keras3Adapter.conventions), read in the worker;
        None where it did not run."""
        return self._conventions

    # the referee's side ---------------------------------------------------------------

    def reset(self) -> None:
        """Nothing to reset: the worker's model lives and dies in its process."""

    def recipe_forward_loss(self, recipe, batch, exact: bool = False) -> float:
        """The recipe's train-step forward pass in float64 from the initial state, its loss
        (FrameworkAdapter.recipe_forward_loss), in a worker call of its own."""
        if not exact:
            raise UsageError(f"{self.name} reruns a train-step forward pass in float64 only")
        if self.failure is not None:
            raise WorkerError(self.failure.status, self.failure.reason)
        self._batch = batch
        response, directory = call_worker(
            {**self._base_request("forward64"), "recipes": [recipe.name]}, self._arrays(),
            self.timeout, self._worker_env())
        try:
            return float(response["losses"][recipe.name])
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def export_onnx(self, path: str) -> dict:
        """Keras's ONNX export on this backend (tf2onnx on TensorFlow; for Keras 2, which has
        no ONNX export of its own, tf2onnx's from_keras), in a worker call."""
        missing = missing_modules(["tf2onnx"]) if self.backend == "tensorflow" else []
        if missing:
            raise WorkerError("skipped", "tf2onnx is not installed (install the optional "
                                         "extra: pip install -e '.[tensorflow]')")
        if self.failure is not None:
            raise WorkerError(self.failure.status, self.failure.reason)
        if self._canonical_states is not None:
            raise WorkerError("skipped", "a user pair's referee exports the models of the "
                                         "comparison's own process only")
        response, directory = call_worker(self._base_request("export"), self._arrays(),
                                          self.timeout, self._worker_env())
        try:
            shutil.copyfile(os.path.join(directory, "model.onnx"), path)
        except OSError as exc:
            raise WorkerError("failed", f"the worker wrote no ONNX file ({exc})") from None
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return dict(response.get("notes", {}))
