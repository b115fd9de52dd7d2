"""Sweeps: spec errors, the local and Ray executors agreeing, reuse, a killed cell."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "sweep.py")
DATA = os.path.join(ROOT, "tests", "data")
# Four cells: tiny CNN, classify and head, seeds 0 and 1; also the small spec whose document
# (tests/data/sweep-tiny.md) must regenerate identically.
with open(os.path.join(DATA, "sweep-tiny.toml")) as _handle:
    FOUR_CELLS = _handle.read()


def sweep(*args, timeout=600):
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def write_spec(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def index(out):
    with open(os.path.join(out, "sweep.json")) as handle:
        return {cell["id"]: cell for cell in json.load(handle)["cells"]}


def measurements(out):
    """Every cell's runs without their timings: what two executors must agree on."""
    found = {}
    for cell_id, cell in index(out).items():
        with open(os.path.join(out, cell["report"])) as handle:
            report = json.load(handle)
        found[cell_id] = [{k: v for k, v in run.items() if k != "seconds"}
                          for run in report["runs"]]
    return found


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    spec, out = write_spec(tmp, FOUR_CELLS), tmp / "local"
    result = sweep(spec, "--out", out, "--jobs", 2)
    assert result.returncode == 0, result.stderr
    return spec, out, result


def test_four_cells_run_and_are_indexed(local_sweep):
    _, out, _ = local_sweep
    cells = index(out)
    assert len(cells) == 4 and {c["status"] for c in cells.values()} == {"done"}
    assert {(c["settings"]["scenario"], c["settings"]["seed"]) for c in cells.values()} == {
        ("classify", 0), ("classify", 1), ("head", 0), ("head", 1)}
    assert all(c["peak_rss_bytes"] > 100 * 2**20 for c in cells.values())  # measured
    summary = json.loads((out / "summary.json").read_text())
    row = next(r for r in summary["rows"] if r["recipe"] == "trainable_false"
               and r["behaviour"] == "BatchNorm on batch statistics")
    assert set(row["values"].values()) == {"none"} and row["outliers"] == []
    assert "<table>" in (out / "summary.html").read_text()


def test_second_run_reuses_every_cell(local_sweep):
    spec, out, _ = local_sweep
    before = measurements(out)
    result = sweep(spec, "--out", out)
    assert result.returncode == 0, result.stderr
    assert {c["status"] for c in index(out).values()} == {"reused"}
    assert measurements(out) == before


def test_changed_setting_reruns_only_new_cells(local_sweep, tmp_path):
    spec, out, _ = local_sweep
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    wider = write_spec(tmp_path, FOUR_CELLS.replace("seeds = [0, 1]", "seeds = [0]")
                       .replace('scenarios = ["classify", "head"]', 'scenarios = ["classify"]'))
    result = sweep(wider, "--out", copy)
    assert result.returncode == 0, result.stderr
    assert [c["status"] for c in index(copy).values()] == ["reused"]


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (pip install -e '.[sweep]')")
def test_ray_executor_gives_the_same_numbers(local_sweep, tmp_path):
    spec, out, _ = local_sweep
    result = sweep(spec, "--out", tmp_path / "ray", "--executor", "ray", "--jobs", 2)
    assert result.returncode == 0, result.stderr
    assert "local instance with 2 CPUs" in result.stderr
    assert {c["status"] for c in index(tmp_path / "ray").values()} == {"done"}
    assert measurements(tmp_path / "ray") == measurements(out)


def test_document_regenerates_identically(local_sweep, tmp_path):
    """The small-spec twin of docs/behaviors.md (python scripts/sweep.py
    docs/behaviors.toml --out DIR --document docs/behaviors.md)."""
    _, out, _ = local_sweep
    spec = os.path.join(DATA, "sweep-tiny.toml")
    document = tmp_path / "sweep-tiny.md"
    result = sweep(spec, "--out", out, "--document", document)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(DATA, "sweep-tiny.md")) as handle:
        committed = handle.read()
    # The page names the path it was written to; here that is a temporary one.
    regenerated = document.read_text().replace("--document sweep-tiny.md",
                                               "--document tests/data/sweep-tiny.md")
    assert regenerated == committed, (
        "tests/data/sweep-tiny.md is stale: python scripts/sweep.py tests/data/sweep-tiny.toml "
        "--out DIR --document tests/data/sweep-tiny.md")


def test_documented_specs_are_valid():
    from comparator.sweep.spec import load_spec

    spec = load_spec(os.path.join(ROOT, "docs", "behaviors.toml"))
    assert len(spec.groups) == len(spec.cells) == 6
    assert all(group["title"] for group in spec.groups)


