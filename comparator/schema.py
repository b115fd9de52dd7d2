"""The report schema `xframe-compare/report/1`, typed: every nested object has a definition
here, each key annotated with its type and a one-line meaning.

Keys are a stable interface: add, never rename or remove. Adding a key is one line in the
type that holds it (`name: Annotated[type, "meaning"]`; in a TypedDict every key is
optional, total=False) followed by `python tools/report_schema.py` to regenerate
docs/report-schema.md (tests/test_report_schema.py checks that the file is current).

Dataclasses are the objects the pipeline builds in one place; TypedDicts are the objects
several modules fill in (they stay plain dicts at run time). `Report.to_dict` is the one
serialiser and `report_from_dict` its inverse.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Annotated, Any, TypedDict

SCHEMA = "xframe-compare/report/1"


# ----- settings ------------------------------------------------------------------------------


class Optimizer(TypedDict, total=False):
    name: Annotated[str, "`sgd` or `adam`"]
    lr: Annotated[float, "learning rate"]
    momentum: Annotated[float, "SGD momentum (0.0: plain SGD)"]
    epsilon: Annotated[dict[str, float], "Adam's epsilon by framework, each its own default"]


class CheckpointRecord(TypedDict, total=False):
    framework: Annotated[str, "the framework whose checkpoint this is (`pytorch`, `keras`)"]
    source: Annotated[str, "where it comes from (torchvision weights enum, keras.applications builder, file)"]
    file: Annotated[str, "the file's name"]
    path: Annotated[str, "the file's full path"]
    sha256: Annotated[str, "SHA-256 of the file"]
    role: Annotated[str, "what the comparison did with it (source ported to the other framework, or one side's own training)"]
    url: Annotated[str, "where the framework's loader downloads it from (ImageNet checkpoints)"]
    published_hash_prefix: Annotated[str, "the hash prefix torchvision publishes in the file name"]
    published_md5: Annotated[str, "the MD5 keras.applications publishes"]
    matches_published_hash: Annotated[bool, "whether the cached file matches the published hash (loaders do not check cached files)"]


class ImagesSetting(TypedDict, total=False):
    files: Annotated[list[str], "file names of the photos, in batch order"]
    paths: Annotated[list[str], "their full paths"]
    count: Annotated[int, "how many photos (the batch size)"]
    transform: Annotated[str, "how they were resized and cropped"]


class Preprocessing(TypedDict, total=False):
    used: Annotated[str, "the framework whose application's preprocessing fed both frameworks"]
    mode: Annotated[str, "that preprocessing mode (`torch`, `caffe`, `tf`)"]
    pytorch_expects: Annotated[str, "the mode torchvision's checkpoint expects"]
    keras_expects: Annotated[str, "the mode keras.applications' checkpoint expects"]
    same_tensor_for_both: Annotated[bool, "both frameworks received the one tensor (always true)"]
    note: Annotated[str, "a sentence on whether the applications differ"]


class GivenValues(TypedDict, total=False):
    source: Annotated[str, "`given`, seeded (with the seed), or the reference model's predictions"]
    values: Annotated[list[Any], "the labels (integers) or targets (floats), one per image"]


class TrainingsDistance(TypedDict, total=False):
    max_abs_logit_diff: Annotated[float, "largest absolute difference of the two trainings' outputs on the batch"]
    mean_abs_logit_diff: Annotated[float, "mean absolute difference of those outputs"]
    top1_agreement: Annotated[float | None, "share of images whose top-1 class agrees (null for one output)"]


class Settings(TypedDict, total=False):
    weights_cache: Annotated[str, "random-calibrated weights: `reused from the cache ...` or "
                                  "`calibrated; stored in the cache` (or why not stored)"]
    batch_size: Annotated[int, "images in the batch"]
    image_size: Annotated[int, "height and width in pixels"]
    seed: Annotated[int, "seed of the weights, batch, labels and dropout masks"]
    steps: Annotated[int, "training steps per run"]
    weights: Annotated[str, "`random-calibrated`, `imagenet:pytorch`, `imagenet:keras`, `imagenet-both`, `file:pytorch`, `file:keras`, or `user` (a user's pair, tested as given)"]
    weights_sha256: Annotated[str, "SHA-256 of the canonical initial weights"]
    weights_description: Annotated[str, "where the weights come from, in words"]
    optimizer: Annotated[Optimizer, "the optimizer every run used"]
    loss: Annotated[str, "the loss, in words; of a user pair's several outputs, their weighted sum (`1 x 'out' + 0.5 x 'aux': each output's ...`)"]
    loss_kind: Annotated[str, "`logits` or `probabilities` (a softmax output's categorical cross-entropy as Keras's CategoricalCrossentropy() computes it: on clipped probabilities, or from the softmax's logits on TensorFlow, loss_by_framework)"]
    loss_by_framework: Annotated[dict[str, str], "the probabilities loss where the frameworks compute different functions: framework -> its function, in words (PyTorch, Keras on torch and JAX: cross-entropy on probabilities clipped to [1e-7, 1 - 1e-7]; Keras on TensorFlow, tf-keras included: cross-entropy from the softmax's logits, not clipped); absent where every framework computes the same"]
    labels: Annotated[str | None, "`seeded`, `given` or `predicted` (classify); null for regression"]
    scenario: Annotated[str, "`classify`, `head` or `regress`"]
    fit_validation_data: Annotated[bool, "whether Keras's fit got validation data (`--validate`)"]
    preset: Annotated[str | None, "the preset that filled the settings, or null"]
    device: Annotated[str, "`cpu` or `cuda[:N]`"]
    frameworks: Annotated[list[str], "the frameworks compared (`pytorch`, `keras-torch`, ...)"]
    notes: Annotated[list[str], "input facts the terminal shows above the matrix, one line each"]
    checkpoints: Annotated[list[CheckpointRecord], "one entry per checkpoint used (pretrained weights)"]
    weights_source_framework: Annotated[str, "the framework whose checkpoint was ported (`both` for imagenet-both)"]
    images: Annotated[ImagesSetting, "the photos of `--images`"]
    preprocessing: Annotated[Preprocessing, "how the photos were preprocessed"]
    targets: Annotated[GivenValues, "regression targets of photos (`--targets` or seeded)"]
    label_values: Annotated[GivenValues, "class labels of photos (`--labels` or predicted)"]
    trainings_distance: Annotated[dict[str, TrainingsDistance], "imagenet-both: distance of each framework's training from PyTorch's, by `<framework>_vs_pytorch`"]
    checks_not_applicable: Annotated[list[str], "imagenet-both: referee checks left out because they compare two trainings"]
    conventions: Annotated[dict, "read from the layers, per framework (a worker's in the worker): `batchnorm` {layer: momentum in PyTorch's convention (the weight of the new batch value; Keras's own value as `keras_momentum`), epsilon, `running_variance`: the batch variance the running one is updated with (PyTorch's unbiased; Keras 3's biased on every backend; tf_keras's fused kernel's unbiased)} and `dropout` {layer: rate; a Keras recurrent layer's within its steps as `NAME (dropout)` and `NAME (recurrent_dropout)`, a stacked PyTorch recurrent module's between its layers as `NAME (between layers)`}"]
    pair: Annotated[dict, "a user's pair: each side's `source` (SPEC), `name` and `weights` file; `weights` (as given or ported), `freeze`, `pairing` (`paired_layers`, and `reason` where none, or `not_compared`: paired arrays with no common name, an LSTM's or RNN's two biases that Keras keeps as one sum), `dropout` (on/off), `output` (where --output chose one of several outputs: its `pytorch` and `keras` keys; where it chose several, `KEY1,KEY2,...`, those keys joined by ',', and `keys` (each output's `pytorch` and `keras` key, in order) and `loss_weights` (each output's weight in the summed loss, --loss-weights, 1 by default); `left_out`: PyTorch modules whose weights do not reach it, another output's head, which are not paired, and `keras_left_out`: the Keras layers of which the same holds, a subclassed model's other head; a functional graph is cut to the chosen output and has none) and, when the port check failed, `first_divergence` (the port validator following every output --output chose): `located` (bool) and `text`, and where located `torch_module`, `keras_layer`, `seen_in` (the validator's pass; where the outputs differ and no layer does, `inference, output` or `inference, isolated, output`, followed by the output's key where --output chose several, `inference, output 'aux'`; or `weights` where a recurrent or attention layer's weights are not its port, `settings` where a recurrent layer's activation or direction is not PyTorch's) and `causes` (the validator's cause codes, or `recurrent_gate_order`, `recurrent_bias_sum`, `recurrent_weights`, `recurrent_activation`, `recurrent_direction`, `attention_projection_order`, `attention_weights`)"]
    inputs: Annotated[dict, "a user's pair: where the batch came from (`source`), its `shape` and `keras_layout`: `channels_last` (Keras takes the channel axis last) or `as_given` (the Keras model declares PyTorch's shape, as a recurrent model on N,L,F does); the models' `outputs_shape` (PyTorch's layout: a map's N,K,H,W) and `keras_outputs`: `channels_last` (Keras's outputs hold the class or channel axis last: a map's N,H,W,K) or `as_given` (the same layout as PyTorch's, as per-step outputs N,L,K are); for a model with several inputs, `shape` and `keras_layout` are lists with one entry per input, in forward()'s order"]
    labels_source: Annotated[str, "a user's pair: where labels or targets came from, in words"]
    scenario_source: Annotated[str, "a user's pair: why its scenario: `given` (`--scenario`, or `compare_pair`'s `loss`), `asked for by ...` (`--labels`, integer labels `y`, the probabilities loss), or `default: ...` (the outputs' units on the class axis: one unit, or none, regress, as cross-entropy over one class is 0 whatever the weights; several classify)"]


# ----- environment and timings -------------------------------------------------------------


class Environment(TypedDict, total=False):
    python: Annotated[str, "Python version"]
    numpy: Annotated[str, "NumPy version"]
    onnx: Annotated[str, "onnx version, or `not installed`"]
    onnxruntime: Annotated[str, "onnxruntime version, or `not installed`"]
    torch: Annotated[str, "PyTorch version"]
    torchvision: Annotated[str, "torchvision version"]
    keras: Annotated[str, "Keras version"]
    keras_backend: Annotated[str, "the in-process Keras's backend (`torch`)"]
    tensorflow: Annotated[str, "TensorFlow version (a keras-tensorflow worker ran)"]
    jax: Annotated[str, "JAX version (a keras-jax worker ran)"]
    jaxlib: Annotated[str, "jaxlib version (a keras-jax worker ran)"]
    keras_versions: Annotated[dict[str, str], "framework -> the exact Keras that ran, for "
                                              "Keras versions and Keras 2 (`keras-torch@nightly`"
                                              ": `3.16.0.dev2026102704`, `tf-keras`: `2.21.0`); "
                                              "`keras` stays the environment's own"]
    keras_overlays: Annotated[dict[str, str], "framework -> the overlay folder its Keras was "
                                              "imported from (adapters/keras/overlays.py)"]
    keras_overlay_notes: Annotated[dict[str, str], "framework -> why this overlay stands for "
                                                   "the version asked (nightly, offline)"]
    keras_train_step: Annotated[str, "how the in-process Keras's fit ran its train step (eager, "
                                     "or compiled and how)"]
    keras_train_steps: Annotated[dict[str, str], "framework -> how that worker's Keras ran its "
                                                 "train step (`compiled (jax.jit)`, ...)"]
    devices: Annotated[dict[str, str], "framework -> the device its weights were on, read from a weight (`cpu`, `cuda:0 (NVIDIA H200)`, TensorFlow's `gpu:0`)"]
    gpu_float32: Annotated[dict[str, str], "framework -> how it computed float32 on the GPU (`--device cuda` only): TF32 is switched off in every framework (adapters/devices.py)"]
    # Thread settings change the float32 summation order: two reports whose numbers differ
    # in their last bits can be told apart by them.
    OMP_NUM_THREADS: Annotated[str, "the variable as the comparison saw it, or `unset`"]
    MKL_NUM_THREADS: Annotated[str, "the variable as the comparison saw it, or `unset`"]
    OPENBLAS_NUM_THREADS: Annotated[str, "the variable as the comparison saw it, or `unset`"]
    TF_NUM_INTRAOP_THREADS: Annotated[str, "the variable as the comparison saw it, or `unset`"]
    TF_NUM_INTEROP_THREADS: Annotated[str, "the variable as the comparison saw it, or `unset`"]
    cpu_count: Annotated[str, "CPUs the operating system reports"]
    torch_threads: Annotated[str, "torch.get_num_threads() in the comparison's process"]
    torch_interop_threads: Annotated[str, "torch.get_num_interop_threads()"]


class RefereeSeconds(TypedDict, total=False):
    export: Annotated[float, "exporting graphs (or reading them from the cache)"]
    run: Annotated[float, "running them in ONNX Runtime"]
    framework_outputs: Annotated[float, "the frameworks' own inference outputs to compare with"]
    total: Annotated[float, "the whole referee"]


class XlaCompilations(TypedDict):
    compiled: Annotated[int, "programs XLA compiled in this run"]
    from_cache: Annotated[int, "programs read from JAX's compilation cache instead of compiled"]
    seconds: Annotated[float, "seconds spent getting all of them (compiling, or reading the cache)"]


class Timings(TypedDict, total=False):
    total_seconds: Annotated[float, "wall time of the comparison, referee excluded"]
    phases: Annotated[dict[str, float], "wall seconds by phase (`imports`, `port`, `recipe:<run id>`, `worker:<framework>`, `diagnosis`, ...); a worker runs beside this process's own runs, so `worker:<framework>` is the time spent waiting for it afterwards"]
    worker_seconds: Annotated[dict[str, float], "wall seconds each Keras worker ran, start to exit, by framework"]
    reused_inference_passes: Annotated[int, "inference passes not run again because the state was bitwise one already evaluated"]
    ablation_seconds: Annotated[float, "wall seconds of this process's explanation passes inside its runs (the ablations behind `explanations`, each switching one cause off), part of the `recipe:<run id>` phases; the cross-framework ones are the `diagnosis` phase"]
    worker_compilations: Annotated[dict[str, XlaCompilations], "JAX workers only: the XLA programs each compiled and read from JAX's compilation cache, by framework"]
    referee: Annotated[RefereeSeconds, "the ONNX referee's seconds by phase"]


# ----- references (the ONNX Runtime referee) -------------------------------------------------


class GraphFacts(TypedDict, total=False):
    opset: Annotated[int | None, "the ONNX opset"]
    producer: Annotated[str, "the exporter that wrote the graph, with its version"]
    nodes: Annotated[int, "node count"]
    batchnorm_nodes: Annotated[int, "BatchNormalization nodes"]
    batchnorm_training_nodes: Annotated[int, "of them, in training mode (batch statistics)"]
    dropout_nodes: Annotated[int, "Dropout nodes"]
    active_dropout_nodes: Annotated[int, "of them, told to be active (or with an unknown flag)"]
    inputs: Annotated[list[list[Any]], "the shape of each graph input (a name for a dynamic dimension)"]


class OnnxExport(TypedDict, total=False):
    ok: Annotated[bool, "exported and run with finite outputs"]
    error: Annotated[str | None, "why not, or null"]
    skipped: Annotated[bool, "the graph could not be had (an extra is missing, its worker failed)"]
    reason: Annotated[str, "why it was skipped"]
    exporter: Annotated[str, "`torchscript`, `dynamo`, `keras`, `keras-tf2onnx` (Keras on "
                               "TensorFlow) or `tf-keras-tf2onnx` (Keras 2)"]
    file: Annotated[str, "the exported graph in the cache"]
    cached: Annotated[bool, "taken from the cache, not exported now"]
    export_seconds: Annotated[float, "seconds exporting"]
    check_seconds: Annotated[float, "seconds checking the graph: for a new export onnx.checker, adding the cache key and the digest; for a cached one the digest and loading"]
    rebuilt: Annotated[str | None, "why a cached graph was exported again, or null"]
    exported_with: Annotated[dict[str, Any], "the exporter's notes (exporter, mode, BatchNorm modules, Dropout modules removed, torchvision's StochasticDepth counted among them)"]
    graph: Annotated[GraphFacts, "what the graph computes, counted from its nodes"]
    run_seconds: Annotated[float, "seconds in ONNX Runtime"]
    provider: Annotated[str, "the ONNX Runtime execution provider used"]
    provider_note: Annotated[str, "why another provider than asked ran it"]
    loss: Annotated[float, "the loss of the graph's outputs on the batch"]


class EvalReference(TypedDict, total=False):
    ok: Annotated[bool, "every graph exported and ran"]
    error: Annotated[str | None, "what went wrong, or null"]
    inference_before: Annotated[float | None, "the inference loss of the initial weights in ONNX Runtime"]
    inference_before_from: Annotated[str, "the graph that loss comes from"]
    inference_before_from_logits: Annotated[float, "the same graph's outputs' loss as Keras on TensorFlow computes the probabilities loss, from the logits, unclipped; what those frameworks are held to (settings.loss_by_framework); only where one of them ran"]
    description: Annotated[str, "what was exported and how"]
    exports: Annotated[dict[str, OnnxExport], "each graph by framework: `pytorch`, `keras`, "
                                               "`keras-tensorflow`, `tf-keras` (Keras 2)"]
    losses: Annotated[dict[str, float], "each graph's loss by framework"]
    max_abs_diff: Annotated[dict[str, float], "max abs output difference, by `<graph>_graph_vs_<framework>` and `<graph>_graph_vs_<graph>_graph`"]


class TrainForwardReference(TypedDict, total=False):
    ok: Annotated[bool, "the training-mode forward graph exported and ran"]
    error: Annotated[str | None, "what went wrong, or null"]
    train_forward: Annotated[float | None, "the loss of the training-mode forward pass (batch statistics, Dropout off)"]
    train_forward_from_logits: Annotated[float, "that pass's loss from the logits, unclipped, as Keras on TensorFlow computes the probabilities loss; only where such a framework ran (inference_before_from_logits)"]
    description: Annotated[str, "what was exported and how"]
    export: Annotated[OnnxExport, "the PyTorch graph"]
    compared_runs: Annotated[list[str], "run ids whose train-step loss was compared with it (a run whose Dropout was active: its train-step pass with Dropout off, `train_step_without_dropout`)"]
    skipped_runs: Annotated[dict[str, str], "run ids not compared, with the reason"]
    pytorch_float32_error: Annotated[float | None, "PyTorch's float32 train-forward loss's distance from its float64 rerun (measured only when a check exceeded 1e-4 relative)"]
    float32_errors: Annotated[dict[str, float | None], "the same by framework, null where that framework cannot rerun in float64 (Keras on TensorFlow or JAX, in a worker)"]
    float32_unmeasured: Annotated[dict[str, str], "frameworks whose float64 rerun failed, with the error"]


References = TypedDict("References", {
    "onnx:eval": Annotated[EvalReference, "ONNX Runtime on inference-mode exports of the initial weights"],
    "onnx:train_forward": Annotated[TrainForwardReference, "ONNX Runtime on PyTorch's training-mode forward pass"],
}, total=False)


# ----- explanations, causes, unavailable runs ------------------------------------------------


class GapCause(TypedDict, total=False):
    cause: Annotated[str, "the cause's name (`bn_batch_statistics`, `dropout`, `unexplained_mode`, `bn_running_statistics_moved`, `update`)"]
    share: Annotated[float, "its share of the gap"]
    loss_delta: Annotated[float, "the loss change it accounts for"]
    text: Annotated[str, "the cause in a sentence, with the measured numbers"]


class Explanation(TypedDict, total=False):
    run: Annotated[str, "the run id"]
    gap: Annotated[float, "inference_after - train_step"]
    train_step: Annotated[float, "the loss the train step reported"]
    inference_before: Annotated[float, "the inference loss before the step"]
    inference_after: Annotated[float, "the inference loss after the step"]
    mode_gap: Annotated[float, "inference_before - train_step: the mode of the pass"]
    update_gap: Annotated[float, "inference_after - inference_before: the update"]
    causes: Annotated[list[GapCause], "the measured causes; their loss deltas add up to the gap less the residual"]
    residual: Annotated[float, "the part of the gap no cause accounts for"]
    notes: Annotated[list[str], "facts about the losses (saturated or certain clipped cross-entropy, ...)"]
    summary: Annotated[str, "the explanation in a sentence"]


class EquivalenceCause(TypedDict, total=False):
    cause: Annotated[str, "`bn_momentum_convention`, `bn_variance_bias`, `adam_epsilon`, `adam_epsilon_placement`, `float32_rounding`, `recurrent_bias_pair`, `embedding_padding_idx`, `bn_epsilon` or `float32_loss_rounding` (the last two: two runs of one function, the same BatchNorm modes and trainable weights and no active Dropout, whose first train-step losses differ, each framework rerunning that forward pass in float64, a worker's Keras in a worker call of its own; for a pair of two Keras runs only `float32_loss_rounding`, their float64 losses reused from their pairs with PyTorch where those measured them)"]
    value: Annotated[float, "the difference left when a rerun removes the cause"]
    before: Annotated[float, "the difference before that rerun"]
    fraction_larger: Annotated[float, "bn_variance_bias: share of channels where PyTorch's running variance is the larger"]
    torch_float32_error: Annotated[float, "float32_rounding: PyTorch's float32 weights' distance from the float64 rerun"]
    inconclusive: Annotated[bool, "float32_rounding: PyTorch's own float32 error is above 0.1 of the step's largest weight change, so float32 cannot pin the step and the rerun judges nothing (explains is then false; reports print it as `inconclusive`); float32_loss_rounding: a run's model could not be rerun in float64 (a subclassed Keras model, which Keras cannot clone; a PyTorch module that makes float32 tensors of its own), as the text says"]
    float64_losses: Annotated[dict, "float32_loss_rounding: {run id: its train-step forward pass's loss in float64, from the initial weights on the batch}; Keras's loss classes compute in float32 even there, so its value is rounded to float32 last"]
    float64_with_keras_epsilon: Annotated[float, "float32_loss_rounding, where the two models' BatchNorm epsilons differ: PyTorch's float64 loss with every BatchNorm layer's epsilon set to its Keras layer's"]
    float32_errors: Annotated[dict, "float32_rounding of a pair of two Keras runs (backends or versions): {run id: its weights' distance from the float64 rerun of the PyTorch recipe both were held against in their pairs with it}, reused, not rerun; where none held both, from the float64 rerun of a PyTorch recipe that computes the same step as both (the same BatchNorm modes and trainable weights, no active Dropout), reused where its own pairs ran it, and the text names it; for two bn_trainable runs that no run of the report steps like, pytorch:requires_grad_except_bn (in no default comparison), run for the pair in float32 (its BatchNorm modes and trainable weights measured against theirs, its weights giving PyTorch's own float32 error and the step's largest change) and in float64, as the text says; `value` is the larger"]
    explains: Annotated[bool, "whether the rerun accounts for the difference (adam_epsilon, adam_epsilon_placement: the weights then agree within 1e-5; bn_momentum_convention: the running means then agree within 1e-5; float32_rounding: Keras is within 4 times PyTorch's own float32 error, both Keras runs where the pair is two Keras runs; recurrent_bias_pair: the inference losses after the step then agree within the loss tolerance, 1e-4 relative; embedding_padding_idx: the weights then agree within 1e-5; bn_epsilon: PyTorch's float64 train-step loss with Keras's epsilons and Keras's own float64 one then agree within 1e-6 relative, `before` being their distance with PyTorch's own epsilons; float32_loss_rounding: the two runs' float64 losses agree within 1e-6 relative, PyTorch's with Keras's epsilons where they differ, so the float32 train-step losses, `before` apart, part by rounding); a cause without it states by how much its rerun closed the gap; reports print a cause that does not explain as `part of why` where its rerun closed at least half of the gap (`value` at most half of `before`), else as `ruled out`"]
    parameters: Annotated[list[str], "recurrent_bias_pair: the PyTorch parameters the rerun left out of the step (each LSTM or RNN layer's bias_hh); embedding_padding_idx: the Embedding weights whose padding row PyTorch keeps out of the step"]
    momenta: Annotated[dict, "bn_momentum_convention: per BatchNorm layer, read from the layers: {keras (as Keras states it), keras_as_pytorch (1 - keras), pytorch}"]
    text: Annotated[str, "the cause in a sentence, with the measured numbers"]


class UnavailableRun(TypedDict, total=False):
    id: Annotated[str, "the run id"]
    framework: Annotated[str, "its framework"]
    backend: Annotated[str | None, "its Keras backend, or null"]
    recipe: Annotated[str, "its recipe"]
    status: Annotated[str, "`skipped` (an optional extra or a Keras version's overlay is missing), `unavailable` (that Keras version cannot run with the installed backend), `failed` (the worker crashed, hung or answered nonsense), `diverged` (its loss became NaN or infinite) or `not representable` (a user's torch.export program cannot run in training mode)"]
    step: Annotated[int, "diverged: the step after which the loss was not finite"]
    reason: Annotated[str, "why, in one line"]


class FiniteDivergence(TypedDict, total=False):
    largest_weight_before: Annotated[float, "the largest absolute value, before the steps, of the weights they changed"]
    max_delta_ratio: Annotated[float, "state.max_weight_delta / largest_weight_before"]
    norm_ratio: Annotated[float, "the L2 norm of the steps' change of those weights / their L2 norm before the steps"]
    text: Annotated[str, "the finding in a sentence, with the measured numbers"]


# ----- the report's objects ------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """Plain JSON values: tuples become lists, NaN and infinities become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class _Serialisable:
    def to_dict(self) -> dict:
        return _clean(asdict(self))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Losses(_Serialisable):
    inference_before: Annotated[float, "inference-mode loss of the initial weights"]
    train_step: Annotated[tuple[float, ...], "the loss each train step reported (what fit() or the loop shows)"]
    inference_after: Annotated[float, "inference-mode loss after the steps (what evaluate() shows next)"]
    fit_validation: Annotated[tuple[float, ...] | None, "Keras's val_loss per epoch with `--validate`, else null"] = None
    train_step_without_dropout: Annotated[float | None, "where Dropout was active: the first train step's forward pass with Dropout off, stochastic depth too (`Modes.stochastic_depth_layers`; BatchNorm as the recipe set it), what the frameworks are compared on then; else null"] = None


