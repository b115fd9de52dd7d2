"""Reruns that test a suspected cross-framework cause of a difference.

When two recipes that should agree part ways, the PyTorch recipe is run again
with one framework convention switched to Keras's (BatchNorm momentum, Adam
epsilon); if the difference then vanishes, that convention is measured to be
the cause, and if it stays, the cause is reported as ruled out (`explains`).
Weights that no optimizer constant brings together after steps that computed
the same gradients are then held against a float64 rerun: float32 rounding, or
not. Steps that computed different gradients (other BatchNorm modes, trainable
weights or losses) get neither rerun: their differences already say why. Two Keras runs
whose weights differ get no rerun of their own (keras_pair_causes.py): the float64 reruns
made here hold them.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np

from comparator.analysis.diagnosis import explain_bn_conventions
from comparator.analysis.equivalence import losses_agree, same_function
from comparator.analysis.states import max_weight_diff
from comparator.analysis.tolerances import FLOAT32_FACTOR, STATE_TOLERANCE
from comparator.analysis.train_loss_causes import train_loss_causes
from comparator.analysis.validation import NOISE_CAP
from comparator.errors import NumericalError

ADAM_BETA_2 = 0.999  # both frameworks' default


def _keras_against_pytorch(eq) -> bool:
    """A Keras run (any backend or version, or Keras 2) against a PyTorch one: the reruns are
    PyTorch's, held against the Keras run's final state."""
    return eq.b.startswith("pytorch:") and not eq.a.startswith("pytorch:")


def _framework(run_id: str) -> str:
    return run_id.split(":")[0]


def layer_momenta(conventions: dict, keras: str = "keras") -> dict[str, tuple[float, float | None]]:
    """{layer: (Keras's momentum as Keras states it, PyTorch's momentum)} for the BatchNorm
    layers both frameworks hold, read from the layers (adapters' conventions(); a worker
    reads its own)."""
    keras_layers = conventions.get(keras, {}).get("batchnorm", {})
    torch_layers = conventions.get("pytorch", {}).get("batchnorm", {})
    return {name: (keras_layers[name]["keras_momentum"], torch_layers[name]["momentum"])
            for name in torch_layers if name in keras_layers}


def _bn_causes(eq, conventions, rerun, runs, states) -> list[dict]:
    if eq.max_bn_stat_diff is None or eq.max_bn_stat_diff <= STATE_TOLERANCE:
        return []
    a, b = runs[eq.a], runs[eq.b]
    if not (a.state.bn_stats_changed and b.state.bn_stats_changed
            and a.modes.bn_batch_stats == b.modes.bn_batch_stats):
        return []
    momenta = layer_momenta(conventions, _framework(eq.a))
    if not momenta:
        return []
    matched = states[eq.b]
    keras_as_torch = {name: 1.0 - keras for name, (keras, _) in momenta.items()}
    if any(torch is None or abs(keras_as_torch[name] - torch) > 1e-12
           for name, (_, torch) in momenta.items()):
        matched = rerun.statistics_with_momenta(
            keras_as_torch, first_step=bool(a.modes.dropout_active or b.modes.dropout_active))
    keras_layers = conventions[_framework(eq.a)]["batchnorm"].values()
    biased = all(layer["running_variance"].startswith("biased") for layer in keras_layers)
    return explain_bn_conventions(states[eq.a], states[eq.b], matched, momenta, biased)


def _same_step_function(a, b) -> bool:
    """Whether two runs' first train steps computed the same loss of the same trainable
    weights: the same function and the same first train-step loss. Otherwise their gradients
    differ, and no optimizer constant can bring the weights they leave together."""
    return same_function(a, b) and losses_agree(a.losses.train_step[0],
                                                 b.losses.train_step[0])


def _weight_causes(eq, config, rerun, runs, states) -> list[dict]:
    """Why the weights differ after steps that computed the same gradients: an Adam
    constant, else float32 rounding."""
    if eq.max_weight_diff is None or eq.max_weight_diff <= STATE_TOLERANCE:
        return []
    if not _same_step_function(runs[eq.a], runs[eq.b]):
        return _rounding_of_the_step(eq, rerun, runs, states)
    causes = _adam_causes(eq, config, rerun, states)
    if any(c["explains"] for c in causes):
        return causes
    return causes + _float32_causes(eq, rerun, states, runs[eq.b].state.max_weight_delta)


def _adam_causes(eq, config, rerun, states) -> list[dict]:
    if config.optimizer != "adam":
        return []
    from comparator.config import ADAM_EPSILON

    keras_epsilon = ADAM_EPSILON.get(_framework(eq.a), ADAM_EPSILON["keras"])
    torch_epsilon = ADAM_EPSILON["pytorch"]

    def weights_diff_with(variant: str, **overrides) -> float:
        return max_weight_diff(states[eq.a], rerun.final_state_with(variant, overrides))

    def outcome(value: float) -> str:
        if value <= STATE_TOLERANCE:
            return f"the weights agree to {value:.2g} (they differed by {eq.max_weight_diff:.2g})"
        return (f"the weights still differ by up to {value:.2g} (were "
                f"{eq.max_weight_diff:.2g})")

    same_value = weights_diff_with(f"eps {keras_epsilon}", eps=keras_epsilon)
    causes = [{"cause": "adam_epsilon", "value": same_value, "before": eq.max_weight_diff,
               "explains": same_value <= STATE_TOLERANCE,
               "text": f"Adam epsilon: Keras {keras_epsilon:g}, PyTorch {torch_epsilon:g}. "
                       f"Re-run with PyTorch eps={keras_epsilon:g}, {outcome(same_value)}."}]
    placed_value = weights_diff_with(f"eps {keras_epsilon} placed",
                                     eps_by_step=lambda t: _placed_epsilon(keras_epsilon, t))
    causes.append({
        "cause": "adam_epsilon_placement", "value": placed_value,
        "before": eq.max_weight_diff, "explains": placed_value <= STATE_TOLERANCE,
        "text": "Keras adds epsilon to the square root of the uncorrected second moment, "
                f"PyTorch to the bias-corrected one: {_placement_words(keras_epsilon, config)} "
                f"{outcome(placed_value)}."})
    return causes


def _placed_epsilon(keras_epsilon: float, step: int) -> float:
    """The PyTorch eps that Keras's epsilon acts as at a step: Keras divides by
    sqrt(v) + eps, PyTorch by sqrt(v) / sqrt(1 - beta_2^t) + eps."""
    return keras_epsilon / np.sqrt(1.0 - ADAM_BETA_2 ** step)


def _placement_words(keras_epsilon: float, config) -> str:
    if config.steps == 1:
        return (f"at step 1 Keras's {keras_epsilon:g} acts as PyTorch "
                f"eps={_placed_epsilon(keras_epsilon, 1):.3g}. Re-run with that value,")
    values = ", ".join(f"{_placed_epsilon(keras_epsilon, t):.3g}"
                       for t in range(1, min(config.steps, 3) + 1))
    more = ", ..." if config.steps > 3 else ""
    return (f"at step t Keras's {keras_epsilon:g} acts as PyTorch eps={keras_epsilon:g} / "
            f"sqrt(1 - {ADAM_BETA_2:g}^t) ({values}{more} for steps 1 to {config.steps}). "
            "Re-run with that eps at each step,")


def _recurrent_bias_causes(eq, rerun, runs) -> list[dict]:
    """Two runs that computed the same loss before and in the step, then part ways: PyTorch's
    LSTM and RNN keep two biases whose sum Keras keeps as one. Each takes the whole
    gradient, so a step moves the sum twice as far; the rerun leaves the second one out."""
    second = rerun.adapter.second_recurrent_biases()
    a, b = runs[eq.a].losses, runs[eq.b].losses
    if not second or losses_agree(a.inference_after, b.inference_after) or not (
            losses_agree(a.inference_before, b.inference_before)
            and losses_agree(a.train_step[0], b.train_step[0])):
        return []
    before = abs(a.inference_after - b.inference_after)
    rerun_loss = rerun.inference_after_with("second recurrent biases left out",
                                            {"left_out": second})
    value = abs(a.inference_after - rerun_loss)
    explains = losses_agree(a.inference_after, rerun_loss)
    outcome = (f"the inference losses after the step agree to {value:.2g}" if explains else
               f"the inference losses after the step still differ by {value:.2g}")
    return [{"cause": "recurrent_bias_pair", "value": value, "before": before,
             "explains": explains, "parameters": second,
             "text": f"PyTorch's recurrent layers keep two biases, bias_ih and bias_hh, where "
                     f"Keras keeps their sum as one; each takes the whole gradient, so a step "
                     f"moves the sum twice as far. Re-run with {', '.join(second)} left out "
                     f"of the step, {outcome} (they differed by {before:.2g})."}]


def _embedding_padding_causes(eq, rerun, runs, states) -> list[dict]:
    """Steps that computed the same loss, then left other weights: PyTorch's Embedding with a
    padding_idx keeps that row out of the step, where Keras's Embedding, which has no
    padding_idx, trains it. The rerun gives PyTorch's Embeddings no padding_idx."""
    padded = rerun.adapter.padded_embeddings()
    if not padded or eq.max_weight_diff is None or eq.max_weight_diff <= STATE_TOLERANCE or \
            not _same_step_function(runs[eq.a], runs[eq.b]):
        return []
    value = max_weight_diff(states[eq.a], rerun.unpadded_state())
    explains = value <= STATE_TOLERANCE
    rows = ", ".join(f"{name} row {row}" for name, row in padded.items())
    outcome = (f"the weights after the step agree to {value:.2g}" if explains else
               f"the weights after the step still differ by up to {value:.2g}")
    return [{"cause": "embedding_padding_idx", "value": value, "before": eq.max_weight_diff,
             "explains": explains, "parameters": [f"{name}.weight" for name in padded],
             "text": f"PyTorch's Embedding with padding_idx keeps that row out of the step "
                     f"({rows}), where Keras's Embedding, which has no padding_idx, trains it. "
                     f"Re-run of {eq.b} with padding_idx=None, {outcome} (they differed by "
                     f"up to {eq.max_weight_diff:.2g})."}]


