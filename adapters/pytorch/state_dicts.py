"""A PyTorch state_dict file read weights-only: .pt/.pth through torch.load(weights_only=True),
which refuses a pickle that would run code, and .safetensors through safetensors. Shared by
`--weights FILE` for a zoo model and `--pytorch-weights FILE` for a user's pair."""

from __future__ import annotations

import pickle

import torch

from comparator.errors import UsageError
from comparator.inputs.checkpoints import refused_pickle, unreadable_checkpoint


def read_state_dict(path: str) -> dict:
    """The names and tensors the file holds (a training checkpoint's `state_dict` entry
    where it wraps them)."""
    try:
        state = _safetensors(path) if path.lower().endswith(".safetensors") else \
            torch.load(path, map_location="cpu", weights_only=True)
    except UsageError:
        raise
    except pickle.UnpicklingError as exc:  # also what a file that is no pickle gives
        raise refused_pickle(path, exc) from None
    except Exception as exc:  # noqa: BLE001 - truncated, or not a torch file
        raise unreadable_checkpoint(path, exc) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # training checkpoints often wrap it
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise UsageError(f"{path} is not a state_dict (a mapping of names to tensors)")
    return state


def _safetensors(path: str) -> dict:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise UsageError("reading .safetensors needs the safetensors package: "
                         "pip install safetensors") from None
    return load_file(path, device="cpu")
