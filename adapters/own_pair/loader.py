"""The user's own models, from what a command line can name (a model SPEC).

A SPEC is one of
  path/to/file.py:callable      a class or a factory in a Python file, called without arguments
  package.module:callable       the same, from an importable module
  model.keras                   a Keras model file, loaded with safe_mode=True (Keras side)
  model.pt2                     a torch.export program (PyTorch side; inference only)
and the weights files given beside them: a PyTorch state_dict (.pt/.pth read with
weights_only=True, or .safetensors) and Keras .weights.h5. The callable may also name a
model object itself. Every mistake becomes one UsageError line; the user's own code is
run only through the callables named.

Keras runs on the torch backend in this process: the backend is set before any user file
is executed, because such a file may import Keras itself.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import sys
import zipfile
from dataclasses import dataclass

from comparator.errors import FrameworkUnavailable, UsageError
from comparator.inputs.checkpoints import keras_file_classes, keras_file_problem

TORCH_EXPECTED = "a torch.nn.Module"
KERAS_EXPECTED = "a keras.Model (functional, Sequential or subclassed)"
TORCH_WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors")
KERAS_WEIGHT_SUFFIX = ".weights.h5"
SPEC_FORMS = ("path/to/file.py:callable, package.module:callable, or a model file "
              "(.keras for Keras, .pt2 for PyTorch)")


@dataclass
class LoadedModel:
    """A user's model as loaded, with what a report says about where it came from."""

    model: object
    framework: str  # "pytorch" or "keras"
    name: str  # the callable's or the file's name
    source: str  # the SPEC as given ("<object>" from the Python API)
    weights: str | None = None  # the weights file loaded into it, if any
    # Why training-mode runs cannot be represented (a torch.export program); None if they can.
    inference_only: str | None = None


# ----- SPECs -------------------------------------------------------------------------------


def _keep_keras_on_torch() -> None:
    """A user file may `import keras`: it must find the torch backend this tool runs on."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"


def _import_file(path: str):
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    absolute = os.path.abspath(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    module_name = f"xframe_user_{stem}_{hashlib.sha1(absolute.encode()).hexdigest()[:8]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    folder = os.path.dirname(absolute)
    if folder not in sys.path:  # so the file can import its neighbours
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(module_name, absolute)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise UsageError(f"cannot import {path}: {_one_line(exc)}") from None
    return module


def _import_module(name: str):
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise UsageError(f"cannot import module {name!r}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def resolve_callable(spec: str):
    """The object a `file.py:name` or `module:name` SPEC names, and that name."""
    where, sep, attribute = spec.rpartition(":")
    if not sep or not where or not attribute:
        raise UsageError(f"cannot read the model SPEC {spec!r}; give {SPEC_FORMS}")
    module = (_import_file(where) if where.endswith(".py") or os.sep in where
              else _import_module(where))
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise UsageError(f"{where} has no attribute {attribute!r}"
                             f"{_defined_words(module, attribute)}")
        target = getattr(target, part)
    return target, attribute


def _defined_words(module, attribute: str) -> str:
    """The classes and functions the file defines itself (not what it imports: np, torch,
    keras), the closest to the name asked for first, twelve at most and how many more."""
    import difflib

    own = sorted(n for n, v in vars(module).items() if not n.startswith("_") and callable(v)
                 and getattr(v, "__module__", None) == module.__name__)
    close = difflib.get_close_matches(attribute, own, n=1)
    said = f" (did you mean {close[0]!r}?)" if close else ""
    if not own:
        return f"{said}; it defines no class or function"
    more = f", and {len(own) - 12} more" if len(own) > 12 else ""
    return f"{said}; it defines: {', '.join(own[:12])}{more}"


def _build(target, name: str, is_model, expected: str):
    """The model a SPEC's target gives: the object itself, or what calling it returns."""
    if is_model(target):
        return target
    if not callable(target):
        raise UsageError(f"{name} is of type {type(target).__name__}, not {expected} nor a "
                         "class or factory that returns one")
    try:
        model = target()
    except Exception as exc:
        raise UsageError(f"calling {name}() raised {_one_line(exc)}") from None
    if not is_model(model):
        raise UsageError(f"{name}() returned {type(model).__module__}.{type(model).__name__}; "
                         f"expected {expected}")
    return model


