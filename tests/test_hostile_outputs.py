"""Hostile output paths: every target checked once before any work (one line, exit 2,
nothing written), reports written as one set, modes and the default cache."""

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPARE = os.path.join(ROOT, "scripts", "compare.py")
TINY = ["tiny_cnn", "--image-size", "32", "--batch-size", "2", "--no-onnx", "--quiet"]


def compare(*args, cwd, env=None):
    return subprocess.run([sys.executable, COMPARE, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env=env)


def refused(result, message):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    return lines[0]


def listing(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, files in os.walk(folder) for f in files)


@pytest.fixture
def out(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "art").mkdir()
    return tmp_path


@pytest.mark.parametrize("args,message", [
    (["--json", "o/" + "r" * 300 + ".json"], "more than this file system's 255"),
    (["--save-artifacts", "afile/sub"], "afile is a file, not a directory"),
    (["--json", "afile/r.json"], "afile is a file, not a directory"),
    (["--cache-dir", "afile/sub"], "afile is a file, not a directory"),
    (["--json", "o/same", "--markdown", "o/same"], "--json and --markdown name the same file"),
    (["--json", "art/report.json", "--save-artifacts", "art"],
     "--json and --save-artifacts (report.json) name the same file"),
    (["--json", ""], "--json: empty path"),
])
def test_bad_targets_are_refused_before_any_work(out, args, message):
    before = listing(out)
    refused(compare(*TINY, *args, cwd=out), message)
    assert listing(out) == before


def test_a_report_over_an_input_checkpoint_is_refused(out):
    (out / "o" / "w.pth").write_bytes(b"checkpoint bytes")
    line = refused(compare(*TINY, "--weights", "o/w.pth", "--json", "o/w.pth", cwd=out),
                   "is the input of --weights")
    assert (out / "o" / "w.pth").read_bytes() == b"checkpoint bytes", line


def test_a_report_over_an_input_image_is_refused(out):
    from PIL import Image

    Image.new("RGB", (40, 40), (10, 20, 30)).save(out / "o" / "a.png")
    refused(compare(*TINY, "--images", "o", "--markdown", "o/a.png", cwd=out),
            "is the input of --images")


@pytest.mark.parametrize("flag,given,content", [
    ("--labels", "o/labels.txt", "1\n"),
    ("--targets", "o/targets.txt", "0.5\n"),
])
def test_a_report_over_a_values_file_is_refused(out, flag, given, content):
    (out / given).write_text(content)
    scenario = ["--scenario", "head"] if flag == "--targets" else []
    line = refused(compare(*TINY, *scenario, "--images", "samples", flag, given,
                           "--json", given, cwd=out), f"is the input of {flag}")
    assert (out / given).read_text() == content, line


def test_fifo_and_symlink_targets_are_refused(out):
    os.mkfifo(out / "o" / "pipe")
    (out / "o" / "real.json").write_text("{}")
    os.symlink("real.json", out / "o" / "link.json")
    refused(compare(*TINY, "--json", "o/pipe", cwd=out), "is a FIFO, not a regular file")
    refused(compare(*TINY, "--json", "o/link.json", cwd=out), "is a symbolic link")
    assert stat.S_ISFIFO(os.lstat(out / "o" / "pipe").st_mode)
    assert (out / "o" / "real.json").read_text() == "{}"


def test_control_characters_in_a_path_are_escaped(out):
    line = refused(compare(*TINY, "--json", "missing/\x1b[31mred\nx.json", cwd=out),
                   "does not exist")
    assert "\x1b" not in line and "\\x1b[31mred\\nx.json" in line


def test_a_read_only_working_directory_is_refused_even_as_root(out):
    folder = out / "ro"
    folder.mkdir()
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    if made.returncode != 0:  # no chattr, or a file system without the flag
        if os.geteuid() == 0:
            pytest.skip("cannot make a folder read-only for root here")
        folder.chmod(0o500)
    try:
        refused(compare(*TINY, "--json", "r.json", cwd=folder), "is not writable")
    finally:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o700)
    assert listing(folder) == []


def test_reports_follow_the_umask_and_keep_an_existing_mode(tmp_path):
    from comparator.io import write_atomic

    old = os.umask(0o027)
    try:
        write_atomic(str(tmp_path / "new.json"), "{}")
        (tmp_path / "kept.json").write_text("old")
        os.chmod(tmp_path / "kept.json", 0o604)
        write_atomic(str(tmp_path / "kept.json"), "new")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.json").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "kept.json").st_mode) == 0o604
    assert (tmp_path / "kept.json").read_text() == "new"


def test_an_unfinished_report_set_leaves_nothing(tmp_path):
    from comparator.io import ReportSet

    with pytest.raises(RuntimeError):
        with ReportSet() as reports:
            reports.add(str(tmp_path / "a.json"), "{}")
            (lambda folder: open(os.path.join(folder, "x.npz"), "w").close())(
                reports.directory(str(tmp_path / "art")))
            raise RuntimeError("interrupted before the commit")
    assert os.listdir(tmp_path) == []


def test_interrupted_as_the_reports_appear_writes_all_or_nothing(out):
    args = [sys.executable, COMPARE, *TINY, "--json", "o/r.json", "--markdown", "o/r.md",
            "--html", "o/r.html", "--save-artifacts", "o/art"]
    process = subprocess.Popen(args, cwd=out, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline:
        if os.path.exists(out / "o" / "r.json"):
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.002)
    stderr = process.communicate(timeout=240)[1]
    written = [p for p in listing(out / "o") if not p.startswith(".")]
    everything = ["art/batch.npz", "art/pytorch_state_dict.pt", "art/report.json",
                  "r.html", "r.json", "r.md"]
    assert written in ([], everything), (written, stderr)
    assert listing(out / "o") == written  # no staged leftovers
    if process.returncode == 130:
        assert ("no report was written" in stderr) == (written == []), stderr
        assert len(stderr.strip().splitlines()) == 1


def test_an_unwritable_home_falls_back_to_a_temporary_cache_in_one_line(out):
    tmp = out / "tmp"
    tmp.mkdir()
    env = {**os.environ, "HOME": str(out / "afile"), "TMPDIR": str(tmp)}
    env.pop("XDG_CACHE_HOME", None)
    result = compare("tiny_cnn", "--image-size", "32", "--batch-size", "2", "--quiet",
                     "--recipes", "pytorch:eval", "--html", "o/r.html", cwd=out, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    notes = [line for line in result.stderr.splitlines() if "ONNX cache" in line]
    assert len(notes) == 1 and "for this run only" in notes[0]
    # matplotlib, without a writable HOME, keeps its config in a temporary folder that
    # only its exit-time cleanup removes
    assert [n for n in os.listdir(tmp) if n.startswith(("xframe-", "matplotlib-"))] == []


def test_a_folder_that_os_access_calls_writable_but_takes_no_file_is_refused(out):
    # a tmpfs without a free inode: os.access says yes, creating a file fails (ENOSPC)
    folder = out / "full"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M,nr_inodes=1", "tmpfs",
                              str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        assert os.access(folder, os.W_OK)
        line = refused(compare(*TINY, "--json", "r.json", cwd=folder), "is not writable")
        assert "No space left on device" in line
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)
