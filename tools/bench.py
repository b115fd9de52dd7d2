"""Benchmark of `scripts/compare.py` against the irreducible compute of its default matrix.

Two measurements, put side by side:

1. **The tool as a user runs it**, in a child process:
   `python scripts/compare.py MODEL --image-size PX --batch-size N --json TMP --quiet
   --cache-dir DIR`, once with a fresh, empty cache directory (cold: the ONNX exports are made)
   and once more with the same directory (warm: the exports come from the cache). For each run:
   wall time of the child (start to exit, including interpreter start and imports), its peak
   resident memory (`ru_maxrss` from `os.wait4`: this command starts no other process), its
   exit code, and the report's own timings (`timings.phases`, `timings.total_seconds`,
   `timings.referee`).

2. **The irreducible compute** of that default matrix (classify scenario, the 4 PyTorch and
   the 4 Keras recipes, one SGD step, plus the ONNX referee), as plain framework code in a
   fresh Python process of its own (Keras on torch, TensorFlow and JAX kept out as
   compare.py keeps them), with no comparator around it. What counts, and nothing else:

   * PyTorch (the project's torchvision model of the same name, same image and batch size):
     one eval-mode forward pass with the loss (`inference_before`, shared by the 4 recipes);
     then per recipe the train pass — `train`: train() forward + backward + SGD step;
     `requires_grad`: train() forward only (nothing trains); `eval`: eval() forward + backward +
     SGD step; `eval_requires_grad`: eval() forward only (nothing trains) — and one eval-mode
     forward with the loss (`inference_after`). 1 + 4 + 4 = 9 passes, 2 of them with a
     backward pass and a step.
   * Keras 3 on the torch backend (`KERAS_BACKEND=torch`), the project's Keras model: one
     `model.evaluate` on the batch (`inference_before`, shared); per recipe one `model.fit` of
     one epoch on the batch (one step) — `train`: everything trainable; `trainable_false`:
     `model.trainable = False`; `training_false`: a functional wrapper calling the model with
     `training=False`; `bn_trainable`: only BatchNormalization layers trainable — and one
     `model.evaluate` (`inference_after`). The timed calls are `fit` and `evaluate`
     themselves, with Keras's own per-call overhead, which a user cannot avoid either;
     `compile` and the setting of `trainable` flags are not timed.
   * ONNX: one `torch.onnx.export(dynamo=False)` of the PyTorch model in eval mode
     (`TrainingMode.EVAL`) and one in training mode (`TrainingMode.TRAINING`), each followed
     by one ONNX Runtime session creation and run on the batch (CPU); and the referee's
     third graph, Keras's own `model.export` of the Keras model, with its session creation
     and run (counted since 2026-11-27, ninth session: the referee runs it, and plain code
     checking Keras against ONNX Runtime would too). The three exports count in the cold
     run only: a warm run reads them from the cache.

   Not counted: the referee's check of the frameworks' own outputs against ONNX Runtime,
   interpreter start, imports, model construction, weight
   initialisation, calibration and porting, the comparator's ablation and diagnosis passes,
   the check of the port, report rendering. Those are what the tool adds, and the ratio
   wall / irreducible shows how much that is. Every pass above is counted even where the
   tool skips it: the tool reuses an inference loss when a state is bitwise one it has
   evaluated (a recipe that changes nothing, recipes that end alike; the report counts them
   in `timings.reused_inference_passes`), which plain code run recipe by recipe does not.
   The ablation and diagnosis passes, which the explanations of the report stand on, are
   timed by the report itself (`timings.ablation_seconds` and the `diagnosis` phase):
   `explanation_seconds` holds their sum, and beside the target, not as one, the ratio
   the wall time less them would have (`ratio_wall_without_explanations_paired_median`).

3. **Four frameworks against two** (`time_frameworks`): compare.py on densenet121 at 96 px,
   batch 4, without the referee, with `pytorch,keras-torch` and with all four frameworks,
   cold and warm in one fresh cache folder. Beside the ratio, the ratio the four-framework
   run would have had with every core busy from start to end (its CPU seconds, workers
   included, over the cores): how much of the gap a better overlap of the workers could
   close, and how much only less work could.

4. **Peak memory against a bare fit step** (`bare_fit_peaks`): a fresh process that builds
   the same model and runs one train step in plain Keras (`fit`) and one in plain PyTorch,
   its peak read in the process right after the step (the interpreter's teardown would add
   about 120 MiB that the step does not use and compare.py, ending with os._exit, does not
   pay); the tool's peak is held against the larger. Beside it, not a target, the peak of the
   irreducible-compute process (2.): plain code that runs every `fit` and pass of the
   default matrix in one process, as the tool does. Both plain-code processes import
   `torch._dynamo` as torchvision and Keras do (XFRAME_IMPORT_DYNAMO=1), which compare.py
   defers until something compiles (adapters/pytorch/dynamo.py: 151 MiB).

5. **The command line's own cost** (`time_cli`): `--help` and two argument errors.

`targets` holds each of issue 19's targets with its measured value and whether it is met.
The plain code of 2. and 4. is in tools/bench_plain.py, the measured child process in
tools/bench_child.py.

A repetition is a cold run, a warm run and a run of the irreducible compute, in that
order, so that both sides of a ratio meet the same machine: the speed of the same command
here drifts by 20 % and more within minutes. With `runs > 1` the run with the median wall
time is reported per label, with every run's wall time, the repetition with the median
irreducible compute is reported, and `ratio_per_repetition` gives each repetition's own
ratios. The target is judged on the median of those pairs
(`ratio_wall_to_irreducible_paired_median`), not on the two medians' ratio, which can set
a fast repetition's tool against a slow one's plain code. Both sides pay the frameworks'
warm-up in every repetition.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

from comparator.errors import UsageError
from comparator.zoo import get_spec
from tools.bench_child import ROOT, run_child
from tools.bench_plain import bare_fit_peaks, irreducible_in_child, median_repetition

COMPARE = os.path.join(ROOT, "scripts", "compare.py")


def resolve(model: str, image_size: int | None, batch_size: int, runs: int):
    """Validate the arguments before anything heavy happens, with compare.py's own checks
    of the model and its sizes; UsageError on bad input."""
    from comparator.config import CompareConfig
    from comparator.config import resolve as resolve_comparison

    spec = get_spec(model)
    if spec.input_features:
        raise UsageError(f"{spec.name} is a vector model (regress scenario); the benchmark "
                         "covers image models in the default classify scenario")
    if runs <= 0:
        raise UsageError(f"runs must be positive, got {runs}")
    spec, config, _ = resolve_comparison(CompareConfig(model=model, image_size=image_size,
                                                       batch_size=batch_size))
    return spec, config.image_size


# ----- the tool, as a user runs it --------------------------------------------------------


def compare_command(model: str, image_size: int, batch_size: int) -> list[str]:
    return ["python", "scripts/compare.py", model, "--image-size", str(image_size),
            "--batch-size", str(batch_size), "--json", "<tmp>", "--quiet",
            "--cache-dir", "<fresh tmp dir>"]


def time_repetitions(model: str, image_size: int, batch_size: int, runs: int = 1):
    """`runs` repetitions of: compare.py cold (fresh cache dir), compare.py warm (same dir),
    the irreducible compute in a fresh process. Interleaving them exposes each to the same
    machine: on this shared machine the speed of the same command drifts by 20 % and more
    within minutes. Per label, the run with the median wall time, and every run's."""
    results = {"cold": [], "warm": []}
    irreducible = []
    for _ in range(runs):
        workdir = tempfile.mkdtemp(prefix="xframe-bench-")
        try:
            cache = os.path.join(workdir, "cache")
            os.mkdir(cache)
            for label in ("cold", "warm"):
                results[label].append(_time_one(model, image_size, batch_size, cache,
                                                 os.path.join(workdir, f"{label}.json")))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        irreducible.append(irreducible_in_child(model, image_size, batch_size))
    chosen = {}
    for label, done in results.items():
        walls = [run["wall_seconds"] for run in done]
        chosen[label] = {**done[walls.index(statistics.median_low(walls))],
                         "all_wall_seconds": walls,
                         # The same command's peak moved by 270 MiB between runs (3637 to
                         # 3907 MiB in 8 warm runs, 2026-11-28): the target reads the run
                         # above, this shows how far the others lay.
                         "all_peak_rss_mib": [run["peak_rss_mib"] for run in done]}
    plain = {**median_repetition([r["passes"] for r in irreducible]),
             "peak_rss_mib": max(r["peak_rss_mib"] for r in irreducible)}
    return chosen, plain, results