@dataclass(frozen=True)
class State(_Serialisable):
    trainable_params: Annotated[int, "parameters the optimizer could change"]
    frozen_params: Annotated[int, "parameters it could not"]
    weights_changed: Annotated[bool, "whether any weight changed in the step"]
    max_weight_delta: Annotated[float, "the largest absolute change of a weight"]
    bn_stats_changed: Annotated[bool, "whether any BatchNorm running statistic moved"]
    max_bn_stat_delta: Annotated[float, "the largest absolute change of a running statistic"]


class LayerModes(TypedDict):
    bn_layers: Annotated[int, "BatchNorm layers among them"]
    bn_batch_stats: Annotated[int, "of them, normalising with batch statistics in the train step"]
    dropout_layers: Annotated[int, "Dropout layers among them, stochastic depth included (as in `Modes`)"]
    dropout_active: Annotated[int, "of them, active in the train step"]


@dataclass(frozen=True)
class Modes(_Serialisable):
    bn_layers: Annotated[int, "BatchNorm layers in the model"]
    bn_batch_stats: Annotated[int, "of them, normalising with batch statistics in the train step"]
    dropout_layers: Annotated[int, "Dropout layers in the model, stochastic depth included (`stochastic_depth_layers`)"]
    dropout_active: Annotated[int, "of them, active in the train step"]
    outside_base: Annotated[LayerModes | None,
                            "Keras runs: the same counts for the layers outside the frozen "
                            "part (a zoo model's head, a user model's layers outside "
                            "`--freeze`), already counted above; layers that `--dropout off` "
                            "runs in inference mode are left out. Null where the frozen part "
                            "is the whole model, for PyTorch, and in reports written before "
                            "this key"] = field(default=None, hash=False)  # a dict: unhashable
    stochastic_depth_layers: Annotated[int, "of the Dropout layers, those that drop a residual branch for whole examples or for the whole batch: torchvision's StochasticDepth (EfficientNet's, ConvNeXt's), timm's DropPath, a PyTorch module of the model's own class measured to drop whole examples at the rate it holds (since 2026-11-30), a Keras layer class named StochasticDepth (keras.applications' ConvNeXt has one), a Keras Dropout with noise_shape (None, 1, ..., 1) (keras.applications' EfficientNet); 0 in reports written before this key"] = 0


