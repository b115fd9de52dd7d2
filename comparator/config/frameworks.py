"""The frameworks a comparison can run, where each runs, and what it needs installed.

`keras` is Keras 3 on the PyTorch backend, in the comparison's own process (the
command line also accepts `keras-torch` for it). Keras picks its backend once, at
import, so Keras on TensorFlow and on JAX run in worker subprocesses of their own
(adapters.keras.worker), each with its KERAS_BACKEND. Only the standard library
is imported here.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys

from comparator.config.flavours import parse as parse_flavour
from comparator.errors import UsageError

DEFAULT = ("pytorch", "keras")
# Framework name -> Keras backend, for every Keras framework.
KERAS_BACKENDS = {"keras": "torch", "keras-tensorflow": "tensorflow", "keras-jax": "jax"}
# Frameworks that run in a worker subprocess, by the Keras backend they use.
WORKERS = {"keras-tensorflow": "tensorflow", "keras-jax": "jax"}
KNOWN = ("pytorch", *KERAS_BACKENDS)
ALIASES = {"keras-torch": "keras"}
# Backend -> (pyproject extra, the modules that extra provides and a run needs).
EXTRAS = {"tensorflow": ("tensorflow", ("tensorflow",)), "jax": ("jax", ("jax",))}
# The ONNX graphs of the TensorFlow workers (keras-tensorflow, tf-keras) go through tf2onnx.
ONNX_EXTRA_MODULES = ("tf2onnx",)


def canonical(name: str) -> str:
    """keras-torch is keras; a versioned name keeps its version (keras@3.6.0 is
    keras-torch@3.6.0)."""
    flavour = parse_flavour(name)
    return flavour.name if flavour is not None else ALIASES.get(name, name)


def resolve_frameworks(names) -> tuple[str, ...]:
    """Canonical names in the given order, duplicates dropped; pytorch is required."""
    found: list[str] = []
    for name in names:
        name = canonical(name)
        if name not in KNOWN and parse_flavour(name) is None:
            raise UsageError(f"unknown framework {name!r}; known: "
                             f"{', '.join(['pytorch', 'keras-torch', *WORKERS])}, "
                             "keras-<backend>@<version> (a Keras 3 release or nightly), "
                             "tf-keras")
        if name not in found:
            found.append(name)
    if "pytorch" not in found:
        raise UsageError("frameworks must include pytorch (it makes the weights every other "
                         "framework is compared on)")
    return tuple(found)


def backend_of(framework: str) -> str | None:
    flavour = parse_flavour(framework)
    return flavour.backend if flavour is not None else None


def runs_in_worker(framework: str) -> bool:
    """Every Keras but the in-process one (Keras 3 of this environment, on torch)."""
    flavour = parse_flavour(framework)
    return flavour is not None and framework != "keras"


def missing_modules(modules) -> list[str]:
    """The top-level modules that cannot be found, without importing any of them (and
    whether or not keep_worker_backends_out blocked them in this process)."""
    return [m for m in modules if importlib.machinery.PathFinder.find_spec(m) is None]


def keep_worker_backends_out(names=("tensorflow", "jax")) -> None:
    """Block the named imports (TensorFlow and JAX unless told otherwise) in this process.

    Keras 3.15 on the torch backend imports TensorFlow inside keras.utils.set_random_seed
    and JAX at `import keras` whenever they are installed (measured on 2026-11-26: 1.7 to
    1.8 s and 419 MiB for set_random_seed; `import jax` alone 0.3 s). The comparison's own
    process never runs either: their Keras runs happen in worker subprocesses. So the
    command line makes both unimportable here before Keras is imported, and a worker on JAX
    or torch does the same for TensorFlow; Keras then treats them as not installed.
    """
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = None


OPENMP_WAIT_VARIABLE = "OMP_WAIT_POLICY"


def threads_sleep_beside_workers(frameworks, environ=os.environ, imported=sys.modules) -> bool:
    """Let this process's OpenMP threads (PyTorch's) sleep as soon as their work ends
    instead of spinning, when Keras workers will run beside it; returns whether it did.

    PyTorch's libgomp keeps a finished thread spinning for the next parallel region. On
    an idle machine that is free and fast (the default two-framework command took 14.0
    to 14.7 s as it is, 16.5 to 17.2 s with OMP_WAIT_POLICY=PASSIVE: five runs each,
    2026-11-27), so nothing changes there. Beside workers the spinning takes the cores
    they need: the four-framework command (densenet121, 96 px, batch 4, --no-onnx) took
    49.8 and 54.6 s warm against 57.8 and 58.5 s, and 96.1 and 88.6 s cold against 100.5
    and 105.1 s, its processes using 10 to 15 CPU-seconds less (paired runs, 2-core
    machine). libgomp reads the variable once, when torch loads it, so this runs before
    the command line imports torch; a value the user set is kept, and a process that has
    imported torch already is left alone. The numbers a run reports do not depend on it."""
    if OPENMP_WAIT_VARIABLE in environ or "torch" in imported:
        return False
    if not any(runs_in_worker(canonical(name)) for name in frameworks):
        return False
    environ[OPENMP_WAIT_VARIABLE] = "PASSIVE"
    return True


def missing_extra_reason(backend: str) -> str | None:
    """Why Keras on this backend cannot run here, or None when its extra is installed
    (torch is the project's own)."""
    if backend not in EXTRAS:
        return None
    extra, modules = EXTRAS[backend]
    missing = missing_modules(modules)
    if not missing:
        return None
    return (f"{', '.join(missing)} is not installed (install the optional extra: "
            f"pip install -e '.[{extra}]')")


def unavailable_runs(recipes, adapters) -> list[dict]:
    """A record per recipe whose framework could not run: skipped (an extra is missing)
    or failed (the worker crashed, hung or answered nonsense), with the reason."""
    records = []
    for recipe in recipes:
        adapter = adapters.get(recipe.framework)
        failure = adapter.failure if adapter is not None else None
        if failure is None:
            continue
        records.append({"id": recipe.id, "framework": recipe.framework,
                        "backend": backend_of(recipe.framework), "recipe": recipe.name,
                        "status": failure.status, "reason": failure.reason})
    return records


def unavailable_lines(report) -> list[str]:
    """One line per framework whose runs could not be measured, with the reason."""
    by_cause: dict[tuple, list[dict]] = {}
    for record in report.unavailable_runs:
        key = (record["framework"], record["status"], record["reason"])
        by_cause.setdefault(key, []).append(record)
    return [f"{framework}: {len(records)} run{'s' if len(records) > 1 else ''} "
            f"{status} ({', '.join(r['recipe'] for r in records)}): {reason}"
            for (framework, status, reason), records in by_cause.items()]


def worker_problems(report) -> bool:
    """Tell stderr, one line per framework, about runs that were skipped or failed; True
    when any failed (the exit status then says so)."""
    import sys

    seen, failed = set(), False
    for record in report.unavailable_runs:
        if record["status"] == "diverged":  # a finding about one run: diverged_runs says it
            continue
        key = (record["framework"], record["status"], record["reason"])
        if key in seen:
            continue
        seen.add(key)
        failed |= record["status"] == "failed"
        print(f"compare.py: {record['framework']} runs {record['status']}: {record['reason']}",
              file=sys.stderr)
    return failed


def diverged_runs(report) -> list[str]:
    """Tell stderr about every run whose loss became NaN or infinite; their ids."""
    import sys

    found = [r for r in report.unavailable_runs if r["status"] == "diverged"]
    for record in found:
        print(f"compare.py: run {record['id']} diverged at step {record['step']}: "
              f"{record['reason']}", file=sys.stderr)
    return [r["id"] for r in found]


def diverged_steps(runs) -> list[tuple[str, str]]:
    """(run id, the finding's text) of every run whose steps diverged with every number
    finite (comparator.analysis.divergence); runs are RunResults or a sweep's JSON dicts."""
    found = []
    for run in runs:
        record = run.get("finite_divergence") if isinstance(run, dict) else \
            run.finite_divergence
        if record:
            found.append((run["id"] if isinstance(run, dict) else run.id, record["text"]))
    return found


def diverged_steps_named(report) -> list[str]:
    """Tell stderr about every run whose steps diverged with finite losses, a warning that
    leaves the exit status alone (the numbers are measured); their ids."""
    import sys

    found = diverged_steps(report.runs)
    for run_id, text in found:
        print(f"compare.py: warning: run {run_id}: {text}", file=sys.stderr)
    return [run_id for run_id, _ in found]
