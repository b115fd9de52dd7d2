"""Port validation, layer by layer: the framework-free half.

`comparator.validate_port(torch_module, keras_model, inputs)` runs both models
and compares them at every pair of matched layers (adapters/port_validation/validator.py does
the running). This module holds what needs no framework: how two arrays are
compared, when a layer counts as diverging, and the results. Which cause a divergence
most likely has is in port_causes.py, how layers are paired when the user gives no port
map in layer_pairing.py.

Passes. Each pass runs both models on the same input:

* forward: Keras runs its own graph end to end, so an early error reaches every
  later layer;
* isolated: every paired Keras layer runs on what PyTorch computed just before
  it (PyTorch's recorded outputs of the preceding paired layers, through the
  Keras operations in between), so the first layer that is wrong by itself is
  found even where errors would otherwise pile up.

Each in inference mode and in training mode (BatchNorm on batch statistics;
Dropout off in both frameworks, since their random masks cannot match), and the
gradients of every parameter after one backward pass of the same loss.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from comparator.analysis.training_side import DropoutComparison, StatisticsComparison
from comparator.analysis.tolerances import (FLOAT32_FACTOR, GRADIENT_COSINE_GAP,
                                             GRADIENT_TOLERANCE, LAYER_TOLERANCE)
from comparator.errors import UsageError
from comparator.schema import _Serialisable

SCHEMA = "xframe-compare/port-validation/1"

DEFAULT_TOLERANCE = LAYER_TOLERANCE  # the names the validator's callers use
DEFAULT_GRADIENT_TOLERANCE = GRADIENT_TOLERANCE
# Where PyTorch float32 is itself this far from float64 (BatchNorm on a handful of values
# per channel, gradients through them), agreement within the noise proves nothing.
NOISE_CAP = 0.1


def check_tolerance(value, label: str = "--tolerance") -> None:
    """A tolerance is a relative difference in (0, 1); anything else is refused in one line."""
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real) \
            or not 0 < value < 1:
        raise UsageError(f"{label} is a relative difference in (0, 1), got {value!r}")


MODES = ("inference", "training")
# Causes that are measured framework arithmetic, not a port error: Keras's training-mode
# BatchNorm output is float32 E[x^2] - E[x]^2 exactly (port_causes.one_pass_variance).
FRAMEWORK_PROPERTIES = frozenset({"one_pass_variance"})


# ----- metrics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Metrics(_Serialisable):
    """How far `value` is from `reference`: max abs, max relative (to the reference's
    largest magnitude, since elementwise ratios explode at zeros) and cosine similarity."""

    max_abs: Annotated[float, "largest absolute difference"]
    max_rel: Annotated[float, "max_abs over the reference's (PyTorch's) largest magnitude"]
    cosine: Annotated[float, "cosine similarity of the two, flattened"]


_CHUNK = 1 << 22  # elements per float64 chunk: large kernels' gradients stay cheap


def metrics(value: np.ndarray, reference: np.ndarray) -> Metrics:
    a = np.asarray(value).reshape(-1)
    b = np.asarray(reference).reshape(-1)
    if np.shape(value) != np.shape(reference):
        raise ValueError(f"shapes differ: {np.shape(value)} vs {np.shape(reference)}")
    if a.size == 0:
        return Metrics(0.0, 0.0, 1.0)
    max_abs = scale = dot = norm_a = norm_b = 0.0
    for start in range(0, a.size, _CHUNK):
        x = a[start:start + _CHUNK].astype(np.float64)
        y = b[start:start + _CHUNK].astype(np.float64)
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            return Metrics(float("inf"), float("inf"), float("nan"))
        max_abs = max(max_abs, float(np.max(np.abs(x - y))))
        scale = max(scale, float(np.max(np.abs(y))))
        dot += float(np.dot(x, y))
        norm_a += float(np.dot(x, x))
        norm_b += float(np.dot(y, y))
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    norms = float(np.sqrt(norm_a) * np.sqrt(norm_b))
    cosine = (1.0 if max_abs == 0 else 0.0) if norms == 0 else dot / norms
    return Metrics(max_abs, max_rel, cosine)


def diverges(m: Metrics | None, tolerance: float) -> bool:
    return m is None or not (m.max_rel <= tolerance)


def judge(against64: Metrics | None, noise: Metrics | None, against32: Metrics | None,
          tolerance: float) -> tuple[bool, bool]:
    """(diverges, inconclusive) for Keras's value. Against the float64 reference when there
    is one: Keras diverges beyond the tolerance and beyond FLOAT32_FACTOR times PyTorch
    float32's own error; where that error itself exceeds NOISE_CAP, the comparison proves
    nothing either way (inconclusive: the reference is rounding noise). Without a
    reference: against PyTorch float32 and the tolerance."""
    if against64 is None or noise is None:
        return diverges(against32, tolerance), False
    if not noise.max_rel <= NOISE_CAP:
        return False, True
    return not (against64.max_rel <= max(tolerance, FLOAT32_FACTOR * noise.max_rel)), False


def judge_gradient(against64: Metrics | None, noise: Metrics | None,
                   against32: Metrics | None, tolerance: float) -> tuple[bool, bool]:
    """(diverges, inconclusive) for a gradient: its size beyond the tolerance and PyTorch's
    own rounding, and its direction beyond GRADIENT_COSINE_GAP."""
    if against64 is None or noise is None:
        if against32 is None:
            return True, False
        return (against32.max_rel > tolerance
                and 1 - against32.cosine > GRADIENT_COSINE_GAP), False
    if not noise.max_rel <= NOISE_CAP:
        return False, True
    size = against64.max_rel > max(tolerance, FLOAT32_FACTOR * noise.max_rel)
    direction = 1 - against64.cosine > max(GRADIENT_COSINE_GAP,
                                           FLOAT32_FACTOR * (1 - noise.cosine))
    return size and direction, False


# ----- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cause(_Serialisable):
    code: Annotated[str, "the cause's code (`weights`, `between_layers`, `dilation`, "
                         "`output_activation`, `after_last_pair`, ...)"]
    text: Annotated[str, "what differs, with the numbers"]
    detail: Annotated[str, "why it matters and what to do"] = ""


@dataclass(frozen=True)
class LayerComparison(_Serialisable):
    """One pair of layers in one pass. Shapes are each framework's own (NCHW, NHWC)."""

    torch_module: Annotated[str, "the PyTorch module (`lstm[1]`: a stacked module's layer)"]
    keras_layer: Annotated[str, "the Keras layer paired with it"]
    kind: Annotated[str, "the pair's kind (`conv`, `bn`, `dense`, `lstm`, ...)"]
    torch_shape: Annotated[tuple[int, ...], "PyTorch's output shape, in its layout"]
    keras_shape: Annotated[tuple[int, ...], "Keras's, in its layout (empty where not "
                                            "computed)"]
    metrics: Annotated[Metrics | None, "Keras against PyTorch float32, in Keras's layout; "
                                       "null where not computed or of another shape"]
    diverges: Annotated[bool, "beyond the tolerance and (with the float64 reference) 4 times "
                              "PyTorch's own float32 error"]
    causes: Annotated[tuple[Cause, ...], "its likely causes, where it diverges"] = ()
    note: Annotated[str, "why Keras's value was not computed, where it was not"] = ""
    float64_rel: Annotated[float | None, "Keras against PyTorch run in float64 (max_rel)"] \
        = None
    noise_rel: Annotated[float | None, "PyTorch float32 against float64 (max_rel): its own "
                                       "rounding"] = None
    inconclusive: Annotated[bool, "PyTorch's own float32 error is above 0.1 there: the "
                                  "comparison proves nothing either way"] = False

    @property
    def label(self) -> str:
        return f"{self.torch_module} <-> {self.keras_layer}"


