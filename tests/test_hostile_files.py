"""Hostile input files: every Pillow mode of JPEG/PNG decoded to the right range,
decompression bombs as bad input, integer checkpoints refused and other float dtypes
converted with a note, zip bombs refused before reading, warnings kept to one line."""

import os
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

from comparator.errors import UsageError
from comparator.inputs.images import decode, probe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPARE = os.path.join(ROOT, "scripts", "compare.py")
TINY = ["tiny_cnn", "--image-size", "32", "--batch-size", "2", "--no-onnx", "--quiet"]


def compare(*args, cwd):
    return subprocess.run([sys.executable, COMPARE, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_a_16_bit_png_keeps_its_range(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((40, 40), 32768, np.uint16)).save(path)
    assert Image.open(path).mode in ("I;16", "I")
    pixels = decode(str(path), 32)
    assert pixels.shape == (32, 32, 3)
    assert abs(float(pixels.mean()) - 0.5) < 1e-3  # convert("RGB") made every pixel 1.0


@pytest.mark.parametrize("mode,suffix", [
    ("1", "png"), ("L", "png"), ("LA", "png"), ("P", "png"), ("RGB", "png"), ("RGBA", "png"),
    ("L", "jpeg"), ("RGB", "jpeg"), ("CMYK", "jpeg")])
def test_every_8_bit_mode_decodes_to_the_unit_range(tmp_path, mode, suffix):
    ramp = (np.arange(40 * 40 * 3) % 256).astype(np.uint8).reshape(40, 40, 3)
    path = tmp_path / f"image.{suffix}"
    Image.fromarray(ramp).convert(mode).save(path)
    pixels = decode(str(path), 32)
    assert pixels.dtype == np.float32 and 0.0 <= pixels.min() and pixels.max() <= 1.0
    assert abs(float(pixels.mean()) - 0.4952) < 0.01  # the RGB ramp's own mean


def test_a_decompression_bomb_is_bad_input(tmp_path, monkeypatch):
    path = tmp_path / "wide.png"
    Image.new("L", (200, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)  # 20 000 px: over twice the limit
    for read in (probe, lambda p: decode(p, 32)):
        with pytest.raises(UsageError, match="decompression bomb"):
            read(str(path))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 15_000)  # between 1x and 2x: a warning
    with pytest.raises(UsageError, match="decompression bomb"):
        decode(str(path), 32)


def test_a_decompression_bomb_through_the_command_line_exits_2(tmp_path):
    Image.new("1", (14_000, 14_000)).save(tmp_path / "bomb.png")  # 196 Mpx, 24 kB on disk
    (tmp_path / "o").mkdir()
    result = compare(*TINY, "--images", "bomb.png", "--json", "o/r.json", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "decompression bomb" in lines[0]
    assert os.listdir(tmp_path / "o") == []


@pytest.fixture(scope="module")
def tiny_state():
    import torch  # noqa: F401

    from adapters.pytorch.models import build_network
    from comparator.zoo import get_spec

    return build_network(get_spec("tiny_cnn")).state_dict()


def test_an_integer_checkpoint_is_refused(tmp_path, tiny_state):
    import torch

    from adapters.pytorch.pretrained import load_file
    from comparator.zoo import get_spec

    for dtype in (torch.int64, torch.bool):
        path = tmp_path / f"{dtype}.pth"
        torch.save({k: v.to(dtype) for k, v in tiny_state.items()}, path)
        with pytest.raises(UsageError, match="holds floating-point values there"):
            load_file(get_spec("tiny_cnn"), str(path))


def test_other_float_dtypes_are_converted_with_a_note(tmp_path, tiny_state):
    import torch

    from adapters.pytorch.pretrained import load_file
    from comparator.zoo import get_spec

    path = tmp_path / "f64.pth"
    torch.save({k: v.double() if v.is_floating_point() else v for k, v in tiny_state.items()},
               path)
    arrays, record = load_file(get_spec("tiny_cnn"), str(path))
    floats = sum(1 for v in tiny_state.values() if v.is_floating_point())
    assert record["dtype_conversions"] == {"float64": floats}
    assert "converted to float32" in record["note"]
    assert {a.dtype for a in arrays.values() if a.dtype.kind == "f"} == {np.dtype(np.float32)}


def test_a_zip_bomb_checkpoint_is_refused_before_reading(tmp_path):
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb/data/0", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(200):  # 200 MiB of zeros, about 200 kB compressed
                member.write(block)
    assert os.path.getsize(path) < 1 << 20
    (tmp_path / "o").mkdir()
    result = compare(*TINY, "--weights", "bomb.pth", "--json", "o/r.json", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "declares 0.2 GiB uncompressed, more than a tiny_cnn state_dict" in lines[0]


NOT_A_CHECKPOINT = "not a checkpoint of this kind (it starts neither as a pickle nor"
NOT_A_ZIP = "not a .keras file (Keras saves a model as a zip archive; this file is not one)"
NOT_HDF5 = "not an HDF5 file (Keras writes .weights.h5 and .h5 files as HDF5)"


@pytest.mark.parametrize("option,name,message", [
    ("--weights", "notes.pt", NOT_A_CHECKPOINT),
    ("--pytorch-weights", "notes.pt", NOT_A_CHECKPOINT),
    ("--weights", "notes.keras", NOT_A_ZIP),
    ("--keras", "notes.keras", NOT_A_ZIP),
    ("--weights", "notes.weights.h5", NOT_HDF5),
    ("--keras-weights", "notes.weights.h5", NOT_HDF5),
])
def test_a_file_that_is_no_checkpoint_is_named_so(tmp_path, option, name, message):
    """The frameworks' own errors misled here: torch.load's weights-only loader refuses bytes
    of text as it refuses a pickle holding code; Keras calls a .keras file that is no zip
    archive 'File not found', and a .weights.h5 that is no HDF5 file did 'not fit'."""
    (tmp_path / name).write_bytes(b"not a checkpoint at all\n")
    (tmp_path / "net.py").write_text(
        "import torch\n\n\ndef torch_net():\n    return torch.nn.Conv2d(3, 2, 3)\n\n\n"
        "def keras_net():\n    import keras\n\n"
        "    return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)])\n")
    pair = {"--pytorch": "net.py:torch_net", "--keras": "net.py:keras_net"}
    pair[option] = name
    args = TINY + ["--weights", name] if option == "--weights" else [
        *[item for flag_value in pair.items() for item in flag_value], "--input-shape", "3,8,8",
        "--no-onnx", "--quiet"]
    result = compare(*args, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert f"{name}: {message}" in lines[0]


def test_a_pickle_the_weights_only_loader_cannot_read_is_not_called_code(tmp_path):
    import pickle

    from adapters.pytorch.pretrained import load_file
    from comparator.zoo import get_spec

    path = tmp_path / "arrays.pth"
    with open(path, "wb") as handle:  # protocol 4's frames: not torch.save's protocol 2
        pickle.dump({"conv1.weight": [0.0]}, handle, protocol=4)
    with pytest.raises(UsageError, match=r"a pickle that torch.load's weights-only loader "
                                         r"cannot read \(Unsupported operand 149\)"):
        load_file(get_spec("tiny_cnn"), str(path))


def test_library_warnings_become_one_line_each():
    from comparator.cli.compare import _capture_warnings

    saved = warnings.showwarning
    try:
        captured = _capture_warnings()
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("first line\nsecond line\n\x1b[31mthird", UserWarning, stacklevel=1)
    finally:
        warnings.showwarning = saved
    assert captured == ["UserWarning: first line"]
