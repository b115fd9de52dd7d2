"""Real checkpoints and real photos, offline: each test writes the checkpoint it loads under
the name the framework's own cache uses, and never downloads."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from comparator.inputs.checkpoints import OFFLINE_ENV, file_sha256, without_cross_training_checks
from comparator.errors import UsageError
from comparator.zoo import get_spec
from comparator.schema import Check, Report
from comparator.config import CompareConfig
from comparator.pipeline import compare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "compare.py")
TORCH_FILE = "densenet121-a639ec97.pth"  # the basename of DenseNet121_Weights.IMAGENET1K_V1.url
SMALL = dict(batch_size=2, image_size=32)
# One recipe keeps these runs short: what is tested is the loading, and the Keras model is
# built, loaded and compared with PyTorch's (the port check) whatever recipes run.
RECIPES = ("pytorch:eval_requires_grad",)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv(OFFLINE_ENV, "1")


@pytest.fixture(scope="module")
def torch_checkpoint(tmp_path_factory):
    """A randomly initialised DenseNet121 state_dict, laid out as torchvision's published file
    is: old-style 'norm.1' keys that torchvision's loader renames, no num_batches_tracked."""
    import torch
    import torchvision

    torch.manual_seed(1)
    state = torchvision.models.densenet121(weights=None).state_dict()
    old_style = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v
                 for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert old_style.keys() != state.keys()
    home = tmp_path_factory.mktemp("torch_home")
    path = home / "hub" / "checkpoints" / TORCH_FILE
    path.parent.mkdir(parents=True)
    torch.save(old_style, path)
    return home, path, state


@pytest.fixture(scope="module")
def keras_checkpoint(tmp_path_factory):
    """A randomly initialised keras.applications DenseNet121 in the legacy HDF5 weights
    format of keras.applications' published file, under its cache name."""
    import h5py
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    from adapters.keras.backend import keras

    keras.utils.set_random_seed(2)
    model = keras.applications.DenseNet121(weights=None, input_shape=(32, 32, 3),
                                           classifier_activation=None)
    home = tmp_path_factory.mktemp("keras_home")
    path = home / "models" / get_spec("densenet121").keras_imagenet.file
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as handle:
        save_weights_to_hdf5_group(handle, model)
    return home, path, model


def _keras_home(monkeypatch, home):
    # Keras fixes KERAS_HOME when it is imported; point its accessor at the test's folder.
    import keras.src.backend.config as config

    monkeypatch.setattr(config, "_KERAS_DIR", str(home))


def test_imagenet_reads_torchvision_cache_and_ports_to_keras(torch_checkpoint, monkeypatch):
    home, path, state = torch_checkpoint
    monkeypatch.setenv("TORCH_HOME", str(home))
    outcome = compare(CompareConfig(model="densenet121", weights="imagenet", recipes=RECIPES,
                                    **SMALL))
    settings = outcome.report.settings
    assert settings["weights"] == "imagenet:pytorch"
    [record] = settings["checkpoints"]
    assert record["file"] == TORCH_FILE and record["sha256"] == file_sha256(path)
    assert record["framework"] == "pytorch" and record["matches_published_hash"] is False
    loaded = outcome.adapters["pytorch"].canonical_weights()
    np.testing.assert_array_equal(
        loaded["features.denseblock1.denselayer1.norm1.weight"],
        state["features.denseblock1.denselayer1.norm1.weight"].numpy())
    assert outcome.report.checks_passed  # the port check: Keras computes the same function


def test_imagenet_keras_is_reverse_ported(keras_checkpoint, monkeypatch):
    home, path, model = keras_checkpoint
    _keras_home(monkeypatch, home)
    outcome = compare(CompareConfig(model="densenet121", weights="imagenet-keras",
                                    recipes=RECIPES, **SMALL))
    settings = outcome.report.settings
    assert settings["weights"] == "imagenet:keras"
    assert settings["checkpoints"][0]["sha256"] == file_sha256(path)
    kernel = model.get_layer("conv1_conv").get_weights()[0]  # H, W, I, O
    ported = outcome.adapters["pytorch"].canonical_weights()["features.conv0.weight"]
    np.testing.assert_array_equal(ported, kernel.transpose(3, 2, 0, 1))
    assert outcome.report.checks_passed


