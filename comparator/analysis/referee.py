"""ONNX Runtime as a neutral referee for a finished comparison.

The PyTorch model is exported twice from the initial weights, in inference mode
and with training=TrainingMode.TRAINING (BatchNorm with batch statistics, Dropout
removed), and the Keras model with its own exporter (on the torch backend in this
process; on TensorFlow, when keras-tensorflow runs, in its worker, through tf2onnx:
a third, independently exported graph). When tf-keras runs, Keras 2's model is
converted in its worker by tf2onnx's from_keras (Keras 2 has no ONNX export of its
own): one graph more, held to the same checks (WORKER_GRAPHS). ONNX Runtime runs the
graphs on the comparison batch and the losses are computed here, in numpy. Then:

* the inference graphs must agree with each other and with each framework's
  inference outputs (`onnx:eval`);
* every run whose train step normalised with batch statistics in all BatchNorm
  layers and had no active Dropout must report the loss of the training-mode
  graph (`onnx:train_forward`);
* every run whose BatchNorm layers all used moving statistics must differ from
  it, by the amount shown (and, with no Dropout active, match `onnx:eval`).

Those checks are made in referee_checks.py, from the references made here.

A failed export or ONNX Runtime failure marks its reference failed with a
one-line reason; nothing raises. Only numpy is imported here; adapters.onnx.runtime
(which imports onnx, onnxruntime and torch) is imported when the referee runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from dataclasses import dataclass

import numpy as np

from comparator.config import PROBABILITIES_FROM_LOGITS
from comparator.inputs.batch import REGRESSION_SCENARIOS
from comparator.analysis.referee_checks import eval_checks, run_checks
from comparator.analysis.tolerances import FLOAT32_FACTOR, LOGIT_TOLERANCE
from comparator.errors import UsageError
from comparator.schema import Check, Report, _clean

EXPORTERS = ("torchscript", "dynamo")
TRAIN_FORWARD_DESCRIPTION = "BatchNorm with batch statistics, dropout off"
EVAL = "onnx:eval"
TF_GRAPH = "keras-tensorflow"  # the framework whose worker exports the third graph
TF_KERAS_GRAPH = "tf-keras"  # Keras 2: its worker converts the model with tf2onnx
# The frameworks whose workers export a graph of their own, by the exporter the cache key
# and the report name: each one's graph is exported, cached, verified and checked alike.
WORKER_GRAPHS = {TF_GRAPH: "keras-tf2onnx", TF_KERAS_GRAPH: "tf-keras-tf2onnx"}
TRAIN_FORWARD = "onnx:train_forward"


@dataclass(frozen=True)
class RefereeResult:
    references: dict  # JSON-ready, under "onnx:eval" and "onnx:train_forward"
    checks: tuple[Check, ...]
    failed: bool  # a reference could not be computed (see reasons)
    reasons: tuple[str, ...]
    seconds: dict  # per phase: export, run, framework_outputs, total

    def to_dict(self) -> dict:
        return _clean({"references": self.references,
                       "checks": [c.to_dict() for c in self.checks],
                       "failed": self.failed, "reasons": list(self.reasons),
                       "seconds": self.seconds})


def with_referee(report: Report, result: RefereeResult) -> Report:
    """The report with the referee's references, checks and timings added."""
    return dataclasses.replace(
        report, references={**report.references, **result.references},
        checks=tuple(report.checks) + tuple(result.checks),
        timings={**report.timings, "referee": dict(result.seconds)})


# ----- losses, in numpy ----------------------------------------------------------------------


def _rows(logits: np.ndarray, labels: np.ndarray, class_axis: int) -> tuple:
    """Logits as rows of class scores (float64) and their integer labels, one per row: a
    map's N,K,H,W as N*H*W rows, as the frameworks' losses average over its positions."""
    z = np.moveaxis(np.asarray(logits, dtype=np.float64), class_axis, -1)
    return z.reshape(-1, z.shape[-1]), np.asarray(labels).astype(np.int64).ravel()