@dataclass(frozen=True)
class RunResult(_Serialisable):
    id: Annotated[str, "`<framework>:<recipe>`, e.g. `keras:trainable_false`"]
    framework: Annotated[str, "`pytorch`, `keras` (Keras on torch), `keras-tensorflow`, "
                              "`keras-jax`, a Keras version (`keras-torch@3.6.0`, "
                              "`keras-jax@nightly`) or `tf-keras` (Keras 2)"]
    recipe: Annotated[str, "the recipe's name"]
    description: Annotated[str, "the recipe in words (what the user's code does)"]
    losses: Annotated[Losses, "the losses measured"]
    state: Annotated[State, "what the step changed"]
    modes: Annotated[Modes, "the layers' modes in the train step"]
    seconds: Annotated[float, "wall time of the run"]
    warnings: Annotated[tuple[str, ...], "warnings the framework emitted during the run"] = ()
    backend: Annotated[str | None, "Keras's backend for Keras runs; null for PyTorch"] = None
    framework_version: Annotated[str | None, "the exact version of the framework that ran: "
                                 "torch's for PyTorch, Keras's or tf_keras's for Keras "
                                 "(`3.16.0.dev2026102704` for `keras-torch@nightly`)"] = None
    finite_divergence: Annotated[FiniteDivergence | None,
                                 "where the steps diverged with every number finite: the "
                                 "weights they changed moved by more than their own size "
                                 "(max_delta_ratio or norm_ratio above 1) and the inference "
                                 "loss rose; the losses are measured, but comparisons after "
                                 "such a step say little. Null otherwise, and in reports "
                                 "written before this key"] = field(default=None, hash=False)


