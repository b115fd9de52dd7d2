"""ONNX export and ONNX Runtime: the only module that imports onnx and onnxruntime.

Both are imported inside the functions that need them (so a missing onnxruntime
fails the run of a reference, not the import of this module), and so is torch,
for the PyTorch exporters. A Keras model reaches this module as an object and
is exported with its own `model.export(..., format="onnx")`.

What was measured with torch 2.14.1, onnx 1.23, onnxscript 0.7.2, onnxruntime 1.32
and Keras 3.15.1 on the torch backend, and what the code below does about it:

* TorchScript exporter (`dynamo=False`) with `training=TrainingMode.TRAINING`:
  every BatchNorm becomes `BatchNormalization(training_mode=1)`, which ONNX Runtime
  runs with batch statistics; an `nn.Dropout` in train() is written as
  `Dropout(ratio, training_mode=True)`, even when the module was put in eval()
  first, since that exporter calls model.train() on the whole model. ONNX Runtime's
  default graph optimisations delete Dropout nodes; with them disabled it draws
  random masks. So Dropout modules are replaced by Identity for a training-mode
  export, and the graph holds no Dropout whatever the optimisation level
  (`graph_facts` counts active Dropout nodes). torchvision's StochasticDepth and timm's
  DropPath too: in train() each is written as RandomUniformLike, Less, Div and Mul, drawn
  anew on each run.
* Dynamo exporter: `training=` is deprecated and ignored; a model in train() is
  traced to `aten._native_batch_norm_legit_functional(training=True)`, which
  onnxscript's torch_lib writes as an inference-mode BatchNormalization (it forces
  training=False). A "training-mode" dynamo export therefore computes inference
  mode; `graph_facts` finds no BatchNormalization in training mode and the referee
  reports that, rather than a wrong reference.
* Keras `model.export(path, format="onnx")` on the torch backend works; with the
  batch dimension left dynamic (the default input signature) Keras takes its
  TorchScript path.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

# Bump when what is written (or how it is exported) changes; 2: torchvision's StochasticDepth
# is left out of training-mode exports, as Dropout is.
CACHE_FORMAT = 2
EXPORTERS = ("torchscript", "dynamo")
MODES = ("eval", "train_forward")
KEY_PROPERTY = "xframe_compare.cache_key"
FIELDS_PROPERTY = "xframe_compare.cache_fields"


# ----- the export cache --------------------------------------------------------------------


def default_cache_dir() -> str:
    from comparator.io import default_cache_dir as default

    return default()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cache_fields(*, framework: str, model: str, scenario: str, weights_sha256: str,
                 input_shape, exporter: str, mode: str, structure: str | None = None,
                 output: str | None = None) -> dict:
    """Everything an export depends on: same fields, same graph.

    `structure` (see `structure_fingerprint`) covers what the weights hash cannot:
    layer types and hyper-parameters such as BatchNorm epsilon or the Dropout rate.
    `output`: the keys --output chose, where it chose one of a model's outputs.
    """
    packages = ("torch", "onnx", "onnxscript") + (("keras",) if framework.startswith("keras")
                                                  else ())
    if framework == "keras-tensorflow":
        packages += ("tensorflow", "tf2onnx")
    if framework == "tf-keras":  # Keras 2's graph: tf2onnx converts the tf_keras model
        packages += ("tf_keras", "tensorflow", "tf2onnx")
    return {
        "format": CACHE_FORMAT, "framework": framework, "model": model, "scenario": scenario,
        "weights_sha256": weights_sha256, "input_shape": _shape_field(input_shape),
        "exporter": exporter, "mode": mode, "structure": structure,
        "versions": {p: _version(p) for p in packages},
        **({"output": output} if output is not None else {}),
    }


def _shape_field(shape) -> list:
    """One input's shape as a list of ints, or a list of several inputs' shapes."""
    return [_shape_field(d) if isinstance(d, (tuple, list)) else int(d) for d in shape]


def _as_inputs(example) -> tuple:
    """One array, or a tuple or list of a model's several inputs, as a tuple."""
    return tuple(example) if isinstance(example, (tuple, list)) else (example,)


_VOLATILE_KEYS = frozenset({"name", "inbound_nodes", "keras_history", "trainable",
                            "input_layers", "output_layers"})


