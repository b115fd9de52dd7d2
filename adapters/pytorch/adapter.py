"""PyTorch (torchvision) adapter: the only module besides the other adapters that imports torch."""

from __future__ import annotations

import contextlib
import copy
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from adapters.base import FrameworkAdapter
from adapters.devices import require_torch_device, torch_device, use_full_float32
from adapters.pytorch.models import FEATURES, FeatureExtractor, HeadModel, build_network
from adapters.pytorch.normalised import BatchNormOutput, does_more_than_normalise
from comparator.inputs.batch import REGRESSION_SCENARIOS, Batch
from comparator.errors import UsageError
from comparator.analysis.observe import used_batch_statistics, variance
from comparator.config.recipes import Recipe
from comparator.schema import Modes

def _clipped_probability_cross_entropy(logits, labels, epsilon: float = 1e-7):
    """Cross-entropy on softmax probabilities clipped to [epsilon, 1 - epsilon], the same
    function (and gradient) as Keras's CategoricalCrossentropy on a softmax output."""
    probabilities = F.softmax(logits, dim=1)
    probabilities = probabilities / probabilities.sum(dim=1, keepdim=True)
    picked = probabilities.clamp(epsilon, 1.0 - epsilon).gather(1, labels.unsqueeze(1))
    return -picked.log().mean()


def _joined(outputs):
    """One output as it is; several chosen outputs (--output KEY1,KEY2) one after another
    along the batch axis, so that the comparison holds them as one array."""
    return torch.cat(list(outputs)) if isinstance(outputs, (tuple, list)) else outputs


def _on_cpu(state: dict) -> dict:
    return {name: tensor.detach().cpu() for name, tensor in state.items()}


def _batch_norm_parameters(module: nn.Module) -> set[int]:
    """The ids of the weight and bias of the module's BatchNorm layers: what Keras's
    bn_trainable leaves trainable in its frozen part (gamma and beta)."""
    return {id(p) for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for p in m.parameters(recurse=False)}


def _canonical_name(name: str) -> str:
    return name[len("backbone."):] if name.startswith("backbone.") else name


