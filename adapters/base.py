"""The contract every framework adapter meets, and the in-process implementation of it.

`Adapter` is what the pipeline and the referee may call on any framework, the worker
client (adapters.keras.client) included. `FrameworkAdapter` implements it for a model
in this process: its public methods live here once (validation, timing, state
bookkeeping) and a framework implements only the `_*_impl` hooks. Arrays cross this
boundary as numpy in the canonical layout (torchvision names, PyTorch shapes).

PyTorch is the reference side: its adapter also offers the optional capabilities the
diagnosis reruns need (`float64`, `bn_momentum`, `bn_epsilon`, `optimizer_overrides`) and
the seeded weights need (`randomise_affine`, `calibrate`, `save_state_dict`), declared in
`capabilities`.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from comparator.interrupts import raise_if_requested
from comparator.analysis.states import max_abs_diff, split_state
from comparator.inputs.batch import Batch
from comparator.errors import Diverged, NumericalError, UsageError
from comparator.zoo import ModelSpec
from comparator.config.recipes import Recipe
from comparator.schema import Losses, Modes, RunResult, State

def array_digests(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    """A digest of each array's dtype, shape, memory order and bytes. Arrays are read in
    memory order, so a transposed view (Keras kernels in the canonical layout) is hashed
    without a copy; the order is part of the digest, so equal digests mean equal values."""
    digests = {}
    for name, array in arrays.items():
        order = tuple(np.argsort(array.strides, kind="stable")) if array.ndim else ()
        digest = hashlib.sha256(f"{array.dtype.str}|{array.shape}|{order}|".encode())
        digest.update(memoryview(np.ascontiguousarray(array.ravel(order="K"))).cast("B"))
        digests[name] = digest.digest()
    return digests


def held_once(arrays: dict[str, np.ndarray], given: dict) -> dict[str, np.ndarray]:
    """`arrays`, each one bit for bit the array of its name in `given` (same dtype, shape and
    memory layout) replaced by that one. A model loaded from `given` reads back the same
    values, so its initial state is kept once: for DenseNet121, 30 MB less held by the
    PyTorch side and 26 MB by the Keras side for the whole comparison (tracemalloc). Nothing
    writes into either: the comparison restores from them and compares with them."""
    return {name: given[name] if _same_bits(array, given.get(name)) else array
            for name, array in arrays.items()}


def _same_bits(array: np.ndarray, other) -> bool:
    return (isinstance(other, np.ndarray) and array.dtype == other.dtype
            and array.shape == other.shape and array.strides == other.strides
            and array.tobytes() == other.tobytes())


def state_digest(digests: dict[str, bytes]) -> str:
    """One digest of a whole state from its arrays' digests (array_digests)."""
    combined = hashlib.sha256()
    for name in sorted(digests):
        combined.update(name.encode() + b"|" + digests[name])
    return combined.hexdigest()


@dataclass(frozen=True)
class Measurement:
    """One recipe's result, its states before and after, and the ablation passes' losses."""

    result: RunResult
    final_state: dict
    initial_state: dict
    ablations: dict


