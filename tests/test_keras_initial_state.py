"""The Keras adapter on torch holds its initial state once: each ported variable is restored
from a view of its canonical array (the arrays the comparison compares with) in Keras's
layout, not from a copy of its own, and a reset after a train step gives every variable back
bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from comparator.config.recipes import recipes_for
from comparator.zoo.portmaps import keras_layout_axes, to_keras_layout

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TRAIN = next(r for r in recipes_for("keras") if r.id == "keras:train")


def _values(adapter) -> list[np.ndarray]:
    from adapters.keras.backend import keras

    return [keras.ops.convert_to_numpy(v).copy() for v in adapter._variables]


@pytest.mark.parametrize("fixture", ["tiny_classify", "densenet_classify"])
def test_the_initial_state_is_held_once_and_restored_bit_for_bit(request, fixture):
    import torch

    outcome = request.getfixturevalue(fixture)
    adapter, batch = outcome.adapters["keras"], outcome.batch
    adapter.reset()
    initial = _values(adapter)
    canonical = list(adapter._initial_canonical.values())
    views = [s for s in adapter._initial_state if isinstance(s, torch.Tensor)]
    permutable = [name for name, _, _, kind in adapter._named_arrays()
                  if keras_layout_axes(kind, name) is not None]
    assert len(views) == len(permutable) > 0
    assert all(any(np.shares_memory(view.numpy(), array) for array in canonical)
               for view in views)
    adapter.run_recipe(TRAIN, batch, 1, 0.01, ablate=False)
    assert any(not np.array_equal(now, then) for now, then in zip(_values(adapter), initial))
    adapter.reset()
    assert all(now.tobytes() == then.tobytes()
               for now, then in zip(_values(adapter), initial))


@pytest.mark.parametrize("kind,name,shape", [
    ("conv", "features.conv0.weight", (8, 3, 3, 3)),
    ("depthwise", "block.conv.weight", (6, 1, 3, 3)),
    ("dense", "classifier.weight", (5, 7)),
    ("dense", "classifier.bias", (5,)),
    ("bn", "norm.running_var", (4,)),
])
def test_the_permutation_gives_what_to_keras_layout_gives(kind, name, shape):
    array = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    axes = keras_layout_axes(kind, name)
    assert np.array_equal(array.transpose(axes) if axes else array,
                          to_keras_layout(kind, name, array))


def test_a_reordered_kernel_and_other_backends_keep_copies():
    from adapters.keras.hooks import BackendHooks

    array = np.zeros((4, 2 * 3 * 3), np.float32)
    assert keras_layout_axes("flatten_dense:2,3,3", "fc.weight") is None
    torch_hooks = BackendHooks("torch")
    assert torch_hooks.restore_view(array, None) is None
    assert torch_hooks.restore_view(array, (1, 0)) is not None
    array.flags.writeable = False  # torch would warn that it cannot share it
    assert torch_hooks.restore_view(array, (1, 0)) is None
    assert BackendHooks("tensorflow").restore_view(np.zeros(3, np.float32), ()) is None
