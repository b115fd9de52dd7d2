"""scripts/bench.py: the JSON's structure and the consistency of its numbers, not timings."""

import json
import os
import statistics
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "bench.py")


def bench(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "results.json"
    done = bench("tiny_cnn", "--image-size", "16", "--batch-size", "2", "--output", str(output),
                 "--frameworks-model", "tiny_cnn", "--frameworks-image-size", "16",
                 "--frameworks-batch-size", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio wall/irreducible" in done.stdout
    return json.loads(output.read_text())


def test_structure(result):
    assert result["model"] == "tiny_cnn"
    assert (result["image_size"], result["batch_size"]) == (16, 2)
    assert result["command"].startswith("python scripts/compare.py tiny_cnn --image-size 16 "
                                        "--batch-size 2 --json")
    assert "--quiet" in result["command"] and "--cache-dir" in result["command"]
    for key in ("wall_seconds", "ratio_wall_to_irreducible", "peak_rss_mib", "exit_codes",
                "runs"):
        assert set(result[key]) == {"cold", "warm"}, key
    assert result["exit_codes"] == {"cold": 0, "warm": 0}
    assert set(result["machine"]) >= {"platform", "cpu_model", "cpu_count", "torch_threads",
                                      "python",
                                      "load_average_before", "load_average_after"}
    assert result["machine"]["cpu_model"].strip() not in ("", "unknown")
    passes = result["irreducible"]["passes"]
    assert "pytorch:inference_before" in passes and "keras:inference_before" in passes
    for recipe in ("train", "requires_grad", "eval", "eval_requires_grad"):
        assert f"pytorch:{recipe}:train_pass" in passes
        assert f"pytorch:{recipe}:inference_after" in passes
    for recipe in ("train", "trainable_false", "training_false", "bn_trainable"):
        assert f"keras:{recipe}:train_pass" in passes
        assert f"keras:{recipe}:inference_after" in passes
    for mode in ("eval", "train_forward", "keras"):  # keras: the referee's third graph
        assert f"onnx:{mode}:export" in passes and f"onnx:{mode}:run" in passes
    assert set(result["frameworks"]["runs"]) == {"two_cold", "four_cold", "four_warm",
                                                 "two_warm"}
    assert set(result["cli"]) == {"help", "unknown_model", "bad_batch_size"}
    assert set(result["targets"]) == {"four_to_two_frameworks", "wall_to_irreducible",
                                      "peak_to_bare_fit", "cli_seconds"}
    assert set(result["irreducible"]["by_framework"]) == {"pytorch", "keras", "onnx"}


def test_numbers_positive_and_consistent(result):
    base = result["irreducible_seconds"]
    assert base > 0 and result["help_wall_seconds"] > 0
    assert all(v > 0 for v in result["irreducible"]["passes"].values())
    assert sum(result["irreducible"]["by_framework"].values()) == pytest.approx(base, abs=0.01)
    for label in ("cold", "warm"):
        wall = result["wall_seconds"][label]
        run = result["runs"][label]
        own = result["irreducible_seconds_by_run"][label]  # a warm run exports nothing
        assert wall > 0 and result["peak_rss_mib"][label] > 0
        assert result["ratio_wall_to_irreducible"][label] == pytest.approx(wall / own,
                                                                            abs=1e-3)
        assert run["wall_seconds"] == wall
        assert run["all_wall_seconds"] == [wall]  # one run per label by default
        assert run["all_peak_rss_mib"] == [result["peak_rss_mib"][label]]
        assert result["ratio_per_repetition"][label] == [pytest.approx(wall / own, abs=1e-3)]
        assert result["ratio_wall_to_irreducible_paired_median"][label] == pytest.approx(
            statistics.median(result["ratio_per_repetition"][label]), abs=1e-3)
        assert run["reused_inference_passes"] >= 0
        # The tiny CNN's train recipes move weights and statistics: one ablation pass each.
        assert 0 < result["explanation_seconds"][label] == run["explanation_seconds"]
        assert run["explanation_seconds"] < run["total_seconds"]
        assert result["ratio_wall_without_explanations_paired_median"][label] == pytest.approx(
            (wall - run["explanation_seconds"]) / own, abs=1e-3)
        # the child's own total is part of its wall time, and its phases part of that total
        assert 0 < run["total_seconds"] <= wall
        assert run["phases"] and all(v >= 0 for v in run["phases"].values())
        assert sum(run["phases"].values()) <= run["total_seconds"] + 0.05
        assert run["referee"]["total"] > 0


def test_a_run_without_a_report_prints_no_explanation_figures(result):
    from tools.bench import _ratio_without_explanations, table

    failed = {"wall_seconds": 1.0, "explanation_seconds": None}
    assert _ratio_without_explanations([result["runs"]["cold"], failed], [1.0, 1.0]) is None
    printed = table({**result, "explanation_seconds": {"cold": None, "warm": 0.5},
                     "ratio_wall_without_explanations_paired_median": {"cold": None,
                                                                       "warm": 1.2}})
    lines = {line[:26].strip(): line[26:].split()[:2] for line in printed.splitlines()}
    assert lines["explanation passes (s)"] == ["-", "0.50"]
    assert lines["ratio without them"] == ["-", "1.20"]


def test_the_table_shows_every_runs_peak(result):
    from tools.bench import table

    runs = {label: {**run, "all_peak_rss_mib": [3732.4, 3978.0, 3801.2]}
            for label, run in result["runs"].items()}
    printed = table({**result, "runs": runs})
    lines = {line[:26].strip(): line[26:].split()[:2] for line in printed.splitlines()}
    assert lines["peak RSS, every run"] == ["3732-3978", "3732-3978"]


def test_a_target_missed_by_rounding_does_not_print_as_met(result):
    """1.1015 printed with two decimals read "1.10 <= 1.1 NOT met" (2026-11-28)."""
    from tools.bench import table

    targets = {**result["targets"],
               "peak_to_bare_fit": {"value": 1.1014, "limit": 1.1, "met": False}}
    printed = table({**result, "targets": targets, "ratio_peak_to_bare_fit": 1.1014})
    assert "peak_to_bare_fit 1.101 <= 1.1 NOT met" in printed
    assert "peak RSS against a bare fit step: 1.101 " in printed


def test_the_warm_irreducible_compute_leaves_out_the_exports(result):
    passes, by_run = result["irreducible"]["passes"], result["irreducible_seconds_by_run"]
    exports = sum(v for k, v in passes.items() if k.endswith(":export"))
    assert by_run["cold"] == pytest.approx(result["irreducible_seconds"], abs=0.01)
    assert by_run["warm"] == pytest.approx(by_run["cold"] - exports, abs=0.01)
    for label in ("cold", "warm"):
        assert result["ratio_wall_to_irreducible"][label] == pytest.approx(
            result["wall_seconds"][label] / by_run[label], abs=1e-3)


def test_four_frameworks_against_two(result):
    frameworks = result["frameworks"]
    runs = frameworks["runs"]
    assert all(run["exit_code"] == 0 for run in runs.values())
    for temperature in ("cold", "warm"):
        assert set(runs[f"four_{temperature}"]["workers"]) == {"keras-tensorflow", "keras-jax"}
        assert runs[f"two_{temperature}"]["workers"] == {}
        assert frameworks["ratio_four_to_two"][temperature] == pytest.approx(
            runs[f"four_{temperature}"]["wall_seconds"]
            / runs[f"two_{temperature}"]["wall_seconds"], abs=1e-3)
    assert "--no-onnx" in frameworks["command"]
    for run in runs.values():  # the sum over the processes holds the largest one
        assert run["tree_peak_rss_mib"] >= run["peak_rss_mib"] * 0.9
        assert run["cpu_seconds"] > 0
    assert frameworks["cores"] >= 1
    bound = frameworks["ratio_four_to_two_if_every_core_were_busy"]
    for temperature in ("cold", "warm"):
        # No run keeps more than every core busy: the bound never exceeds the ratio itself.
        assert 0 < bound[temperature] <= frameworks["ratio_four_to_two"][temperature] + 1e-3


_HOLDS_BESIDE_ITS_CHILD = """
import subprocess, sys, time
held = bytearray(200 * 2 ** 20)
held[::4096] = b"x" * len(held[::4096])  # resident, page by page
child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(300 * 2 ** 20); "
                          "b[::4096] = b'y' * len(b[::4096]); time.sleep(1.5)"])
child.wait()
"""


def run_child_from_a_fresh_interpreter(child_code: str) -> dict:
    """tools.bench_child.run_child on `python -c child_code`, called from a fresh interpreter, as
    scripts/bench.py calls it: a child's ru_maxrss starts at the peak of the process that
    started it (measured: a child running `true` read 1037 MiB under a parent that had held
    1 GiB), and this test process is large."""
    code = ("import json, sys; from tools.bench_child import run_child; "
            f"print(json.dumps(run_child([sys.executable, '-c', {child_code!r}])))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads(done.stdout.strip().splitlines()[-1])
    assert run["exit_code"] == 0
    return run


def test_the_benchmark_sums_a_commands_processes_where_wait4_gives_the_largest():
    """Keras workers run beside the comparison: the machine holds their sum."""
    run = run_child_from_a_fresh_interpreter(_HOLDS_BESIDE_ITS_CHILD)
    assert 300 <= run["peak_rss_mib"] < 450  # the grandchild's, the largest process
    assert run["tree_peak_rss_mib"] >= 500  # both at once, 200 + 300 MiB and interpreters


_SPINS_IN_ITS_CHILD = """
import subprocess, sys
subprocess.run([sys.executable, "-c", "import time; end = time.process_time() + 1.0\\n"
                "while time.process_time() < end: pass"], check=True)
"""


def test_the_benchmarks_cpu_time_counts_the_descendants_a_command_waited_for():
    """The workers' CPU time is part of a command's: wait4 adds up the descendants it
    waited for, so a child that only waits for a spinning grandchild reads its second."""
    run = run_child_from_a_fresh_interpreter(_SPINS_IN_ITS_CHILD)
    assert 1.0 <= run["cpu_seconds"] <= run["wall_seconds"] * 2 + 0.5


def test_peak_memory_is_held_against_the_larger_bare_fit_step(result):
    bare = result["bare_fit"]
    assert set(bare["peak_rss_mib"]) == {"keras", "pytorch"}
    assert bare["larger_peak_rss_mib"] == max(bare["peak_rss_mib"].values()) > 0
    # Read in the process after the step; wait4's reading adds the interpreter's teardown.
    for framework, peak in bare["peak_rss_mib"].items():
        assert 0 < peak <= bare["peak_rss_mib_with_teardown"][framework]
    assert result["ratio_peak_to_bare_fit"] == pytest.approx(
        max(result["peak_rss_mib"].values()) / bare["larger_peak_rss_mib"], abs=1e-3)


def test_the_command_line_cases_and_the_targets(result):
    paired = result["ratio_wall_to_irreducible_paired_median"]
    assert result["targets"]["wall_to_irreducible"]["value"] == max(paired.values())
    cli = result["cli"]
    assert cli["help"]["exit_code"] == 0
    assert cli["unknown_model"]["exit_code"] == cli["bad_batch_size"]["exit_code"] == 2
    assert result["help_wall_seconds"] == cli["help"]["wall_seconds"] > 0
    for target in result["targets"].values():
        assert target["met"] == (target["value"] <= target["limit"])


# bench.py checks a model and its sizes with compare.py's own resolve() (tests/test_cli.py
# covers its messages); here, that bench.py goes through it, and its own options.
@pytest.mark.parametrize("args,message", [
    (["resnet9"], "unknown model 'resnet9'"),
    (["tiny_cnn", "--output", "/nonexistent-dir/r.json"], "does not exist"),
    (["tiny_cnn", "--frameworks-batch-size", "0"], "batch size must be positive"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    done = bench(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert done.stdout == ""


def test_peak_memory_is_also_held_against_plain_code_running_the_matrix(result):
    plain = result["irreducible"]["peak_rss_mib"]
    assert plain > 0
    assert result["ratio_peak_to_irreducible"] == pytest.approx(
        max(result["peak_rss_mib"].values()) / plain, abs=1e-3)