def cross_entropy(logits: np.ndarray, labels: np.ndarray, class_axis: int = 1) -> float:
    """Mean cross-entropy from logits with integer labels (float64)."""
    z, labels = _rows(logits, labels, class_axis)
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(z)), labels]))


def mean_squared_error(outputs: np.ndarray, targets: np.ndarray) -> float:
    diff = np.asarray(outputs, dtype=np.float64) - np.asarray(targets, dtype=np.float64)
    return float(np.mean(diff ** 2))


def clipped_probability_cross_entropy(logits: np.ndarray, labels: np.ndarray,
                                      epsilon: float = 1e-7, class_axis: int = 1) -> float:
    """Cross-entropy on softmax probabilities clipped to [epsilon, 1 - epsilon] (float64)."""
    z, labels = _rows(logits, labels, class_axis)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return float(np.mean(-np.log(np.clip(p[np.arange(len(p)), labels], epsilon, 1 - epsilon))))


def loss_of(scenario: str, outputs: np.ndarray, y: np.ndarray, kind: str = "logits",
            class_axis: int = 1, weights=None) -> float:
    """The comparison's loss: mean squared error for regression scenarios, else
    cross-entropy from logits or on clipped probabilities (`kind`). class_axis: the outputs'
    (Batch.class_axis). weights: of several chosen outputs held one after another along the
    batch axis (settings.pair.output.loss_weights), the weighted sum of each one's loss."""
    if weights:
        return sum(weight * loss_of(scenario, chosen, y, kind, class_axis)
                   for weight, chosen in zip(weights, np.split(np.asarray(outputs),
                                                               len(weights))))
    if scenario in REGRESSION_SCENARIOS:
        return mean_squared_error(outputs, np.reshape(y, np.shape(outputs)))
    if kind == "probabilities":
        return clipped_probability_cross_entropy(outputs, y, class_axis=class_axis)
    return cross_entropy(outputs, y, class_axis)


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def _graph_distances(graphs: dict, logits: dict) -> dict[str, float]:
    """Max abs difference of every graph's outputs against every framework's, and between
    every pair of graphs (pytorch, keras, keras-tensorflow, tf-keras)."""
    distances = {f"{graph}_graph_vs_{framework}": _max_abs(outputs, reference)
                 for graph, outputs in graphs.items() for framework, reference in logits.items()}
    names = list(graphs)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            distances[f"{first}_graph_vs_{second}_graph"] = _max_abs(graphs[first],
                                                                     graphs[second])
    return distances


# What torch's TorchScript exporter adds to every refusal after its reason: an invitation to
# file an issue, then the graph value it stopped at (torch 2.14.1).
_TORCH_EXPORT_BOILERPLATE = re.compile(
    r"\s*Please feel free to request support or submit a pull request on PyTorch GitHub:"
    r"\s*\S+|\s*\[Caused by the value .*")


# A TorchScript refusal of one graph value names the value's node over several lines, with
# the source line that computed it and why (torch 2.14.1's SymbolicValueError).
_TORCH_NODE_REFUSAL = re.compile(
    r"Failed to export a node .*?# (?:\S*?site-packages/)?(\S+?:\d+):\d+.*?because ([^.\[]+)\.",
    re.DOTALL)


def _one_line(exc: BaseException) -> str:
    lines = [x.strip() for x in str(exc).strip().splitlines() if x.strip()]
    reason = _TORCH_EXPORT_BOILERPLATE.sub("", lines[0]) if lines else ""
    refusal = _TORCH_NODE_REFUSAL.search(str(exc))
    if refusal:
        reason = (f"the TorchScript exporter cannot export the value computed at "
                  f"{refusal.group(1)}: {refusal.group(2).strip()}")
    text = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _other_exporter(fields: dict) -> str:
    """What to try when TorchScript refuses the PyTorch model: torch.export traces it
    instead (VGG16 at 32 px, whose 1x1 feature map is pooled to 7x7: TorchScript refuses
    the pooling, the dynamo exporter writes it, measured)."""
    if fields["framework"] == "pytorch" and fields["exporter"] == "torchscript":
        return " (--onnx-exporter dynamo exports the PyTorch model through torch.export)"
    return ""