def _scrub(value):
    """A Keras config without what changes from process to process (auto-numbered names)."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in _VOLATILE_KEYS}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def structure_fingerprint(model) -> str:
    """sha256 (20 hex digits) of a model's structure and hyper-parameters, not its weights.

    A torch module: its repr (layer types, eps, momentum, Dropout p, ...). A Keras
    model: its config with names removed, since Keras numbers auto-named layers per
    process. Never raises: an unreadable structure falls back to the class name.
    """
    try:
        # Keras first: on the torch backend a Keras model is a torch Module as well.
        if hasattr(model, "get_config") and hasattr(model, "layers"):
            text = json.dumps(_scrub(model.get_config()), sort_keys=True, default=str)
        else:
            text = repr(model)
    except Exception:  # noqa: BLE001 - a weaker key, never a failed referee
        text = type(model).__qualname__
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CachedExport:
    """One ONNX file in the cache and how it got there."""

    path: str
    key: str
    cached: bool  # True: a valid entry was found and nothing was exported
    export_seconds: float  # time spent in the exporter (0 when cached)
    check_seconds: float  # loading and validating the file
    rebuilt: str | None = None  # why an existing entry was not used
    export_notes: dict = field(default_factory=dict)  # what the exporter was told to do
    facts: dict = field(default_factory=dict)  # what the graph contains


class ExportCache:
    """ONNX files keyed by the sha256 of their cache fields, written atomically.

    The key is also stored inside the file (model metadata, serialised after the
    graph), so a truncated or foreign file never passes for an entry; a file that
    does not match its digest, does not load or lacks the key is rebuilt. Only a file
    that onnx.checker accepts is written.
    """

    def __init__(self, directory: str | None = None):
        self.directory = os.path.abspath(directory or default_cache_dir())

    def path_for(self, fields: dict) -> str:
        key = cache_key(fields)
        stem = "-".join(str(fields[k]) for k in ("model", "scenario", "framework", "mode",
                                                 "exporter"))
        return os.path.join(self.directory, f"{stem}-{key[:20]}.onnx")

    def lookup(self, fields: dict):
        """(model, None) for a valid entry; (None, why it is not usable or None) otherwise."""
        path, key = self.path_for(fields), cache_key(fields)
        if not os.path.lexists(path):
            return None, None
        problem = _regular(path) or _digest_problem(path)
        if problem:
            return None, f"cache entry {os.path.basename(path)} {problem}"
        try:
            # The digest says these are the bytes written, and onnx.checker passed them
            # before they were (get_or_build): checking again cost about 0.25 s a warm run.
            model = load_checked(path, check=False)
        except Exception as exc:  # noqa: BLE001 - any failure means "rebuild"
            return None, f"cache entry {os.path.basename(path)} is unusable ({_one_line(exc)})"
        if _properties(model).get(KEY_PROPERTY) != key:
            return None, (f"cache entry {os.path.basename(path)} does not carry its key "
                          "(partial or foreign file)")
        return model, None

    def get_or_build(self, fields: dict, build, fresh: str | None = None) -> CachedExport:
        """The entry for `fields`, exporting with `build(path) -> notes` when needed, or
        when `fresh` says why the entry there is not to be used."""
        started = time.perf_counter()
        final, key = self.path_for(fields), cache_key(fields)
        model, problem = self.lookup(fields) if fresh is None else (None, fresh)
        if model is not None:
            notes = _stored_notes(model)
            return CachedExport(final, key, True, 0.0, round(time.perf_counter() - started, 3),
                                None, notes, graph_facts(model))

        os.makedirs(self.directory, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".export-", dir=self.directory)
        try:
            raw = os.path.join(staging, "raw.onnx")
            t = time.perf_counter()
            notes = build(raw) or {}
            export_seconds = time.perf_counter() - t
            t = time.perf_counter()
            model, sha256 = _stamped(raw, {KEY_PROPERTY: key,
                                           FIELDS_PROPERTY: json.dumps({"fields": fields,
                                                                        "notes": notes})})
            digest = os.path.join(staging, "final.sha256")
            with open(digest, "w") as handle:
                handle.write(sha256 + "\n")
            # Each rename is atomic; between the two a reader finds a digest that does not
            # match and rebuilds: never a wrong entry used.
            for path in (final + DIGEST_SUFFIX, final):
                _clear_directory(path)
            os.replace(digest, final + DIGEST_SUFFIX)
            os.replace(raw, final)
            check_seconds = time.perf_counter() - t
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return CachedExport(final, key, False, round(export_seconds, 3), round(check_seconds, 3),
                            problem, notes, graph_facts(model))


def _stamped(path: str, properties: dict) -> tuple:
    """Check the exporter's file and add `properties` to its metadata in place; returns the
    model, properties included, and the sha256 of the file's final bytes.

    The properties go at the end of the file as a second serialised ModelProto that holds
    only them: a protobuf parser merges concatenated messages, appending repeated fields,
    so the file reads as the export with its metadata extended, and its 30 MB are not
    serialised and written again. A file whose tensors live beside it (external data) is
    loaded whole and saved again, so the entry is one self-contained file."""
    import onnx

    onnx.checker.check_model(path)
    beside = set(os.listdir(os.path.dirname(path))) - {os.path.basename(path)}
    if beside:
        model = onnx.load(path)
        _set_properties(model, properties)
        onnx.save(model, path)
        return model, _file_sha256(path)
    with open(path, "rb") as handle:
        data = handle.read()
    model = onnx.load_model_from_string(data)
    stamp = onnx.ModelProto()
    _set_properties(stamp, properties)
    tail = stamp.SerializeToString()
    with open(path, "ab") as handle:
        handle.write(tail)
    _set_properties(model, properties)
    digest = hashlib.sha256(data)
    digest.update(tail)
    return model, digest.hexdigest()


DIGEST_SUFFIX = ".sha256"  # beside each entry: the sha256 of the entry's bytes
MAX_ENTRY_BYTES = 8 * 1024 ** 3


def _clear_directory(path: str) -> None:
    """A directory where an entry belongs (rename cannot replace it) is removed: it is a
    bad entry of this cache folder, rebuilt like any other."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _regular(path: str) -> str | None:
    """Why `path` cannot be read as a cache file (a FIFO hangs a reader, a link to
    /dev/zero never ends), or None."""
    import stat

    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link, not a regular file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_size > MAX_ENTRY_BYTES:
        return f"is larger than {MAX_ENTRY_BYTES} bytes"
    return None


