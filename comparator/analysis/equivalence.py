"""Which recipe of one framework behaves like which recipe of the other, measured."""

from __future__ import annotations

import itertools


from comparator.config.recipes import EXPECTED_PAIRS, version_pairs
from comparator.analysis.tolerances import STATE_TOLERANCE, loss_tolerance
from comparator.analysis.states import max_bn_stat_diff, max_weight_diff
from comparator.schema import Equivalence, RunResult

# Each framework draws its masks from its own generator state, so nothing makes two runs'
# masks alike. They can be: Keras on torch's unseeded Dropout uses torch's global generator,
# as nn.Dropout does. Keras's `fit` first draws from torch's CPU generator (the seeds of its
# torch data loaders: measured, a mask equal to plain torch's after two draws), and on a GPU
# the masks come from the CUDA generator, which those draws leave alone: the own pair of
# examples/own_pair.py on an H200 reported bitwise equal train-step losses, on the CPU 1.1771
# against 1.0812 (docs/gpu.md).
DROPOUT_JUDGEMENT = ("Dropout was active, and each framework draws its own random masks: "
                     "judged on the Dropout-free passes (the inference loss before the step, "
                     "the train-step forward pass with Dropout off and the BatchNorm running "
                     "statistics it leaves); the reported train-step loss, the weights after "
                     "the step and the inference loss after it depend on the masks and are "
                     "not compared")


def losses_agree(x: float, y: float) -> bool:
    return abs(x - y) <= loss_tolerance(max(abs(x), abs(y)))


def same_function(a, b) -> bool:
    """Whether two runs' steps are steps of the same function (the same BatchNorm modes and
    trainable weights), whatever float32 rounding made of their losses."""
    return (a.modes.bn_batch_stats == b.modes.bn_batch_stats
            and a.state.trainable_params == b.state.trainable_params)


# The difference a pair's Dropout activity makes, where one run has Dropout active and the
# other none (the reports' `differences` text begins with it).
DROPOUT_ACTIVE_DIFFERENCE = "Dropout layers active in the train step"


def _dropout_judgement(a: RunResult, b: RunResult) -> str:
    """DROPOUT_JUDGEMENT, and whether the reported train-step losses agreed anyway."""
    if not (a.modes.dropout_active and b.modes.dropout_active):
        return DROPOUT_JUDGEMENT
    x, y = a.losses.train_step[0], b.losses.train_step[0]
    if not losses_agree(x, y):
        return DROPOUT_JUDGEMENT
    return (f"{DROPOUT_JUDGEMENT} (here the reported train-step losses agree: {x:.6g} and "
            f"{y:.6g})")


def _loss_pairs(a: RunResult, b: RunResult, dropout: bool) -> list[tuple[str, float, float]]:
    pairs = [("inference_before", a.losses.inference_before, b.losses.inference_before)]
    if dropout:
        # A run without active Dropout: its train step is its Dropout-free pass.
        x, y = (r.losses.train_step_without_dropout if r.modes.dropout_active
                else r.losses.train_step[0] for r in (a, b))
        if x is not None and y is not None:
            pairs.append(("train-step pass without Dropout", x, y))
        return pairs
    pairs += [(f"train_step[{i}]", x, y)
              for i, (x, y) in enumerate(zip(a.losses.train_step, b.losses.train_step))]
    pairs.append(("inference_after", a.losses.inference_after, b.losses.inference_after))
    return pairs


def _observed_differences(a: RunResult, b: RunResult) -> tuple[list[str], float]:
    """What two runs' losses, state flags and layer modes differ in, and their largest loss
    gap: everything compare_runs judges except the states themselves."""
    differences = []
    dropout = bool(a.modes.dropout_active or b.modes.dropout_active)
    max_diff = 0.0
    for label, x, y in _loss_pairs(a, b, dropout):
        diff = abs(x - y)
        max_diff = max(max_diff, diff)
        if not losses_agree(x, y):
            differences.append(f"{label}: {x:.6g} vs {y:.6g} (differ by {diff:.3g})")
    for flag in ("weights_changed", "bn_stats_changed"):
        fa, fb = getattr(a.state, flag), getattr(b.state, flag)
        if fa != fb:
            differences.append(f"{flag}: {a.id} {fa}, {b.id} {fb}")
    # Where the flags agree, the count still tells recipes that train other weights apart,
    # which with Dropout active nothing else here would (their weights are not compared).
    if (a.state.trainable_params != b.state.trainable_params
            and a.state.weights_changed == b.state.weights_changed):
        differences.append(f"trainable parameters: {a.state.trainable_params:,} vs "
                           f"{b.state.trainable_params:,}")
    if a.modes.bn_batch_stats != b.modes.bn_batch_stats:
        differences.append(f"BatchNorm layers using batch statistics: {a.modes.bn_batch_stats} "
                           f"vs {b.modes.bn_batch_stats}")
    if bool(a.modes.dropout_active) != bool(b.modes.dropout_active):
        x, y = a.losses.train_step[0], b.losses.train_step[0]
        differences.append(f"{DROPOUT_ACTIVE_DIFFERENCE}: {a.modes.dropout_active} "
                           f"vs {b.modes.dropout_active} (reported train-step losses {x:.6g} vs "
                           f"{y:.6g})")
    return differences, max_diff