def _time_one(model: str, image_size: int, batch_size: int, cache: str,
              report_path: str) -> dict:
    argv = [sys.executable, COMPARE, model, "--image-size", str(image_size),
            "--batch-size", str(batch_size), "--json", report_path, "--quiet",
            "--cache-dir", cache]
    run = run_child(argv)
    if os.path.exists(report_path):
        with open(report_path) as handle:
            timings = json.load(handle).get("timings", {})
        phases = timings.get("phases", {})
        run.update(total_seconds=timings.get("total_seconds"), phases=phases,
                   referee=timings.get("referee", {}),
                   reused_inference_passes=timings.get("reused_inference_passes"),
                   explanation_seconds=round(timings.get("ablation_seconds", 0.0)
                                             + phases.get("diagnosis", 0.0), 3))
    else:  # the command failed before its report: its exit code says so
        run.update(total_seconds=None, phases={}, referee={}, explanation_seconds=None)
    return run


def _ratio_without_explanations(runs: list, plain: list) -> float | None:
    """The median over repetitions of (wall - explanation passes) / that repetition's plain
    seconds; None when a run has no report to read its explanation passes from."""
    if any(run.get("explanation_seconds") is None for run in runs):
        return None
    return round(statistics.median((run["wall_seconds"] - run["explanation_seconds"]) / total
                                   for run, total in zip(runs, plain)), 3)


