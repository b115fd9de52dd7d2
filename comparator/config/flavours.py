"""Keras flavours a comparison can name: a backend, a version, or Keras 2.

    keras, keras-torch            Keras 3 of the project's environment, in process, on torch
    keras-tensorflow, keras-jax   the same Keras in a worker on that backend
    keras-<backend>@3.6.0         a Keras 3 release, in a worker, from an overlay
    keras-<backend>@nightly       the keras-nightly package's newest build, from an overlay
    tf-keras                      Keras 2 (the tf_keras package) on TensorFlow, in a worker

Only the standard library is imported here; adapters/keras/overlays.py builds the
overlays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from comparator.errors import UsageError

BACKENDS = {"keras": "torch", "keras-torch": "torch", "keras-tensorflow": "tensorflow",
            "keras-jax": "jax"}
TF_KERAS = "tf-keras"
NIGHTLY = "nightly"
# A Keras release (3.6.0, 3.0.5) or a development build (3.16.0.dev2026102704).
_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?([.-]?(dev|rc|a|b)\d+)*$")


@dataclass(frozen=True)
class Flavour:
    name: str  # as run ids show it: keras, keras-tensorflow, keras-torch@3.6.0, tf-keras
    backend: str
    package: str | None = None  # the registry package of an overlay (keras, keras-nightly)
    version: str | None = None  # as asked: 3.6.0 or nightly; None: the environment's

    @property
    def overlay(self) -> bool:
        return self.package is not None

    @property
    def keras2(self) -> bool:
        return self.name == TF_KERAS


def parse(name: str) -> Flavour | None:
    """The flavour a Keras framework name means, None for a name that is no Keras flavour;
    UsageError for a Keras name with a version that cannot be one."""
    if name == TF_KERAS:
        return Flavour(TF_KERAS, "tensorflow")
    base, at, version = name.partition("@")
    if base not in BACKENDS:
        if base == TF_KERAS and at:
            raise UsageError("tf-keras takes no version: it is the tf_keras package installed "
                             "with the tensorflow extra")
        return None
    if not at:
        return Flavour("keras" if base == "keras-torch" else base, BACKENDS[base])
    if version != NIGHTLY and not _VERSION.match(version):
        raise UsageError(f"{name!r}: the version after @ must be a Keras 3 release such as "
                         f"3.6.0, or {NIGHTLY}")
    if version != NIGHTLY and not version.startswith("3."):
        raise UsageError(f"{name!r}: only Keras 3 releases run on a backend; Keras 2 is "
                         f"{TF_KERAS}")
    prefix = "keras-torch" if base == "keras" else base
    package = "keras-nightly" if version == NIGHTLY else "keras"
    return Flavour(f"{prefix}@{version}", BACKENDS[base], package, version)


def base_framework(name: str) -> str:
    """The framework whose recipes a flavour runs: keras-torch@3.6.0 -> keras (the Keras
    recipes), keras-jax@nightly -> keras-jax; other names are their own."""
    flavour = parse(name)
    if flavour is None or not flavour.overlay:
        return name
    return {"torch": "keras"}.get(flavour.backend, f"keras-{flavour.backend}")