class Adapter(ABC):
    """What the pipeline and the referee call on any framework's adapter."""

    name: str = ""
    backend: str | None = None  # Keras's backend for a Keras flavour; None for PyTorch
    runs_in_worker = False  # True: `start` runs every recipe at once, in another process
    # Optional methods this adapter offers beyond the contract (see the module docstring).
    capabilities: frozenset[str] = frozenset()

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.failure = None  # why the framework could not run (status, reason), or None
        self.loss_kind = "logits"  # classification: "logits" or "probabilities" (LOSS_KINDS)
        self.reused_inference_passes = 0  # inference passes answered from an earlier one
        self.ablation_seconds = 0.0  # the runs' explanation passes (_ablations), in this process

    @abstractmethod
    def build(self, spec: ModelSpec, scenario: str, seed: int, image_size: int) -> None:
        """Build the model with the framework's own initialisation."""

    @abstractmethod
    def load_weights(self, arrays: dict[str, np.ndarray]) -> None:
        """Load canonical arrays; the result is the state every recipe starts from."""

    def start(self, recipes, batch: Batch, steps: int, lr: float, optimizer: str,
              validate: bool) -> None:
        """Run these recipes now (an adapter that runs in a worker); an in-process adapter
        runs each recipe when `run_recipe` asks, so this does nothing."""
        return None

    def launch(self, recipes, batch: Batch, steps: int, lr: float, optimizer: str,
               validate: bool, background: bool = True) -> None:
        """`start`, split in two for a worker: begin here (beside this process's work with
        `background`), end in `wait`. In-process adapters do nothing."""
        return None

    def wait(self) -> None:
        """The end of `launch`: afterwards `failure` and the runs are known."""
        return None

    @abstractmethod
    def run_recipe(self, recipe: Recipe, batch: Batch, steps: int, lr: float,
                   optimizer: str = "sgd", validate: bool = False,
                   ablate: bool = True) -> Measurement:
        """The recipe applied to the initial state, `steps` train steps, measured."""

    @abstractmethod
    def logits(self, batch: Batch) -> np.ndarray:
        """Inference-mode outputs of the unfrozen model in its initial state."""

    @abstractmethod
    def reset(self) -> None:
        """Put the model back in its initial state, as every run starts."""

    @abstractmethod
    def environment(self) -> dict[str, str]:
        """Framework versions for the report's environment."""

    def has(self, capability: str) -> bool:
        return capability in self.capabilities


