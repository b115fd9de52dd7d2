"""Hostile numbers and sizes: refused in one line, exit 2, before anything loads, nothing
written; the memory estimate and the image-folder cap."""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPARE = os.path.join(ROOT, "scripts", "compare.py")
VALIDATE = os.path.join(ROOT, "scripts", "validate_port.py")
TINY = ["tiny_cnn", "--image-size", "32", "--batch-size", "2", "--no-onnx"]


def run(script, *args, cwd):
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_refused(result, message, folder):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert os.listdir(folder) == []


@pytest.mark.parametrize("args,message", [
    (["--seed", "-1"], "--seed must be an integer in [0, 2**32)"),
    (["--seed", "4294967296"], "--seed must be an integer in [0, 2**32)"),
    (["--seed", str(2 ** 63)], "--seed must be an integer in [0, 2**32)"),
    (["--lr", "1e308"], "learning rate must be a positive number that float32 can hold"),
    (["--lr", "1e-50"], "learning rate must be a positive number that float32 can hold"),
    (["--lr", "-0.1"], "learning rate must be a positive number"),
    (["--image-size", "0"], "image size must be positive, got 0"),
    (["--worker-timeout", "1e300"], "worker timeout must be a positive number of seconds"),
    (["--batch-size", "100000", "--max-memory", "4G"], "needs an estimated"),
    (["--image-size", "100000"], "more than this machine's memory"),
    (["--batch-size", str(10 ** 12)], "more than this machine's memory"),
    (["--max-memory", "lots"], "expected a size such as 8G"),
    (["--max-memory", "0"], "expected a positive size"),
])
def test_compare_refuses_numbers_before_anything_loads(args, message, tmp_path):
    result = run(COMPARE, *TINY, *args, "--json", "r.json", cwd=tmp_path)
    assert_refused(result, message, tmp_path)


def test_targets_beyond_float32_are_refused(tmp_path):
    image = tmp_path / "img"
    image.mkdir()
    _png(image / "a.png", np.full((40, 40, 3), 128, np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    result = run(COMPARE, "tiny_cnn", "--image-size", "32", "--no-onnx", "--scenario", "head",
                 "--images", str(image / "a.png"), "--targets", "1e39", "--json", "r.json",
                 cwd=out)
    assert_refused(result, "--targets must be a number that float32 can hold", out)


def test_memory_estimate_names_the_estimate_and_the_limit(tmp_path):
    result = run(COMPARE, *TINY, "--batch-size", "100000", "--max-memory", "4G", cwd=tmp_path)
    line = result.stderr.strip()
    assert "GiB" in line and "(4.0 GiB)" in line and "--max-memory" in line


def test_memory_override_lets_a_small_run_through():
    from comparator.limits import GIB, check_memory

    assert check_memory("tiny_cnn", 2, 32, None, max_memory=2 * GIB) < 2 * GIB
    assert check_memory("densenet121", 8, 224, None, None) > 3.5 * GIB  # measured 3.9 GiB


@pytest.mark.parametrize("args,message", [
    (["--seed", "-1"], "--seed must be an integer in [0, 2**32)"),
    (["--seed", "4294967296"], "--seed must be an integer in [0, 2**32)"),
    (["--image-size", "0"], "image size 0 is too small"),
    (["--rows", "-1"], "--rows must be 0 or more"),
    (["--tolerance", "inf"], "--tolerance is a relative difference in (0, 1)"),
    (["--tolerance", "nan"], "--tolerance is a relative difference in (0, 1)"),
    (["--tolerance", "0"], "--tolerance is a relative difference in (0, 1)"),
    (["--image-size", "100000"], "more than this machine's memory"),
])
def test_validate_port_refuses_numbers_before_anything_loads(args, message, tmp_path):
    result = run(VALIDATE, "tiny_cnn", *args, "--json", "v.json", cwd=tmp_path)
    assert_refused(result, message, tmp_path)


def _png(path, pixels, mode=None):
    from PIL import Image

    Image.fromarray(pixels, mode).save(path) if mode else Image.fromarray(pixels).save(path)


def test_an_image_folder_is_capped_and_the_report_says_so(tmp_path):
    from comparator.limits import FOLDER_IMAGE_CAP
    from comparator.inputs.images import collect_images

    for i in range(FOLDER_IMAGE_CAP + 3):
        (tmp_path / f"{i:04d}.png").write_bytes(b"x")
    notes = []
    found = collect_images([str(tmp_path)], notes)
    assert len(found) == FOLDER_IMAGE_CAP and found[-1].endswith(f"{FOLDER_IMAGE_CAP - 1:04d}.png")
    assert f"holds {FOLDER_IMAGE_CAP + 3} images" in notes[0]
