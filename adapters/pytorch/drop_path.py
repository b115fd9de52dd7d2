"""Stochastic depth in a PyTorch model: which modules drop a residual branch for whole
examples in train(), and at what rate.

torchvision's StochasticDepth and timm's DropPath are known by their class. A model's own
code may hold a copy of timm's DropPath under a class of its own (DINOv2's reference code
does, in dinov2/layers/drop_path.py), which no class check finds: such a module is measured
instead, once (`_measured`), on a batch of ones."""

from __future__ import annotations

import sys
import weakref

import torch
from torch import nn
from torchvision.ops import StochasticDepth

# What a drop-path module of a model's own calls its rate, as timm's, torchvision's and
# Keras's name it.
_RATE_NAMES = ("drop_prob", "drop_rate", "drop_path_rate", "p", "rate")
# Examples in the probe batch: a branch dropped at rate 0.005 (the lowest a ConvNeXt-T of
# drop_path_rate 0.1 has) is kept in all of them with a chance of about 1e-9.
_PROBE_EXAMPLES = 4096
_MEASURED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _timm_drop_path():
    """timm's DropPath class where timm is imported (a model holding one has imported it),
    else None: timm is no dependency of this project."""
    return getattr(sys.modules.get("timm.layers.drop"), "DropPath", None)


def stochastic_depth(module) -> bool:
    """torchvision's StochasticDepth (EfficientNet's and ConvNeXt's residual branches),
    timm's DropPath (what a timm model's drop_path_rate puts on its residual branches), or a
    module of a model's own class measured to act as one (`_own_drop_path`): in train()
    each drops its input for whole examples (StochasticDepth's mode "row", DropPath always)
    or for the whole batch (mode "batch"), scaling what it keeps by 1 / (1 - p) (DropPath
    unless scale_by_keep=False), a Dropout in all but its class, which is no _DropoutNd; in
    eval() it passes its input through."""
    drop_path = _timm_drop_path()
    return isinstance(module, StochasticDepth) or (
        drop_path is not None and isinstance(module, drop_path)) or _own_drop_path(module)


def drops_at_random(module) -> bool:
    """A module that draws random masks in train(): a Dropout of any kind, or stochastic
    depth."""
    return isinstance(module, nn.modules.dropout._DropoutNd) or stochastic_depth(module)


def stochastic_depth_rate(module) -> float:
    """A stochastic_depth module's drop rate: StochasticDepth's `p`, DropPath's `drop_prob`,
    or the rate a module of a model's own holds."""
    if isinstance(module, StochasticDepth):
        return float(module.p)
    drop_path = _timm_drop_path()
    if drop_path is not None and isinstance(module, drop_path):
        return float(module.drop_prob)
    return _own_rate(module)


def _own_rate(module) -> float | None:
    """The first of _RATE_NAMES a module holds as a number between 0 and 1, exclusive."""
    for name in _RATE_NAMES:
        value = getattr(module, name, None)
        if isinstance(value, float) and 0.0 < value < 1.0:
            return value
    return None


def _own_drop_path(module) -> bool:
    """A module of a class outside torch and torchvision, with no parameters, buffers or
    modules inside and a drop rate among its attributes, that on a batch of ones passes it
    through in eval() and in train() zeroes some examples whole (an element-wise Dropout
    zeroes parts of them) and gives the others one number of at least 1 (1 / (1 - p), or
    1), the share zeroed within five standard errors of its rate. Measured once per module,
    with the random state given back."""
    if type(module).__module__.startswith(("torch.", "torchvision.")) or \
            next(module.children(), None) is not None or module._parameters or \
            module._buffers or _own_rate(module) is None:
        return False
    if module not in _MEASURED:
        _MEASURED[module] = _measured(module, _own_rate(module))
    return _MEASURED[module]


def _measured(module: nn.Module, rate: float) -> bool:
    ones = torch.ones(_PROBE_EXAMPLES, 2, 2, 2)
    training = module.training
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            module.eval()
            passed = module(ones)
            module.train()
            dropped = module(ones)
    except Exception:  # takes no such input: no drop path
        return False
    finally:
        module.train(training)
    if not all(isinstance(t, torch.Tensor) and t.shape == ones.shape
               for t in (passed, dropped)) or not torch.equal(passed, ones):
        return False
    examples = dropped.flatten(1)
    if not torch.all(examples == examples[:, :1]):  # an example partly dropped: Dropout
        return False
    values = examples[:, 0]
    zeroed = values == 0
    kept = values[~zeroed]
    share, error = float(zeroed.float().mean()), (rate * (1 - rate) / _PROBE_EXAMPLES) ** 0.5
    return bool(zeroed.any()) and kept.numel() > 0 and bool(torch.all(kept == kept[0])) and \
        float(kept[0]) >= 1.0 and abs(share - rate) <= 5 * error