def _suffix_of(spec: str) -> str:
    lowered = spec.lower()
    for suffix in (KERAS_WEIGHT_SUFFIX, ".keras", ".pt2", ".pt", ".pth", ".safetensors",
                   ".onnx", ".h5"):
        if lowered.endswith(suffix):
            return suffix
    return ""


def _refuse_misplaced_file(spec: str, side: str) -> None:
    """Files that are models of the other side, or weights, or the referee, given as a SPEC."""
    suffix = _suffix_of(spec)
    flag = "--pytorch" if side == "pytorch" else "--keras"
    if suffix in (".pt", ".pth", ".safetensors"):
        raise UsageError(f"{spec} is a PyTorch state_dict, which holds no architecture: give the "
                         "model as file.py:callable to --pytorch and this file to "
                         "--pytorch-weights")
    if suffix in (KERAS_WEIGHT_SUFFIX, ".h5"):
        raise UsageError(f"{spec} holds Keras weights without the architecture: give the model "
                         "as file.py:callable (or a .keras file) to --keras and this file to "
                         "--keras-weights")
    if suffix == ".onnx":
        raise UsageError(f"{spec} is an ONNX file: it is the referee (--onnx), not a model to "
                         "compare")
    if suffix == ".keras" and side == "pytorch":
        raise UsageError(f"{spec} is a Keras model file: give it to --keras, not {flag}")
    if suffix == ".pt2" and side == "keras":
        raise UsageError(f"{spec} is a torch.export program: give it to --pytorch, not {flag}")


def seed_spec_builders(pytorch, keras_side, seed: int) -> None:
    """A SPEC's callable builds its model with the frameworks' random initialisers: seeded
    with --seed, it builds the same weights on every run. Where both models are given as
    objects, the caller's random states are left alone."""
    if any(isinstance(side, (str, os.PathLike)) for side in (pytorch, keras_side)):
        from adapters.keras.backend import keras

        keras.utils.set_random_seed(seed)  # Python's, NumPy's and Keras's own
        _torch().manual_seed(seed)


# ----- PyTorch -----------------------------------------------------------------------------


def _torch():
    try:
        import torch
    except ImportError:
        raise FrameworkUnavailable("PyTorch is not installed: pip install torch") from None
    return torch


def load_pytorch(spec: str, weights: str | None = None) -> LoadedModel:
    """The user's PyTorch model from a SPEC, with a state_dict loaded into it if given."""
    torch = _torch()
    _refuse_misplaced_file(spec, "pytorch")
    if _suffix_of(spec) == ".pt2":
        if weights:
            raise UsageError(f"{spec} carries its own weights; --pytorch-weights is for a model "
                             "built by a callable")
        return _load_exported(spec)
    _keep_keras_on_torch()
    target, name = resolve_callable(spec)
    model = _build(target, name, lambda m: isinstance(m, torch.nn.Module), TORCH_EXPECTED)
    refuse_script_modules(model, f" {spec}")
    if weights:
        load_state_dict(model, weights)
    return LoadedModel(model, "pytorch", name.rsplit(".", 1)[-1], spec, weights)


def refuse_script_modules(model, where: str = "") -> None:
    """Refuses a model that is, or holds, TorchScript modules: torch refuses forward hooks
    on them (torch 2.14.1: "register_forward_hook is not supported on ScriptModules"), and
    both tools observe BatchNorm and Dropout, and trace the layers, through those hooks."""
    script_module = _torch().jit.ScriptModule
    scripted = [name for name, module in model.named_modules()
                if isinstance(module, script_module)]
    outermost = [""] if "" in scripted else [
        name for name in scripted if not any(name.startswith(f"{other}.") for other in scripted)]
    if not outermost:
        return
    what = ("is a TorchScript module" if outermost == [""] else
            f"holds TorchScript modules ({', '.join(outermost[:3])}"
            f"{', ...' if len(outermost) > 3 else ''})")
    raise UsageError(f"the PyTorch model{where} {what}, on which torch allows no forward "
                     "hooks, and the comparison observes and traces layers through them: give "
                     "the nn.Module it was scripted from")


# Why a torch.export program's layers cannot be paired with Keras's (to port weights or
# to trace them): the port validator and compare.py --port-weights refuse it in these words.
PT2_NO_MODULES = ("it is a torch.export program, whose modules are flattened into one graph of "
                  "ATen operations (no Conv2d or BatchNorm module runs, so none can be paired "
                  "with a Keras layer); give the nn.Module itself (file.py:callable, with its "
                  "state_dict as weights)")

