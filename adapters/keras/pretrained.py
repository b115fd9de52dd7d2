"""Pretrained Keras checkpoints: keras.applications' ImageNet weights (read from Keras's
cache, $KERAS_HOME/models), `.weights.h5` and `.keras` files, and the reverse port of Keras
weights to the canonical layout (torchvision names, PyTorch layouts).

keras.applications' own `weights="imagenet"` re-downloads a cached file whose md5 differs
from the published one and, with a classifier, accepts only 224 px inputs; so the cached file
is located as keras.utils.get_file names it and given to the same builder as a path
(`weights=<file>`), which loads it with model.load_weights, as `weights="imagenet"` does.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from adapters.keras.backend import keras
from adapters.keras.models import build_base
from comparator.inputs.checkpoints import (
    checkpoint_record,
    file_digest,
    keras_file_problem,
    missing_checkpoint,
    offline,
    unreadable_checkpoint,
)
from comparator.errors import UsageError
from comparator.zoo import ModelSpec
from comparator.zoo.portmaps import from_keras_layout, port_plan


def keras_home() -> str:
    try:
        from keras.src.backend.config import keras_home as home

        return os.path.expanduser(home())
    except ImportError:  # the private accessor moved: Keras's documented default
        return os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))


def imagenet_cache_path(spec: ModelSpec) -> str:
    return os.path.join(keras_home(), "models", spec.keras_imagenet.file)


def load_imagenet(spec: ModelSpec, image_size: int):
    """keras.applications' model with its ImageNet checkpoint, and the checkpoint's record."""
    file_name, url, md5 = (spec.keras_imagenet.file, spec.keras_imagenet.url,
                           spec.keras_imagenet.md5)
    path = imagenet_cache_path(spec)
    what = f"keras.applications checkpoint of {spec.keras_builder}"
    if not os.path.isfile(path):
        if offline():
            raise missing_checkpoint(what, path, url, "KERAS_HOME")
        try:
            with _download_announcement_off():
                path = keras.utils.get_file(file_name, url, cache_subdir="models",
                                            file_hash=md5)
        except Exception as exc:  # noqa: BLE001 - no network, refused, interrupted
            raise missing_checkpoint(what, path, url, "KERAS_HOME",
                                     reason=str(exc).splitlines()[0][:120]) from None
    builder = getattr(keras.applications, spec.keras_builder)
    try:
        model = builder(weights=path, include_top=True, classifier_activation=None,
                        input_shape=(image_size, image_size, 3))
    except Exception as exc:  # noqa: BLE001 - truncated file, other architecture
        raise unreadable_checkpoint(path, exc) from None
    record = checkpoint_record("keras", f"keras.applications {spec.keras_builder} imagenet",
                               path, url=url, published_md5=md5)
    record["matches_published_hash"] = file_digest(path, "md5") == md5
    return model, record


@contextlib.contextmanager
def _download_announcement_off():
    """keras.utils.get_file writes 'Downloading data from URL' to stdout before it tries
    (interactive logging); a failed download ends in one line, ours."""
    enabled = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    try:
        yield
    finally:
        if enabled:
            keras.config.enable_interactive_logging()


def load_file(spec: ModelSpec, image_size: int, path: str):
    """A `.weights.h5` (or legacy `.h5`) file, or a `.keras` model file (loaded with
    safe_mode=True), in the Keras model of the spec (with its classifier)."""
    problem = keras_file_problem(path)
    if problem:
        raise UsageError(f"cannot load the checkpoint {path}: {problem}")
    model = build_base(spec, image_size, include_top=True)
    try:
        if path.lower().endswith(".keras"):
            loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
            by_name = {layer.name: layer for layer in loaded.layers}
            for layer in model.layers:
                if not layer.weights:
                    continue
                if layer.name not in by_name:
                    raise UsageError(f"{os.path.basename(path)} has no layer named "
                                     f"{layer.name!r}, which {spec.name} needs")
                layer.set_weights(by_name[layer.name].get_weights())
        else:
            model.load_weights(path)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt, truncated, unsafe or mismatched
        raise unreadable_checkpoint(path, exc) from None
    return model, checkpoint_record("keras", "file", path)


def canonical_arrays(model, spec: ModelSpec, template: dict[str, np.ndarray]) -> dict:
    """The reverse port: the Keras model's weights under the template's canonical names,
    in PyTorch layout (the template gives names, shapes and ranks)."""
    layers = {layer.name: layer for layer in model.layers}
    arrays = {}
    for port in port_plan(spec.layer_names, template):
        layer = layers.get(port.keras_layer)
        if layer is None:
            raise UsageError(f"the Keras checkpoint's model has no layer {port.keras_layer!r}")
        values = layer.get_weights()
        if len(values) != len(port.canonical_names):
            raise UsageError(f"Keras layer {layer.name} has {len(values)} arrays, "
                             f"{port.module} needs {len(port.canonical_names)}")
        for name, value in zip(port.canonical_names, values):
            array = from_keras_layout(port.kind, name, np.asarray(value, np.float32))
            if array.shape != template[name].shape:
                raise UsageError(f"shape mismatch porting {layer.name} to {name}: "
                                 f"{array.shape} vs {template[name].shape}")
            arrays[name] = array
    return arrays