@dataclass(frozen=True)
class Check(_Serialisable):
    name: Annotated[str, "`port:...`, `referee:...` or `<run id>:...`"]
    passed: Annotated[bool, "whether value is within the tolerance (or beyond it, where the detail says so)"]
    value: Annotated[float, "the measured quantity"]
    tolerance: Annotated[float, "its tolerance"]
    detail: Annotated[str, "what was compared and why the tolerance holds"] = ""


@dataclass(frozen=True)
class Equivalence(_Serialisable):
    a: Annotated[str, "one run id"]
    b: Annotated[str, "the other run id"]
    equivalent: Annotated[bool, "same losses, weights and BatchNorm statistics within tolerance"]
    max_diff: Annotated[float, "the largest difference found"]
    expected: Annotated[bool, "whether the recipes are meant to be equivalent"] = False
    reason: Annotated[str, "why they are expected to match, or differ"] = ""
    differences: Annotated[tuple[str, ...], "what differs, one line each"] = ()
    max_weight_diff: Annotated[float | None, "largest difference of the weights after the step"] = None
    max_bn_stat_diff: Annotated[float | None, "largest difference of the BatchNorm running statistics after the step"] = None
    causes: Annotated[tuple[EquivalenceCause, ...], "causes a rerun measured"] = ()
    judged_on: Annotated[str, "what the verdict rests on where that is not every measurement (Dropout active: the Dropout-free passes); else empty"] = ""