def compare_runs(a: RunResult, b: RunResult, state_a: dict, state_b: dict,
                 expected: bool = False, reason: str = "") -> Equivalence:
    """state_a and state_b: what the pair is compared on (compared_states)."""
    return _judged(a, b, state_a, state_b, _observed_differences(a, b), expected, reason)


def _judged(a: RunResult, b: RunResult, state_a: dict, state_b: dict,
            observed: tuple[list[str], float], expected: bool, reason: str) -> Equivalence:
    """compare_runs, given what _observed_differences found for the pair."""
    differences, max_diff = list(observed[0]), observed[1]
    dropout = bool(a.modes.dropout_active or b.modes.dropout_active)
    weight_diff = None if dropout else max_weight_diff(state_a, state_b)
    stat_diff = max_bn_stat_diff(state_a, state_b)
    if weight_diff is not None and weight_diff > STATE_TOLERANCE:
        differences.append(f"weights after the step differ by up to {weight_diff:.3g}")
    if stat_diff is not None and stat_diff > STATE_TOLERANCE:
        differences.append(f"BatchNorm running statistics after the step differ by up to "
                           f"{stat_diff:.3g}")
    return Equivalence(a=a.id, b=b.id, equivalent=not differences, max_diff=max_diff,
                       expected=expected, reason=reason, differences=tuple(differences),
                       max_weight_diff=weight_diff, max_bn_stat_diff=stat_diff,
                       judged_on=_dropout_judgement(a, b) if dropout else "")


def old_keras_frozen_bn_findings(runs: dict[str, RunResult]) -> list[str]:
    """Which runs behave like Keras 2.1-era `trainable = False` on BatchNorm (the seed report):
    weights frozen, yet BatchNorm normalising with the batch's statistics in training."""
    twins = [r for r in runs.values() if r.modes.bn_batch_stats and not r.state.weights_changed]
    if not any(r.modes.bn_layers for r in runs.values()):
        return []
    findings = []
    for framework in sorted({r.framework for r in runs.values()}):
        mine = [r.id for r in twins if r.framework == framework]
        if mine:
            findings.append(
                f"{', '.join(mine)} reproduce{'s' if len(mine) == 1 else ''} the old Keras "
                "(2.1 era) frozen-BatchNorm behaviour of the seed report: no weight changed, "
                "yet BatchNorm normalised with the batch's statistics in the train step.")
        else:
            findings.append(
                f"No {framework} recipe run here reproduces the old Keras frozen-BatchNorm "
                "behaviour (frozen weights with BatchNorm on batch statistics).")
    return findings


def equivalences(runs: dict[str, RunResult], states: dict[str, dict],
                 dropout_free: dict[str, dict] | None = None) -> list[Equivalence]:
    """The expected pairs (always listed) and any other pair of a PyTorch recipe with
    another framework's that agrees, each compared on its compared_states."""
    dropout_free = dropout_free or {}
    found = []
    listed = set()
    frameworks = list(dict.fromkeys(r.framework for r in runs.values()))
    for a, b, reason in (*EXPECTED_PAIRS, *version_pairs(frameworks)):
        if a in runs and b in runs:
            found.append(compare_runs(runs[a], runs[b],
                                      *compared_states(runs, states, dropout_free, a, b),
                                      True, reason))
            listed.add((a, b))
    for a, b in itertools.combinations(runs, 2):
        if runs[a].framework == runs[b].framework or (a, b) in listed or (b, a) in listed:
            continue
        if "pytorch" not in (runs[a].framework, runs[b].framework):
            continue  # Keras backends against each other: the expected pairs say it
        if runs[a].framework == "pytorch":
            a, b = b, a
        observed = _observed_differences(runs[a], runs[b])
        if observed[0]:
            # Listed only when equivalent, so its states need no comparison: on DenseNet121
            # each reads 8 million weights in float64, 0.2 to 0.4 s for the 12 such pairs.
            continue
        result = _judged(runs[a], runs[b], *compared_states(runs, states, dropout_free, a, b),
                         observed, False,
                         "not an expected pair; listed because the measurements agree")
        if result.equivalent:
            found.append(result)
    return found


def compared_states(runs: dict[str, RunResult], states: dict[str, dict],
                    dropout_free: dict[str, dict], a: str, b: str) -> tuple[dict, dict]:
    """The states a pair is compared on. With Dropout active in either run, each run's
    running statistics as its first step's Dropout-free forward pass left them (`dropout_free`:
    a run with active Dropout, its pass with Dropout off; one without, its step 1 when it took
    several), since the masks steer every later step and the weights are not compared; else
    the final states."""
    if runs[a].modes.dropout_active or runs[b].modes.dropout_active:
        return dropout_free.get(a, states[a]), dropout_free.get(b, states[b])
    return states[a], states[b]