class FrameworkAdapter(Adapter):
    """An adapter whose model lives in this process."""

    def __init__(self, device: str = "cpu"):
        super().__init__(device)
        self.spec: ModelSpec | None = None
        self.scenario: str | None = None
        self._initial_state: object = None
        self._initial_canonical: dict | None = None
        self._initial_digests: dict[str, bytes] = {}
        self._kept_arrays: dict[bytes, np.ndarray] = {}  # digest -> the one copy kept
        # (batch id, loss kind, state digest) -> (the batch, kept so its id stays unique, loss)
        self._inference_losses: dict[tuple, tuple[Batch, float]] = {}
        self._forward_states: dict[tuple, tuple[Batch, dict]] = {}
        self._logits: dict[int, tuple[Batch, np.ndarray]] = {}
        self._float32_errors: dict[int, tuple[Batch, float]] = {}
        self._cache_outputs = True  # off while a rerun changes precision

    # ----- public API -----------------------------------------------------------------

    def build(self, spec: ModelSpec, scenario: str, seed: int, image_size: int) -> None:
        self.spec, self.scenario = spec, scenario
        self._build_impl(spec, scenario, seed, image_size)

    def load_weights(self, arrays: dict[str, np.ndarray]) -> None:
        self._load_impl(arrays)
        self._initial_canonical = held_once(self._canonical_impl(), arrays)
        self._initial_state = self._snapshot_impl(self._initial_canonical)
        self._initial_digests = array_digests(self._initial_canonical)
        self._kept_arrays = {digest: self._initial_canonical[name]
                             for name, digest in self._initial_digests.items()}
        self._inference_losses.clear()
        self._forward_states.clear()
        self._logits.clear()

    def canonical_weights(self) -> dict[str, np.ndarray]:
        return self._canonical_impl()

    def reset(self) -> None:
        self._restore_impl(self._initial_state)

    def exportable_model(self):
        """The framework model an in-process ONNX export takes, in its current state."""
        return self._exportable_model_impl()

    def logits(self, batch: Batch) -> np.ndarray:
        """Outputs in inference mode of the unfrozen model in its initial state (computed
        once per batch: the port check and the referee both need them)."""
        cached = self._logits.get(id(batch))
        if cached and cached[0] is batch and self._cache_outputs:
            return cached[1]
        self._check_batch(batch)
        self._restore_impl(self._initial_state)
        outputs = self._finite(self._logits_impl(batch), "inference outputs")
        if self._cache_outputs:
            self._logits[id(batch)] = (batch, outputs)  # the batch kept: its id stays unique
        return outputs

    def float32_output_error(self, batch: Batch) -> float:
        """How far the initial state's float32 inference outputs are from a float64 rerun's
        (max abs), measured once per batch: the port check and the referee's inference
        checks both widen their tolerance by it. Needs the `float64` capability."""
        cached = self._float32_errors.get(id(batch))
        if cached and cached[0] is batch:
            return cached[1]
        single = np.asarray(self.logits(batch), np.float64)
        with self.float64():
            exact = np.asarray(self.logits(batch), np.float64)
        error = float(np.max(np.abs(single - exact)))
        self._float32_errors[id(batch)] = (batch, error)  # the batch kept: its id stays unique
        return error

    def inference_loss(self, batch: Batch) -> float:
        """The initial state's inference loss, through the framework's own inference API."""
        def compute():
            cached = self._logits.get(id(batch))
            if cached and cached[0] is batch and self._cache_outputs:
                loss = self._loss_from_outputs_impl(cached[1], batch)
                if loss is not None:
                    return loss
            self._restore_impl(self._initial_state)
            return self._plain_inference_loss(batch)

        self._check_batch(batch)
        return self._inference_of(self._initial_digests, batch, compute, count=False)

    def inference_loss_of(self, state: dict, batch: Batch) -> float:
        """The inference loss of the model holding this canonical state (a rerun's final
        state); the model is back in its initial state afterwards."""
        def compute():
            self._load_impl(state)
            return self._plain_inference_loss(batch)

        try:
            return self._inference_of(array_digests(state), batch, compute, count=False)
        finally:
            self._restore_impl(self._initial_state)

    def _plain_inference_loss(self, batch: Batch) -> float:
        """The inference loss of the state the model holds, no recipe applied."""
        self._apply_impl(None)
        self._prepare_optimizer_impl("sgd", 0.0)
        return self._inference_loss_impl(batch)

    def _inference_of(self, digests: dict, batch: Batch, compute, count: bool = True) -> float:
        """The inference loss of the model holding the state of these array digests, from
        `compute()` unless the same state (bitwise) was evaluated on this batch before.

        An inference pass depends on the weights and running statistics alone (BatchNorm
        on moving statistics, Dropout off, nothing drawn at random, whatever the recipe
        froze), so the earlier loss is the one the pass would give: a recipe that changes
        nothing reuses the inference loss before its step, and recipes that end in the
        same state share one pass."""
        if not self._cache_outputs:  # another precision: nothing earlier applies
            return self._finite(compute(), "inference loss")
        key = (id(batch), self.loss_kind, state_digest(digests))
        known = self._inference_losses.get(key)
        if known is not None and known[0] is batch:
            self.reused_inference_passes += count  # asking for the loss before is no reuse
            return known[1]
        loss = self._finite(compute(), "inference loss")
        self._inference_losses[key] = (batch, loss)
        return loss

    def run_recipe(self, recipe: Recipe, batch: Batch, steps: int, lr: float,
                   optimizer: str = "sgd", validate: bool = False,
                   ablate: bool = True) -> Measurement:
        """Apply a recipe to the initial state, take `steps` train steps, measure.

        With `validate`, frameworks whose training API evaluates validation data after
        each step (Keras's fit(validation_data=...)) report that value too."""
        if recipe.framework != self.name:
            raise UsageError(f"recipe {recipe.id} is not a {self.name} recipe")
        before_loss = self.inference_loss(batch)
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self._prepare_run(recipe, optimizer, lr)
            trainable, frozen = self._param_counts_impl()
            initial = self._initial_canonical  # what restoring the initial state gives
            self._reset_rng_impl()
            train_losses, step_modes, validation, first_statistics = self._take_steps(
                batch, steps, validate)
            modes, train_losses = step_modes[0], tuple(train_losses)
            final = self._canonical_impl()
            final_digests = array_digests(final)
            final = self._kept_once(final, final_digests)
            try:
                after_loss = self._inference_of(final_digests, batch,
                                                lambda: self._inference_loss_impl(batch))
            except NumericalError:
                raise Diverged(f"the inference loss after step {steps} is not finite "
                               "(the update left non-finite weights or statistics)",
                               steps) from None
            params_before, stats_before = split_state(initial)
            params_after, stats_after = split_state(final)
            weight_delta = max_abs_diff(params_before, params_after) or 0.0
            stat_delta = max_abs_diff(stats_before, stats_after) or 0.0
            # Reruns that only need the final state skip the explanation passes.
            ablations = {}
            if ablate:
                ablation_started = time.perf_counter()
                ablations = self._ablations(recipe, batch, modes, params_before, stats_after,
                                            final_digests, weight_delta > 0 and stat_delta > 0)
                self.ablation_seconds += time.perf_counter() - ablation_started
            if first_statistics is not None:
                ablations["dropout_off_statistics"] = first_statistics
        result = RunResult(
            id=recipe.id, framework=self.name, recipe=recipe.name,
            description=recipe.description,
            losses=Losses(before_loss, train_losses, after_loss,
                          tuple(validation) if validation else None,
                          ablations.get("dropout_off")),
            state=State(trainable, frozen, weight_delta > 0, weight_delta,
                        stat_delta > 0, stat_delta),
            modes=modes,
            seconds=round(time.perf_counter() - started, 3),
            warnings=tuple(sorted({str(w.message).strip() for w in caught
                                   if not issubclass(w.category, DeprecationWarning)})),
            backend=getattr(self, "backend", None),
            framework_version=self.framework_version(),
        )
        return Measurement(result, final, initial, ablations)

    def state_after_steps(self, recipe: Recipe, batch: Batch, steps: int, lr: float,
                          optimizer: str = "sgd") -> dict:
        """The canonical state run_recipe's steps leave, bit for bit, without its inference
        passes or explanations: for reruns that compare weights only (on ResNet50 at 224 px
        a float64 rerun's two inference passes took 2.8 s of its 6.9 s)."""
        if recipe.framework != self.name:
            raise UsageError(f"recipe {recipe.id} is not a {self.name} recipe")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # run_recipe reports them; a rerun repeats them
            self._prepare_run(recipe, optimizer, lr)
            self._reset_rng_impl()
            self._take_steps(batch, steps, validate=False, keep_first_statistics=False)
            return self._canonical_impl()

    def _prepare_run(self, recipe: Recipe, optimizer: str, lr: float) -> None:
        self._optimizer_settings = (optimizer, lr)  # an ablation pass prepares the same
        self._restore_impl(self._initial_state)
        self._apply_impl(recipe)
        self._prepare_optimizer_impl(optimizer, lr)

    def _take_steps(self, batch: Batch, steps: int, validate: bool,
                    keep_first_statistics: bool = True):
        """`steps` train steps: their reported losses, each step's layer modes, the
        validation losses of frameworks that evaluate after each step (Keras's fit), and,
        over several steps without active Dropout, the running statistics step 1 left: what
        a pair with a run whose Dropout was active is compared on (its Dropout-free pass),
        since that run's masks steer its later steps."""
        train_losses, step_modes, validation, first_statistics = [], [], [], None
        for step in range(1, steps + 1):
            raise_if_requested()  # one a framework swallowed in a step
            loss, validation_loss = self._train_step_impl(batch, validate)
            if not np.isfinite(loss):
                raise Diverged(f"the train-step loss became {loss} at step {step}", step)
            train_losses.append(loss)
            if validation_loss is not None:
                validation.append(validation_loss)
            step_modes.append(self._audit_impl())
            if keep_first_statistics and step == 1 < steps and not step_modes[0].dropout_active:
                first_statistics = split_state(self._canonical_impl())[1]
        return train_losses, step_modes, validation, first_statistics

    def _kept_once(self, arrays: dict, digests: dict) -> dict:
        """The arrays, each one equal to an array already kept (the initial state's, an
        earlier run's) replaced by that one. Every run's final state is kept until the
        analysis; runs that leave most arrays as they were then hold them once (for
        DenseNet121, 32 MB less per such run, all of it held while later runs train)."""
        return {name: self._kept_arrays.setdefault(digests[name], array)
                for name, array in arrays.items()}

    def _ablations(self, recipe, batch, modes, params_before, stats_after, final_digests,
                   weights_and_stats_moved: bool) -> dict:
        """Passes that switch one cause off at a time; a pass is run only when it says more
        than the measurements already taken (with one cause active, switching it off gives
        the inference pass itself)."""
        found = {}
        passes = []
        if modes.bn_batch_stats and modes.dropout_active:
            passes.append(("bn_moving_statistics", True, False))
        if modes.dropout_active:
            # Also what the frameworks are compared on (their masks differ), with the
            # running statistics this pass leaves.
            passes.append(("dropout_off", False, True))
        for key, bn_moving, dropout_off in passes:
            self._restore_impl(self._initial_state)
            self._apply_impl(recipe)
            self._reset_rng_impl()
            loss = (self._bn_moving_loss_impl(batch) if key == "bn_moving_statistics" else
                    self._forward_loss_impl(batch, bn_moving, dropout_off))
            found[key] = self._finite(loss, "ablation loss")
            if dropout_off:
                found["dropout_off_statistics"] = split_state(self._canonical_impl())[1]
        if weights_and_stats_moved:
            mixed = {**params_before, **stats_after}

            def stats_update_only():
                self._load_impl(mixed)
                self._apply_impl(recipe)
                return self._inference_loss_impl(batch)

            digests = {name: (final_digests if name in stats_after else self._initial_digests)
                       [name] for name in mixed}
            found["stats_update_only"] = self._inference_of(digests, batch, stats_update_only)
        self._restore_impl(self._initial_state)
        return found

    def _bn_moving_loss_impl(self, batch: Batch) -> float:
        """The train step's loss with BatchNorm on its moving statistics and the step's own
        Dropout masks (from the state and generators the step starts from): a forward pass,
        where it draws the masks the step draws."""
        return self._forward_loss_impl(batch, bn_moving=True, dropout_off=False)

    def forward_loss(self, batch: Batch, bn_moving: bool, dropout_off: bool) -> float:
        """The loss of one train-step-mode forward pass in the current state, without an
        update (the running statistics move, as in the step)."""
        return self._finite(self._forward_loss_impl(batch, bn_moving, dropout_off),
                            "forward loss")

    def recipe_forward_loss(self, recipe: Recipe, batch: Batch, exact: bool = False) -> float:
        """The loss of the recipe's train-step forward pass from the initial state, Dropout
        off (with no active Dropout, the loss its first train step reports); in float64 where
        `exact` (needs the `float64_forward` capability). The initial state is restored.
        `float64_recipe_loss` names the adapters that offer it, a worker's among them."""
        self._restore_impl(self._initial_state)
        self._apply_impl(recipe)
        self._reset_rng_impl()
        try:
            with self.float64() if exact else contextlib.nullcontext():
                return self.forward_loss(batch, bn_moving=False, dropout_off=True)
        finally:
            self._restore_impl(self._initial_state)

    def statistics_after_forward(self, recipe: Recipe, batch: Batch,
                                 dropout_off: bool = False) -> dict:
        """The canonical state after one train-step-mode forward pass of the recipe from
        the initial state, without an update. BatchNorm running statistics move in the
        forward pass, so with one step these are the statistics the step leaves, at the
        cost of a forward pass instead of a whole run. With `dropout_off`, those of the
        Dropout-free pass that runs with active Dropout are compared on."""
        self._restore_impl(self._initial_state)
        self._apply_impl(recipe)
        self._reset_rng_impl()
        configuration = self._forward_configuration_impl()
        key = (id(batch), configuration, dropout_off)
        known = self._forward_states.get(key) if configuration is not None else None
        if known is not None and known[0] is batch:
            state = known[1]
        else:
            self._finite(self._forward_loss_impl(batch, bn_moving=False,
                                                 dropout_off=dropout_off), "forward loss")
            state = self._canonical_impl()
            if configuration is not None:
                self._forward_states[key] = (batch, state)
        self._restore_impl(self._initial_state)
        return state

    def environment(self) -> dict[str, str]:
        return self._environment_impl()

    version_key = ""  # the environment() entry that is this framework's own version

    def framework_version(self) -> str | None:
        return self._environment_impl().get(self.version_key)

    # ----- shared helpers -------------------------------------------------------------

    def _check_batch(self, batch: Batch) -> None:
        # A zoo model takes RGB images or its feature vectors; a user's model takes what its
        # own inputs were checked to be (comparator/config/pair.py: check_x).
        width = self.spec.input_features if self.spec else None
        if width and (batch.x.ndim != 2 or batch.x.shape[1] != width):
            raise UsageError(f"expected a batch of shape (N, {width}), got {batch.x.shape}")
        if self.spec and not width and (batch.x.ndim != 4 or batch.x.shape[1] != 3):
            raise UsageError(f"expected a batch of shape (N, 3, H, W), got {batch.x.shape}")
        if not all(np.all(np.isfinite(x)) for x in batch.inputs):
            raise NumericalError("the input batch contains NaN or infinite values")

    @staticmethod
    def _finite(value, what: str):
        if not np.all(np.isfinite(value)):
            raise NumericalError(f"the model produced a non-finite {what}")
        return value

    # ----- hooks a framework implements ----------------------------------------------

    @abstractmethod
    def _build_impl(self, spec: ModelSpec, scenario: str, seed: int, image_size: int): ...

    @abstractmethod
    def _load_impl(self, arrays: dict[str, np.ndarray]) -> None: ...

    @abstractmethod
    def _canonical_impl(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _snapshot_impl(self, canonical: dict[str, np.ndarray]) -> object:
        """What `_restore_impl` puts back: the model's current state. `canonical` is that
        state's canonical arrays, which are kept unchanged from then on, so the snapshot may
        share their memory."""

    @abstractmethod
    def _restore_impl(self, state: object) -> None: ...

    @abstractmethod
    def _apply_impl(self, recipe: Recipe | None) -> None:
        """Apply a recipe (None: nothing frozen) to the freshly restored model."""

    @abstractmethod
    def _prepare_optimizer_impl(self, optimizer: str, lr: float) -> None:
        """A fresh optimizer ("sgd" without momentum, or "adam") with framework defaults."""

    @abstractmethod
    def _param_counts_impl(self) -> tuple[int, int]: ...

    @abstractmethod
    def _logits_impl(self, batch: Batch) -> np.ndarray: ...

    @abstractmethod
    def _inference_loss_impl(self, batch: Batch) -> float: ...

    def _forward_configuration_impl(self) -> tuple | None:
        """Everything, besides the initial state and the batch, that a forward pass without
        gradients computes from (for statistics_after_forward), or None when unknown."""
        return None

    def _loss_from_outputs_impl(self, outputs: np.ndarray, batch: Batch) -> float | None:
        """The inference loss from inference outputs already computed: where the framework's
        own inference API is that same forward pass followed by the loss (PyTorch), or where
        the outputs came from the framework's own evaluation call, which gave the loss as
        well (Keras on torch); None where the loss needs an evaluation call of its own."""
        return None

    @abstractmethod
    def _train_step_impl(self, batch: Batch, validate: bool) -> tuple[float, float | None]:
        """One step: the loss exactly as the framework reports it, and the validation loss
        its training API reports after the step when asked (None where it has none)."""

    @abstractmethod
    def _audit_impl(self) -> Modes:
        """What BatchNorm and Dropout layers did in the last train-step pass."""

    @abstractmethod
    def _environment_impl(self) -> dict[str, str]: ...

    @abstractmethod
    def _exportable_model_impl(self): ...

    @abstractmethod
    def _reset_rng_impl(self) -> None:
        """Put the random state (Dropout masks) where every run and ablation starts."""

    @abstractmethod
    def _forward_loss_impl(self, batch: Batch, bn_moving: bool, dropout_off: bool) -> float:
        """A training-mode forward pass as the recipe set it, with BatchNorm layers forced to
        moving statistics and/or Dropout switched off; nothing is updated."""