@dataclass(frozen=True)
class OutputComparison(_Serialisable):
    """One of several outputs --output chose, at the end of a forward pass: Keras's against
    PyTorch's, in PyTorch's layout."""

    pytorch: Annotated[str, "the output's key in the PyTorch model (a dict's key or a "
                            "position)"]
    keras: Annotated[str, "its key in the Keras model"]
    metrics: Annotated[Metrics | None, "Keras's output against PyTorch's (float32), in "
                                       "PyTorch's layout; null where not computed or of "
                                       "another shape"]
    diverges: Annotated[bool, "beyond the tolerance and (with the float64 reference) 4 times "
                              "PyTorch's own float32 error"]
    noise_rel: Annotated[float | None, "PyTorch float32 against float64 (max_rel), null "
                                       "without the float64 reference"] = None

    @property
    def label(self) -> str:
        return output_label(self.pytorch, self.keras)


def output_label(torch_key: str, keras_key: str) -> str:
    """An output as --output names it: KEY, or TORCH_KEY:KERAS_KEY where the keys differ."""
    return torch_key if torch_key == keras_key else f"{torch_key}:{keras_key}"


@dataclass(frozen=True)
class PassResult(_Serialisable):
    mode: Annotated[str, "`inference` or `training`"]
    isolated: Annotated[bool, "each Keras layer fed PyTorch's values of the layers before it "
                              "(else Keras's own forward pass)"]
    layers: Annotated[tuple[LayerComparison, ...], "every pair of layers, in order"]
    # Of several outputs, the one that differs most (the largest relative difference among
    # those that diverge, else among all); `outputs` has each.
    output: Annotated[Metrics | None, "the model's output, Keras's against PyTorch's (null in "
                                      "an isolated pass, or where not comparable); of several "
                                      "outputs, that of the one that differs most"]
    output_diverges: Annotated[bool, "whether the output diverges (of several, any of them)"]
    output_noise_rel: Annotated[float | None, "PyTorch float32 against float64 at that output "
                                              "(max_rel)"] = None
    # Each output, where --output chose several (forward passes; an isolated pass hands
    # PyTorch's values on to the outputs).
    outputs: Annotated[tuple[OutputComparison, ...],
                       "where --output chose several outputs: each one, in --output's order "
                       "(forward passes; empty otherwise)"] = ()

    @property
    def name(self) -> str:
        return f"{self.mode}, {'isolated' if self.isolated else 'forward'}"

    @property
    def first_divergence(self) -> LayerComparison | None:
        return next((c for c in self.layers if c.diverges), None)

    @property
    def diverging(self) -> tuple[LayerComparison, ...]:
        return tuple(c for c in self.layers if c.diverges)


