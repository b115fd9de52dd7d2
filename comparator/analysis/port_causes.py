"""Which cause a port divergence most likely has, from facts about the pair of layers
(adapters/port_validation/causes.py gathers them): a failed layer, strides or padding
placed differently, the normalisations' conventions, or weights in another layout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from comparator.analysis.kernel_layout import LayoutMistake
from comparator.analysis.validation import Cause


@dataclass(frozen=True)
class OperationSetting:
    """A weightless operation of one family on both sides of a layer pair's input, set
    otherwise in each framework (adapters/port_validation/operation_settings.py and
    pool_padding.py read and measure it): code is the cause's (activation_setting,
    upsample_align_corners, upsample_interpolation, avgpool_count_include_pad,
    pool_padding). Values are written as each framework writes them ("0.01", "'none'",
    "True"); where Keras has no such setting (keras_default None), keras_value is what it
    computes, in PyTorch's terms. keras_fix: PyTorch's setting in Keras's terms, or the
    Keras layer that computes it ("ZeroPadding2D(1)"); for pool_padding the whole fix in
    words, why the windows differ and the ports that agree. max_abs: how far PyTorch's module is
    from Keras's operation on that operation's input; swapped_max_abs: the same with the
    PyTorch module given Keras's setting. torch_setting: PyTorch's name for the setting
    where its module takes it under another name than Keras's (Upsample's mode,
    UpSampling2D's interpolation). torch_default: whether PyTorch's value is its default;
    None where the module or function has no such setting (ReLU6 clips at 6, a plain ReLU
    nowhere) and torch_value is what it computes. torch_function: where no module computes
    PyTorch's operation, the function forward() calls ("torch.nn.functional.leaky_relu",
    "torch.Tensor.relu"); torch_module then names the call
    ("torch.nn.functional.leaky_relu in forward(), call 1", or in "block.forward()" where
    a module's forward() calls it) and torch_kind is the module class that computes the
    same ("LeakyReLU")."""

    code: str
    family: str
    setting: str
    torch_module: str
    torch_kind: str  # the module's class: "LeakyReLU", "UpsamplingBilinear2d"
    torch_value: str
    torch_default: bool | None
    keras_op: str
    keras_kind: str  # "LeakyReLU", "Activation(gelu)", "keras.ops.gelu", "UpSampling2D"
    keras_value: str
    keras_default: bool | None
    keras_fix: str
    swapped_torch_value: str  # Keras's setting as PyTorch writes it
    max_abs: float
    swapped_max_abs: float
    torch_setting: str = ""
    torch_function: str = ""


@dataclass(frozen=True)
class Preprocessing:
    """Input preprocessing one model does inside itself before its first paired layer and
    the other does not (adapters/port_validation/preprocessing.py measures it): side is the
    model that preprocesses ("keras" or "pytorch"), operations its layers or modules in
    words, fix the same preprocessing in the other framework's terms. max_abs: how far
    PyTorch's module is from Keras's layer; swapped_max_abs: the same with PyTorch's module
    given the input as Keras's layer gets it."""

    side: str
    operations: str
    fix: str
    max_abs: float
    swapped_max_abs: float


@dataclass(frozen=True)
class PoolRounding:
    """A pooling whose output size PyTorch rounds up (ceil_mode=True) where Keras's, with
    'valid', rounds it down (adapters/port_validation/pool_padding.py measures it): the
    spatial sizes each gives on Keras's pooling input, how far PyTorch's module given
    ceil_mode=False is from Keras's output (max abs), and the Keras padding that gives
    PyTorch's windows, in words."""

    torch_module: str
    torch_kind: str
    keras_op: str
    keras_kind: str
    torch_size: tuple
    keras_size: tuple
    swapped_max_abs: float
    fix: str


@dataclass(frozen=True)
class SoftmaxAxis:
    """A softmax or log-softmax over another axis in each framework
    (adapters/port_validation/softmax_axis.py measures it): each side's axis as it is
    written (PyTorch's dim, Keras's axis, as repr) and in words, which axis of which layout
    ("axis 3 (W) of N, C, H, W (2, 4, 8, 8)"); swapped_torch_dim: Keras's axis in PyTorch's
    layout; keras_fix_axis: PyTorch's dim in Keras's layout, and keras_fix the Keras
    operation given it. same_layout: both frameworks hold the activation alike (N, F;
    N, L, F). max_abs: how far PyTorch's module is from Keras's operation on that
    operation's input; swapped_max_abs: PyTorch's module given Keras's axis against Keras's;
    fixed_max_abs: Keras's operation given PyTorch's axis against PyTorch's.
    torch_function: where no module computes PyTorch's softmax, the function forward()
    calls ("torch.nn.functional.softmax", "torch.Tensor.log_softmax"); torch_module then
    names the call ("torch.nn.functional.softmax in forward(), call 1", or in
    "head.forward()" where a module's forward() calls it) and torch_kind is the family.
    keras_measured: Keras's axis was measured, not read (a lambda, a function of the
    user's own); keras_fix then names the softmax inside the operation."""

    family: str  # "Softmax", "LogSoftmax"
    torch_module: str
    torch_kind: str
    torch_dim: str
    torch_axis: str
    keras_op: str
    keras_kind: str
    keras_axis: str
    keras_default: bool
    keras_axis_words: str
    swapped_torch_dim: int
    keras_fix_axis: int
    keras_fix: str
    same_layout: bool
    max_abs: float
    swapped_max_abs: float
    fixed_max_abs: float
    torch_function: str = ""
    keras_measured: bool = False


@dataclass(frozen=True)
class MissingOperations:
    """What PyTorch's forward computes between two paired modules where Keras has no
    operation between their layers (adapters/port_validation/between_operations.py):
    operations in words ("layer2.1.relu (ReLU)"), the paired modules around them
    (previous "" where none ran before). without_max_abs: how far PyTorch's module is from
    Keras's value when PyTorch's forward reruns with those operations giving back their
    input, where it then gives Keras's (None where that was not measured or it does not);
    with_max_abs: how far PyTorch's own value is from Keras's."""

    operations: tuple[str, ...]
    previous: str
    torch_module: str
    without_max_abs: float | None = None
    with_max_abs: float | None = None


@dataclass(frozen=True)
class ActivationFunction:
    """A Keras activation between two paired layers that computes another function than
    the PyTorch activation at the same position in running order
    (adapters/port_validation/between_operations.py measures it). torch_function and
    keras_function: each function's name (Keras's own, a function of the user's own where
    not keras_readable); torch_formula: what PyTorch's computes, where worded. On the Keras
    operation's input: torch_max_abs, how far PyTorch's activation is from PyTorch's value
    there; keras_max_abs, how far Keras's operation is. keras_form: a known function
    Keras's output was measured to be (form_max_abs from it), "" if none; fix: the Keras
    function that gives PyTorch's value on that input (fix_max_abs), "" if none."""

    torch_module: str
    torch_kind: str
    torch_function: str
    torch_formula: str
    keras_op: str
    keras_kind: str
    keras_function: str
    keras_readable: bool
    torch_max_abs: float
    keras_max_abs: float
    keras_form: str = ""
    form_max_abs: float | None = None
    fix: str = ""
    fix_max_abs: float | None = None
    keras_version: str = ""


def likely_causes(facts: dict, isolated: bool, mode: str) -> tuple[Cause, ...]:
    """The likely causes of a divergence, from facts about the pair of layers.

    facts (all optional): names (torch, keras), torch_stride/keras_stride,
    torch_padding/keras_padding (((top, bottom), (left, right)), or ((left, right),) for a
    Conv1d), torch_crop/keras_crop (what a transposed conv crops from its full output, the
    same way), torch_eps/keras_eps,
    norm (the normalisation's name when not BatchNorm), torch_groups/keras_groups (GroupNorm,
    InstanceNorm),
    keras_frozen_bn, one_pass_variance (Keras's output is what E[x^2] - E[x]^2 gives),
    values_per_channel, flatten_order (a channels-first kernel explains PyTorch's
    output), weights_max_diff, between (the Keras operations since the last pair),
    failed (an error message), shape (both output shapes), alone_agrees (the Keras layer
    gives PyTorch's output on PyTorch's input), port_slip (a recurrent or
    attention pair's slip: cause code, "weights" or "settings", the slip in words),
    operation_setting (an OperationSetting, Preprocessing, PoolRounding, SoftmaxAxis or
    ActivationFunction measured where the cause is otherwise between_layers), missing (a
    MissingOperations: what PyTorch computes where Keras has no operation).
    """
    torch_name, keras_name = facts.get("names", ("PyTorch", "Keras"))
    causes = (_structure_causes(facts, torch_name, keras_name)
              + _batchnorm_causes(facts, mode, keras_name) + _weight_causes(facts))
    if facts.get("shape") and not any(c.code in ("stride_placement", "padding", "dilation",
                                                 "transposed_cropping", "failed")
                                      for c in causes):
        t, k = facts["shape"]
        causes.append(Cause("shape", f"output shapes differ: PyTorch {torch_name} "
                                     f"{tuple(t)}, Keras {keras_name} {tuple(k)}"))
    between = facts.get("between")
    if not causes and isolated and facts.get("alone_agrees", bool(between)) and \
            facts.get("operation_setting"):
        causes.append(_measured_cause(facts["operation_setting"], torch_name, keras_name))
    if not causes and isolated and facts.get("alone_agrees", bool(between)):
        missing = None if between or facts.get("fused_before") else facts.get("missing")
        causes.append(Cause(
            "between_layers", _between_words(between or [], facts.get("fused_before", []),
                                             missing),
            "this layer matches PyTorch's on its own; " + (
                "the Keras model leaves out what PyTorch computes before it: add it there"
                if missing else "the padding, pooling, activation or order of the weightless "
                "operations since the previous matched layers does not")))
    if not causes and not isolated:
        causes.append(Cause("upstream", "carried over from an earlier layer",
                            "the isolated pass shows the layer that introduces it"))
    return tuple(causes)


def _between_words(between: list[str], fused: list[tuple[str, bool]],
                   missing: MissingOperations | None = None) -> str:
    """The Keras operations since the previous matched layers, the activations those layers
    apply inside themselves first (fused: their words, and whether the validator can read
    them), or that Keras has none (and what PyTorch computes there, where it was traced)."""
    if not between and not fused and missing is not None:
        return _missing_words(missing)
    if not between and not fused:
        return ("what reaches it differs: Keras has no operation since the previous matched "
                "layers, PyTorch's forward computes something there")
    text = f"the Keras operations before it differ ({', '.join([w for w, _ in fused] + between)})"
    if not all(known for _, known in fused):
        text += ("; the validator cannot read the setting of a lambda or a function of your "
                 "own, so it does not compare that activation with PyTorch's operation there")
    return text


def _missing_words(missing: MissingOperations) -> str:
    """'PyTorch's forward computes layer2.1.relu (ReLU) between layer2.1.bn1 and
    layer2.1.conv2, where Keras has no operation', and the rerun without it, if measured."""
    where = (f"between {missing.previous} and {missing.torch_module}" if missing.previous
             else f"before {missing.torch_module}")
    text = (f"what reaches it differs: PyTorch's forward computes "
            f"{', '.join(missing.operations)} {where}, where Keras has no operation")
    if missing.without_max_abs is None:
        return text
    them, its = ("it", "its") if len(missing.operations) == 1 else ("them", "their")
    return (f"{text}; measured to be the missing piece: with {them} giving back {its} "
            f"input, PyTorch's forward gives Keras's value at {missing.torch_module} (max abs "
            f"{missing.without_max_abs:.3g}; with {them} computing, {missing.with_max_abs:.3g})")


def _activation_function_cause(found: ActivationFunction) -> Cause:
    formula = f" ({found.torch_formula})" if found.torch_formula else ""
    own = "" if found.keras_readable else ", a function of your own"
    form = (f"; measured, it computes {found.keras_form} (max abs {found.form_max_abs:.3g})"
            if found.keras_form else "")
    return Cause(
        "activation_function",
        f"activation function: PyTorch {found.torch_module} ({found.torch_kind}) computes "
        f"{found.torch_function}{formula}, Keras {found.keras_op} ({found.keras_kind}) "
        f"computes {found.keras_function}{own}{form}; on the Keras operation's input "
        f"PyTorch's {found.torch_kind} gives PyTorch's value there (max abs "
        f"{found.torch_max_abs:.3g}) and Keras's operation is up to "
        f"{found.keras_max_abs:.3g} (max abs) from it",
        "this layer matches PyTorch's on its own; the activation before it computes another "
        "function: " + (
            f"use {found.fix} (Keras {found.keras_version}), which gives PyTorch's value on "
            f"that input (max abs {found.fix_max_abs:.3g})" if found.fix else
            f"compute PyTorch's {found.torch_function} there"))


def _measured_cause(found: OperationSetting | Preprocessing | PoolRounding | SoftmaxAxis
                    | ActivationFunction, torch_name: str, keras_name: str) -> Cause:
    if isinstance(found, ActivationFunction):
        return _activation_function_cause(found)
    if isinstance(found, Preprocessing):
        return _preprocessing_cause(found, torch_name, keras_name)
    if isinstance(found, PoolRounding):
        return _pool_rounding_cause(found)
    if isinstance(found, SoftmaxAxis):
        return softmax_axis_cause(found)
    return _operation_setting_cause(found)


def softmax_axis_cause(found: SoftmaxAxis, after_last_pair: bool = False) -> Cause:
    """The softmax before a layer that agrees on PyTorch's input, or (after_last_pair) the
    one after the last paired layers, which makes the outputs differ."""
    keras_default = " (Keras's default)" if found.keras_default else ""
    layouts = (" (the same layout in both frameworks)" if found.same_layout else
               "; each axis counts in its framework's own layout")
    where = ("the layers agree; the outputs differ after them: the {} there" if after_last_pair
             else "this layer matches PyTorch's on its own; the {} before it").format(
                 found.family)
    return Cause(
        "softmax_axis",
        f"{found.family} axis: PyTorch {_torch_softmax_words(found)} normalises over "
        f"{found.torch_axis}, Keras {found.keras_op} "
        f"({found.keras_kind}) axis={found.keras_axis}{keras_default} over "
        f"{found.keras_axis_words}{layouts}; on the Keras operation's input PyTorch's "
        f"{'call' if found.torch_function else 'module'} gives up to {found.max_abs:.3g} "
        f"(max abs) from Keras's output, and given "
        f"dim={found.swapped_torch_dim} (Keras's axis in PyTorch's layout) it gives Keras's "
        f"(max abs {found.swapped_max_abs:.3g})",
        f"{where} normalises over another axis: PyTorch's dim={found.torch_dim} is "
        f"axis={found.keras_fix_axis} in Keras's layout: {_softmax_fix_words(found)}")


def _softmax_fix_words(found: SoftmaxAxis) -> str:
    fixed = f"gives PyTorch's output, measured: max abs {found.fixed_max_abs:.3g}"
    if not found.keras_measured:
        return (f"give Keras's {found.keras_op} axis={found.keras_fix_axis} "
                f"({found.keras_fix} {fixed})")
    # no axis to give the operation itself: the fix is inside its function
    function = "log_softmax" if found.family == "LogSoftmax" else "softmax"
    return (f"give {found.keras_fix} (keras.ops.{function}(t, axis={found.keras_fix_axis}) "
            f"on its input {fixed})")


def _torch_softmax_words(found: SoftmaxAxis) -> str:
    """'act (Softmax) dim=-1', or for a function forward() calls
    'torch.nn.functional.softmax(..., dim=-1) in forward(), call 1 (no module)'."""
    if not found.torch_function:
        return f"{found.torch_module} ({found.torch_kind}) dim={found.torch_dim}"
    where = found.torch_module.removeprefix(found.torch_function)
    return f"{found.torch_function}(..., dim={found.torch_dim}){where} (no module)"


def _pool_rounding_cause(found: PoolRounding) -> Cause:
    def size(shape):
        return " x ".join(map(str, shape))

    return Cause(
        "pool_ceil_mode",
        f"pool rounding: PyTorch {found.torch_module} ({found.torch_kind}, ceil_mode=True) "
        f"rounds its output size up, {size(found.torch_size)}, Keras {found.keras_op} "
        f"({found.keras_kind}, padding='valid') down, {size(found.keras_size)}; on the Keras "
        f"operation's input PyTorch's module given ceil_mode=False gives Keras's output (max "
        f"abs {found.swapped_max_abs:.3g})",
        f"what reaches this layer is smaller in Keras; Keras's pooling has no ceil_mode: "
        f"{found.fix}")


def _preprocessing_cause(found: Preprocessing, torch_name: str, keras_name: str) -> Cause:
    inside, given = (("Keras's", "PyTorch's") if found.side == "keras" else
                     ("PyTorch's", "Keras's"))
    rerun = ("the input preprocessed as Keras does" if found.side == "keras" else
             "the input without PyTorch's preprocessing")
    fix = (f"give PyTorch's model the same preprocessing ({found.fix}), or take it out of the "
           "Keras model and preprocess outside both" if found.side == "keras" else
           f"give the Keras model the same preprocessing at its input ({found.fix}), or take "
           "it out of PyTorch's model and preprocess outside both")
    return Cause(
        "input_preprocessing",
        f"input preprocessing: {inside} model preprocesses its input inside itself "
        f"({found.operations}), {given} takes it as given; PyTorch's {torch_name} gives up "
        f"to {found.max_abs:.3g} (max abs) from Keras's {keras_name}, and given {rerun} it "
        f"gives Keras's (max abs {found.swapped_max_abs:.3g})",
        f"this layer matches PyTorch's on its own; the models expect differently "
        f"preprocessed inputs: {fix}")


def _operation_setting_cause(found: OperationSetting) -> Cause:
    torch_setting = found.torch_setting or found.setting
    keras_side = (
        f"has no {found.setting} setting: it computes {found.setting}={found.keras_value}"
        if found.keras_default is None else
        f"{found.setting}={found.keras_value}" + (
            " (Keras's default)" if found.keras_default else ""))
    return Cause(
        found.code,
        f"{found.family} {found.setting}: PyTorch {_torch_operation_words(found)}, Keras "
        f"{found.keras_op} ({found.keras_kind}) {keras_side}; on the Keras operation's "
        f"input PyTorch's {'call' if found.torch_function else 'module'} gives up to "
        f"{found.max_abs:.3g} (max abs) "
        f"from Keras's output, and given {torch_setting}={found.swapped_torch_value} it "
        f"gives Keras's (max abs {found.swapped_max_abs:.3g})",
        "this layer matches PyTorch's on its own; " + _SETTING_FIXES[found.code](found))


def _torch_operation_words(found: OperationSetting) -> str:
    """'act (LeakyReLU) negative_slope=0.2', or for a function forward() calls
    'torch.nn.functional.leaky_relu(..., negative_slope=0.2) in forward(), call 1 (no
    module)'; a setting the module or function does not take is what it computes."""
    setting = f"{found.torch_setting or found.setting}={found.torch_value}"
    default = " (PyTorch's default)" if found.torch_default else ""
    if not found.torch_function:
        return f"{found.torch_module} ({found.torch_kind}) {setting}{default}"
    where = found.torch_module.removeprefix(found.torch_function)
    if found.torch_default is None:
        return f"{found.torch_function}(...){where} (no module) computes {setting}"
    default = ", PyTorch's default" if found.torch_default else ""
    return f"{found.torch_function}(..., {setting}){where} (no module{default})"


_SETTING_FIXES = {
    "pool_padding": lambda found: found.keras_fix,  # pool_padding.py words why, then how
    "activation_setting": lambda found: (
        f"the activation before it is set otherwise and Keras's {found.keras_op} has no "
        f"{found.setting} setting: compute PyTorch's with {found.keras_fix}"
        if found.keras_default is None else
        f"the activation before it is set otherwise: give Keras's {found.keras_op} "
        f"{found.setting}={found.keras_fix}"
        + (" (the frameworks' defaults differ)"
           if found.torch_default and found.keras_default else "")),
    "upsample_interpolation": lambda found: (
        f"PyTorch's {found.torch_module} resizes with mode={found.torch_value}, Keras's "
        f"{found.keras_op} with {found.keras_value}: "
        + (found.keras_fix if found.keras_default is None else
           f"give Keras's {found.keras_op} interpolation={found.keras_fix}")),
    "upsample_align_corners": lambda found: (
        f"PyTorch's {found.torch_module} aligns corners and no Keras resize can "
        f"(UpSampling2D, Resizing and keras.ops.image.resize have no such setting and "
        f"compute align_corners=False): interpolate with the align-corners matrices "
        f"(keras.ops.einsum, docs/port-validation.md), or train PyTorch's model with "
        f"align_corners=False"),
    "avgpool_count_include_pad": lambda found: (
        f"PyTorch's {found.torch_module} counts its zero padding in each average, Keras's "
        f"{found.keras_op} only the values inside the input: pad with {found.keras_fix} "
        f"and pool with padding='valid'"),
}


def _structure_causes(facts: dict, torch_name: str, keras_name: str) -> list[Cause]:
    """A failed layer, or one that strides or pads differently."""
    causes = []
    if facts.get("failed"):
        causes.append(Cause("failed", f"Keras {keras_name} failed: {facts['failed']}"))
    if (strides := _setting_differs(facts, "stride")) is not None:
        causes.append(Cause(
            "stride_placement",
            f"stride placement: PyTorch {torch_name} strides {strides[0]}, "
            f"Keras {keras_name} {strides[1]}",
            "ResNet v1 (keras.applications) strides the first 1x1 conv of a downsampling "
            "block, v1.5 (torchvision) its 3x3 conv: same weight shapes, another function"))
    if (dilations := _setting_differs(facts, "dilation")) is not None:
        # Keras's 'same' pads for its own dilation: the padding follows from this.
        causes.append(Cause(
            "dilation",
            f"dilation: PyTorch {torch_name} dilates its kernel {dilations[0]}, Keras "
            f"{keras_name} {dilations[1]}",
            f"give Keras's layer dilation_rate={dilations[0]}: the same weights then spread "
            "over the same input positions"))
        return causes
    if facts.get("padding_mode"):
        causes.append(_padding_mode_cause(facts, torch_name, keras_name))
        return causes
    padding = _sides_differ(facts, "padding")
    if padding:
        causes.append(Cause("padding", f"padding: PyTorch pads {padding[0]}, Keras {padding[1]}",
                            _padding_fix(facts)))
    cropping = _sides_differ(facts, "crop")
    if cropping:
        causes.append(Cause(
            "transposed_cropping",
            f"cropping: PyTorch crops the transposed conv's full output by {cropping[0]}, "
            f"Keras {cropping[1]}",
            "PyTorch's padding=p crops p on both sides and output_padding gives some back "
            "after; Keras's 'same' crops kernel - stride, the larger half after: use "
            f"padding='valid' and Cropping{len(facts['torch_crop'])}D with PyTorch's crops"))
    return causes


def _setting_differs(facts: dict, what: str) -> tuple[tuple, tuple] | None:
    """A conv's setting (stride, dilation) as PyTorch and Keras hold it, where they differ."""
    if facts.get(f"torch_{what}") is None:
        return None
    mine, theirs = tuple(facts[f"torch_{what}"]), tuple(facts.get(f"keras_{what}") or ())
    return (mine, theirs) if mine != theirs else None


def _padding_fix(facts: dict) -> str:
    """How to pad as PyTorch does; why Keras's 'same' does not, where it pads one side more."""
    sides = _pairs(facts["torch_padding"])
    padding = sides[0] if len(set(sides)) == 1 and sides[0][0] == sides[0][1] else sides
    if isinstance(padding, tuple) and isinstance(padding[0], int):
        padding = padding[0]
    fix = (f"pad explicitly with ZeroPadding{len(sides)}D({padding!r}) and use 'valid'")
    uneven = any(before != after for before, after in _pairs(facts["keras_padding"]))
    if uneven and all(before == after for before, after in sides):
        return ("Keras 'same' pads what the stride leaves over, the larger half after ((0, 1) "
                f"for a stride-2 conv on an even size), PyTorch symmetrically: {fix}")
    return fix


def _padding_mode_cause(facts: dict, torch_name: str, keras_name: str) -> Cause:
    """PyTorch pads the conv's input otherwise than with zeros; Keras's ZeroPadding and
    'same' pad zeros. facts["padding_mode"]: (PyTorch against Keras, the rerun with zeros
    against Keras), max abs."""
    apart, left = facts["padding_mode"]
    mode = facts["torch_padding_mode"]
    return Cause(
        "padding_mode",
        f"padding mode: PyTorch pads the input of {torch_name} with {mode}, Keras that of "
        f"{keras_name} with zeros; PyTorch's conv gives up to {apart:.3g} (max abs) from "
        f"Keras's, and "
        f"given zeros of the same amounts it gives Keras's (max abs {left:.3g})",
        "Keras's ZeroPadding layers and 'same' pad zeros only: pad in a layer of your own "
        "with keras.ops.pad(x, pads, mode='reflect') (equal to ReflectionPad, measured on "
        "Keras 3.15.1's torch backend, which refuses 'edge' and 'wrap': replicate and "
        "circular padding need slices of your own) and convolve with padding='valid'")


def _sides_differ(facts: dict, what: str) -> tuple[str, str] | None:
    """PyTorch's and Keras's per-side amounts (torch_padding and keras_padding, say) in
    words, where both are known and differ."""
    torch_sides, keras_sides = facts.get(f"torch_{what}"), facts.get(f"keras_{what}")
    if torch_sides is None or keras_sides is None or _pairs(torch_sides) == _pairs(keras_sides):
        return None
    return _pad_text(torch_sides), _pad_text(keras_sides)


def _batchnorm_causes(facts: dict, mode: str, keras_name: str) -> list[Cause]:
    """Normalisation conventions: epsilon, GroupNorm's groups, a frozen Keras BatchNorm,
    Keras's one-pass variance."""
    causes = []
    norm = facts.get("norm", "BatchNorm")
    teps, keps = facts.get("torch_eps"), facts.get("keras_eps")
    if teps is not None and keps is not None and not np.isclose(teps, keps, rtol=1e-9, atol=0):
        causes.append(Cause(
            "epsilon", f"{norm} epsilon: PyTorch {teps:g}, Keras {keps:g}",
            "epsilon is added to the variance: it changes the function, most where "
            "variances are small"))
    if facts.get("torch_groups") != facts.get("keras_groups"):
        alone = " (one per channel: GroupNormalization(groups=-1))" \
            if norm == "InstanceNorm" else ""
        causes.append(Cause(
            "groups", f"{norm} groups: PyTorch {facts['torch_groups']}{alone}, Keras "
                      f"{facts['keras_groups']}",
            "the statistics are taken over other sets of channels: same weight shapes, "
            "another function"))
    if facts.get("keras_frozen_bn") and mode == "training":
        causes.append(Cause(
            "frozen_batchnorm", f"Keras {keras_name} has trainable=False",
            "a frozen Keras BatchNormalization normalises with its moving statistics even "
            "when called with training=True; PyTorch in train() uses batch statistics"))
    if facts.get("one_pass_variance"):
        causes.append(Cause(
            "one_pass_variance",
            f"batch variance: Keras computes E[x^2] - E[x]^2 over "
            f"{facts.get('values_per_channel', 'few')} values per channel",
            "Keras's torch backend computes the batch variance in one pass, PyTorch in a "
            "numerically stable way; with few values per channel, or a mean large against "
            "the spread, Keras's float32 variance loses digits. A Keras property, not a port "
            "error: a larger batch or image shrinks it"))
    return causes


_SLIP_FIXES = {
    "weights": "port the arrays as compare.py --port-weights does (adapters/own_pair/"
               "pairing.py): transposed, gates in Keras's order, an LSTM's or RNN's two "
               "biases summed, attention's projections split into heads",
    "settings": "set the Keras layer as PyTorch's computes: its activations, and the "
                "sequence's direction"}


def _weight_causes(facts: dict) -> list[Cause]:
    """Weights that differ: the flatten order, a named layout mistake, or unexplained."""
    causes = []
    if facts.get("port_slip"):
        code, seen_in, words = facts["port_slip"]
        causes.append(Cause(code, words, _SLIP_FIXES[seen_in]))
    elif facts.get("flatten_order"):
        causes.append(Cause(
            "flatten_order", "flatten order: the kernel expects channels-first (c, h, w) rows",
            "Keras's Flatten is channels-last (h, w, c), PyTorch's channels-first; permute "
            "the dense kernel's rows when porting (port-map kind flatten_dense:C,H,W)"))
    elif facts.get("layout_mistake"):
        mistake: LayoutMistake = facts["layout_mistake"]
        causes.append(Cause(
            "kernel_layout" if mistake.code != "arrays_swapped" else "arrays_swapped",
            f"{mistake.text} (weights differ by up to {facts.get('weights_max_diff', 0):.3g})",
            mistake.fix))
    elif facts.get("weights_max_diff"):
        causes.append(Cause(
            "weights", f"weights differ from PyTorch's by up to {facts['weights_max_diff']:.3g}",
            "ported from another layer, in the wrong layout, or changed since"))
    return causes


def _pairs(padding) -> tuple[tuple[int, int], ...]:
    return tuple((int(a), int(b)) for a, b in padding)


def _pad_text(padding) -> str:
    pairs = _pairs(padding)
    if len(pairs) == 1:  # a sequence
        (left, right), = pairs
        return f"(left {left}, right {right})"
    if len(pairs) == 3:  # a volume: depth, height, width
        (front, back), (top, bottom), (left, right) = pairs
        return (f"(front {front}, back {back}, top {top}, bottom {bottom}, left {left}, "
                f"right {right})")
    (top, bottom), (left, right) = pairs
    return f"(top {top}, bottom {bottom}, left {left}, right {right})"