def _cells(values: dict) -> str:
    return "".join(f"{'-':>10}" if values[label] is None else f"{values[label]:>10.2f}"
                   for label in ("cold", "warm"))


# ----- four frameworks against two ---------------------------------------------------------

TWO_FRAMEWORKS = "pytorch,keras-torch"
FOUR_FRAMEWORKS = "pytorch,keras-torch,keras-tensorflow,keras-jax"


def time_frameworks(model: str, image_size: int, batch_size: int) -> dict:
    """compare.py with four frameworks against two, without the referee, in one fresh cache
    folder: two, four (cold: JAX compiles), four again and two again (warm: the
    compilations and calibrated weights come from the cache). Per run: wall time, peak RSS
    (the largest process) and the peak of all its processes' summed RSS (the workers run
    beside the comparison), exit code and each worker's own seconds."""
    workdir = tempfile.mkdtemp(prefix="xframe-bench-frameworks-")
    cache = os.path.join(workdir, "cache")
    runs = {}
    try:
        os.mkdir(cache)
        for label, frameworks in (("two_cold", TWO_FRAMEWORKS), ("four_cold", FOUR_FRAMEWORKS),
                                  ("four_warm", FOUR_FRAMEWORKS), ("two_warm", TWO_FRAMEWORKS)):
            report_path = os.path.join(workdir, f"{label}.json")
            run = run_child([sys.executable, COMPARE, model, "--image-size", str(image_size),
                             "--batch-size", str(batch_size), "--no-onnx", "--frameworks",
                             frameworks, "--json", report_path, "--quiet", "--cache-dir", cache])
            if os.path.exists(report_path):
                with open(report_path) as handle:
                    timings = json.load(handle).get("timings", {})
                # Each worker's own wall time; its phase is only the wait after this
                # process's runs, as workers run beside them.
                run["workers"] = timings.get("worker_seconds", {})
                run["compilations"] = timings.get("worker_compilations", {})
                run["worker_waits"] = {k.split(":", 1)[1]: v
                                       for k, v in timings.get("phases", {}).items()
                                       if k.startswith("worker:")}
            runs[label] = run
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ratio = {temperature: round(runs[f"four_{temperature}"]["wall_seconds"]
                                / runs[f"two_{temperature}"]["wall_seconds"], 3)
             for temperature in ("cold", "warm")}
    cores = _cores()
    return {"command": (f"python scripts/compare.py {model} --image-size {image_size} "
                        f"--batch-size {batch_size} --no-onnx --frameworks FRAMEWORKS --json "
                        "<tmp> --quiet --cache-dir <fresh tmp dir>"),
            "two": TWO_FRAMEWORKS, "four": FOUR_FRAMEWORKS, "runs": runs,
            "ratio_four_to_two": ratio, "cores": cores,
            "ratio_four_to_two_if_every_core_were_busy": _core_bound(runs, cores)}