def spoiled_by_property(result: PassResult) -> bool:
    """A pass whose first diverging layer is a framework property: its later layers, its
    output and the gradients through it carry that difference over."""
    first = result.first_divergence
    return first is not None and bool(first.causes) and all(
        c.code in FRAMEWORK_PROPERTIES for c in first.causes)


@dataclass(frozen=True)
class GradientComparison(_Serialisable):
    name: str
    keras_layer: str
    shape: tuple[int, ...]
    metrics: Metrics | None
    diverges: bool
    note: str = ""
    float64_rel: float | None = None
    noise_rel: float | None = None
    inconclusive: bool = False


@dataclass(frozen=True)
class Finding(_Serialisable):
    """The first layer that differs, where it was seen, and why it most likely differs."""

    torch_module: str
    keras_layer: str
    seen_in: str
    causes: tuple[Cause, ...]

    @property
    def framework_property(self) -> bool:
        """Every cause is a measured property of a framework's arithmetic."""
        return bool(self.causes) and all(c.code in FRAMEWORK_PROPERTIES for c in self.causes)

    @property
    def where(self) -> str:
        return f"PyTorch {self.torch_module} <-> Keras {self.keras_layer} ({self.seen_in})"

    @property
    def why(self) -> str:
        return "; ".join(c.text + (f" ({c.detail})" if c.detail else "")
                         for c in self.causes) or "cause unknown"

    @property
    def text(self) -> str:
        return f"first diverging layer: {self.where}: {self.why}"