PT2_INFERENCE_ONLY = ("a torch.export program fixes its BatchNorm and Dropout modes at export "
                      "time, so train() cannot switch them: training-mode runs cannot be "
                      "represented")


def _load_exported(path: str) -> LoadedModel:
    torch = _torch()
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path} is not a torch.export program (.pt2 files are ZIP archives)")
    # torch.export.load logs a warning with a whole traceback before raising on a bad
    # archive: the one line below says it instead.
    export_log = logging.getLogger("torch.export")
    level = export_log.level
    export_log.setLevel(logging.ERROR)
    try:
        program = torch.export.load(path)
    except Exception as exc:
        reason = _one_line(exc).replace(" Please check the warnings above for possible "
                                        "errors.", "")
        raise UsageError(f"cannot load {path} with torch.export.load: {reason}") from None
    finally:
        export_log.setLevel(level)
    module = program.module()
    stem = os.path.basename(path)[:-len(".pt2")]
    return LoadedModel(module, "pytorch", stem, path, inference_only=PT2_INFERENCE_ONLY)


def read_state_dict(path: str) -> dict:
    """A state_dict from .pt/.pth (weights_only=True: tensors only, no code) or .safetensors."""
    _torch()  # a missing torch is named as a missing framework, before the file is read
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    suffix = _suffix_of(path)
    if suffix not in TORCH_WEIGHT_SUFFIXES:
        raise UsageError(f"--pytorch-weights takes a state_dict file "
                         f"({', '.join(TORCH_WEIGHT_SUFFIXES)}), not {path}")
    from adapters.pytorch.state_dicts import read_state_dict as read_file

    return read_file(path)


def load_state_dict(model, path: str) -> None:
    """Load a state_dict file into the model; every name and shape must fit."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs the model's {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    problems = [f"missing {', '.join(missing[:4])}" if missing else "",
                f"unexpected {', '.join(unexpected[:4])}" if unexpected else "",
                f"shapes differ: {'; '.join(shapes[:3])}" if shapes else ""]
    if any(problems):
        raise UsageError(f"{path} does not fit the PyTorch model: "
                         + "; ".join(p for p in problems if p))
    model.load_state_dict(state)


def pytorch_submodule(model, name: str):
    """The submodule that plays the backbone (--freeze NAME)."""
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    children = [n for n, _ in model.named_children()]
    raise UsageError(f"the PyTorch model has no submodule {name!r}; its top-level submodules: "
                     f"{', '.join(children) or 'none'}")


# ----- Keras -------------------------------------------------------------------------------


def _keras():
    # The torch backend, or a refusal; in a worker (adapters.keras.worker), its backend.
    from adapters.keras.backend import BACKEND, WORKER_BACKEND_VARIABLE, import_keras

    return import_keras(os.environ.get(WORKER_BACKEND_VARIABLE) or BACKEND)


def several_shapes(input_shape: tuple) -> bool:
    """Whether a Keras input shape is a tuple of several inputs' shapes."""
    return bool(input_shape) and isinstance(input_shape[0], tuple)


def symbolic_inputs(input_shape: tuple, dtype="float32"):
    """keras.Input of one input's shape, or a list of them for several inputs' shapes (dtype
    then one for all, or one per input)."""
    keras = _keras()
    if not several_shapes(input_shape):
        return keras.Input(tuple(input_shape), dtype=str(dtype))
    dtypes = dtype if isinstance(dtype, (tuple, list)) else (dtype,) * len(input_shape)
    return [keras.Input(tuple(shape), dtype=str(kind))
            for shape, kind in zip(input_shape, dtypes)]


def _build_on_zeros(model, input_shape: tuple) -> None:
    """A subclassed model not called yet, called once on one sample of zeros (a list of them
    for several inputs), so that its weights exist."""
    zeros = _keras().ops.zeros
    model([zeros((1, *s)) for s in input_shape] if several_shapes(input_shape)
          else zeros((1, *input_shape)))


def _is_keras_model(value) -> bool:
    return isinstance(value, _keras().Model)