def test_imagenet_both_reports_the_distance_not_a_port_check(torch_checkpoint,
                                                              keras_checkpoint, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_checkpoint[0]))
    _keras_home(monkeypatch, keras_checkpoint[0])
    outcome = compare(CompareConfig(model="densenet121", weights="imagenet-both",
                                    recipes=RECIPES, **SMALL))
    settings = outcome.report.settings
    assert [r["framework"] for r in settings["checkpoints"]] == ["pytorch", "keras"]
    distance = settings["trainings_distance"]["keras_vs_pytorch"]
    assert distance["max_abs_logit_diff"] > 1e-3 and 0 <= distance["top1_agreement"] <= 1
    assert not any(c.name.startswith("port:") for c in outcome.report.checks)
    assert any("different trainings" in note for note in settings["notes"])


def test_cross_framework_referee_checks_are_left_out_for_separate_trainings():
    names = ["referee:onnx_eval_pytorch_graph_vs_pytorch", "referee:onnx_eval_keras_graph_vs_keras",
             "referee:onnx_eval_pytorch_graph_vs_keras", "referee:onnx_eval_keras_graph_vs_pytorch",
             "referee:onnx_eval_pytorch_graph_vs_keras_graph",
             "referee:onnx_eval_loss_vs_pytorch_inference",
             "referee:onnx_eval_loss_vs_keras_inference", "referee:onnx_eval_vs_pytorch:eval",
             "referee:train_forward_vs_keras:train", "referee:train_forward_vs_pytorch:train"]
    report = Report(model="m", scenario="classify", settings={}, environment={}, runs=(),
                    checks=tuple(Check(n, False, 1.0, 0.0) for n in names))
    kept = [c.name for c in without_cross_training_checks(report).checks]
    assert kept == [names[0], names[1], names[5], names[7], names[9]]


def test_malicious_pickle_is_refused_and_never_runs(tmp_path, monkeypatch):
    import torch

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"conv1.weight": Payload()}, evil)
    with pytest.raises(UsageError, match="refused the checkpoint .*evil.pt"):
        compare(CompareConfig(model="tiny_cnn", weights=str(evil), **SMALL))
    # The same file where torchvision's loader looks for DenseNet121's checkpoint.
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / TORCH_FILE).write_bytes(evil.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    from adapters.pytorch.pretrained import load_imagenet

    with pytest.raises(UsageError, match="refused the checkpoint .*" + TORCH_FILE):
        load_imagenet(get_spec("densenet121"))
    assert not marker.exists()


def test_truncated_checkpoints_get_a_clear_error(tmp_path, keras_checkpoint, monkeypatch):
    import torch

    from adapters.pytorch.models import build_network

    whole = tmp_path / "tiny.pt"
    torch.save(build_network(get_spec("tiny_cnn")).state_dict(), whole)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole.read_bytes()[:200])
    with pytest.raises(UsageError, match="cannot load the checkpoint .*cut.pth: truncated"):
        compare(CompareConfig(model="tiny_cnn", weights=str(cut), **SMALL))
    home = tmp_path / "keras_home"
    (home / "models").mkdir(parents=True)
    name = get_spec("densenet121").keras_imagenet.file
    (home / "models" / name).write_bytes(keras_checkpoint[1].read_bytes()[:4096])
    _keras_home(monkeypatch, home)
    from adapters.keras.pretrained import load_imagenet

    with pytest.raises(UsageError, match=f"cannot load the checkpoint .*{name}: truncated"):
        load_imagenet(get_spec("densenet121"), 32)