def _weight_causes_beside(padding: list[dict], eq, config, rerun, runs, states) -> list[dict]:
    """The optimizer's and rounding's causes, none where the padding rerun explains the
    weights. Where it closes part of the gap (Adam's conventions part the rest), the Adam
    reruns train the padding rows too, as Keras does, and say so; where it closes none (a
    Keras port that keeps the row as PyTorch does), they run as they would without it."""
    if any(c["explains"] for c in padding):
        return []
    if not padding or padding[0]["value"] >= padding[0]["before"]:
        return _weight_causes(eq, config, rerun, runs, states)
    rerun.unpadded = True
    try:
        causes = _adam_causes(eq, config, rerun, states)
    finally:
        rerun.unpadded = False
    for cause in causes:
        cause["text"] += " (This rerun gave PyTorch's Embeddings no padding_idx as well.)"
    return causes


def _rounding_of_the_step(eq, rerun, runs, states) -> list[dict]:
    """Steps of the same function (the same BatchNorm modes and trainable weights) whose
    reported losses differ anyway: float32 rounding can part the losses and then the
    gradients, as Keras's one-pass batch variance does over two values per channel (a
    ResNet18 at 32 px, batch 2: train-step losses 1.86068 and 1.85821, weights up to 2.74
    apart after a step that moved them by up to 19). The float64 rerun measures how far
    float32 itself lands from the exact step."""
    a, b = runs[eq.a], runs[eq.b]
    if not same_function(a, b):
        return []
    causes = _float32_causes(eq, rerun, states, b.state.max_weight_delta)
    for cause in causes:
        cause["text"] = (f"The train-step losses differ ({a.losses.train_step[0]:.6g} vs "
                         f"{b.losses.train_step[0]:.6g}), and so do the gradients. "
                         + cause["text"])
    return causes