def load_keras(spec: str, weights: str | None = None,
               input_shape: tuple[int, ...] | None = None) -> LoadedModel:
    """The user's Keras model from a SPEC, with .weights.h5 loaded into it if given.

    input_shape (channels-last, without the batch axis) builds a subclassed model that has
    not been called yet, so its weights exist before they are loaded."""
    _keras()  # the torch backend, or a refusal, before anything is loaded
    _refuse_misplaced_file(spec, "keras")
    if _suffix_of(spec) == ".keras":
        model, name = _load_keras_file(spec), os.path.basename(spec)[:-len(".keras")]
    else:
        target, name = resolve_callable(spec)
        model = _build(target, name, _is_keras_model, KERAS_EXPECTED)
        name = name.rsplit(".", 1)[-1]
    if input_shape is not None and not model.built:
        _build_on_zeros(model, input_shape)
    if weights:
        load_keras_weights(model, weights)
    return LoadedModel(model, "keras", name, spec, weights)


def _load_keras_file(path: str):
    keras = _keras()
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    problem = keras_file_problem(path)
    if problem:
        raise UsageError(f"cannot load {path}: {problem}")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:
        text = " ".join(str(exc).split())
        if "safe_mode" in text:
            raise UsageError(f"Keras refused to load {path} with safe_mode=True (it would run "
                             f"code stored in the file, e.g. a Lambda layer); give the model "
                             f"as file.py:callable to --keras and its weights as "
                             f"--keras-weights FILE.weights.h5") from None
        unknown = [f"{name} (from {module})" for name, module in keras_file_classes(path)
                   if keras.saving.get_registered_object(name) is None]
        if unknown:
            raise UsageError(f"cannot load {path}: it holds classes of your own that Keras "
                             f"cannot find here, {', '.join(unknown)}; give the model as "
                             "file.py:callable to --keras and its weights as --keras-weights "
                             "FILE.weights.h5") from None
        raise UsageError(f"cannot load {path} with keras.saving.load_model: "
                         f"{_one_line(exc)}") from None


def load_keras_weights(model, path: str) -> None:
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    if not path.lower().endswith(KERAS_WEIGHT_SUFFIX):
        raise UsageError(f"--keras-weights takes a {KERAS_WEIGHT_SUFFIX} file, not {path}")
    problem = keras_file_problem(path)
    if problem:
        raise UsageError(f"cannot load {path}: {problem}")
    if not model.built:
        raise UsageError("the Keras model has no weights yet (a subclassed model never "
                         "called): give --input-shape or --inputs so it can be built first")
    try:
        model.load_weights(path)
    except Exception as exc:
        raise UsageError(f"{path} does not fit the Keras model: {_one_line(exc)}") from None


def keras_layer(model, name: str):
    """The layer that plays the backbone (--freeze NAME), searched in nested models too."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if layer.name == name:
            return layer
    names = [layer.name for layer in model.layers]
    raise UsageError(f"the Keras model has no layer {name!r}; its layers: "
                     f"{', '.join(names[:15])}{', ...' if len(names) > 15 else ''}")


# ----- the Python API's objects ------------------------------------------------------------


def as_pytorch(model_or_spec, weights: str | None = None) -> LoadedModel:
    """A module given as an object, or a SPEC string (the Python API accepts both)."""
    if isinstance(model_or_spec, (str, os.PathLike)):
        return load_pytorch(os.fspath(model_or_spec), weights)
    torch = _torch()
    if isinstance(model_or_spec, torch.export.ExportedProgram):
        return LoadedModel(model_or_spec.module(), "pytorch", "exported_program", "<object>",
                           inference_only=PT2_INFERENCE_ONLY)
    if not isinstance(model_or_spec, torch.nn.Module):
        raise UsageError(f"the PyTorch side is a {type(model_or_spec).__name__}; expected "
                         f"{TORCH_EXPECTED}, a torch.export program or a SPEC ({SPEC_FORMS})")
    refuse_script_modules(model_or_spec)
    if weights:
        load_state_dict(model_or_spec, weights)
    return LoadedModel(model_or_spec, "pytorch", type(model_or_spec).__name__, "<object>",
                       weights)


def as_keras(model_or_spec, weights: str | None = None,
             input_shape: tuple[int, ...] | None = None) -> LoadedModel:
    if isinstance(model_or_spec, (str, os.PathLike)):
        return load_keras(os.fspath(model_or_spec), weights, input_shape)
    if not _is_keras_model(model_or_spec):
        raise UsageError(f"the Keras side is a {type(model_or_spec).__name__}; expected "
                         f"{KERAS_EXPECTED} or a SPEC ({SPEC_FORMS})")
    if input_shape is not None and not model_or_spec.built:
        _build_on_zeros(model_or_spec, input_shape)
    if weights:
        load_keras_weights(model_or_spec, weights)
    return LoadedModel(model_or_spec, "keras", model_or_spec.name, "<object>", weights)