def test_state_dict_files_from_both_frameworks(tmp_path):
    """A .safetensors state_dict (PyTorch source) and a Keras .weights.h5 file (Keras
    source, reverse-ported), each recorded with its sha256; the port check holds."""
    import torch
    from safetensors.torch import save_file

    from adapters.keras.backend import keras
    from adapters.keras.models import build_base
    from adapters.pytorch.models import build_network

    torch.manual_seed(3)
    state = build_network(get_spec("tiny_cnn")).state_dict()
    tensors = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, tensors)
    keras.utils.set_random_seed(4)
    keras_file = tmp_path / "tiny.weights.h5"
    build_base(get_spec("tiny_cnn"), 16, include_top=True).save_weights(keras_file)
    for path, source in ((tensors, "pytorch"), (keras_file, "keras")):
        outcome = compare(CompareConfig(model="tiny_cnn", weights=str(path), batch_size=2,
                                        image_size=16, recipes=("pytorch:eval",
                                                                "keras:trainable_false")))
        [record] = outcome.report.settings["checkpoints"]
        assert record["sha256"] == file_sha256(path) and record["framework"] == source
        assert outcome.report.settings["weights"] == f"file:{source}"
        assert outcome.report.checks_passed


def test_sample_photos_with_labels_from_the_reference_model():
    outcome = compare(CompareConfig(model="tiny_cnn", images=("samples",), image_size=16,
                                    recipes=("pytorch:eval",)))
    settings = outcome.report.settings
    count = settings["images"]["count"]
    assert count >= 5 and settings["batch_size"] == count == len(outcome.batch)
    assert "chelsea.png" in settings["images"]["files"]
    logits = outcome.adapters["pytorch"].logits(outcome.batch)
    assert settings["labels"] == "predicted"
    assert settings["label_values"]["values"] == logits.argmax(axis=1).tolist()
    assert outcome.batch.x.shape == (count, 3, 16, 16)


def test_preprocessing_matches_keras_applications():
    from adapters.keras.backend import keras
    from comparator.inputs.images import preprocess, sample_photos, decode

    pixels = np.stack([decode(p, 24) for p in sample_photos()[:2]])
    for model, mode in (("resnet50", "caffe"), ("mobilenet_v2", "tf"), ("densenet121", "torch")):
        ours = preprocess(pixels, get_spec(model).preprocessing["keras"])
        theirs = keras.applications.imagenet_utils.preprocess_input(pixels * 255.0, mode=mode)
        np.testing.assert_allclose(ours.transpose(0, 2, 3, 1), theirs, atol=2e-4)


def _cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          env={**os.environ, OFFLINE_ENV: "1", **(env or {})}, cwd=cwd,
                          timeout=600)


