"""A user pair's Keras workers run beside each other where the estimate of every process's
peak fits the memory at once, as a zoo model's do (comparator.limits): the estimate rests on
the user's PyTorch model's counts (parameters, the values its leaf modules output, the
inputs), counted here against hand arithmetic. Before, every worker after the first waited
for the one before it, whatever the model's size."""

import numpy as np
import pytest
import torch
from torch import nn

from comparator import pipeline
from comparator.config import CompareConfig
from comparator.config.pair import UserPair
from comparator.inputs.batch import Batch
from comparator.limits import GIB, peak_bytes


def _adapter(model):
    from adapters.pytorch.user import PyTorchUserAdapter
    from adapters.own_pair.loader import LoadedModel

    adapter = PyTorchUserAdapter()
    adapter.adopt(LoadedModel(model, "pytorch", "net", "<object>"), None, "classify", 0)
    return adapter


def test_the_counts_are_the_models_parameters_outputs_and_inputs():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU())
    x = np.zeros((5, 4), np.float32)
    # Linear 4*3+3; BatchNorm weight, bias, running mean and variance, batches tracked 1.
    # Each of the three leaves outputs 3 values per sample; a sample is 4 inputs.
    assert _adapter(net).memory_counts(Batch(x, None)) == (15 + 4 * 3 + 1, 9, 4)


def test_a_recurrent_modules_states_count_with_its_output():
    lstm = nn.LSTM(4, 3, batch_first=True)
    x = np.zeros((2, 5, 4), np.float32)
    # output N,5,3 and the states h, c: 1,N,3 each; 4*(3*4 + 3*3 + 3 + 3) parameters.
    assert _adapter(lstm).memory_counts(Batch(x, None)) == (4 * (12 + 9 + 6), 15 + 3 + 3, 20)


@pytest.mark.parametrize("max_memory, background", [(None, [True, True]),
                                                     (1 * GIB, [True, False])])
def test_workers_start_together_where_their_estimate_fits(monkeypatch, max_memory,
                                                          background):
    """No worker starts: each adapter's launch records how it was asked to run."""
    from adapters import open_user_pair
    from tests import user_pair_models as models

    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    config = CompareConfig(model="user pair", batch_size=len(x), max_memory=max_memory,
                           frameworks=("pytorch", "keras", "keras-tensorflow", "keras-jax"))
    opened = open_user_pair(UserPair(pytorch=models.seeded_torch_net(),
                                     keras=f"{models.__file__}:ported_keras_net", x=x), config)
    asked = []
    for name in ("keras-tensorflow", "keras-jax"):
        monkeypatch.setattr(opened.adapters[name], "launch",
                            lambda *args, background: asked.append(background))
    counts = opened.adapters["pytorch"].memory_counts(opened.batch)
    assert peak_bytes(*counts, len(x)) < 2 * GIB  # a tiny model: the imports, mostly
    pipeline._launch_pair_workers([], opened.adapters, opened.batch, config,
                                  lambda *args: None)
    assert asked == background