# ----- the referee -----------------------------------------------------------------------


def output_weights(report: Report) -> list[float] | None:
    """The weights of the chosen outputs' losses where --output chose several, else None."""
    return report.settings.get("pair", {}).get("output", {}).get("loss_weights")


class _Unavailable(Exception):
    """The referee cannot start; the message is the reason."""


class _Referee:
    def __init__(self, outcome, cache_dir, exporter, device):
        self.report, self.batch = outcome.report, outcome.batch
        self.adapters = dict(outcome.adapters or {})
        self.scenario = self.report.scenario
        self.loss_kind = self.report.settings.get("loss_kind", "logits")
        # Frameworks whose probabilities loss is the softmax's logits' cross-entropy.
        self.from_logits = frozenset(
            name for name, words in (self.report.settings.get("loss_by_framework") or {}).items()
            if words == PROBABILITIES_FROM_LOGITS)
        self.weights = output_weights(self.report)
        self.exporter, self.device = exporter, device
        self.cache_dir = cache_dir
        self.seconds = {"export": 0.0, "run": 0.0, "framework_outputs": 0.0}
        self.onnxrt = None
        self.touched = set()
        self.output_errors: dict[str, str] = {}
        # Graphs whose cached entry did not compute the model's outputs: exported again.
        self.stale: set[str] = set()

    # framework state ---------------------------------------------------------------------

    def _reset(self, name: str) -> None:
        """Initial weights; for PyTorch also train() and requires_grad, as every run starts."""
        self.adapters[name].reset()

    def _restore_all(self) -> list[str]:
        problems = []
        for name in sorted(self.touched):
            try:
                self._reset(name)
            except Exception as exc:  # noqa: BLE001 - reported, never raised
                problems.append(f"could not restore the {name} model: {_one_line(exc)}")
        return problems

    def _weights_sha256(self) -> str:
        found = self.report.settings.get("weights_sha256")
        if found:
            return found
        from comparator.inputs.weights import weights_sha256

        self.touched.add("pytorch")
        self._reset("pytorch")
        return weights_sha256(self.adapters["pytorch"].canonical_weights())

    def framework_outputs(self) -> dict[str, np.ndarray]:
        """Each framework's inference-mode outputs of the initial state, on the batch."""
        outputs = {}
        started = time.perf_counter()
        for name, adapter in self.adapters.items():
            if adapter.failure is not None:
                continue  # a worker that could not run has no outputs; the report says why
            self.touched.add(name)
            try:
                outputs[name] = np.asarray(self.adapters[name].logits(self.batch))
            except Exception as exc:  # noqa: BLE001 - reported with the reference
                self.output_errors[name] = _one_line(exc)
        self.seconds["framework_outputs"] += time.perf_counter() - started
        return outputs

    # exports --------------------------------------------------------------------------------

    def _fields(self, framework: str, exporter: str, mode: str, shape) -> dict:
        adapter = self.adapters[framework]
        if adapter.runs_in_worker:  # the worker measured its model's structure
            structure = adapter.structure
        else:
            structure = self.onnxrt.structure_fingerprint(adapter.exportable_model())
        output = self.report.settings.get("pair", {}).get("output")
        return self.onnxrt.cache_fields(
            framework=framework, model=self.report.model, scenario=self.scenario,
            weights_sha256=self.sha, input_shape=shape, exporter=exporter, mode=mode,
            structure=structure,
            output=f"{output['pytorch']}:{output['keras']}" if output else None)

    def _torch_builder(self, mode: str):
        def build(path: str) -> dict:
            self.touched.add("pytorch")
            self._reset("pytorch")
            try:
                return self.onnxrt.export_torch(self.adapters["pytorch"].exportable_model(),
                                                self.batch.x, path, exporter=self.exporter,
                                                mode=mode)
            finally:
                self._reset("pytorch")
        return build

    def _keras_builder(self, x: np.ndarray):
        def build(path: str) -> dict:
            self.touched.add("keras")
            self._reset("keras")
            try:
                return self.onnxrt.export_keras(self.adapters["keras"].exportable_model(), path,
                                                x)
            finally:
                self._reset("keras")
        return build

    def _worker_builder(self, name: str):
        def build(path: str) -> dict:
            return self.adapters[name].export_onnx(path)
        return build

    def _worker_graph_unavailable(self, name: str) -> str | None:
        """Why the worker's graph cannot be had: an optional extra is missing, or the worker
        failed (its runs already report that). The graph is then skipped, or None."""
        adapter = self.adapters[name]
        failure = adapter.failure
        if failure is not None:
            return f"the {name} worker {failure.status}: {failure.reason}"
        if "pair" in self.report.settings:  # its worker rebuilds the model for the runs only
            return ("a user pair's referee exports the models of the comparison's own process "
                    "only")
        from comparator.config.frameworks import ONNX_EXTRA_MODULES, missing_modules

        missing = missing_modules(ONNX_EXTRA_MODULES)
        if missing:
            return (f"{', '.join(missing)} is not installed (install the optional extra: "
                    "pip install -e '.[tensorflow]')")
        return None

    def attempt(self, fields: dict, build, x: np.ndarray, cache, fresh: str | None = None
                ) -> tuple[dict, np.ndarray | None]:
        """Export (or take from the cache, unless `fresh` says why not), run in ONNX
        Runtime; an entry and the outputs."""
        entry = {"ok": False, "error": None, "exporter": fields["exporter"]}
        started = time.perf_counter()
        try:
            export = cache.get_or_build(fields, build, fresh=fresh)
        except Exception as exc:  # noqa: BLE001 - a failed export is a result
            entry["error"] = f"export failed: {_one_line(exc)}{_other_exporter(fields)}"
            return entry, None
        finally:
            self.seconds["export"] += time.perf_counter() - started
        entry.update(file=export.path, cached=export.cached,
                     export_seconds=export.export_seconds, check_seconds=export.check_seconds,
                     rebuilt=export.rebuilt, exported_with=export.export_notes,
                     graph=export.facts)
        try:
            run = self.onnxrt.run_onnx(export.path, x, self.device,
                                       every_output=self.weights is not None)
        except ImportError as exc:
            entry["error"] = f"ONNX Runtime cannot be imported ({_one_line(exc)})"
            return entry, None
        except Exception as exc:  # noqa: BLE001
            entry["error"] = f"ONNX Runtime failed: {_one_line(exc)}"
            return entry, None
        self.seconds["run"] += run.seconds
        entry.update(run_seconds=run.seconds, provider=run.provider)
        if run.note:
            entry["provider_note"] = run.note
        if not np.all(np.isfinite(run.outputs)):
            entry["error"] = "ONNX Runtime produced non-finite outputs"
            return entry, None
        entry["ok"] = True
        return entry, run.outputs

    # references ---------------------------------------------------------------------------

    def eval_reference(self, cache, logits: dict) -> tuple[dict, dict]:
        ref = {"ok": False, "error": None, "inference_before": None,
               "description": self._eval_description(), "exports": {}, "losses": {},
               "max_abs_diff": {}}
        plans, skipped = self._eval_plans()
        for name, reason in skipped.items():
            ref["exports"][name] = {"ok": False, "skipped": True, "error": None,
                                    "reason": reason}
        graphs, errors = {}, []
        for name, fields, build, x in plans:
            entry, outputs = self._graph_outputs(name, fields, build, x, cache, logits.get(name))
            if outputs is not None:
                graphs[name] = outputs
                entry["loss"] = loss_of(self.scenario, outputs, self.batch.y, self.loss_kind,
                                        self.batch.class_axis, self.weights)
                ref["losses"][name] = entry["loss"]
            else:
                errors.append(f"{name} graph: {entry['error']}")
            ref["exports"][name] = entry
        ref["max_abs_diff"] = _graph_distances(graphs, logits)
        for framework, problem in self.output_errors.items():
            errors.append(f"{framework} inference outputs for comparison: {problem}")
        primary = "pytorch" if "pytorch" in graphs else next(iter(graphs), None)
        if primary is not None:
            ref["inference_before"] = ref["losses"][primary]
            ref["inference_before_from"] = f"{primary} graph"
            ref.update(self._from_logits("inference_before", graphs[primary]))
        ref["ok"] = not errors
        ref["error"] = "; ".join(errors) or None
        return ref, graphs

    def _eval_description(self) -> str:
        return ("ONNX Runtime on inference-mode exports of the initial weights (BatchNorm "
                f"with moving statistics, Dropout off): PyTorch via the {self.exporter} exporter"
                + (", Keras via its own model.export(format='onnx')" if "keras" in self.adapters
                   else "")
                + (", Keras on TensorFlow via model.export(format='onnx'), which uses tf2onnx, "
                   "in its worker" if TF_GRAPH in self.adapters else "")
                + (", Keras 2 (tf_keras) via tf2onnx's convert.from_keras, in its worker"
                   if TF_KERAS_GRAPH in self.adapters else ""))

    def _eval_plans(self) -> tuple[list, dict]:
        """(graph name, cache fields, builder, input) per inference graph to export, and the
        graphs that cannot be had, with the reason."""
        plans = [("pytorch", self._fields("pytorch", self.exporter, "eval",
                                          self.batch.input_shapes),
                  self._torch_builder("eval"), self.batch.x)]
        x = (self.batch.x_channels_last if {"keras", *WORKER_GRAPHS} & set(self.adapters)
             else None)
        if "keras" in self.adapters:
            plans.append(("keras", self._fields("keras", "keras", "eval", _shapes(x)),
                          self._keras_builder(x), x))
        skipped = {}
        for name, exporter in WORKER_GRAPHS.items():
            if name not in self.adapters:
                continue
            reason = self._worker_graph_unavailable(name)
            if reason:
                skipped[name] = reason
            else:
                plans.append((name, self._fields(name, exporter, "eval", _shapes(x)),
                              self._worker_builder(name), x))
        return plans, skipped

    def _graph_outputs(self, name, fields, build, x, cache, expected) -> tuple:
        """One inference graph's export record and outputs, in PyTorch's layout. A cached
        graph whose outputs are not the model's (`expected`) was exported from something the
        cache key cannot see (the model's forward code, say): it is exported again."""
        entry, outputs = self._inference_graph(fields, build, x, cache)
        held = self._as_pytorch(name, outputs)
        far = _max_abs(held, expected) if held is not None and expected is not None else 0.0
        if entry.get("cached") and far > LOGIT_TOLERANCE:
            self.stale.add(name)
            entry, outputs = self._inference_graph(fields, build, x, cache, fresh=(
                f"the cached graph's outputs were {far:.3g} from the model's: it was exported "
                "from something its key does not cover (the model's code, say)"))
            held = self._as_pytorch(name, outputs)
        return entry, held

    def _as_pytorch(self, name: str, outputs):
        """Keras's graphs give Keras's layout (a map's N,H,W,K); the losses and the distances
        read PyTorch's, as the frameworks' outputs are held."""
        if outputs is None or name == "pytorch":
            return outputs
        return self.batch.outputs_as_pytorch(outputs)

    def _inference_graph(self, fields, build, x, cache, fresh: str | None = None
                         ) -> tuple[dict, np.ndarray | None]:
        """One graph's export record and outputs; a graph that is not in inference mode
        (BatchNorm on batch statistics, active Dropout) gives no outputs."""
        entry, outputs = self.attempt(fields, build, x, cache, fresh)
        if entry["ok"]:
            facts = entry["graph"]
            if facts["batchnorm_training_nodes"] or facts["active_dropout_nodes"]:
                entry["ok"], outputs = False, None
                entry["error"] = (f"the inference graph has {facts['batchnorm_training_nodes']}"
                                  " BatchNormalization nodes in training mode and "
                                  f"{facts['active_dropout_nodes']} active Dropout nodes")
        return entry, outputs

    def train_reference(self, cache, fresh: str | None = None) -> dict:
        """The training-mode graph's loss; `fresh`: why a cached graph is not to be used."""
        ref = {"ok": False, "error": None, "train_forward": None,
               "description": TRAIN_FORWARD_DESCRIPTION}
        fields = self._fields("pytorch", self.exporter, "train_forward",
                              self.batch.input_shapes)
        if fresh is None and "pytorch" in self.stale:
            # Whatever made the cached inference graph stale makes this one so too.
            fresh = "the cached inference graph of the same model was stale, exported again"
        entry, outputs = self.attempt(fields, self._torch_builder("train_forward"),
                                      self.batch.x, cache, fresh)
        ref["export"] = entry
        if not entry["ok"]:
            ref["error"] = f"pytorch graph: {entry['error']}"
            return ref
        facts, notes = entry["graph"], entry.get("exported_with", {})
        bn_modules = int(notes.get("batchnorm_modules", facts["batchnorm_nodes"]))
        removed = int(notes.get("dropout_modules_removed", 0))
        problems = []
        if facts["batchnorm_training_nodes"] < bn_modules:
            problem = (f"the {self.exporter} export has {facts['batchnorm_training_nodes']} of "
                       f"{bn_modules} BatchNorm layers in training mode, so it would compute "
                       "moving statistics, not the training-mode forward pass")
            if self.exporter == "dynamo":
                problem += (" (onnxscript's torch_lib writes aten._native_batch_norm_legit_"
                            "functional as inference BatchNormalization; use the torchscript "
                            "exporter)")
            problems.append(problem)
        if facts["active_dropout_nodes"]:
            problems.append(f"the export has {facts['active_dropout_nodes']} active Dropout "
                            "nodes")
        if problems:
            ref["error"] = "; ".join(problems)
            return ref
        how = ("the PyTorch model in train(), exported by the TorchScript exporter with "
               "training=TrainingMode.TRAINING" if self.exporter == "torchscript" else
               "the PyTorch model in train(), exported by the dynamo exporter")
        if removed:
            how += (f", its {removed} Dropout module{'s' if removed > 1 else ''} replaced by "
                    "Identity for the export (that exporter switches every module to train(),"
                    " so eval() alone would leave Dropout active in the graph)")
        ref["description"] = (f"{TRAIN_FORWARD_DESCRIPTION}: {how}; the graph has "
                              f"{facts['batchnorm_training_nodes']} of {bn_modules} "
                              "BatchNormalization nodes in training mode and no active Dropout")
        ref["train_forward"] = loss_of(self.scenario, outputs, self.batch.y, self.loss_kind,
                                       self.batch.class_axis, self.weights)
        ref.update(self._from_logits("train_forward", outputs))
        ref["ok"] = True
        return ref

    def _from_logits(self, key: str, outputs) -> dict:
        """`<key>_from_logits`, the outputs' loss as Keras on TensorFlow computes the
        probabilities loss (cross-entropy from the logits, unclipped), where a framework of
        the report does; else nothing."""
        if not self.from_logits:  # settings.loss_by_framework: the probabilities loss only
            return {}
        return {f"{key}_from_logits": loss_of(self.scenario, outputs, self.batch.y, "logits",
                                              self.batch.class_axis, self.weights)}

    def measured_tolerance(self, tolerance: float, train_ref: dict,
                           framework: str) -> tuple[float, str]:
        """Where a train-forward loss differs by more than 1e-4 relative, float64 reruns say
        how much float32 rounding alone explains (as the port check does): BatchNorm over two
        samples in a deep network amplifies it past 1e-4, Keras's one-pass variance more than
        PyTorch's. The tolerance becomes FLOAT32_FACTOR times the larger of PyTorch's own
        error and the run's framework's own (where its adapter can rerun in float64), never
        less than the 1e-4 one."""
        errors = train_ref.setdefault("float32_errors", {})
        for name in dict.fromkeys(("pytorch", framework)):
            if name not in errors:
                errors[name] = self._train_forward_float32_error(name, train_ref)
        train_ref["pytorch_float32_error"] = errors["pytorch"]
        measured = {name: errors[name] for name in dict.fromkeys(("pytorch", framework))
                    if errors[name] is not None}
        if not measured:
            return tolerance, ""
        said = " and ".join(f"{name}'s {error:.2g}" for name, error in measured.items())
        unmeasured = ("" if framework in measured else
                      f" ({framework} cannot rerun in float64, so its own error is not measured)")
        return (max(tolerance, FLOAT32_FACTOR * max(measured.values())),
                f"; here the float32 train-forward losses are from float64: {said}{unmeasured},"
                f" so the tolerance is {FLOAT32_FACTOR}x the larger")

    def _train_forward_float32_error(self, name: str, train_ref: dict) -> float | None:
        adapter = self.adapters.get(name)
        if adapter is None or not adapter.has("float64_forward"):
            return None
        self.touched.add(name)
        losses = []
        try:
            for exact in (False, True):
                self._reset(name)  # a training-mode pass moves the running statistics
                with adapter.float64() if exact else contextlib.nullcontext():
                    losses.append(adapter.forward_loss(self.batch, bn_moving=False,
                                                       dropout_off=True))
        except Exception as exc:  # noqa: BLE001 - a model that cannot be cloned in float64
            train_ref.setdefault("float32_unmeasured", {})[name] = _one_line(exc)
            return None
        finally:
            self._reset(name)
        return abs(losses[0] - losses[1])

    # all of it ------------------------------------------------------------------------------

    def eval_tolerance(self) -> tuple[float, str]:
        """The inference checks' tolerance where two runtimes part by more than 1e-4: as the
        port check's, FLOAT32_FACTOR times PyTorch's own float32 error on the batch (a
        float64 rerun, once), never less than 1e-4. ResNet50 with random weights at 32 px:
        PyTorch 0.00018 from float64, and ONNX Runtime 0.00026 from PyTorch, which failed
        the fixed 1e-4 while the port check allowed 0.00073."""
        if not hasattr(self, "_pytorch_eval_error"):
            self._pytorch_eval_error = self._eval_float32_error()
        error = self._pytorch_eval_error
        if error is None:
            return LOGIT_TOLERANCE, ""
        return (max(LOGIT_TOLERANCE, FLOAT32_FACTOR * error),
                f"; here PyTorch's own float32 outputs are {error:.2g} from float64, so the "
                f"tolerance is {FLOAT32_FACTOR}x that")

    def _eval_float32_error(self) -> float | None:
        adapter = self.adapters.get("pytorch")
        if adapter is None or not adapter.has("float64"):
            return None
        self.touched.add("pytorch")
        try:
            return adapter.float32_output_error(self.batch)  # the port check's, where it ran
        except Exception:  # noqa: BLE001 - a model that cannot run in float64: 1e-4 stands
            return None

    def _checks(self, eval_ref: dict, train_ref: dict) -> list[Check]:
        runs = self.report.runs
        return eval_checks(eval_ref, runs, self.eval_tolerance, self.from_logits) + run_checks(
            runs, eval_ref, train_ref, self.measured_tolerance, self.from_logits)

    def run(self) -> RefereeResult:
        started = time.perf_counter()
        eval_ref = {"ok": False, "error": None, "inference_before": None,
                    "description": "ONNX Runtime on inference-mode exports of the initial "
                                   "weights"}
        train_ref = {"ok": False, "error": None, "train_forward": None,
                     "description": TRAIN_FORWARD_DESCRIPTION}
        checks: list[Check] = []
        problems: list[str] = []
        try:
            if "pytorch" not in self.adapters:
                raise _Unavailable("the comparison has no PyTorch model to export")
            try:
                onnxrt = self.load_runtime()
            except ImportError as exc:
                raise _Unavailable(f"the ONNX adapter cannot be imported ({_one_line(exc)}); "
                                   "it needs onnx and onnxruntime") from None
            self.onnxrt = onnxrt
            cache = onnxrt.ExportCache(self.cache_dir)
            self.sha = self._weights_sha256()
            logits = self.framework_outputs()
            eval_ref, _ = self.eval_reference(cache, logits)
            train_ref = self.train_reference(cache)
            checks = self._checks(eval_ref, train_ref)
            failed = _failed_against_pytorch(checks)
            if failed and (train_ref.get("export") or {}).get("cached"):
                # An edit of the training-mode pass alone leaves the inference graph right.
                train_ref = self.train_reference(cache, fresh=(
                    f"the cached graph's loss failed {failed} (PyTorch's own train step): it "
                    "was exported from something its key does not cover (the model's code, "
                    "say)"))
                checks = self._checks(eval_ref, train_ref)
        except Exception as exc:  # noqa: BLE001 - the referee reports, it never raises
            reason = str(exc) if isinstance(exc, _Unavailable) else _one_line(exc)
            placed = False
            for ref in (eval_ref, train_ref):
                if not ref["ok"] and ref["error"] is None:
                    ref["error"], placed = reason, True
            if not placed:  # both references stand; the checks could not be made
                checks, problems = [], [f"referee checks: {reason}"]
        finally:
            problems = problems + self._restore_all()
        reasons = [f"{name}: {ref['error']}" for name, ref in ((EVAL, eval_ref),
                                                                (TRAIN_FORWARD, train_ref))
                   if not ref["ok"]] + problems
        self.seconds = {k: round(v, 3) for k, v in self.seconds.items()}
        self.seconds["total"] = round(time.perf_counter() - started, 3)
        return RefereeResult(references=_clean({EVAL: eval_ref, TRAIN_FORWARD: train_ref}),
                             checks=tuple(checks), failed=bool(reasons),
                             reasons=tuple(reasons), seconds=dict(self.seconds))


