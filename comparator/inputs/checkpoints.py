"""Which checkpoint a comparison starts from (`--weights`), and facts about checkpoint files.

Framework-free: the loaders live in adapters/pytorch_pretrained.py and
adapters/keras/pretrained.py; this module names the choices, checks paths before any
framework is imported, hashes files and words the errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from comparator.errors import UsageError, one_line
from comparator.io import why_not_a_file
from comparator.zoo import ModelSpec

RANDOM = "random-calibrated"
IMAGENET = "imagenet"  # torchvision's checkpoint, ported to Keras
IMAGENET_KERAS = "imagenet-keras"  # keras.applications' checkpoint, ported to PyTorch
IMAGENET_BOTH = "imagenet-both"  # each framework its own checkpoint, not ported
CHOICES = (RANDOM, IMAGENET, IMAGENET_KERAS, IMAGENET_BOTH)
TORCH_SUFFIXES = (".pt", ".pth", ".safetensors")
KERAS_SUFFIXES = (".weights.h5", ".keras")
# Set to 1 to never try a download (tests set it): a missing cached checkpoint is an error.
OFFLINE_ENV = "XFRAME_OFFLINE"


@dataclass(frozen=True)
class WeightsChoice:
    kind: str  # one of CHOICES, or "file"
    path: str | None = None
    source: str = "pytorch"  # the framework whose checkpoint is the source

    @property
    def pretrained(self) -> bool:
        return self.kind != RANDOM

    @property
    def separate(self) -> bool:
        """Each framework keeps its own checkpoint: different trainings, not a port."""
        return self.kind == IMAGENET_BOTH

    @property
    def label(self) -> str:
        if self.kind == "file":
            return f"file:{self.source}"
        if self.kind == IMAGENET:
            return "imagenet:pytorch"
        if self.kind == IMAGENET_KERAS:
            return "imagenet:keras"
        return self.kind


def parse_weights(value: str | None, spec: ModelSpec) -> WeightsChoice:
    """The --weights value, checked before anything heavy runs."""
    value = value or RANDOM
    if value in (RANDOM, IMAGENET, IMAGENET_KERAS, IMAGENET_BOTH):
        choice = WeightsChoice(value, source="keras" if value == IMAGENET_KERAS else "pytorch")
        if value != RANDOM and not spec.torchvision_builder:
            raise UsageError(f"{spec.name} has no ImageNet checkpoint (it is this project's own "
                             "model); give a checkpoint file with --weights PATH")
        if value in (IMAGENET_KERAS, IMAGENET_BOTH) and spec.keras_imagenet is None:
            raise UsageError(
                f"--weights {value}: keras.applications' ImageNet checkpoint of {spec.name} was "
                "trained for a different function than the Keras model compared here (see the "
                "model's known differences); use --weights imagenet (torchvision's, ported)")
        return choice
    lower = value.lower()
    if lower.endswith(TORCH_SUFFIXES):
        source = "pytorch"
    elif lower.endswith(KERAS_SUFFIXES):
        source = "keras"
    elif lower.endswith(".h5"):
        source = "keras"
    else:
        raise UsageError(f"--weights: {value!r} is neither one of {', '.join(CHOICES)} nor a "
                         "checkpoint file (.pt, .pth, .safetensors, .weights.h5, .keras)")
    if os.path.isdir(value):
        raise UsageError(f"--weights: {value} is a directory, not a checkpoint file")
    if not os.path.isfile(value):
        raise UsageError(f"--weights: {value} {why_not_a_file(value)}")
    if os.path.getsize(value) == 0:
        raise UsageError(f"--weights: {value} is empty (0 bytes)")
    return WeightsChoice("file", path=os.path.abspath(value), source=source)


def check_archive_sizes(path: str, model: str) -> None:
    """A zip-format checkpoint (torch.save's) whose members declare more bytes than the
    model's state_dict can hold, in float64, is refused before any member is read (a
    3 MB zip bomb otherwise expands to gigabytes first)."""
    import zipfile

    from comparator.limits import MODEL_SIZES, format_size

    if not zipfile.is_zipfile(path):
        return
    params = MODEL_SIZES.get(model, (0, 0))[0]
    limit = 8 * params + 64 * 1024 ** 2  # float64 of every parameter, plus buffers and pickle
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UsageError(f"--weights: {path} is not a readable checkpoint ({exc})") from None
    if declared > limit:
        raise UsageError(f"--weights: {path} declares {format_size(declared)} uncompressed, "
                         f"more than a {model} state_dict can hold ({format_size(limit)}); "
                         "refused before reading it")


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").lower() in ("1", "true", "yes")


def file_sha256(path: str) -> str:
    return file_digest(path, "sha256")


def file_digest(path: str, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_record(framework: str, source: str, path: str, **extra) -> dict:
    """One checkpoint as the report lists it."""
    return {"framework": framework, "source": source, "file": os.path.basename(path),
            "path": path, "sha256": file_sha256(path), **extra}


def missing_checkpoint(what: str, path: str, url: str, env: str, reason: str = "") -> UsageError:
    """The one line for a checkpoint that is not in the framework's cache."""
    why = f"the download failed ({reason})" if reason else f"{OFFLINE_ENV} is set, so nothing "\
        "is downloaded"
    return UsageError(f"no cached {what}: expected the file {path} ({env} sets the cache "
                      f"folder); {why}; copy {url} there from a machine with a network")