def _digest_problem(path: str) -> str | None:
    """Why the entry at `path`, a regular file (`_regular`), does not match the digest
    written beside it, or None: the key inside a file says what it was exported for, the
    digest that it was not changed."""
    digest_path = path + DIGEST_SUFFIX
    if not os.path.lexists(digest_path):
        return "has no content digest beside it"
    problem = _regular(digest_path)
    if problem:
        return f"({os.path.basename(digest_path)}) {problem}"
    with open(digest_path, "rb") as handle:
        recorded = handle.read(200).decode("ascii", "replace").strip()
    if recorded != _file_sha256(path):
        return "does not match its content digest (changed after it was written)"
    return None


def _properties(model) -> dict:
    return {p.key: p.value for p in model.metadata_props}


def _set_properties(model, values: dict) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for key, value in values.items():
        entry = existing.get(key) or model.metadata_props.add()
        entry.key, entry.value = key, value


def _stored_notes(model) -> dict:
    raw = _properties(model).get(FIELDS_PROPERTY)
    try:
        return json.loads(raw).get("notes", {}) if raw else {}
    except ValueError:
        return {}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")


# ----- validation and graph facts ----------------------------------------------------------


def load_checked(path: str, check: bool = True):
    """Load an ONNX file and run onnx.checker on it; raises on any problem."""
    import onnx

    if check:
        # Checked from the file, not from the loaded model, which onnx would serialise
        # again first: 0.013 to 0.015 s against 0.037 to 0.093 s for DenseNet121's graphs.
        onnx.checker.check_model(path)
    return onnx.load(path)


def _constant_values(graph) -> dict:
    import onnx
    from onnx import numpy_helper

    values = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            attr = node.attribute[0]
            if attr.type == onnx.AttributeProto.TENSOR:
                values[node.output[0]] = attr.t
    return {name: numpy_helper.to_array(t) for name, t in values.items()}


def graph_facts(model) -> dict:
    """What a graph will compute, counted from its nodes: BatchNormalization nodes in
    training mode (batch statistics) and Dropout nodes told to be active."""
    graph = model.graph
    constants = _constant_values(graph)
    bn = [n for n in graph.node if n.op_type == "BatchNormalization"]
    bn_training = [n for n in bn if any(a.name == "training_mode" and a.i == 1
                                        for a in n.attribute)]
    dropout = [n for n in graph.node if n.op_type == "Dropout"]
    active = []
    for node in dropout:
        flag = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if flag is not None and (flag not in constants or bool(np.all(constants[flag]))):
            active.append(node)  # an unknown flag counts as active: it could be
    inputs = [i for i in graph.input if i.name not in {x.name for x in graph.initializer}]
    return {
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                     default=None),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "nodes": len(graph.node),
        "batchnorm_nodes": len(bn),
        "batchnorm_training_nodes": len(bn_training),
        "dropout_nodes": len(dropout),
        "active_dropout_nodes": len(active),
        "inputs": [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
                   for i in inputs],
    }