def _float32_causes(eq, rerun, states, step: float | None = None) -> list[dict]:
    """Weights that differ after the same SGD step can be float32 rounding amplified by an
    ill-conditioned gradient; a float64 rerun of the PyTorch recipe measures how far. Where
    PyTorch's own float32 error is above NOISE_CAP of what the step moved (step: its largest
    weight change), float32 cannot pin the step at all, and the rerun proves nothing either
    way (DenseNet121 at 32 px, batch 2: 22 from float64 after a step of 2.2)."""
    exact = rerun.float64_state()
    torch_error = max_weight_diff(states[eq.b], exact)
    keras_error = max_weight_diff(states[eq.a], exact)
    measured = (f"Re-run of {eq.b} in float64: PyTorch's float32 weights after the step are "
                f"up to {torch_error:.2g} from it, Keras's up to {keras_error:.2g}")
    cause = {"cause": "float32_rounding", "value": keras_error, "before": eq.max_weight_diff,
             "torch_float32_error": torch_error}
    if step is not None and not torch_error <= NOISE_CAP * step:
        return [{**cause, "explains": False, "inconclusive": True,
                 "text": f"{measured}, where the step moved them by up to {step:.2g}: float32 "
                         "cannot pin this step (its gradient is ill-conditioned), so the rerun "
                         "says nothing of whether the frameworks computed the same."}]
    # Kept for the pairs of two Keras runs held against this same rerun (explain_keras_pair);
    # an inconclusive rerun is not kept, as it judges no pair.
    rerun.float32_errors.update({eq.a: keras_error, eq.b: torch_error})
    within = within_rounding(keras_error, torch_error)
    verdict = ("both frameworks are as close to the float64 result as float32 allows: the "
               "difference is rounding, not a different computation" if within else
               "Keras is further from it than float32 rounding explains")
    return [{**cause, "explains": within, "text": f"{measured}; {verdict}."}]


