"""Pretrained PyTorch checkpoints: torchvision's ImageNet weights through torchvision's own
loader, and state_dict files (.pt/.pth with weights_only=True, .safetensors).

Every load is weights-only: torchvision's loader passes weights_only=False to torch.load
(torch 2.14.1), so it is called with TORCH_FORCE_WEIGHTS_ONLY_LOAD=1, which torch.load
reads at each call. A pickle that would run code is refused, never executed.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from urllib.parse import urlparse

import numpy as np
import torch
import torchvision

from adapters.pytorch.models import build_network
from adapters.pytorch.state_dicts import read_state_dict
from comparator.inputs.checkpoints import (
    check_archive_sizes,
    checkpoint_record,
    missing_checkpoint,
    offline,
    refused_pickle,
    unreadable_checkpoint,
)
from comparator.errors import UsageError
from comparator.zoo import ModelSpec


def imagenet_weights(spec: ModelSpec):
    """torchvision's ImageNet weights enum member for the model (IMAGENET1K_V1)."""
    return torchvision.models.get_model_weights(spec.torchvision_builder).IMAGENET1K_V1


def imagenet_cache_path(weights) -> str:
    """Where torch.hub.load_state_dict_from_url keeps the file: $TORCH_HOME/hub/checkpoints."""
    name = os.path.basename(urlparse(weights.url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", name)


@contextlib.contextmanager
def _weights_only():
    names = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    saved = {name: os.environ.pop(name, None) for name in names}
    os.environ[names[0]] = "1"
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def _download(url: str, path: str, what: str) -> None:
    """The checkpoint fetched where torchvision's loader looks for it, its hash checked as
    that loader checks it (the hash prefix in the file's name). torch.hub's loader writes
    'Downloading: ...' to stderr before it tries; a failed download ends in one line, ours."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    named = torch.hub.HASH_REGEX.search(os.path.basename(path))
    try:
        torch.hub.download_url_to_file(url, path, named.group(1) if named else None,
                                       progress=False)
    except Exception as exc:  # noqa: BLE001 - no network, refused, a wrong hash
        raise missing_checkpoint(what, path, url, "TORCH_HOME",
                                 reason=str(exc).splitlines()[0][:120]) from None


def _arrays(net: torch.nn.Module) -> dict[str, np.ndarray]:
    return {name: t.detach().cpu().numpy().copy() for name, t in net.state_dict().items()
            if not name.endswith("num_batches_tracked")}


def load_imagenet(spec: ModelSpec) -> tuple[dict[str, np.ndarray], dict]:
    """torchvision's ImageNet checkpoint as canonical arrays, and its record for the report.

    The file is read from torch.hub's cache; it is downloaded (hash-checked by torchvision)
    only when missing and a download is allowed."""
    weights = imagenet_weights(spec)
    path = imagenet_cache_path(weights)
    cached = os.path.isfile(path)
    what = f"torchvision checkpoint {type(weights).__name__}.IMAGENET1K_V1 of {spec.name}"
    if not cached and offline():
        raise missing_checkpoint(what, path, weights.url, "TORCH_HOME")
    if not cached:
        _download(weights.url, path, what)
    builder = getattr(torchvision.models, spec.torchvision_builder)
    try:
        with _weights_only():
            net = builder(weights=weights, progress=False)
    except pickle.UnpicklingError as exc:
        raise refused_pickle(path, exc) from None
    except Exception as exc:  # noqa: BLE001 - a missing download or an unreadable file
        if not cached and not os.path.isfile(path):
            raise missing_checkpoint(what, path, weights.url, "TORCH_HOME",
                                     reason=str(exc).splitlines()[0][:120]) from None
        raise unreadable_checkpoint(path, exc) from None
    # Checked only on download by torch.hub; a cached file is not: say whether it matches.
    record = checkpoint_record("pytorch", f"torchvision {type(weights).__name__}.IMAGENET1K_V1",
                               path, url=weights.url)
    prefix = os.path.basename(path).rsplit("-", 1)[-1].split(".")[0]
    record["published_hash_prefix"] = prefix
    record["matches_published_hash"] = record["sha256"].startswith(prefix)
    return _arrays(net), record


def load_file(spec: ModelSpec, path: str) -> tuple[dict[str, np.ndarray], dict]:
    """A state_dict file loaded into the model's torchvision (or own) architecture."""
    check_archive_sizes(path, spec.name)
    state = read_state_dict(path)
    net = build_network(spec)
    expected = set(net.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if [m for m in missing if not m.endswith("num_batches_tracked")] or unexpected:
        raise UsageError(f"{os.path.basename(path)} does not fit {spec.name}: "
                         f"{len(missing)} missing keys (e.g. {missing[:2]}), {len(unexpected)} "
                         f"unexpected (e.g. {unexpected[:2]})")
    conversions = checked_dtypes(state, net.state_dict(), os.path.basename(path), spec.name)
    try:
        net.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise UsageError(f"{os.path.basename(path)} does not fit {spec.name}: "
                         f"{str(exc).splitlines()[-1].strip()[:200]}") from None
    record = checkpoint_record("pytorch", "file", path)
    if conversions:
        record["dtype_conversions"] = conversions
        record["note"] = ("converted to float32: " + ", ".join(
            f"{count} {dtype} tensors" for dtype, count in sorted(conversions.items())))
    return _arrays(net), record


def checked_dtypes(state: dict, expected: dict, name: str, model: str) -> dict[str, int]:
    """Integer or boolean tensors where the model holds floating-point parameters are
    refused (load_state_dict would copy them, truncated, and every run would look fine);
    other floating dtypes are converted, and counted for the report."""
    conversions: dict[str, int] = {}
    for key, target in expected.items():
        given = state.get(key)
        if given is None or not target.is_floating_point():
            continue
        if not given.is_floating_point():
            raise UsageError(f"{name}: {key} is {str(given.dtype).replace('torch.', '')}, but "
                             f"{model} holds floating-point values there; save the checkpoint "
                             "with floating-point tensors")
        if given.dtype != target.dtype:
            dtype = str(given.dtype).replace("torch.", "")
            conversions[dtype] = conversions.get(dtype, 0) + 1
    return conversions