# ----- exporters ---------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet():
    """Exporters print progress and warn at length; keep the caller's terminal clean."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
            _native_stdout_discarded(), _onnx_log_switch_kept():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _native_stdout_discarded():
    """File descriptor 1 goes to a scratch file for the block: the TorchScript exporter's C++
    log writes there, below Python's sys.stdout. A failed export logs its whole graph
    (a VGG16 at 32 px: about 550 lines before the report)."""
    try:
        saved = os.dup(1)
    except OSError:  # stdout closed (`>&-`): nothing to keep clean
        yield
        return
    with tempfile.TemporaryFile() as scratch:
        os.dup2(scratch.fileno(), 1)
        try:
            yield
        finally:
            _flush_c_stdio()  # what C stdio still buffers belongs to the scratch file
            os.dup2(saved, 1)
            os.close(saved)


def _flush_c_stdio() -> None:
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def _onnx_log_switch_kept():
    """torch 2.14.1's TorchScript exporter switches its ONNX log on for an export and never
    back off (it tests the function `_jit_is_onnx_log_enabled`, not its result), so every
    later failing export would log its graph: the switch is put back as it was."""
    torch_c = getattr(sys.modules.get("torch"), "_C", None)
    enabled = getattr(torch_c, "_jit_is_onnx_log_enabled", None)
    was = enabled() if enabled else None
    try:
        yield
    finally:
        if was is not None and hasattr(torch_c, "_jit_set_onnx_log_enabled"):
            torch_c._jit_set_onnx_log_enabled(was)


@contextlib.contextmanager
def kept_module_modes(module):
    """Put every submodule's train()/eval() flag back as it was on leaving the block."""
    saved = [(m, m.training) for m in module.modules()] if hasattr(module, "modules") else []
    try:
        yield
    finally:
        for m, training in saved:
            m.training = training


@contextlib.contextmanager
def _without(model, drops):
    """Within the block, the submodules for which drops(module) holds are replaced by
    nn.Identity."""
    from torch import nn

    swapped = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children() if drops(child)]
    for parent, name, _ in swapped:
        setattr(parent, name, nn.Identity())
    try:
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def export_torch(model, example: np.ndarray, path: str, *, exporter: str = "torchscript",
                 mode: str = "eval", dropout_off: bool = True) -> dict:
    """Export a torch module at `example`'s shape (one array, or a tuple of a model's several
    inputs, its graph inputs then named input0, input1, ...); returns notes on what was done.

    mode "eval": inference mode (BatchNorm moving statistics, Dropout off).
    mode "train_forward": the module in train(); TorchScript is given
    training=TrainingMode.TRAINING, BatchNorm uses batch statistics. That exporter
    puts every module in train() (measured: a Dropout module left in eval() is
    switched back and exported as Dropout(training_mode=True)), so with
    `dropout_off` the Dropout and stochastic-depth modules (adapters/pytorch/drop_path.py)
    are replaced by Identity for the export.
    The module's train/eval flags are restored afterwards; its weights are not
    touched, but a training-mode trace runs forward passes, which move BatchNorm
    running statistics: the caller restores the state it wants.
    """
    import torch
    from torch import nn

    from adapters.pytorch.drop_path import drops_at_random

    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; known: {', '.join(EXPORTERS)}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    device = next(model.parameters()).device
    args = tuple(torch.from_numpy(np.ascontiguousarray(v)).to(device)
                 for v in _as_inputs(example))
    names = (["input"] if len(args) == 1 else [f"input{index}" for index in range(len(args))])
    # Stochastic depth in train() exports as RandomUniformLike, drawn anew on each run of the
    # graph (measured: a residual pair's outputs 0.24 apart from run to run).
    notes = {"exporter": exporter, "mode": mode,
             "batchnorm_modules": sum(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                      for m in model.modules()),
             "dropout_modules": sum(drops_at_random(m) for m in model.modules()),
             "dropout_modules_removed": 0}
    removed = _without(model, drops_at_random) if mode == "train_forward" and dropout_off \
        else contextlib.nullcontext(0)
    with kept_module_modes(model), _quiet(), removed as count:
        notes["dropout_modules_removed"] = count
        model.train(mode == "train_forward")
        common = dict(input_names=names, output_names=["output"])
        if exporter == "torchscript":
            training = (torch.onnx.TrainingMode.EVAL if mode == "eval"
                        else torch.onnx.TrainingMode.TRAINING)
            torch.onnx.export(model, args, path, dynamo=False, training=training,
                              do_constant_folding=(mode == "eval"), **common)
        else:
            # The dynamo exporter ignores training=: the module's own mode is what it traces.
            torch.onnx.export(model, args, path, dynamo=True, external_data=False,
                              verbose=False, **common)
    return notes


