"""The training side of a port, framework-free: BatchNorm running statistics after one
training-mode step, and Dropout rates, compared layer by layer.

Conventions, measured with torch 2.14 and Keras 3.15 (torch backend):
* momentum: PyTorch's `momentum` p is the weight of the new batch
  (running = (1 - p) * running + p * batch); Keras's `momentum` m is the weight of the
  old value (moving = m * moving + (1 - m) * batch). Everything here is stated in
  PyTorch's convention: Keras's m is PyTorch's 1 - m (Keras's default 0.99 is PyTorch's
  0.01; PyTorch's default 0.1 is Keras's 0.9). PyTorch's momentum=None is a cumulative
  average: p = 1 / (batches seen + 1).
* kept variance: PyTorch's running_var takes the unbiased batch variance (n / (n - 1)
  times the biased one, n values per channel), Keras's moving_variance the biased one.
  That alone separates the two after a step; it is taken out before comparing, and
  reported. Which one each framework keeps is read off the step itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from comparator.analysis.tolerances import FLOAT32_FACTOR, MOMENTUM_TOLERANCE
from comparator.schema import _Serialisable


@dataclass(frozen=True)
class BatchNormStep:
    """One framework's BatchNorm before and after one training-mode step (channel vectors).

    momentum in PyTorch's convention (None: PyTorch's cumulative average); declared is how
    the layer states it ("momentum=0.99"); updates is False where the framework does not
    update the statistics in training (a frozen Keras layer)."""

    name: str
    momentum: float | None
    declared: str
    epsilon: float
    updates: bool
    mean_before: np.ndarray
    var_before: np.ndarray
    mean_after: np.ndarray
    var_after: np.ndarray


@dataclass(frozen=True)
class StatisticsComparison(_Serialisable):
    """A pair of BatchNorm layers' running statistics after the same step, on the input
    PyTorch's layer saw. *_momentum in PyTorch's convention."""

    torch_module: str
    keras_layer: str
    torch_momentum: float | None
    keras_momentum: float | None
    torch_declared: str
    keras_declared: str
    torch_epsilon: float
    keras_epsilon: float
    torch_variance: str  # which batch variance the running variance took: unbiased, biased
    keras_variance: str
    values_per_channel: int
    mean_rel: float  # Keras's running mean against PyTorch's, relative to PyTorch's largest
    variance_rel: float  # the same for the variance, the kept-variance difference removed
    kept_variance_rel: float  # what unbiased against biased alone makes of the variance
    tolerance: float
    diverges: bool
    cause: str = ""  # momentum, frozen_batchnorm, statistics
    text: str = ""
    detail: str = ""
    # The absolute gap between the running means that float32 rounding allows, read off
    # the layer's input: a mean far below its input's spread (a batch mean that is zero in
    # exact arithmetic) is rounding noise, which the relative mean_rel blows up.
    mean_rounding: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.torch_module} <-> {self.keras_layer}"


def batch_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel mean and biased variance (float64) of a channels-first batch, and the
    number of values per channel."""
    x64 = np.asarray(x, dtype=np.float64)
    axes = tuple(i for i in range(x64.ndim) if i != 1)
    n = int(x64.size // x64.shape[1])
    return x64.mean(axis=axes), x64.var(axis=axes), n


def _one_pass_error(x: np.ndarray, var64: np.ndarray) -> float:
    """How far float32 E[x^2] - E[x]^2 (Keras's batch variance) is from the exact one,
    relative to the largest variance."""
    x32 = np.asarray(x, dtype=np.float32)
    axes = tuple(i for i in range(x32.ndim) if i != 1)
    one_pass = np.mean(np.square(x32), axis=axes) - np.square(np.mean(x32, axis=axes))
    return _rel(one_pass, var64)


def _mean_rounding(x: np.ndarray, step: BatchNormStep, p: float) -> float:
    """FLOAT32_FACTOR float32 units of the running mean's update: the batch mean's (one
    unit of the input's root mean square per channel, the scale its summands round at) and
    the kept value's. Measured on torchvision's MobileNetV3 (32 px, batch 2): Keras's and
    PyTorch's running means were 1e-8 to 8e-8 times momentum times the input's spread
    apart, while relative to the means themselves, which were near zero, up to 0.7."""
    axes = tuple(i for i in range(x.ndim) if i != 1)
    rms = np.sqrt(np.mean(np.square(np.asarray(x, np.float64)), axis=axes))
    unit = np.finfo(np.float32).eps * (p * rms + np.abs(step.mean_before))
    return float(FLOAT32_FACTOR * np.max(unit)) if unit.size else 0.0


def _rel(value, reference) -> float:
    value, reference = np.asarray(value, np.float64), np.asarray(reference, np.float64)
    if value.size == 0:
        return 0.0
    if not (np.all(np.isfinite(value)) and np.all(np.isfinite(reference))):
        return float("inf")
    gap = float(np.max(np.abs(value - reference)))
    scale = float(np.max(np.abs(reference)))
    return gap / scale if scale > 0 else (0.0 if gap == 0 else float("inf"))


def effective_momentum(step: BatchNormStep, batches_seen: int = 0) -> float:
    return step.momentum if step.momentum is not None else 1.0 / (batches_seen + 1)


def _kept_variance(step: BatchNormStep, p: float, var_b: np.ndarray, n: int) -> str:
    """Which batch variance the step put into the running variance, read off the step."""
    if not step.updates or np.array_equal(step.var_after, step.var_before):
        return "not updated"
    unbiased = (1 - p) * step.var_before + p * var_b * n / max(n - 1, 1)
    biased = (1 - p) * step.var_before + p * var_b
    if _rel(unbiased, biased) < 1e-6:
        return "indistinguishable"
    return "unbiased" if _rel(step.var_after, unbiased) < _rel(step.var_after, biased) \
        else "biased"


def _as_biased(step: BatchNormStep, kept: str, p: float, var_b: np.ndarray, n: int):
    if kept != "unbiased":
        return np.asarray(step.var_after, np.float64)
    return step.var_after - p * var_b / max(n - 1, 1)


def compare_statistics(torch_step: BatchNormStep, keras_step: BatchNormStep, x: np.ndarray,
                       tolerance: float, torch_batches_seen: int = 0) -> StatisticsComparison:
    """Keras's running statistics against PyTorch's after one step on x (the input
    PyTorch's BatchNorm saw, channels first)."""
    mean_b, var_b, n = batch_moments(x)
    p_torch = effective_momentum(torch_step, torch_batches_seen)
    p_keras = effective_momentum(keras_step)
    kept_torch = _kept_variance(torch_step, p_torch, var_b, n)
    kept_keras = _kept_variance(keras_step, p_keras, var_b, n)
    torch_var = _as_biased(torch_step, kept_torch, p_torch, var_b, n)
    keras_var = _as_biased(keras_step, kept_keras, p_keras, var_b, n)
    mean_rel = _rel(keras_step.mean_after, torch_step.mean_after)
    variance_rel = _rel(keras_var, torch_var)
    kept_rel = _rel(torch_step.var_after, torch_var) if kept_torch != kept_keras else 0.0
    # Keras's one-pass variance loses float32 digits, measured here on the layer's input.
    allowed = max(tolerance, FLOAT32_FACTOR * p_keras * _one_pass_error(x, var_b))
    rounding = _mean_rounding(x, torch_step, max(p_torch, p_keras))
    mean_gap = np.max(np.abs(np.asarray(keras_step.mean_after, np.float64)
                             - torch_step.mean_after), initial=0.0)
    mean_agrees = mean_rel <= allowed or mean_gap <= rounding
    bad = not (mean_agrees and variance_rel <= allowed)
    comparison = StatisticsComparison(
        torch_step.name, keras_step.name, torch_step.momentum, keras_step.momentum,
        torch_step.declared, keras_step.declared, torch_step.epsilon, keras_step.epsilon,
        kept_torch, kept_keras, n, mean_rel, variance_rel, kept_rel, allowed, bad,
        mean_rounding=rounding)
    if not bad:
        return comparison
    return _with_cause(comparison, torch_step, keras_step, p_torch, p_keras)


def _with_cause(c: StatisticsComparison, torch_step, keras_step, p_torch, p_keras):
    from dataclasses import replace

    if not keras_step.updates:
        return replace(c, cause="frozen_batchnorm",
                       text=f"Keras {c.keras_layer} does not update its moving statistics "
                            "(trainable=False)",
                       detail="a frozen Keras BatchNormalization keeps its moving statistics "
                              "in training; PyTorch in train() updates running_mean/var")
    if not torch_step.updates:
        return replace(c, cause="statistics",
                       text=f"PyTorch {c.torch_module} does not update its running statistics")
    if abs(p_torch - p_keras) > MOMENTUM_TOLERANCE:
        return replace(c, cause="momentum",
                       text=f"BatchNorm momentum: PyTorch {c.torch_module} {p_torch:g}"
                            + (" (momentum=None: a cumulative average, 1/(batches seen + 1) "
                               "at this step)" if torch_step.momentum is None else "") + ", "
                            f"Keras {c.keras_layer} {p_keras:g} (PyTorch's convention, the "
                            f"weight of the new batch; Keras states {keras_step.declared})",
                       detail=f"Keras's momentum m is PyTorch's 1 - m: PyTorch's momentum="
                              f"{p_torch:g} is Keras's momentum={1 - p_torch:g}. Inference "
                              "agrees until the first training step, then the running "
                              "statistics drift apart")
    return replace(c, cause="statistics",
                   text=f"running statistics differ after one step with the same momentum "
                        f"{p_torch:g} (mean rel {c.mean_rel:.3g}, variance rel "
                        f"{c.variance_rel:.3g})",
                   detail="the layers start from the same statistics and see the same "
                          "input: look for renorm, a custom update or statistics that are "
                          "reset")


# ----- Dropout ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DropoutLayer:
    """A random layer of either framework: its name, class, what it drops (values,
    channels, alpha, gaussian) and its rate."""

    name: str
    type_name: str
    family: str
    rate: float | None


@dataclass(frozen=True)
class DropoutComparison(_Serialisable):
    torch_module: str | None
    keras_layer: str | None
    torch_type: str | None
    keras_type: str | None
    torch_rate: float | None
    keras_rate: float | None
    diverges: bool
    text: str = ""

    @property
    def label(self) -> str:
        return f"{self.torch_module or '(none)'} <-> {self.keras_layer or '(none)'}"


def compare_dropout(torch_layers: list[DropoutLayer],
                    keras_layers: list[DropoutLayer]) -> tuple[DropoutComparison, ...]:
    """Pair the random layers in the order they run and compare their rates and kinds. A
    layer of rate 0 is the identity in every mode, as having no layer is: left out."""
    torch_layers = [t for t in torch_layers if t.rate != 0]
    keras_layers = [k for k in keras_layers if k.rate != 0]
    results = []
    for i in range(max(len(torch_layers), len(keras_layers))):
        t = torch_layers[i] if i < len(torch_layers) else None
        k = keras_layers[i] if i < len(keras_layers) else None
        text = ""
        if t is None or k is None:
            present, framework, other = (t, "PyTorch", "Keras") if k is None else \
                (k, "Keras", "PyTorch")
            text = (f"{framework} {present.name} ({present.type_name}, rate "
                    f"{_rate(present.rate)}) has no {other} counterpart: {len(torch_layers)} "
                    f"Dropout modules in PyTorch, {len(keras_layers)} layers in Keras")
        elif t.family != k.family:
            text = (f"Dropout kind: PyTorch {t.name} ({t.type_name}) drops {t.family}, Keras "
                    f"{k.name} ({k.type_name}) drops {k.family}")
        elif t.rate is None or k.rate is None or abs(t.rate - k.rate) > 1e-9:
            text = (f"Dropout rate: PyTorch {t.name} p={_rate(t.rate)}, Keras {k.name} "
                    f"rate={_rate(k.rate)}")
        results.append(DropoutComparison(
            t and t.name, k and k.name, t and t.type_name, k and k.type_name,
            t and t.rate, k and k.rate, bool(text), text))
    return tuple(results)


def _rate(rate: float | None) -> str:
    return "unknown" if rate is None else f"{rate:g}"