@dataclass(frozen=True)
class Report(_Serialisable):
    model: Annotated[str, "the model's name (`densenet121`, `tiny_cnn`, ...)"]
    scenario: Annotated[str, "`classify`, `head` or `regress`"]
    settings: Annotated[Settings, "what was compared and with which inputs"]
    environment: Annotated[Environment, "package versions"]
    runs: Annotated[tuple[RunResult, ...], "one per recipe that ran"]
    references: Annotated[References, "the ONNX Runtime referee's numbers (empty with `--no-onnx`)"] = field(default_factory=dict)  # type: ignore[assignment]
    checks: Annotated[tuple[Check, ...], "port, validation and referee checks"] = ()
    explanations: Annotated[tuple[Explanation, ...], "runs whose reported and inference losses differ, with measured causes"] = ()
    equivalences: Annotated[tuple[Equivalence, ...], "recipe pairs compared across frameworks"] = ()
    timings: Annotated[Timings, "wall seconds"] = field(default_factory=dict)  # type: ignore[assignment]
    findings: Annotated[tuple[str, ...], "facts found about the frameworks, one line each"] = ()
    unavailable_runs: Annotated[tuple[UnavailableRun, ...], "runs that could not be measured"] = ()
    schema: Annotated[str, f"`{SCHEMA}`"] = SCHEMA

    def to_dict(self) -> dict:
        body = super().to_dict()
        ordered = {"schema": body.pop("schema")}
        ordered.update(body)
        return ordered

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def run(self, run_id: str) -> RunResult:
        for run in self.runs:
            if run.id == run_id:
                return run
        raise KeyError(run_id)

    @property
    def checks_passed(self) -> bool:
        return all(c.passed for c in self.checks)


# ----- loading -------------------------------------------------------------------------------


def _without_annotation(hint):
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint


def _load(hint, value):
    """A JSON value as the typed field holds it: nested dataclasses built, lists that the
    type declares as tuples made tuples; TypedDicts and other values stay as they are."""
    hint = _without_annotation(hint)
    if value is None:
        return None
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if is_dataclass(hint):
        return _build(hint, value)
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_load(item, v) for v in value)
    return value


def _build(cls, data: dict):
    hints = typing.get_type_hints(cls, include_extras=True)
    return cls(**{f.name: _load(hints[f.name], data[f.name]) for f in fields(cls)
                  if f.name in data})


def report_from_dict(data: dict) -> Report:
    """Load a report written by to_dict (the inverse, for tools reading JSON)."""
    if data.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} report")
    return _build(Report, data)