def _cores() -> int:
    """The cores this process may run on (its affinity), which its children inherit."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _core_bound(runs: dict, cores: int) -> dict:
    """The four/two ratio had the four-framework run kept every core busy from start to
    end: its CPU seconds over the cores, against the two-framework wall time. No ordering
    of the same work on this machine gets below it; only less work does."""
    return {temperature: round(runs[f"four_{temperature}"]["cpu_seconds"] / cores
                               / runs[f"two_{temperature}"]["wall_seconds"], 3)
            for temperature in ("cold", "warm")}


# ----- the command line's own cost -------------------------------------------------------

CLI_CASES = {"help": ["--help"], "unknown_model": ["no_such_model"],
             "bad_batch_size": ["tiny_cnn", "--batch-size", "0"]}


def time_cli(repeats: int = 3) -> dict:
    """Median wall time of compare.py answering --help and two argument errors (each must
    exit before any framework is imported), with each case's exit code."""
    found = {}
    for name, args in CLI_CASES.items():
        runs = [run_child([sys.executable, COMPARE, *args]) for _ in range(repeats)]
        found[name] = {"wall_seconds": round(statistics.median(r["wall_seconds"]
                                                               for r in runs), 3),
                       "exit_code": runs[0]["exit_code"]}
    return found


# ----- the whole benchmark ------------------------------------------------------------------

