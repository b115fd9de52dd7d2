"""Why a model with an Embedding refused its batch, in words: ids given as floats, or ids
outside the Embedding's vocabulary (PyTorch says only "index out of range in self"). Both
compare.py's batch check (adapters/own_pair/setup.py) and the port validator's trace
(adapters/port_validation/graph.py) add it to the model's own error."""

from __future__ import annotations

import numpy as np
from torch import nn

FLOAT_IDS = "; an Embedding takes token ids: give them as integers, x of --inputs FILE.npz"


def token_ids_hint(model: nn.Module, inputs) -> str:
    """'' where the model has no Embedding or its inputs explain nothing; else "; ..." naming
    what to change. inputs: the model's input arrays, in forward()'s order."""
    embeddings = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Embedding)]
    arrays = [np.asarray(a) for a in inputs]
    if not embeddings or not arrays:
        return ""
    if arrays[0].dtype.kind == "f":
        return FLOAT_IDS
    ids = [a for a in arrays if a.dtype.kind in "iu" and a.size]
    if not ids:
        return ""
    low, high = min(int(a.min()) for a in ids), max(int(a.max()) for a in ids)
    outside = [(name, m) for name, m in embeddings if low < 0 or high >= m.num_embeddings]
    if not outside:
        return ""
    name, embedding = outside[0]  # the first in the model's order: its token table, mostly
    rows = embedding.num_embeddings
    return (f"; the token ids run from {low} to {high}, and Embedding "
            f"{name or type(model).__name__} (num_embeddings={rows}) takes ids 0 to {rows - 1}")