@dataclass(frozen=True)
class PortValidation(_Serialisable):
    torch_model: str
    keras_model: str
    input_shape: tuple[int, ...]
    pairing: str
    pairs: int
    tolerance: float
    gradient_tolerance: float
    passes: tuple[PassResult, ...]
    gradients: tuple[GradientComparison, ...] = ()
    gradient_mode: str | None = None
    notes: tuple[str, ...] = ()
    float64_reference: bool = False
    schema: str = SCHEMA
    statistics: tuple[StatisticsComparison, ...] = ()  # BatchNorm after one training step
    dropout: tuple[DropoutComparison, ...] = ()
    # Why the models' outputs differ where no layer does (an activation Keras fuses into
    # the output layer that PyTorch's model does not apply), where that was found.
    output_finding: Finding | None = None
    # A model that takes several inputs: each one's shape (input_shape is the first's).
    input_shapes: tuple[tuple[int, ...], ...] = ()
    # Settings that differ in layers every pass found within the tolerance on this batch (a
    # normalisation's epsilon), in words: the port does not compute the same function, though
    # it passes the tolerance (see passed).
    settings_differ: tuple[str, ...] = ()

    @property
    def first_divergence(self) -> Finding | None:
        """The first finding that is not a framework property, else the first one: a
        port error is named before a Keras property it would otherwise hide (a momentum
        slip behind Keras's one-pass variance on two values per channel)."""
        found = list(self._findings())
        return next((f for f in found if not f.framework_property),
                    found[0] if found else None)

    def _findings(self):
        """From the isolated passes first (a layer wrong by itself), then the forward ones
        (each pass's first diverging layer: the rest may carry it over), then the training
        step's running statistics, then the Dropout layers, then what makes the outputs
        differ where no layer does."""
        ordered = sorted(self.passes, key=lambda p: (not p.isolated, MODES.index(p.mode)))
        for result in ordered:
            first = result.first_divergence
            if first is not None:
                yield Finding(first.torch_module, first.keras_layer, result.name, first.causes)
        stats = next((s for s in self.statistics if s.diverges), None)
        if stats is not None:
            yield Finding(stats.torch_module, stats.keras_layer,
                          "training step, running statistics",
                          (Cause(stats.cause, stats.text, stats.detail),))
        drop = next((d for d in self.dropout if d.diverges), None)
        if drop is not None:
            yield Finding(drop.torch_module or "(none)", drop.keras_layer or "(none)",
                          "Dropout layers", (Cause("dropout", drop.text),))
        if self.output_finding is not None:
            yield self.output_finding


    @property
    def inconclusive(self) -> int:
        return (sum(c.inconclusive for p in self.passes for c in p.layers)
                + sum(g.inconclusive for g in self.gradients))

    @property
    def gradient_divergences(self) -> tuple[GradientComparison, ...]:
        return tuple(g for g in self.gradients if g.diverges)

    @property
    def passed(self) -> bool:
        """Nothing diverges but measured framework properties and what their passes carry
        over from them. A setting that differs where every layer agrees within the tolerance
        (settings_differ) is said, not failed: the zoo's DenseNet121 keeps keras.applications'
        BatchNorm epsilon 1.001e-5 beside torchvision's 1e-5 and agrees at 224 px."""
        finding = self.first_divergence
        return ((finding is None or finding.framework_property)
                and not any(p.output_diverges and not spoiled_by_property(p)
                            for p in self.passes)
                and not self.gradient_divergences)

    @property
    def statistics_divergences(self) -> tuple[StatisticsComparison, ...]:
        return tuple(s for s in self.statistics if s.diverges)

    @property
    def dropout_divergences(self) -> tuple[DropoutComparison, ...]:
        return tuple(d for d in self.dropout if d.diverges)

    def pass_result(self, mode: str, isolated: bool) -> PassResult:
        for result in self.passes:
            if result.mode == mode and result.isolated == isolated:
                return result
        raise KeyError((mode, isolated))

    def to_dict(self) -> dict:
        body = super().to_dict()
        ordered = {"schema": body.pop("schema")}
        ordered.update(body)
        finding = self.first_divergence
        ordered["first_divergence"] = finding.to_dict() if finding else None
        ordered["passed"] = self.passed
        ordered["inconclusive"] = self.inconclusive
        return ordered

    def _inputs_text(self) -> str:
        if len(self.input_shapes) > 1:
            return "inputs " + ", ".join(str(tuple(shape)) for shape in self.input_shapes)
        return f"input {tuple(self.input_shape)}"

    def render(self, max_rows: int = 8) -> str:
        """A report for a terminal: one line per pass, the first divergences, the verdict."""
        lines = [f"port validation: PyTorch {self.torch_model} vs Keras {self.keras_model}",
                 f"  {self._inputs_text()}, {self.pairs} layer pairs "
                 f"({self.pairing}); a layer diverges beyond {self.tolerance:g} of the largest "
                 f"PyTorch value and {FLOAT32_FACTOR:g}x PyTorch's own float32 error"]
        for result in self.passes:
            out = ("output PyTorch's (substituted)" if result.isolated else
                   _outputs_text(result.outputs) if result.outputs else
                   "output " + _output_text(result.output))
            bad = result.diverging
            unsure = sum(c.inconclusive for c in result.layers)
            lines.append(f"  {result.name:22s} {len(bad):3d}/{len(result.layers)} layers "
                         f"diverge" + (f", {unsure} inconclusive" if unsure else "")
                         + f"; {out}")
            for comparison in bad[:max_rows]:
                lines.append("      " + _row(comparison))
            if len(bad) > max_rows:
                lines.append(f"      ... and {len(bad) - max_rows} more")
        if self.gradients:
            bad = self.gradient_divergences
            judged = [g for g in self.gradients if not g.inconclusive] or list(self.gradients)
            worst = max(judged, key=lambda g: g.metrics.max_rel if g.metrics else np.inf)
            unsure = sum(g.inconclusive for g in self.gradients)
            lines.append(f"  gradients ({self.gradient_mode}) {len(bad):3d}/"
                         f"{len(self.gradients)} parameters diverge"
                         + (f", {unsure} inconclusive" if unsure else "") + " "
                         f"(beyond {self.gradient_tolerance:g} and cosine "
                         f"{1 - GRADIENT_COSINE_GAP:g}); largest difference "
                         f"{worst.name}: " + _metric_text(worst.metrics, worst.noise_rel))
            for g in bad[:max_rows]:
                lines.append(f"      {g.name} ({g.keras_layer}): "
                             f"{_metric_text(g.metrics, g.noise_rel)}"
                             + (f" [{g.note}]" if g.note else ""))
        lines.extend(self._render_training_side(max_rows))
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.inconclusive:
            lines.append(f"  note: {self.inconclusive} comparisons are inconclusive: PyTorch's "
                         f"own float32 result is more than {NOISE_CAP:g} (relative) from "
                         "float64 there (a gradient that is zero in exact arithmetic, such as "
                         "a bias followed by a training-mode BatchNorm, or BatchNorm over a "
                         "few values per channel)")
        finding = self.first_divergence
        if finding is not None and finding.framework_property and self.passed:
            lines.append(f"the port computes the same function: every difference is a "
                         f"framework's own arithmetic, first at {finding.where}: "
                         f"{finding.why}")
        elif finding is not None:
            lines.append(finding.text)
        elif not self.passed:
            lines.append(self._no_single_layer())
        elif self.settings_differ:
            lines.append("every layer agrees within the tolerance on this batch, but a setting "
                         "differs, so the port does not compute the same function: "
                         + "; ".join(self.settings_differ))
        else:
            lines.append("every layer agrees: the port computes the same function")
        return "\n".join(lines)

    def _no_single_layer(self) -> str:
        """The verdict where outputs or gradients differ and no layer does: of several
        outputs, which ones."""
        differing = list(dict.fromkeys(o.label for p in self.passes for o in p.outputs
                                       if o.diverges))
        if not differing:
            return "no single layer diverges, but the outputs or gradients do"
        named = ", ".join(repr(label) for label in differing)
        return (f"no single layer diverges, but output{'s' * (len(differing) > 1)} {named} "
                f"differ{'s' * (len(differing) == 1)}"
                + (", and so do gradients" if self.gradient_divergences else ""))

    def _render_training_side(self, max_rows: int) -> list[str]:
        lines = []
        if self.statistics:
            bad = self.statistics_divergences
            lines.append(f"  training step: {len(bad)}/{len(self.statistics)} BatchNorm "
                         "running statistics diverge (each layer one step on PyTorch's input; "
                         "momentum in PyTorch's convention)")
            for s in bad[:max_rows]:
                lines.append(f"      {s.label}: mean rel {s.mean_rel:.3g}, variance rel "
                             f"{s.variance_rel:.3g} -- {s.text}")
            kept = max(self.statistics, key=lambda s: s.kept_variance_rel)
            if kept.kept_variance_rel > 0:
                lines.append(f"      running variance: PyTorch keeps the {kept.torch_variance} "
                             f"batch variance, Keras the {kept.keras_variance} one; alone "
                             f"that moves them apart by up to {kept.kept_variance_rel:.3g} "
                             f"(relative, {kept.label}, {kept.values_per_channel} values per "
                             "channel), a framework property taken out before comparing")
        if self.dropout:
            bad = self.dropout_divergences
            # A difference the zoo entry keeps on purpose is noted, not counted as diverging.
            known = [d for d in self.dropout if d.text and not d.diverges]
            lines.append(f"  dropout: {len(bad) + len(known)}/{len(self.dropout)} Dropout layers"
                         " differ (paired in the order they run)"
                         + (f", {len(known)} of them as the zoo entry states: not counted as a "
                            "divergence" if known else ""))
            for d in bad[:max_rows]:
                lines.append(f"      {d.label}: {d.text}")
        return lines


