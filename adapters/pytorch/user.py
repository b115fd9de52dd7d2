"""The PyTorch adapter over a model the user brought, as given: no zoo build, no porting.

The frozen part is the whole model, or the submodule named by --freeze (the rest trains,
as the head of the zoo's head scenario does)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from adapters.pytorch.adapter import PyTorchAdapter
from adapters.pytorch.drop_path import drops_at_random, stochastic_depth, stochastic_depth_rate
from comparator.inputs.batch import Batch
from adapters.own_pair.loader import pytorch_submodule

_DROPOUTS = (nn.modules.dropout._DropoutNd,)
_BATCHNORMS = (nn.modules.batchnorm._BatchNorm,)


def stacked_dropout(module) -> int:
    """How many times a stacked PyTorch LSTM, GRU or RNN drops in training: between each of
    its layers, where its `dropout` is set (a Dropout layer between Keras's recurrent
    layers does the same); no PyTorch recurrent module drops within its steps."""
    if not isinstance(module, nn.RNNBase) or module.num_layers < 2 or not module.dropout:
        return 0
    return module.num_layers - 1


def _tensors_in(output) -> list:
    """The tensors a module returned: one, or those in its tuple, list or dict (a recurrent
    module's output and states), however nested."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _tensors_in(item)]
    return []


class _FixedModes(nn.Module):
    """A torch.export program, whose BatchNorm and Dropout modes were fixed at export: train()
    and eval() are recorded here and never reach it (it refuses them)."""

    def __init__(self, program: nn.Module):
        super().__init__()
        self.program = program

    def forward(self, *inputs):
        return self.program(*inputs)

    def train(self, mode: bool = True):
        self.training = mode
        return self


class PyTorchUserAdapter(PyTorchAdapter):
    def adopt(self, loaded, freeze: str | None, scenario: str, seed: int,
              dropout_off: bool = False) -> None:
        """Take the user's model (adapters.own_pair.loader.LoadedModel) as the initial state."""
        self.spec, self.scenario, self._seed = None, scenario, seed
        self.inference_only = loaded.inference_only
        model = _FixedModes(loaded.model) if loaded.inference_only else loaded.model
        self.net = self.model = model.to(self._torch_device)
        self.frozen = pytorch_submodule(loaded.model, freeze) if freeze else model
        self.dropout_off = dropout_off
        self._install_observers()
        self.load_weights(self._canonical_impl())

    def give_back_later(self, model: nn.Module) -> Callable[[], None]:
        """What puts the user's model back as it is now: its observers off and every
        module's training flag as it was (the model is the caller's, and outlives the
        comparison; a comparison that stops on bad input has switched it to eval())."""
        flags = [(module, module.training) for module in model.modules()]

        def give_back() -> None:
            self.remove_observers()
            for module, training in flags:
                module.training = training
        return give_back

    def _state_items(self):
        # The user's own names (the zoo adapter drops a "backbone." prefix; a user's model
        # may have a submodule of that name).
        prefix = "program." if self.inference_only else ""
        for name, tensor in self.model.state_dict().items():
            if not name.endswith("num_batches_tracked"):
                yield name[len(prefix):], name, tensor

    def _install_observers(self):
        super()._install_observers()
        # Every Dropout kind (Dropout2d, AlphaDropout, ...), not nn.Dropout alone,
        # stochastic depth, and the Dropout between a stacked recurrent module's layers.
        for name, module in self.model.named_modules():
            if (isinstance(module, _DROPOUTS) and not isinstance(module, nn.Dropout)) \
                    or stochastic_depth(module):
                self._observe_dropout(name, module)
            elif stacked_dropout(module):
                self._observe(module, self._make_stacked_dropout_hook(name))

    def _make_stacked_dropout_hook(self, name):
        def hook(module, args, output):
            if self._observing:  # its dropout acts in training mode only
                self._dropout_seen[name] = stacked_dropout(module) if module.training else 0
        return hook

    def conventions(self) -> dict:
        """Also stochastic depth's rate, and the Dropout between a stacked recurrent module's
        layers, as `lstm (between layers)`."""
        found = super().conventions()
        found["dropout"].update({name: stochastic_depth_rate(m)
                                 for name, m in self.model.named_modules()
                                 if stochastic_depth(m)})
        found["dropout"].update({f"{name} (between layers)": float(m.dropout)
                                 for name, m in self.model.named_modules()
                                 if stacked_dropout(m)})
        return found

    def _drops(self, module: nn.Module) -> bool:
        return drops_at_random(module) or bool(stacked_dropout(module))

    def _audit_impl(self):
        modes = super()._audit_impl()
        depth = sum(stochastic_depth(m) for m in self.model.modules())
        dropouts = depth + sum(isinstance(m, _DROPOUTS) + stacked_dropout(m)
                               for m in self.model.modules())
        return type(modes)(modes.bn_layers, modes.bn_batch_stats, dropouts,
                           modes.dropout_active, stochastic_depth_layers=depth)

    def _apply_impl(self, recipe):
        super()._apply_impl(recipe)
        if self.dropout_off:  # --dropout off: the step runs Dropout in inference mode
            for module in self.model.modules():
                if self._drops(module):
                    module.eval()

    def bn_layers(self) -> dict[str, nn.Module]:
        prefix = "program." if self.inference_only else ""
        return {name[len(prefix):]: m for name, m in self.model.named_modules()
                if isinstance(m, _BATCHNORMS)}

    def memory_counts(self, batch: Batch) -> tuple[int, int, int] | None:
        """(parameters and buffers, values the leaf modules output for one sample, one
        sample's input values) of the user's model, counted as comparator.limits counted the
        zoo's models (their outputs summed over a forward pass, here an inference pass on the
        batch); None for a torch.export program, whose modules are not called as modules."""
        if self.inference_only:
            return None
        outputs = [0]

        def count(module, args, output):
            outputs[0] += sum(t.numel() for t in _tensors_in(output))

        leaves = [m for m in self.model.modules() if next(m.children(), None) is None]
        hooks = [leaf.register_forward_hook(count) for leaf in leaves]
        try:
            self.predictions(batch.x)
        finally:
            for hook in hooks:
                hook.remove()
        rows = len(batch.inputs[0])
        params = sum(t.numel() for t in self.model.state_dict().values())
        return params, outputs[0] // rows, sum(x[0].size for x in batch.inputs)

    def predictions(self, x):
        """The model's inference outputs on x (one array, or a tuple of several inputs') as it
        returns them (a tensor, or whatever else a user's model returns), for the labels or
        targets the user did not give."""
        self.model.eval()
        with torch.no_grad():
            return self.model(*self._tensors(Batch(x, np.zeros(0)))[0])
