"""What a BatchNorm module of another library normalised to, before the rest of its forward.

timm's BatchNormAct2d (its EfficientNets', MobileNetV3s', ...) is an nn.BatchNorm2d whose
forward applies an activation (and a Dropout) after F.batch_norm. The observation that
tells batch statistics from moving statistics reads the normalised output; on the module's
output it read SiLU's, and judged a BatchNormAct2d in eval() to have normalised with batch
statistics (measured 2026-11-30, timm 1.0.31). Within its forward, `BatchNormOutput` keeps
the output of the first F.batch_norm computed there."""

from __future__ import annotations

import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def does_more_than_normalise(module) -> bool:
    """A BatchNorm module of a class outside torch, whose forward may do more than
    normalise (torch's own BatchNorm classes give F.batch_norm's output as it is)."""
    return not type(module).__module__.startswith("torch.")


class BatchNormOutput(TorchFunctionMode):
    """Keeps a copy of the output of the first F.batch_norm computed while it is active."""

    def __init__(self):
        super().__init__()
        self.output = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func is F.batch_norm and self.output is None:
            # A copy: timm's activation after it runs in place (SiLU(inplace=True)).
            self.output = result.detach().clone()
        return result