def unreadable_checkpoint(path: str, exc: BaseException) -> UsageError:
    reason = one_line(str(exc), 300) or type(exc).__name__
    return UsageError(f"cannot load the checkpoint {path}: truncated, corrupt or not a "
                      f"checkpoint of this kind ({reason})")


def refused_pickle(path: str, exc: BaseException) -> UsageError:
    """torch.load's weights-only refusal, which it also gives a file that is no pickle at all
    (bytes of text: 'Unsupported operand 110'): that one is named unreadable instead."""
    if not _pickle_or_zip(path):
        return UsageError(f"cannot load the checkpoint {path}: not a checkpoint of this kind "
                          "(it starts neither as a pickle nor as a zip archive, as torch.save "
                          "writes them)")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "global" in line.split(":")[0]]
    if named:
        return UsageError(f"refused the checkpoint {path}: it holds pickled objects other than "
                          "tensors (loading it would run code); only weights are loaded, with "
                          f"weights_only=True ({named[0][:160]})")
    # Another opcode (a protocol-4 pickle's frames: 'Unsupported operand 149'): a pickle
    # that loader cannot read, whatever it holds.
    reason = next((line for line in lines if line.startswith("Unsupported")),
                  lines[0] if lines else type(exc).__name__)
    return UsageError(f"refused the checkpoint {path}: a pickle that torch.load's weights-only "
                      f"loader cannot read ({reason[:160]}); save the state_dict with "
                      "torch.save")


def _pickle_or_zip(path: str) -> bool:
    """Whether the file starts as torch.save writes: a zip archive, or (the legacy format) a
    pickle's protocol opcode."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(4)
    except OSError:
        return True  # not this function's to say
    return start.startswith(b"PK\x03\x04") or start[:1] == b"\x80"


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def keras_file_problem(path: str) -> str | None:
    """Why a Keras file is not the kind its name says, or None. Keras's own errors mislead
    here: a .keras file that is no zip archive is 'File not found', and a .weights.h5 that is
    no HDF5 file 'does not fit' the model."""
    name = path.lower()
    if name.endswith(".keras") and not zipfile.is_zipfile(path):
        return "not a .keras file (Keras saves a model as a zip archive; this file is not one)"
    if name.endswith(".h5") and not _has_hdf5_signature(path):
        return "not an HDF5 file (Keras writes .weights.h5 and .h5 files as HDF5)"
    return None


def keras_file_classes(path: str) -> list[tuple[str, str]]:
    """(registered name, module) of every class a .keras file's config names from outside
    Keras: the user's own layers and models, which load only where Keras can find them."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    found, stack = [], [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            module = item.get("module")
            if "class_name" in item and isinstance(module, str) and \
                    module.split(".")[0] != "keras":
                entry = (item.get("registered_name") or item["class_name"], module)
                found += [entry] if entry not in found else []
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _has_hdf5_signature(path: str) -> bool:
    """At offset 0, or after a user block (512 bytes and each doubling), as HDF5 allows."""
    with open(path, "rb") as handle:
        offset = 0
        while True:
            handle.seek(offset)
            start = handle.read(len(HDF5_SIGNATURE))
            if start == HDF5_SIGNATURE:
                return True
            if len(start) < len(HDF5_SIGNATURE):
                return False
            offset = 512 if offset == 0 else offset * 2


def record_distance(settings: dict, framework: str, reference, other) -> None:
    """Put the distance between PyTorch's and another framework's training in the settings,
    with a note the terminal shows."""
    found = training_distance(reference, other)
    settings.setdefault("trainings_distance", {})[f"{framework}_vs_pytorch"] = found
    agreement = found["top1_agreement"]
    agree = f"top-1 agreement {agreement:.0%}, " if agreement is not None else ""
    settings.setdefault("notes", []).append(
        f"different trainings: {framework} vs pytorch on this batch: {agree}max abs logit "
        f"difference {found['max_abs_logit_diff']:.3g} (mean {found['mean_abs_logit_diff']:.3g})")


def training_distance(reference: np.ndarray, other: np.ndarray) -> dict:
    """How far apart two differently trained models' predictions are on the batch."""
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    agreement = float(np.mean(reference.argmax(axis=1) == other.argmax(axis=1))) \
        if reference.ndim == 2 and reference.shape[1] > 1 else None
    return {"max_abs_logit_diff": float(np.max(np.abs(reference - other))),
            "mean_abs_logit_diff": float(np.mean(np.abs(reference - other))),
            "top1_agreement": agreement}


def _applies_to_separate_trainings(name: str) -> bool:
    """A referee check that compares within one framework (or PyTorch's graph with PyTorch)."""
    if not name.startswith("referee:"):
        return True
    if name.startswith("referee:onnx_eval_") and not name.startswith("referee:onnx_eval_vs_"):
        graph, _, other = name[len("referee:onnx_eval_"):].partition("_vs_")
        graph = graph.replace("_graph", "").replace("loss", "pytorch")
        other = other.replace("_graph", "").replace("_inference", "")
        return graph == other
    return "keras" not in name


def without_cross_training_checks(report):
    """With each framework on its own checkpoint, the referee's cross-framework checks
    compare two trainings: they are left out of the checks and named in the settings."""
    from dataclasses import replace

    kept = tuple(c for c in report.checks if _applies_to_separate_trainings(c.name))
    left = [c.name for c in report.checks if c not in kept]
    settings = {**report.settings, "checks_not_applicable": left}
    return replace(report, checks=kept, settings=settings)