def _output_text(m: Metrics | None) -> str:
    return "not comparable" if m is None else f"max abs {m.max_abs:.3g}, cos {m.cosine:.6f}"


def _outputs_text(outputs: tuple[OutputComparison, ...]) -> str:
    """Each of several outputs, named, those that diverge marked so."""
    return "outputs " + "; ".join(f"{o.label!r} {_output_text(o.metrics)}"
                            + (" (diverges)" if o.diverges else "") for o in outputs)


def _metric_text(m: Metrics | None, noise: float | None = None) -> str:
    if m is None:
        return "not comparable"
    text = f"max abs {m.max_abs:.3g}, rel {m.max_rel:.3g}, cos {m.cosine:.6f}"
    if noise is not None:
        text += f" (PyTorch float32 vs float64: rel {noise:.3g})"
    return text


def _row(c: LayerComparison) -> str:
    if c.metrics is None:
        body = f"PyTorch {tuple(c.torch_shape)} vs Keras {tuple(c.keras_shape)}"
    else:
        body = _metric_text(c.metrics, c.noise_rel)
    why = "; ".join(x.text for x in c.causes)
    return f"{c.label}: {body}" + (f" -- {why}" if why else "") + (
        f" [{c.note}]" if c.note else "")


# ----- the zoo, from the command line -------------------------------------------------------