def test_missing_checkpoint_offline_names_the_file_and_exits_2(tmp_path):
    result = _cli("densenet121", "--weights", "imagenet", "--image-size", "32",
                  env={"TORCH_HOME": str(tmp_path / "th")}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    expected = os.path.join(str(tmp_path / "th"), "hub", "checkpoints", TORCH_FILE)
    assert expected in lines[0] and "https://download.pytorch.org/models/" in lines[0]
    assert os.listdir(tmp_path) == []  # nothing written, not even the cache folder


@pytest.mark.parametrize("make,args,message", [
    (lambda d: (d / "notes.png").write_text("hello"), ["--images", "notes.png"],
     "notes.png is not a readable image"),
    (lambda d: (d / "empty.jpg").write_bytes(b""), ["--images", "empty.jpg"],
     "empty.jpg is empty (0 bytes)"),
    (lambda d: (d / "folder").mkdir(), ["--images", "folder"],
     "the folder folder has no JPEG or PNG file"),
    (None, ["--images", "nowhere.jpg"], "nowhere.jpg does not exist"),
    (None, ["--images", "samples", "--labels", "1,2"], "give one label or 6 (the batch size)"),
    (None, ["--images", "samples", "--labels", "1,x"], "expected integer class indices"),
    (None, ["--images", "samples", "--scenario", "head", "--targets", "1,2"],
     "give one target or 6"),
    (None, ["--images", "samples", "--targets", "1"], "--targets is for the head scenario"),
    (None, ["--scenario", "head", "--targets", "1,2"], "--targets goes with --images"),
    (None, ["--weights", "nothing.pt"], "nothing.pt does not exist"),
    (lambda d: (d / "w.pt").write_bytes(b""), ["--weights", "w.pt"], "w.pt is empty"),
    (None, ["--weights", "weights.bin"], "neither one of"),
    (lambda d: os.mkfifo(d / "w.pth"), ["--weights", "w.pth"], "w.pth is not a regular file"),
    (lambda d: os.symlink("/dev/zero", d / "z.png"), ["--images", "z.png"],
     "z.png is not a regular file"),
    (lambda d: os.symlink("gone.png", d / "l.png"), ["--images", "l.png"],
     "l.png is a broken symbolic link"),
])
def test_bad_images_and_weights_are_one_line_and_exit_2(tmp_path, make, args, message):
    if make:
        make(tmp_path)
    before = sorted(os.listdir(tmp_path))
    result = _cli("tiny_cnn", *args, "--json", "r.json", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert sorted(os.listdir(tmp_path)) == before  # no report written


def test_keras_imagenet_is_refused_where_keras_trains_another_function():
    result = _cli("resnet50", "--weights", "imagenet-keras")
    assert result.returncode == 2 and "different function" in result.stderr


def test_cli_json_records_images_and_checkpoints(tmp_path):
    import torch

    from adapters.pytorch.models import build_network

    weights = tmp_path / "tiny.pt"
    torch.save(build_network(get_spec("tiny_cnn")).state_dict(), weights)
    result = _cli("tiny_cnn", "--weights", str(weights), "--images", "samples",
                  "--image-size", "16", "--recipes", "pytorch:eval", "--no-onnx", "--quiet",
                  "--labels", "0,1,2,3,4,5", "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    settings = json.loads((tmp_path / "r.json").read_text())["settings"]
    assert settings["checkpoints"][0]["sha256"] == file_sha256(weights)
    assert settings["labels"] == "given" and settings["batch_size"] == 6
    assert settings["label_values"] == {"source": "given", "values": [0, 1, 2, 3, 4, 5]}
    assert settings["preprocessing"]["used"] == "pytorch"


def test_missing_keras_checkpoint_offline_names_the_file(tmp_path, monkeypatch):
    _keras_home(monkeypatch, tmp_path)
    from adapters.keras.pretrained import load_imagenet

    checkpoint = get_spec("densenet121").keras_imagenet
    name, url = checkpoint.file, checkpoint.url
    expected = os.path.join(str(tmp_path), "models", name)
    with pytest.raises(UsageError, match="no cached keras.applications checkpoint") as error:
        load_imagenet(get_spec("densenet121"), 32)
    assert expected in str(error.value) and url in str(error.value)
    assert "KERAS_HOME" in str(error.value) and "\n" not in str(error.value)


def test_a_checkpoint_download_checks_the_hash_and_announces_nothing(tmp_path, capfd):
    """torch.hub's loader wrote 'Downloading: ...' to stderr before trying, so a failed
    download gave two lines; the tool fetches the file itself (a file:// URL here: no
    network in tests), with the hash prefix in its name checked as torchvision's loader does."""
    import hashlib

    from adapters.pytorch.pretrained import _download

    payload = b"checkpoint bytes"
    digest = hashlib.sha256(payload).hexdigest()
    source = tmp_path / "source.pth"
    source.write_bytes(payload)
    good = tmp_path / "hub" / f"net-{digest[:8]}.pth"
    _download(source.as_uri(), str(good), "the test checkpoint")
    assert good.read_bytes() == payload
    wrong = tmp_path / "hub" / "net-00000000.pth"
    with pytest.raises(UsageError, match="no cached the test checkpoint: expected the file "
                                         ".*net-00000000.pth .*the download failed"):
        _download(source.as_uri(), str(wrong), "the test checkpoint")
    assert not wrong.exists() and os.listdir(tmp_path / "hub") == [good.name]
    assert capfd.readouterr() == ("", "")


def test_a_keras_download_announces_nothing(tmp_path, capfd, monkeypatch):
    """keras.utils.get_file printed 'Downloading data from URL' to stdout before trying."""
    from adapters.keras.backend import keras
    from adapters.keras.pretrained import _download_announcement_off

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    source = tmp_path / "weights.h5"
    source.write_bytes(b"weights")
    with _download_announcement_off():
        path = keras.utils.get_file("weights.h5", source.as_uri(), cache_subdir="models")
    assert open(path, "rb").read() == b"weights"
    assert keras.config.is_interactive_logging_enabled()  # put back as it was
    assert capfd.readouterr() == ("", "")