class PyTorchAdapter(FrameworkAdapter):
    version_key = "torch"
    name = "pytorch"
    capabilities = frozenset({"float64", "float64_forward", "float64_recipe_loss",
                              "bn_momentum", "bn_epsilon", "optimizer_overrides",
                              "randomise_affine", "calibrate", "save_state_dict"})
    # The weight of each chosen output's loss where the model returns several (a user pair's
    # --output KEY1,KEY2 with --loss-weights); None: one output.
    output_weights: tuple[float, ...] | None = None

    def __init__(self, device: str = "cpu", threads: int | None = None):
        super().__init__(device)
        require_torch_device(device)
        self._precision = use_full_float32("torch") if device.startswith("cuda") else None
        if threads:
            torch.set_num_threads(threads)
        self._torch_device = torch.device(device)
        self._bn_seen: dict[str, bool] = {}
        self._dropout_seen: dict[str, bool] = {}
        self._optimizer = None
        self._eps_by_step, self._steps_taken = None, 0
        self._feature_extraction = False
        self._features = None
        self.optimizer_overrides: dict = {}

    # ----- building and weights -------------------------------------------------------

    def _build_impl(self, spec, scenario, seed, image_size):
        self._seed = seed
        torch.manual_seed(seed)
        self.net = build_network(spec)
        if scenario == "head":
            backbone = FeatureExtractor(self.net, FEATURES[spec.family])
            self.model = HeadModel(backbone, spec.feature_dim)
            self.frozen = backbone
        else:
            self.model = self.net
            self.frozen = self.net
        self.model.to(self._torch_device)
        self._install_observers()

    def randomise_affine(self, seed: int) -> None:
        """Draw BatchNorm gamma and beta away from 1 and 0, so a port that swaps them fails."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in self.model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    shape = module.weight.shape
                    module.weight.copy_(0.75 + 0.5 * torch.rand(shape, generator=generator))
                    module.bias.copy_(0.1 * torch.randn(shape, generator=generator))

    def calibrate(self, images: np.ndarray, chunk: int) -> None:
        """Set running statistics to the average batch statistics over `images`."""
        bns = [m for m in self.model.modules() if isinstance(m, nn.BatchNorm2d)]
        momenta = [bn.momentum for bn in bns]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration chunks
        self.model.train()
        with torch.no_grad():
            for start in range(0, len(images), chunk):
                self.model(torch.from_numpy(images[start:start + chunk]).to(self._torch_device))
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum

    def _state_items(self):
        for name, tensor in self.model.state_dict().items():
            if not name.endswith("num_batches_tracked"):
                yield _canonical_name(name), name, tensor

    def _load_impl(self, arrays):
        state = self.model.state_dict()
        expected = {canonical: name for canonical, name, _ in self._state_items()}
        missing = sorted(set(expected) - set(arrays))
        extra = sorted(set(arrays) - set(expected))
        if missing or extra:
            raise UsageError(f"weights do not fit the PyTorch model: missing {missing[:5]}, "
                             f"unexpected {extra[:5]}")
        for canonical, name in expected.items():
            target = state[name]
            if tuple(target.shape) != arrays[canonical].shape:
                raise UsageError(f"shape mismatch for {canonical}: PyTorch {tuple(target.shape)},"
                                 f" weights {arrays[canonical].shape}")
            target.copy_(torch.from_numpy(np.asarray(arrays[canonical])))

    def _canonical_impl(self):
        return {canonical: t.detach().cpu().numpy().copy()
                for canonical, _, t in self._state_items()}

    def _snapshot_impl(self, canonical):
        state = self.model.state_dict()
        if self._torch_device.type != "cpu":
            return copy.deepcopy(state)
        # On the CPU the canonical arrays hold the same values as the state and are never
        # written, so the snapshot's tensors share their memory (one copy of the weights
        # fewer: 32 MB for DenseNet121, held for the whole comparison).
        shared = {name: torch.from_numpy(canonical[key])
                  for key, name, _ in self._state_items() if key in canonical}
        return {name: shared[name] if name in shared else tensor.clone()
                for name, tensor in state.items()}

    def _restore_impl(self, state):
        self.model.load_state_dict(state)
        for p in self.model.parameters():
            p.requires_grad_(True)
            p.grad = None
        self.model.train()

    def second_recurrent_biases(self) -> list[str]:
        """The bias_hh parameters of LSTM and Elman RNN layers: PyTorch adds them to bias_ih,
        where Keras's LSTM and SimpleRNN keep the sum as one bias. (GRU's bias_hh sits inside
        the reset gate's product: not a sum.)"""
        return [f"{module_name}.{name}" if module_name else name
                for module_name, module in self.model.named_modules()
                if isinstance(module, (nn.LSTM, nn.RNN))
                for name, _ in module.named_parameters(recurse=False)
                if name.startswith("bias_hh")]

    def padded_embeddings(self) -> dict[str, int]:
        """{module: padding_idx} of the Embedding modules whose padding row takes no gradient,
        where Keras's Embedding, which has no padding_idx, trains every row."""
        return {name: module.padding_idx for name, module in self.model.named_modules()
                if isinstance(module, nn.Embedding) and module.padding_idx is not None}

    @contextlib.contextmanager
    def embeddings_unpadded(self):
        """Within the block every Embedding trains its padding row too, as Keras's does."""
        padded = [(module, module.padding_idx) for module in self.model.modules()
                  if isinstance(module, nn.Embedding) and module.padding_idx is not None]
        for module, _ in padded:
            module.padding_idx = None
        try:
            yield
        finally:
            for module, row in padded:
                module.padding_idx = row

    @contextlib.contextmanager
    def float64(self):
        """Within the block the model and its inputs are float64: reruns that measure how far
        float32 rounding alone moves a result."""
        self.model.double()
        self._cache_outputs = False
        try:
            yield
        finally:
            self.model.float()
            self._cache_outputs = True

    def bn_layers(self) -> dict[str, nn.Module]:
        """BatchNorm modules by canonical name."""
        return {_canonical_name(name): m for name, m in self.model.named_modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm)}

    def conventions(self) -> dict:
        """Per layer, as set on the modules: BatchNorm momentum in PyTorch's convention (the
        weight of the new batch value; None is PyTorch's cumulative average), epsilon, the
        variance the running variance is updated with, and Dropout rates."""
        return {
            "batchnorm": {name: {"momentum": m.momentum, "epsilon": m.eps,
                                 "running_variance": "unbiased batch variance"}
                          for name, m in self.bn_layers().items()},
            "dropout": {_canonical_name(name): float(m.p)
                        for name, m in self.model.named_modules()
                        if isinstance(m, nn.modules.dropout._DropoutNd)},
        }

    def bn_momentum(self, momentum):
        """Within the block every BatchNorm layer uses this (PyTorch-convention) momentum, or
        the one a {canonical layer name: momentum} dict gives it."""
        return self._bn_setting("momentum", momentum)

    def bn_epsilon(self, epsilon):
        """Within the block every BatchNorm layer adds this epsilon to its variance, or the
        one a {canonical layer name: epsilon} dict gives it."""
        return self._bn_setting("eps", epsilon)

    @contextlib.contextmanager
    def _bn_setting(self, attribute: str, value):
        bns = self.bn_layers()
        saved = {name: getattr(bn, attribute) for name, bn in bns.items()}
        for name, bn in bns.items():
            setattr(bn, attribute, value.get(name, saved[name]) if isinstance(value, dict)
                    else value)
        try:
            yield
        finally:
            for name, bn in bns.items():
                setattr(bn, attribute, saved[name])

    def save_state_dict(self, directory: str) -> list[str]:
        """Files loadable with torch.load(..., weights_only=True) into plain PyTorch models,
        on any machine: the tensors are saved from the CPU, since torch.load puts each one
        back on the device it was saved from and a run on a GPU would write files that a
        machine without one cannot read."""
        self._restore_impl(self._initial_state)
        written = [os.path.join(directory, "pytorch_state_dict.pt")]
        torch.save(_on_cpu(self.net.state_dict()), written[0])
        if self.scenario == "head":
            written.append(os.path.join(directory, "pytorch_head_state_dict.pt"))
            torch.save(_on_cpu(self.model.head.state_dict()), written[1])
        return written

    # ----- recipes ---------------------------------------------------------------------

    def _apply_impl(self, recipe: Recipe | None):
        self.model.train()
        self._features = None
        self._feature_extraction = bool(recipe and recipe.feature_extraction)
        if recipe is None:
            return
        if recipe.requires_grad_false or recipe.feature_extraction:
            kept = _batch_norm_parameters(self.frozen) if recipe.bn_stays_trainable else set()
            for p in self.frozen.parameters():
                p.requires_grad_(id(p) in kept)
        if recipe.eval_mode or recipe.feature_extraction:
            self.frozen.eval()

    def _prepare_optimizer_impl(self, optimizer, lr):
        """`optimizer_overrides` are the optimizer's keyword arguments, except
        `eps_by_step`: a function of the step (1, 2, ...) that sets Adam's eps before it, and
        `left_out`: names of parameters the step leaves as they are."""
        overrides = dict(self.optimizer_overrides)
        self._eps_by_step, self._steps_taken = overrides.pop("eps_by_step", None), 0
        left_out = set(overrides.pop("left_out", ()))
        params = [p for name, p in self.model.named_parameters()
                  if p.requires_grad and name not in left_out]
        if not params:
            self._optimizer = None
        elif optimizer == "adam":
            self._optimizer = torch.optim.Adam(params, lr=lr, **overrides)
        else:
            self._optimizer = torch.optim.SGD(params, lr=lr, **overrides)

    def _param_counts_impl(self):
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.model.parameters())
        return trainable, total - trainable

    # ----- passes ----------------------------------------------------------------------

    def _tensors(self, batch: Batch):
        """(the model's positional arguments, y): one tensor per input, on the model's device
        and in its dtype (token ids stay integers)."""
        dtype = next(self.model.parameters()).dtype
        inputs = tuple(torch.from_numpy(x).to(self._torch_device) for x in batch.inputs)
        inputs = tuple(x.to(dtype) if x.is_floating_point() else x for x in inputs)
        y = torch.from_numpy(batch.y).to(self._torch_device)
        return inputs, (y.to(dtype) if y.is_floating_point() else y)

    def _loss(self, outputs, y, batch: Batch):
        """The loss of one output; of several, the weighted sum of each one's loss with the
        same labels, as a model with an auxiliary head trains (outputs: a tuple, or the
        outputs _joined)."""
        if self.output_weights is None:
            return self._output_loss(outputs, y, batch)
        chosen = (outputs if isinstance(outputs, (tuple, list))
                  else outputs.chunk(len(self.output_weights)))
        return sum(weight * self._output_loss(output, y, batch)
                   for weight, output in zip(self.output_weights, chosen, strict=True))

    def _output_loss(self, outputs, y, batch: Batch):
        if self.scenario in REGRESSION_SCENARIOS:
            return F.mse_loss(outputs, y)
        outputs = outputs.movedim(batch.class_axis, 1)  # where torch's cross-entropy reads it
        if self.loss_kind == "probabilities":
            return _clipped_probability_cross_entropy(outputs, y)
        return F.cross_entropy(outputs, y)

    def _logits_impl(self, batch):
        self.model.eval()
        with torch.no_grad():
            return _joined(self.model(*self._tensors(batch)[0])).cpu().numpy()

    def _inference_loss_impl(self, batch):
        self.model.eval()
        inputs, y = self._tensors(batch)
        with torch.no_grad():
            return float(self._loss(self.model(*inputs), y, batch))

    def _forward_configuration_impl(self):
        # Without gradients, requires_grad flags change nothing a forward pass computes;
        # which modules are in train() and the BatchNorm momenta do.
        return (tuple(m.training for m in self.model.modules()),
                tuple(m.momentum for m in self.model.modules()
                      if isinstance(m, nn.modules.batchnorm._BatchNorm)),
                self._feature_extraction, next(self.model.parameters()).dtype)

    def _loss_from_outputs_impl(self, outputs, batch):
        # The same eval() forward pass as _inference_loss_impl, whose outputs were kept.
        _, y = self._tensors(batch)
        with torch.no_grad():
            return float(self._loss(torch.from_numpy(outputs).to(y.device), y, batch))

    def _forward(self, inputs: tuple):
        """The train-step forward pass; with feature extraction, the head on features that
        the frozen part computed once, in eval() and without gradients."""
        if not self._feature_extraction:
            return self.model(*inputs)
        if self._features is None:
            with torch.no_grad():
                self._features = self.frozen(*inputs)
        return self.model.head(self._features)

    def _train_step_impl(self, batch, validate=False):
        # A standard loop: the mode the recipe set, forward, loss, backward, step.
        inputs, y = self._tensors(batch)
        self._observing = True
        try:
            loss = self._loss(self._forward(inputs), y, batch)
        finally:
            self._observing = False
        if self._optimizer is not None:
            self._optimizer.zero_grad()
            loss.backward()
            self._steps_taken += 1
            if self._eps_by_step is not None:
                for group in self._optimizer.param_groups:
                    group["eps"] = self._eps_by_step(self._steps_taken)
            self._optimizer.step()
        return float(loss.detach()), None

    def _reset_rng_impl(self):
        torch.manual_seed(self._seed)

    def _drops(self, module: nn.Module) -> bool:
        """Whether the module drops values in training (off in the Dropout-free pass)."""
        return isinstance(module, nn.Dropout)

    def _forward_loss_impl(self, batch, bn_moving, dropout_off):
        switched = [m for m in self.model.modules() if m.training and (
            (bn_moving and isinstance(m, nn.modules.batchnorm._BatchNorm))
            or (dropout_off and self._drops(m)))]
        inputs, y = self._tensors(batch)
        try:
            for module in switched:
                module.eval()
            with torch.no_grad():
                return float(self._loss(self._forward(inputs), y, batch))
        finally:
            for module in switched:
                module.train()

    # ----- observation -----------------------------------------------------------------

    def _install_observers(self):
        """Hooks are closures, never bound methods: copy.deepcopy of the model (the port
        validator's float64 copy) copies a bound method's adapter with it, and shares a
        function."""
        self._observing, self._observer_handles = False, []
        for name, module in self.model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                self._observe(module, self._make_bn_hook(name), self._make_bn_pre_hook(),
                              always_call=True)
            elif isinstance(module, nn.Dropout):
                self._observe_dropout(name, module)

    def _observe(self, module: nn.Module, hook, pre_hook=None, always_call=False) -> None:
        """always_call: the hook runs even where forward() raises (its output is then
        None), to end what the pre-hook started."""
        if pre_hook is not None:
            self._observer_handles.append(module.register_forward_pre_hook(pre_hook))
        self._observer_handles.append(module.register_forward_hook(hook,
                                                                   always_call=always_call))

    def remove_observers(self) -> None:
        for handle in getattr(self, "_observer_handles", ()):
            handle.remove()
        self._observer_handles = []

    def _make_bn_pre_hook(self):
        def pre_hook(module, args):
            if self._observing:
                module._xframe_stats = tuple(None if t is None else t.detach().clone()
                                             for t in (module.running_mean, module.running_var))
                if does_more_than_normalise(module):
                    module._xframe_normalised = BatchNormOutput()
                    module._xframe_normalised.__enter__()
        return pre_hook

    def _make_bn_hook(self, name):
        def hook(module, args, output):
            normalised = module.__dict__.pop("_xframe_normalised", None)
            if normalised is not None:
                normalised.__exit__(None, None, None)
                if normalised.output is not None:
                    output = normalised.output
            if not self._observing or output is None:
                return
            dims = [d for d in range(output.ndim) if d != 1]
            with torch.no_grad():
                sums = [f(t).mean(dim=dims) for t in (args[0], output)
                        for f in (lambda t: t, torch.square)]
            x_mean, x_square, y_mean, y_square = [s.cpu().numpy() for s in sums]
            moving_mean, moving_var = module._xframe_stats
            if moving_mean is None:  # track_running_stats=False: batch statistics, always
                self._bn_seen[name] = True
                return
            as_numpy = [x_mean, variance(x_mean, x_square), y_mean, variance(y_mean, y_square)]
            # affine=False: no weight or bias (used_batch_statistics takes 1 and 0).
            as_numpy += [None if t is None else t.detach().cpu().numpy() for t in
                         (module.weight, module.bias, moving_mean, moving_var)]
            self._bn_seen[name] = used_batch_statistics(*as_numpy, eps=module.eps)
        return hook

    def _observe_dropout(self, name: str, module: nn.Module) -> None:
        """Active means the output differs from the input. An in-place Dropout (torchvision's
        MobileNetV3 head has one) has overwritten its input by the time a forward hook runs,
        so its input is copied before it runs."""
        def copy_input(module, args):
            if self._observing and getattr(module, "inplace", False):
                module._xframe_input = args[0].detach().clone()

        def hook(module, args, output):
            if self._observing:
                before = module.__dict__.pop("_xframe_input", None)
                before = args[0].detach() if before is None else before
                self._dropout_seen[name] = not torch.equal(before, output.detach())
        self._observe(module, hook, copy_input)

    def _audit_impl(self):
        bn_layers = sum(isinstance(m, nn.modules.batchnorm._BatchNorm)
                        for m in self.model.modules())
        dropout_layers = sum(isinstance(m, nn.Dropout) for m in self.model.modules())
        modes = Modes(bn_layers, sum(self._bn_seen.values()), dropout_layers,
                      sum(self._dropout_seen.values()))
        self._bn_seen, self._dropout_seen = {}, {}
        return modes

    def _exportable_model_impl(self):
        return self.model

    def _environment_impl(self):
        # Thread counts change the order of float32 sums, so the last bits of every number
        return {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "torch_threads": str(torch.get_num_threads()),
                "torch_interop_threads": str(torch.get_num_interop_threads()),
                "devices": {self.name: torch_device(self._computed_on())},
                **({"gpu_float32": {self.name: self._precision}} if self._precision else {})}

    def _computed_on(self):
        """The device of the model's parameters (the one asked for, before a build)."""
        return next(self.model.parameters()).device if hasattr(self, "model") \
            else self._torch_device