def check_zoo_request(model: str, image_size: int | None, batch_size: int, naive: bool,
                      options: dict):
    """The zoo entry and image size a port validation request names, checked before any
    framework is imported (comparator.validate_model runs it)."""
    from comparator.zoo import get_spec, known_models

    if model not in known_models():
        raise UsageError(f"unknown model {model!r}; port validation takes one of: "
                         f"{', '.join(zoo_models())}")
    spec = get_spec(model)
    if not spec.takes_images:
        raise UsageError(f"{model} is not an image backbone; port validation takes one of: "
                         f"{', '.join(zoo_models())}")
    if naive and not spec.naive_keras_builder:
        with_naive = [m for m in zoo_models() if get_spec(m).naive_keras_builder]
        builder = spec.keras_builder or spec.name
        own = (f"already is keras.applications' {builder}" if builder[0].isupper() else
               "is this project's own (adapters/keras/models.py), built to match PyTorch's")
        raise UsageError(f"{model} has no naive keras.applications twin: its Keras model {own}; "
                         f"--naive takes {', '.join(with_naive)}")
    size = spec.default_image_size if image_size is None else image_size
    if naive and spec.naive_image_size and size != spec.naive_image_size:
        if image_size is not None:
            raise UsageError(f"keras.applications' {spec.naive_keras_builder} classifier only "
                             f"takes {spec.naive_image_size} px, not {image_size}")
        size = spec.naive_image_size
    if size < spec.min_image_size:
        raise UsageError(f"image size {size} is too small for {model}: it needs at least "
                         f"{spec.min_image_size} px")
    _check_modes_and_batch(batch_size, options)
    from comparator.limits import check_memory

    check_memory(spec.name, batch_size, size, None, options.pop("max_memory", None),
                 what="this validation")
    return spec, size


def _check_modes_and_batch(batch_size: int, options: dict) -> None:
    modes = tuple(options.get("modes", MODES))
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise UsageError(f"unknown mode {', '.join(unknown) or '(none given)'}; modes are "
                         f"{', '.join(MODES)}")
    needs_batch_statistics = ("training" in modes or options.get("gradients", True)
                              or options.get("train_step", True))
    if batch_size < (2 if needs_batch_statistics else 1):
        raise UsageError(f"batch size must be at least 2, got {batch_size}: training mode "
                         "and gradients need batch statistics (or give --modes inference "
                         "--no-gradients --no-train-step)" if batch_size > 0 else
                         f"batch size must be positive, got {batch_size}")


def pair_request_inputs(options: dict) -> tuple[np.ndarray, dict]:
    """The batch of a validation request on the user's own pair (inputs: an .npz path, whose
    x0, x1, ... are a model's several inputs, or input_shape C,H,W, or several such shapes,
    with batch_size and seed), checked before any framework is
    imported, and the options left for validate_port (comparator.validate_pair runs it)."""
    from comparator.config.pair import load_validator_inputs, seeded_batch

    options = dict(options)
    inputs, input_shape = options.pop("inputs", None), options.pop("input_shape", None)
    batch_size = options.pop("batch_size", 2)
    if (input_shape is None) == (inputs is None):
        raise UsageError("give the batch as --input-shape C,H,W or as --inputs FILE.npz "
                         "(one of them)")
    x = (load_validator_inputs(inputs) if inputs
         else seeded_batch(tuple(input_shape), batch_size, options.get("seed", 0)))
    _check_modes_and_batch(len(x[0] if isinstance(x, tuple) else x), options)
    return x, options


def zoo_models() -> list[str]:
    from comparator.zoo import get_spec, known_models

    return [m for m in known_models() if get_spec(m).takes_images]
