"""The differences a zoo entry keeps on purpose, noted rather than failed when
validate_zoo_model validates it: torchvision's classifier Dropout that keras.applications
lacks (the entry's known differences say so), and each framework's default BatchNorm
momentum (the entry's bn_momentum)."""

from __future__ import annotations

import dataclasses

import numpy as np


def zoo_dropout(spec, dropout):
    """A Dropout difference the zoo entry keeps on purpose (its known differences say so:
    torchvision's classifier Dropout that keras.applications lacks) is noted, not failed."""
    known = next((d for d in spec.known_differences if d.startswith("Dropout:")), None)
    differing = [d for d in dropout if d.diverges]
    if known is None or not differing:
        return dropout, ""
    kept = tuple(dataclasses.replace(d, diverges=False) if d.diverges else d for d in dropout)
    return kept, (f"Dropout differs in {len(differing)} of {len(dropout)} pairs "
                  f"({'; '.join(d.text for d in differing)}), as the zoo entry states: "
                  f"{known} Not counted as a divergence")


def zoo_momentum(spec, statistics):
    """The zoo keeps each framework's default BatchNorm momentum on purpose (compare.py
    studies it): a momentum difference that is the spec's own is noted, not failed."""
    wanted = spec.bn_momentum
    if not wanted or "keras" not in wanted:
        return statistics, ""
    expected = (wanted.get("pytorch"), 1.0 - wanted["keras"])
    kept, deliberate = [], 0
    for s in statistics:
        if s.cause == "momentum" and np.allclose((s.torch_momentum, s.keras_momentum),
                                                 expected, rtol=0, atol=1e-9):
            s = dataclasses.replace(s, diverges=False)
            deliberate += 1
        kept.append(s)
    if not deliberate:
        return statistics, ""
    return tuple(kept), (
        f"BatchNorm momentum differs in {deliberate} layers after a training step (PyTorch "
        f"{expected[0]:g}, Keras {expected[1]:g} in PyTorch's convention; Keras states "
        f"momentum={wanted['keras']:g}): the zoo keeps each framework's default on purpose, "
        "so this is not counted as a divergence")
