"""Signals through real processes: SIGTERM ends a run like Ctrl-C (one line, exit 143, the
worker ended, temporary folders removed), a worker dies with its parent, an interrupted
export leaves no staging folder, and a worker's stderr is kept as a bounded tail."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPARE = os.path.join(ROOT, "scripts", "compare.py")
TINY = ["tiny_cnn", "--image-size", "32", "--batch-size", "2", "--quiet"]


def _env(tmp_path, **extra):
    folder = tmp_path / "tmp"
    folder.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(folder), "PYTHONPATH": ROOT, **extra}, folder


def _workers_of(tmp_folder):
    """Pids of Keras workers whose request folder is in `tmp_folder`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if b"adapters.keras.worker" in argv and any(str(tmp_folder).encode() in a for a in argv):
            found.append(int(pid))
    return found


def _ours(folder):
    return [n for n in os.listdir(folder) if n.startswith(("xframe-", "tmp", "."))]


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(condition, seconds=180):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    return None


def _start_with_hanging_worker(tmp_path):
    env, folder = _env(tmp_path, XFRAME_WORKER_FAULT="hang")
    process = subprocess.Popen([sys.executable, COMPARE, *TINY, "--no-onnx", "--frameworks",
                                "pytorch,keras-jax", "--json", "r.json"], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers = _wait_for(lambda: _workers_of(folder))
    assert workers, "the worker never started"
    return process, workers[0], folder


def test_sigterm_while_a_worker_runs_ends_everything_in_one_line(tmp_path):
    process, worker, folder = _start_with_hanging_worker(tmp_path)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines() == [
        "compare.py: terminated (SIGTERM); no report was written"]
    assert _wait_for(lambda: not _alive(worker), 10)
    # torch keeps its own compile cache (torchinductor_<user>) in TMPDIR: not ours
    assert _ours(folder) == [] and not (tmp_path / "r.json").exists()


def test_a_worker_dies_with_a_killed_parent_and_removes_its_folder(tmp_path):
    process, worker, folder = _start_with_hanging_worker(tmp_path)
    process.kill()
    process.communicate(timeout=60)
    assert _wait_for(lambda: not _alive(worker), 15), "the worker outlived its parent"
    assert _wait_for(lambda: not _ours(folder), 15)


def test_sigterm_during_an_export_leaves_no_staging_folder(tmp_path):
    env, folder = _env(tmp_path)
    cache = tmp_path / "cache"
    process = subprocess.Popen([sys.executable, COMPARE, *TINY, "--recipes", "pytorch:train",
                                "--cache-dir", str(cache)], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    staging = _wait_for(lambda: os.path.isdir(cache) and [
        n for n in os.listdir(cache) if n.startswith(".export-")] or process.poll() is not None)
    assert staging is not True and process.poll() is None, "the export was never seen"
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 143, stderr
    assert [n for n in os.listdir(cache) if n.startswith(".")] == []


def test_a_flooding_worker_costs_the_parent_a_bounded_tail(tmp_path):
    env, _ = _env(tmp_path, XFRAME_WORKER_FAULT="flood", XFRAME_WORKER_FLOOD_MB="300")
    code = (
        "import json\n"
        "from adapters.keras.client import WorkerError, call_worker\n"
        "try:\n"
        "    call_worker({'backend': 'jax', 'framework': 'keras-jax', 'task': 'run'}, {}, 120)\n"
        "except WorkerError as exc:\n"
        "    reason = str(exc)\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a large
        # pytest process would report pytest's peak as its own.
        "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(json.dumps({'reason': reason, 'peak_kib': int(peak.split()[1])}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    result = json.loads(done.stdout)
    assert result["reason"].endswith("exited with status 1: keras_worker: the last words")
    assert result["peak_kib"] < 200 * 1024  # 300 MB went through it


def _sigint_as_from_a_terminal():
    # A test run started in the background (`make test &`) ignores SIGINT, and a child
    # inherits that: Python then installs no KeyboardInterrupt handler in it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_bench_interrupted_ends_in_one_line_and_leaves_no_folder(tmp_path):
    env, folder = _env(tmp_path)
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "bench.py"),
                                "tiny_cnn", "--image-size", "32", "--batch-size", "2",
                                "--output", "b.json"], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_sigint_as_from_a_terminal)
    seen = _wait_for(lambda: [n for n in os.listdir(folder) if n.startswith("xframe-bench")]
                     or process.poll() is not None)
    assert seen is not True and process.poll() is None, "bench never made its folder"
    time.sleep(1.0)  # let its compare.py child start
    process.send_signal(signal.SIGINT)
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["bench.py: interrupted; nothing was written"]
    assert _ours(folder) == [] and not (tmp_path / "b.json").exists()



def test_sigterm_ends_validate_port_in_one_line(tmp_path):
    env, _ = _env(tmp_path)
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "scripts", "validate_port.py"), "resnet50",
         "--image-size", "64", "--json", "v.json"], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(4)  # into the imports or the model building: no output yet either way
    assert process.poll() is None, process.stderr.read()
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines() == ["validate_port.py: terminated (SIGTERM)"]
    assert not (tmp_path / "v.json").exists()


_LOST_INTERRUPT = """
import sys, time
from comparator.cli.common import {install}, guarded, Terminated, keep_interrupts_from_being_lost
{install}()

class Collected:
    def __del__(self):  # where a signal's exception cannot propagate: Python prints it
        raise {raised}()

def run():
    del_me = Collected()
    del del_me
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return 0

sys.exit(guarded("probe", run))
"""


@pytest.mark.parametrize("install,raised,code,line", [
    ("handle_sigterm", "Terminated", 143, "probe: terminated (SIGTERM)"),
    ("keep_interrupts_from_being_lost", "KeyboardInterrupt", 130, "probe: interrupted"),
])
def test_an_interrupt_raised_where_python_cannot_propagate_it_still_ends_the_run(
        tmp_path, install, raised, code, line):
    env, _ = _env(tmp_path)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _LOST_INTERRUPT.format(install=install,
                                                                       raised=raised)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert time.monotonic() - started < 15, "the interrupt was lost: the run went on"
    assert done.returncode == code, done.stderr
    assert done.stderr.strip().splitlines() == [line]


_SWALLOWED = """
import os, signal, sys, time
from comparator.cli.common import handle_sigterm, guarded
from comparator.pipeline import _Clock
handle_sigterm()

def framework_call():  # as Keras's torch backend does around its shape tracing
    try:
        os.kill(os.getpid(), signal.{name})
        time.sleep(0.5)
    except:  # noqa: E722
        pass

def run():
    clock = _Clock()
    framework_call()
    clock.phase("port")  # the comparison's next checkpoint
    return 0

sys.exit(guarded("probe", run))
"""


@pytest.mark.parametrize("name,code,line", [
    ("SIGTERM", 143, "probe: terminated (SIGTERM)"),
    ("SIGINT", 130, "probe: interrupted"),
])
def test_an_interrupt_a_framework_swallows_is_raised_at_the_next_checkpoint(tmp_path, name,
                                                                            code, line):
    env, _ = _env(tmp_path)
    done = subprocess.run([sys.executable, "-c", _SWALLOWED.format(name=name)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == code, done.stderr
    assert done.stderr.strip().splitlines() == [line]