def within_rounding(error: float, torch_error: float) -> bool:
    return error <= max(FLOAT32_FACTOR * torch_error, STATE_TOLERANCE)


def _recipe(recipes, run_id: str):
    return {r.id: r for r in recipes}[run_id]


def rerun_of(run_id: str, reruns: dict, recipes, adapters, batch, config) -> _Rerun:
    """The PyTorch run's reruns, made once and shared by every pair held against them."""
    if run_id not in reruns:
        reruns[run_id] = _Rerun(adapters["pytorch"], _recipe(recipes, run_id), batch, config)
    return reruns[run_id]


class _Rerun:
    """Reruns of one PyTorch recipe. Every Keras framework's run is held against the same
    ones, so each variant is run once (a four-framework comparison ran each three times)."""

    def __init__(self, adapter, recipe, batch, config):
        self.adapter, self.recipe, self.batch, self.config = adapter, recipe, batch, config
        self._states: dict = {}  # by variant
        # Every rerun also trains the Embeddings' padding rows, as Keras does.
        self.unpadded = False
        # Each run's weights' distance from the float64 rerun's, where measured: the PyTorch
        # recipe's own and the Keras runs held against it.
        self.float32_errors: dict[str, float] = {}
        # The train-step forward loss in float64 of each Keras run held against this recipe
        # (train_loss_causes), for the pairs of two Keras runs.
        self.float64_losses: dict[str, float] = {}

    def final_state_with(self, variant: str, optimizer_overrides: dict) -> dict:
        variant = f"{variant}, unpadded" if self.unpadded else variant
        if variant not in self._states:
            self.adapter.optimizer_overrides = optimizer_overrides
            try:
                self._states[variant] = self.final_state()
            finally:
                self.adapter.optimizer_overrides = {}
        return self._states[variant]

    def inference_after_with(self, variant: str, optimizer_overrides: dict) -> float:
        """The inference loss after the steps of the variant's rerun."""
        state = self.final_state_with(variant, optimizer_overrides)
        return self.adapter.inference_loss_of(state, self.batch)

    def float64_state(self) -> dict:
        return self._state_within("float64", self.adapter.float64)

    def forward_loss64(self, epsilons: dict[str, float] | None = None) -> float:
        """The recipe's train-step forward pass in float64 (its loss), with each BatchNorm
        layer's epsilon as `epsilons` gives it ({canonical name: epsilon}), else its own."""
        key = ("forward64", tuple(sorted((epsilons or {}).items())))
        if key not in self._states:
            with (self.adapter.bn_epsilon(epsilons) if epsilons else
                  contextlib.nullcontext()):
                self._states[key] = self.adapter.recipe_forward_loss(self.recipe, self.batch,
                                                                     exact=True)
        return self._states[key]

    def measured_run(self):
        """The recipe's float32 run, measured as the report's runs are but without their
        explanation passes (its modes, trainable weights, weight change and final state), for
        a recipe none of them ran; None where its step diverged."""
        if "measured" not in self._states:
            c = self.config
            try:
                self._states["measured"] = self.adapter.run_recipe(
                    self.recipe, self.batch, c.steps, c.lr, c.optimizer, ablate=False)
            except NumericalError:
                self._states["measured"] = None
        return self._states["measured"]

    def unpadded_state(self) -> dict:
        """The final state with every Embedding training its padding row, as Keras's does."""
        return self._state_within("unpadded embeddings", self.adapter.embeddings_unpadded)

    def _state_within(self, variant: str, context) -> dict:
        if variant not in self._states:
            with context():
                self._states[variant] = self.final_state()
        return self._states[variant]

    def final_state(self) -> dict:
        """The state the PyTorch recipe's steps leave, under whatever the adapter is set
        to (another momentum, epsilon or precision)."""
        c = self.config
        with (self.adapter.embeddings_unpadded() if self.unpadded else
              contextlib.nullcontext()):
            return self.adapter.state_after_steps(self.recipe, self.batch, c.steps, c.lr,
                                                  c.optimizer)

    def statistics_with_momenta(self, momenta: dict[str, float], first_step: bool) -> dict:
        """running_statistics with every BatchNorm layer's momentum set as given, run once
        for the Keras frameworks that share these momenta (the backends of one model)."""
        key = ("momenta", first_step, tuple(sorted(momenta.items())))
        if key not in self._states:
            with self.adapter.bn_momentum(momenta):
                self._states[key] = self.running_statistics(first_step)
        return self._states[key]

    def running_statistics(self, first_step: bool) -> dict:
        """The state whose BatchNorm running statistics the rerun leaves, as the pair's are
        compared (compared_states): with Dropout active in either run, those of the first
        step's Dropout-free forward pass, whatever the steps; else after one step those of its
        forward pass alone (no backward pass or update is run), after several the final
        state."""
        if first_step or self.config.steps == 1:
            return self.adapter.statistics_after_forward(self.recipe, self.batch,
                                                         dropout_off=first_step)
        return self.final_state()