def _failed_against_pytorch(checks) -> str | None:
    """The first failed check of the training-mode graph against a PyTorch run."""
    return next((c.name for c in checks if not c.passed
                 and c.name.startswith("referee:train_forward_vs_pytorch:")), None)


def run_referee(outcome, load_runtime, *, cache_dir: str | None = None,
                exporter: str = "torchscript", device: str = "cpu") -> RefereeResult:
    """Referee a finished comparison (`comparator.pipeline.Outcome`) with ONNX Runtime.

    cache_dir: where exports are kept (default $XDG_CACHE_HOME/xframe-compare/onnx,
    else ~/.cache/xframe-compare/onnx); exporter: "torchscript" (default) or
    "dynamo" for the PyTorch exports; device: "cpu" or "cuda[:N]" for ONNX Runtime;
    load_runtime: imports the ONNX adapter (adapters.onnx_runtime), called only now.
    Both models are left in their initial state (PyTorch in train()).
    """
    if exporter not in EXPORTERS:
        raise UsageError(f"unknown ONNX exporter {exporter!r}; known: {', '.join(EXPORTERS)}")
    if device != "cpu" and not device.startswith("cuda"):
        raise UsageError(f"unknown device {device!r}; use cpu or cuda")
    referee = _Referee(outcome, cache_dir, exporter, device)
    referee.load_runtime = load_runtime
    return referee.run()


def _shapes(x) -> list:
    """An array's shape as a list, or a list of the shapes of a list of several inputs."""
    return [list(v.shape) for v in x] if isinstance(x, list) else list(x.shape)