def export_keras(model, path: str, sample=None) -> dict:
    """Keras's own exporter, `model.export(path, format="onnx")`, default input signature: a
    batch of any size, which Keras 3.15.1 exports on torch with TorchScript. Where that fails
    and a sample batch is given, again with the sample's fixed shape, which Keras exports
    through torch.export (TorchScript refuses Keras's LayerNormalization, which reads its
    input's shape; the fixed shape exports, measured). sample: one array, or a list of a
    model's several inputs."""
    notes = {"exporter": "keras model.export(format='onnx')", "mode": "eval"}
    with kept_module_modes(model), _quiet():
        try:
            model.export(path, format="onnx", verbose=False)
            return notes
        except Exception as exc:
            if sample is None:
                raise
            refusal = exc
        import keras

        signature = [keras.InputSpec(shape=v.shape, dtype=str(v.dtype))
                     for v in _as_inputs(sample)]
        try:
            model.export(path, format="onnx", verbose=False, input_signature=signature)
        except Exception:  # noqa: BLE001 - the default export's refusal says more
            raise refusal from None
    shapes = [v.shape for v in _as_inputs(sample)]
    shown = _shape_field(shapes if len(shapes) > 1 else shapes[0])
    return {**notes, "input_signature": (
        f"the batch's own shape {shown}, after the default signature's export failed "
        f"({type(refusal).__name__})")}


# ----- ONNX Runtime --------------------------------------------------------------------------


def providers_for(device: str) -> tuple[list, str | None]:
    """Execution providers for a device, and a note when the device cannot be had."""
    import onnxruntime as ort

    if device.startswith("cuda"):
        available = ort.get_available_providers()
        if "CUDAExecutionProvider" in available:
            index = int(device.split(":")[1]) if ":" in device else 0
            # TF32 would cost about three decimal digits; the referee compares float32.
            return [("CUDAExecutionProvider", {"device_id": index, "use_tf32": 0}),
                    "CPUExecutionProvider"], None
        return ["CPUExecutionProvider"], (
            f"device {device} asked for, but this onnxruntime has no CUDAExecutionProvider "
            f"(available: {', '.join(available)}); ran on CPU")
    return ["CPUExecutionProvider"], None


@dataclass(frozen=True)
class RunOutput:
    outputs: np.ndarray
    seconds: float  # session creation and one run
    provider: str
    note: str | None = None


def run_onnx(path: str, x, device: str = "cpu", every_output: bool = False,
             names: list[str] | None = None) -> RunOutput:
    """Run the graph's first output in ONNX Runtime on one input array, or on a tuple or
    list of arrays that feed the graph's inputs in order. every_output: the graph's outputs
    one after another along the batch axis, as the comparison holds several chosen ones;
    names: those outputs, in that order, one after another the same way."""
    import onnxruntime as ort

    providers, note = providers_for(device)
    started = time.perf_counter()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(path, options, providers=providers)
    except Exception:
        if providers == ["CPUExecutionProvider"]:
            raise
        # A CUDA provider that does not accept an option falls back to its defaults.
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        session = ort.InferenceSession(path, options, providers=providers)
    feed = {graph_input.name: np.ascontiguousarray(  # token ids stay integers
                value, dtype=_ONNX_INPUT_TYPES.get(graph_input.type, np.float32))
            for graph_input, value in zip(session.get_inputs(), _as_inputs(x))}
    if names is None:
        names = [output.name for output in session.get_outputs()][:None if every_output else 1]
    outputs = session.run(names, feed)
    outputs = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
    seconds = time.perf_counter() - started
    provider = session.get_providers()[0]
    if device.startswith("cuda") and provider != "CUDAExecutionProvider" and note is None:
        note = f"device {device} asked for, but ONNX Runtime ran on {provider}"
    return RunOutput(np.asarray(outputs), round(seconds, 3), provider, note)


_ONNX_INPUT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def versions() -> dict[str, str]:
    return {p: _version(p) for p in ("onnx", "onnxruntime", "onnxscript")}