def explain_pair(eq, conventions, recipes, adapters, batch, config, runs, states,
                 reruns: dict | None = None):
    """The equivalence with measured causes attached, when a rerun can test one.
    conventions: each framework's adapter's conventions(), read from its layers; reruns:
    the PyTorch recipes' reruns by run id, shared by the pairs explained in turn."""
    if not _keras_against_pytorch(eq) or "pytorch" not in adapters:
        return eq
    reruns = {} if reruns is None else reruns
    rerun = rerun_of(eq.b, reruns, recipes, adapters, batch, config)
    padding = _embedding_padding_causes(eq, rerun, runs, states)
    keras = adapters.get(_framework(eq.a))
    causes = (train_loss_causes(eq, conventions, keras, _recipe(recipes, eq.a), rerun, runs)
              + _bn_causes(eq, conventions, rerun, runs, states) + padding
              + _weight_causes_beside(padding, eq, config, rerun, runs, states)
              + _recurrent_bias_causes(eq, rerun, runs))
    # Only a pair that differs in nothing but its weights after the step is the same
    # computation when those differ by rounding alone.
    weights_only = all(d.startswith("weights after the step") for d in eq.differences)
    if not causes:
        return eq
    rounding = any(c["cause"] == "float32_rounding" and c["explains"] for c in causes)
    return dataclasses.replace(eq, causes=tuple(causes),
                               equivalent=eq.equivalent or (weights_only and rounding))