def cpu_model() -> str:
    """The processor as Linux names it, with its family and model numbers (a cloud machine
    may name only the vendor's line, as "AMD EPYC"); platform.processor() is empty there.
    Runs on different processors, even of one machine kind, are not side by side."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown"
    numbers = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields]
    return f"{name} ({', '.join(numbers)})" if numbers else name


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor(), "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version()}


TARGETS = {"four_to_two_frameworks": 3.0, "wall_to_irreducible": 1.3,
           "peak_to_bare_fit": 1.1, "cli_seconds": 0.5}


def benchmark(model: str, image_size: int | None, batch_size: int, runs: int = 1,
              frameworks_model: str = "densenet121", frameworks_image_size: int = 96,
              frameworks_batch_size: int = 4) -> dict:
    spec, image_size = resolve(model, image_size, batch_size, runs)
    resolve(frameworks_model, frameworks_image_size, frameworks_batch_size, 1)
    load_before = [round(v, 2) for v in os.getloadavg()]  # the machine may be shared
    cli = time_cli()
    tool, irreducible, every_run = time_repetitions(spec.name, image_size, batch_size, runs)
    bare = bare_fit_peaks(spec.name, image_size, batch_size)
    frameworks = time_frameworks(frameworks_model, frameworks_image_size,
                                 frameworks_batch_size)
    base = irreducible["seconds_by_run"]
    # Each repetition's own ratio: tool and plain passes measured minutes apart, not hours.
    paired = {label: [round(run["wall_seconds"] / total, 3) for run, total
                      in zip(every_run[label], irreducible["all_runs_seconds_by_run"][label])]
              for label in ("cold", "warm")}
    ratio = {label: round(tool[label]["wall_seconds"] / base[label], 3)
             for label in ("cold", "warm")}
    # The target is judged on the pairs: the two medians above can come from repetitions
    # minutes apart (2026-11-27, 17:37: 38.78 s / 30.49 s = 1.27 cold, while the three
    # repetitions' own ratios were 1.44, 1.13 and 1.46).
    paired_median = {label: round(statistics.median(paired[label]), 3)
                     for label in ("cold", "warm")}
    # Not a target: what the wall time would be without the explanation passes (the
    # ablations inside the runs and the diagnosis phase), which the plain code leaves out.
    without_explanations = {label: _ratio_without_explanations(
        every_run[label], irreducible["all_runs_seconds_by_run"][label])
        for label in ("cold", "warm")}
    peak = max(tool[label]["peak_rss_mib"] for label in ("cold", "warm"))
    peak_ratio = round(peak / bare["larger_peak_rss_mib"], 3)
    return {
        "command": " ".join(compare_command(spec.name, image_size, batch_size)),
        "model": spec.name, "image_size": image_size, "batch_size": batch_size,
        "wall_seconds": {"cold": tool["cold"]["wall_seconds"],
                         "warm": tool["warm"]["wall_seconds"]},
        "irreducible_seconds": irreducible["seconds"],
        "irreducible_seconds_by_run": base,
        "ratio_wall_to_irreducible": ratio,
        "peak_rss_mib": {label: tool[label]["peak_rss_mib"] for label in ("cold", "warm")},
        "exit_codes": {label: tool[label]["exit_code"] for label in ("cold", "warm")},
        "runs": {"cold": tool["cold"], "warm": tool["warm"]},
        "irreducible": irreducible,
        "ratio_per_repetition": paired,
        "ratio_wall_to_irreducible_paired_median": paired_median,
        "explanation_seconds": {label: tool[label].get("explanation_seconds")
                                for label in ("cold", "warm")},
        "ratio_wall_without_explanations_paired_median": without_explanations,
        "bare_fit": bare,
        "ratio_peak_to_bare_fit": peak_ratio,
        # Not a target: plain code running the default matrix (every fit of it) in one process.
        "ratio_peak_to_irreducible": round(peak / irreducible["peak_rss_mib"], 3),
        "frameworks": frameworks,
        "cli": cli,
        "help_wall_seconds": cli["help"]["wall_seconds"],
        "targets": _targets(frameworks["ratio_four_to_two"], paired_median, peak_ratio, cli),
        "machine": {**machine(), "load_average_before": load_before,
                    "load_average_after": [round(v, 2) for v in os.getloadavg()]},
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _targets(four_to_two: dict, wall_ratio: dict, peak_ratio: float, cli: dict) -> dict:
    """Each target of issue 19: the measured value, the limit, and whether it is met."""
    cli_worst = max(case["wall_seconds"] for case in cli.values())
    values = {"four_to_two_frameworks": max(four_to_two.values()),
              "wall_to_irreducible": max(wall_ratio.values()),
              "peak_to_bare_fit": peak_ratio, "cli_seconds": cli_worst}
    return {name: {"value": value, "limit": TARGETS[name], "met": value <= TARGETS[name]}
            for name, value in values.items()}


def _spread(values: list) -> str:
    return f"{min(values):.0f}-{max(values):.0f}"


def table(result: dict) -> str:
    wall, ratio, rss = (result["wall_seconds"], result["ratio_wall_to_irreducible"],
                        result["peak_rss_mib"])
    paired = result["ratio_wall_to_irreducible_paired_median"]
    explained = result["explanation_seconds"]
    without = result["ratio_wall_without_explanations_paired_median"]
    lines = [f"{result['command']}",
             f"{'':26}{'cold':>10}{'warm':>10}",
             f"{'wall time (s)':26}{wall['cold']:>10.2f}{wall['warm']:>10.2f}",
             f"{'ratio wall/irreducible':26}{ratio['cold']:>10.2f}{ratio['warm']:>10.2f}",
             f"{'ratio, median of pairs':26}{paired['cold']:>10.2f}{paired['warm']:>10.2f}"
             "  (the target's)",
             f"{'explanation passes (s)':26}{_cells(explained)}  (ablations and diagnosis)",
             f"{'ratio without them':26}{_cells(without)}  (median of pairs; not a target)",
             f"{'peak RSS (MiB)':26}{rss['cold']:>10.0f}{rss['warm']:>10.0f}",
             f"{'peak RSS, every run':26}" + "".join(
                 f"{_spread(result['runs'][label]['all_peak_rss_mib']):>10}"
                 for label in ("cold", "warm")) + "  (lowest-highest)",
             f"{'exit code':26}{result['exit_codes']['cold']:>10}"
             f"{result['exit_codes']['warm']:>10}",
             f"irreducible compute: {result['irreducible_seconds']:.2f} s "
             + ", ".join(f"{k} {v:.2f}" for k, v in result["irreducible"]["by_framework"].items()),
             "irreducible compute by run (s): cold "
             f"{result['irreducible_seconds_by_run']['cold']:.2f} (with the 3 ONNX exports), "
             f"warm {result['irreducible_seconds_by_run']['warm']:.2f}",
             f"peak RSS against a bare fit step: {result['ratio_peak_to_bare_fit']:.3f} (bare "
             + ", ".join(f"{k} {v:.0f} MiB" for k, v in result["bare_fit"]["peak_rss_mib"].items())
             + f"); against plain code running the same matrix: "
             f"{result['ratio_peak_to_irreducible']:.2f} "
             f"({result['irreducible']['peak_rss_mib']:.0f} MiB)",
             "compare.py, median of 3: " + ", ".join(
                 f"{k} {v['wall_seconds']:.2f} s (exit {v['exit_code']})"
                 for k, v in result["cli"].items())]
    frameworks = result["frameworks"]
    lines.append(f"frameworks ({frameworks['command']}):")
    for label, run in frameworks["runs"].items():
        workers = ", ".join(f"{k} {v:.1f} s" for k, v in run.get("workers", {}).items())
        lines.append(f"  {label:10}{run['wall_seconds']:>9.2f} s  peak {run['peak_rss_mib']:.0f}"
                     f" MiB (all processes {run['tree_peak_rss_mib']:.0f} MiB)"
                     f"  CPU {run['cpu_seconds']:.1f} s"
                     f"  exit {run['exit_code']}" + (f"  ({workers})" if workers else ""))
    ratio, bound = (frameworks["ratio_four_to_two"],
                    frameworks["ratio_four_to_two_if_every_core_were_busy"])
    lines.append(f"  four / two: cold {ratio['cold']:.2f}, warm {ratio['warm']:.2f}; with all "
                 f"{frameworks['cores']} cores busy throughout: cold {bound['cold']:.2f}, "
                 f"warm {bound['warm']:.2f}")
    lines.append("targets: " + "; ".join(
        f"{k} {v['value']:.3f} <= {v['limit']:g} {'met' if v['met'] else 'NOT met'}"
        for k, v in result["targets"].items()))
    for label in ("cold", "warm"):
        phases = result["runs"][label]["phases"]
        referee = result["runs"][label]["referee"].get("total")
        if phases:
            top = sorted(phases.items(), key=lambda kv: -kv[1])[:4]
            lines.append(f"{label} phases: " + ", ".join(f"{k} {v:.2f}" for k, v in top)
                         + (f", referee {referee:.2f}" if referee is not None else ""))
    m = result["machine"]
    lines.append(f"machine: {m['platform']}, {m.get('cpu_model', 'unknown')}, "
                 f"{m['cpu_count']} CPUs, "
                 f"{m['torch_threads']} torch threads, Python {m['python']}, load average "
                 f"{m['load_average_before'][0]:.2f} before, {m['load_average_after'][0]:.2f} "
                 "after (1 min)")
    return "\n".join(lines)