def test_ray_executor_without_ray_is_one_line_and_exit_3(tmp_path, monkeypatch, capsys):
    from comparator.cli.sweep import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    out = tmp_path / "out"
    code = main([str(write_spec(tmp_path, FOUR_CELLS)), "--out", str(out), "--executor", "ray"])
    assert code == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["sweep.py: error: the ray executor needs Ray: pip install -e '.[sweep]'"]
    assert not out.exists()


def _cell_process(seed):
    """The pid of a running cell process of this seed, or None."""
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if b"comparator.sweep.cell" in argv and b"--seed" in argv:
            if argv[argv.index(b"--seed") + 1] == str(seed).encode():
                return int(pid)
    return None


def _two_cells_one_at_a_time(tmp_path):
    """A sweep of two classify cells (seeds 0 and 1) started in the background, one cell at
    a time: (its output folder, the process)."""
    spec = write_spec(tmp_path, FOUR_CELLS.replace('["classify", "head"]', '["classify"]'))
    out = tmp_path / "out"
    return out, subprocess.Popen([sys.executable, SCRIPT, str(spec), "--out", str(out),
                                  "--jobs", "1"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)


def test_killed_cell_is_failed_and_the_others_finish(tmp_path):
    out, process = _two_cells_one_at_a_time(tmp_path)
    deadline, victim = time.monotonic() + 120, None
    while victim is None and time.monotonic() < deadline and process.poll() is None:
        victim = _cell_process(seed=0)
        time.sleep(0.1)
    assert victim is not None, "the first cell never started"
    os.kill(victim, signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    cells = {c["settings"]["seed"]: c for c in index(out).values()}
    assert cells[0]["status"] == "failed" and "killed by signal 9" in cells[0]["reason"]
    assert cells[1]["status"] == "done"
    assert f"cell {cells[0]['id']} failed: killed by signal 9" in stderr


def test_sigterm_keeps_finished_cells_and_ends_running_ones(tmp_path):
    out, process = _two_cells_one_at_a_time(tmp_path)
    deadline, running = time.monotonic() + 180, None
    while running is None and time.monotonic() < deadline and process.poll() is None:
        running = _cell_process(seed=1)  # the first cell has finished by then
        time.sleep(0.1)
    assert running is not None, "the second cell never started"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    cells = {c["settings"]["seed"]: c for c in index(out).values()}
    assert cells[0]["status"] == "done" and os.path.exists(out / cells[0]["report"])
    assert cells[1]["status"] == "skipped" and "interrupted" in cells[1]["reason"]
    assert not os.path.exists(f"/proc/{running}") or _cell_process(seed=1) is None


@pytest.mark.parametrize("text,message", [
    ("[sweep]\nmodels = ['tiny_cnn']\ncolour = 'red'\n", "unknown key 'colour'"),
    ("[sweep]\nmodels = ['tiny_cnn']\nseed = 1\n", "the axis is 'seeds'"),
    ("[sweep]\nmodels = []\n", "models is an empty list"),
    ("[sweep]\nmodels = ['tiny_cnn']\nseeds = []\n", "seeds is an empty list"),
    # Merged into one cell without a word, before.
    ("[sweep]\nmodels = ['tiny_cnn']\nseeds = [0, 0]\n", "seeds lists 0 twice"),
    ("[sweep]\nmodels = ['tiny_cnn', 'resnet9']\n", "unknown model 'resnet9'"),
    ("[sweep]\nmodels = ['densenet121']\nimage_size = [64, 16]\n", "too small for densenet121"),
    ("[sweep]\nmodels = ['tiny_cnn']\nscenarios = ['segment']\n", "invalid choice"),
    ("[sweep]\nmodels = ['tiny_cnn']\nno_onnx = 'yes'\n", "no_onnx is a flag"),
    ("[sweep]\nmodels = ['tiny_cnn']\nframeworks = ['keras']\n", "must include pytorch"),
    ("[sweep]\nmodels = ['tiny_cnn'\n", "not valid TOML"),
    ("[sweeps]\nmodels = ['tiny_cnn']\n", "unknown table 'sweeps'"),
    ("[sweep]\nseeds = [1]\n", "give models (or presets)"),
])
def test_bad_spec_is_one_line_and_exit_2(text, message, tmp_path):
    out = tmp_path / "out"
    result = sweep(write_spec(tmp_path, text), "--out", out)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists()


def test_missing_spec_file_is_exit_2(tmp_path):
    result = sweep(tmp_path / "absent.toml", "--out", tmp_path / "out")
    assert result.returncode == 2 and "cannot read spec" in result.stderr


def test_column_labels_write_floats_as_people_do():
    from comparator.sweep.summary import _label

    settings = {"model": "tiny_cnn", "lr": 1e9, "batch_size": 2, "steps": 3}
    assert _label(settings, ["lr", "batch_size", "steps"]) == "tiny_cnn lr=1e+09 batch 2 steps=3"
