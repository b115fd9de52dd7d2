"""Keras 3 on TensorFlow and JAX, and Keras 2 (tf_keras) on TensorFlow, run fit()'s train
step compiled, as fit does by default, and observe BatchNorm and Dropout inside the
compiled step. The observations must be those of the same step run op by op (the eager
reference), on the tiny CNN and on DenseNet121 at a small size."""

from __future__ import annotations

import numpy as np
import pytest

from adapters import load_adapter
from comparator.config import CompareConfig, resolve
from comparator.config.flavours import TF_KERAS
from comparator.config.frameworks import missing_modules
from comparator.inputs.prepare import prepare

# Checked without importing: TensorFlow and JAX run in the workers, never in this process.
pytestmark = pytest.mark.skipif(bool(missing_modules(["tensorflow", "jax"])),
                                reason="the tensorflow and jax extras are not installed")


def _launched(framework, model, image_size, batch_size, names, eager, cache_dir,
              validate=False):
    """A worker running these recipes in the background (collect it with _collected)."""
    config = CompareConfig(model=model, image_size=image_size, batch_size=batch_size,
                           frameworks=("pytorch", framework), validate=validate,
                           recipes=tuple(f"{framework}:{name}" for name in names))
    spec, config, recipes = resolve(config)
    prepared = prepare(spec, config, load_adapter("pytorch"))
    selected = [r for r in recipes if r.framework == framework and r.name in names]
    worker = load_adapter(framework, eager=eager, cache_dir=str(cache_dir))
    worker.loss_kind = config.loss
    worker.build(spec, config.scenario, config.seed, config.image_size)
    worker.load_weights(prepared.arrays_for("keras"))
    worker.launch(selected, prepared.batch, config.steps, config.lr, config.optimizer,
                  config.validate, background=True)
    return worker, selected


def _collected(launched):
    worker, selected = launched
    worker.wait()
    assert worker.failure is None, worker.failure
    return {r.name: worker.run_recipe(r).result for r in selected}, worker


def _worker_runs(framework, model, image_size, batch_size, names, eager, cache_dir,
                 validate=False):
    return _collected(_launched(framework, model, image_size, batch_size, names, eager,
                                cache_dir, validate))


def _compare(framework, model, image_size, batch_size, names, tmp_path):
    # The eager and the compiled worker run side by side, each with a compilation cache of
    # its own: either one alone keeps about one core of the two busy (DenseNet121 on JAX,
    # 2026-11-27: 144 s eager and 54 s compiled, one after the other, used 224 CPU-seconds
    # in 200 s).
    eager_run = _launched(framework, model, image_size, batch_size, names, True,
                          tmp_path / "eager")
    compiled_run = _launched(framework, model, image_size, batch_size, names, False,
                             tmp_path / "compiled")
    for worker, _ in (eager_run, compiled_run):  # both ended before either is judged
        worker.wait()
    eager, eager_worker = _collected(eager_run)
    compiled, compiled_worker = _collected(compiled_run)
    eager_env, compiled_env = eager_worker.environment(), compiled_worker.environment()
    assert eager_env["keras_train_steps"][framework] == "eager (run_eagerly=True)"
    assert compiled_env["keras_train_steps"][framework].startswith("compiled")
    for name in names:
        assert compiled[name].modes == eager[name].modes, name
        if framework == TF_KERAS and compiled[name].modes.dropout_active:
            # tf_keras draws Dropout masks from stateful random ops, whose seeds depend on
            # how the step runs: compiled and op by op draw different masks (measured: the
            # tiny CNN's train step 2.6166 compiled, 2.6951 eager). The same step with
            # Dropout off must agree.
            np.testing.assert_allclose(compiled[name].losses.train_step_without_dropout,
                                       eager[name].losses.train_step_without_dropout,
                                       rtol=1e-4)
            continue
        np.testing.assert_allclose(compiled[name].losses.train_step,
                                   eager[name].losses.train_step, rtol=1e-4)
    return compiled


KERAS3_NAMES = ["train", "trainable_false", "training_false", "bn_trainable"]
# Keras 2 also runs its own recipes: Keras 2.1's BatchNormalization, set_learning_phase(0).
KERAS2_NAMES = KERAS3_NAMES + ["inference_everywhere", "v1_frozen", "set_learning_phase"]
needs_tf_keras = pytest.mark.skipif(bool(missing_modules(["tf_keras"])),
                                    reason="tf_keras is not installed: "
                                           "pip install -e '.[tensorflow]'")


@pytest.mark.parametrize("framework", ["keras-tensorflow", "keras-jax",
                                       pytest.param(TF_KERAS, marks=needs_tf_keras)])
def test_the_tiny_cnn_compiled_observes_what_eager_observes(framework, tmp_path):
    names = KERAS2_NAMES if framework == TF_KERAS else KERAS3_NAMES
    runs = _compare(framework, "tiny_cnn", 32, 2, names, tmp_path)
    # Not trivially equal: the recipes differ in what the step did.
    assert runs["train"].modes.bn_batch_stats == runs["train"].modes.bn_layers > 0
    assert runs["train"].modes.dropout_active == runs["train"].modes.dropout_layers > 0
    assert runs["trainable_false"].modes.bn_batch_stats == 0


# At 32 px, batch 2, Keras on JAX gives DenseNet121 a non-finite inference loss, run
# eagerly as well as compiled (measured); 64 px is the smallest size tried that it runs.
# Keras 2 at 32 px: the train recipe's inference loss after the step is not finite eagerly
# and 8.8e18 compiled (measured), so it runs at 64 px too.
# DenseNet121 compiled and eager, each compiling every program afresh, on a 2-core machine
# on 2026-11-27, run in turn: on TensorFlow 63 and 66 s with the two workers one after the
# other, 53 and 43 s side by side; on JAX 271 s against 193 s.
@pytest.mark.parametrize("framework,image_size", [("keras-tensorflow", 32), ("keras-jax", 64),
                                                  pytest.param(TF_KERAS, 64,
                                                               marks=needs_tf_keras)])
def test_densenet121_compiled_observes_what_eager_observes(framework, image_size, tmp_path):
    names = ["train", "trainable_false"] + (["v1_frozen"] if framework == TF_KERAS else [])
    runs = _compare(framework, "densenet121", image_size, 2, names, tmp_path)
    assert runs["train"].modes.bn_batch_stats == runs["train"].modes.bn_layers == 121
    assert runs["trainable_false"].modes.bn_batch_stats == 0
    if framework == TF_KERAS:
        assert runs["v1_frozen"].modes.bn_batch_stats == 121


def test_a_second_jax_run_compiles_nothing(tmp_path):
    """The observations come from a probe pass, not from host callbacks inside the step,
    so JAX keeps every program of the run in its compilation cache, the train steps too."""
    names = ["train", "trainable_false", "training_false", "bn_trainable"]
    first, first_worker = _worker_runs("keras-jax", "tiny_cnn", 32, 2, names, False, tmp_path)
    second, second_worker = _worker_runs("keras-jax", "tiny_cnn", 32, 2, names, False,
                                         tmp_path)
    assert first_worker.compilations["compiled"] > 0
    assert second_worker.compilations["compiled"] == 0
    assert second_worker.compilations["from_cache"] == (first_worker.compilations["compiled"]
                                                        + first_worker.compilations["from_cache"])
    for name in names:
        assert second[name].modes == first[name].modes
        assert second[name].losses == first[name].losses


JAX_INITIAL_VALUES = """
import jax.monitoring
import numpy as np

compiled = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, seconds, **kw: compiled.append(kw.get("fun_name"))
    if event == "/jax/core/compile/backend_compile_duration" else None)
import keras
from keras.src.backend.common.variables import Variable

from adapters.keras.worker import _initial_values_on_host

keras_own_method = Variable._initialize_with_initializer


def build():
    return keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomUniform(seed=1)),
        keras.layers.BatchNormalization(), keras.layers.Dropout(0.5, seed=7)])


def values(model):
    return [np.asarray(v.value) for v in model.variables]


with _initial_values_on_host("jax", ported=True):
    ported = build()
print(len(compiled) <= 1)  # the seed generator's state, Keras's own conversion
print(Variable._initialize_with_initializer is keras_own_method)
with _initial_values_on_host("jax", ported=False):
    zeros_on_host = build()
keras_own = build()
*weights, seed_state = values(ported)
print(all(not w.any() for w in weights), seed_state.tolist() == [7, 0])
print(all(np.array_equal(a, b) and a.dtype == b.dtype
          for a, b in zip(values(zeros_on_host), values(keras_own))))
"""


def test_jax_worker_initial_values_compile_no_programs(tmp_path):
    """On JAX every Keras initializer is a compiled program per shape. While the worker
    builds the model, whose weights the port then sets, they give zeros made on the host;
    afterwards only zeros come from the host (the optimizers' slots), bitwise Keras's own,
    and every other initializer is Keras's; a seed generator keeps its own state."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", JAX_INITIAL_VALUES], capture_output=True,
                          text=True, cwd=root, timeout=300,
                          env={**os.environ, "PYTHONPATH": root, "KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True"] * 5


def test_jax_compiles_one_probe_for_recipes_whose_probe_passes_are_the_same(tmp_path):
    """`train` and `bn_trainable` differ in their trainable weights only: both run every
    BatchNormalization on batch statistics, so their probe passes compute the same thing,
    and the second is read from the compilation cache that the first filled."""
    runs, worker = _worker_runs("keras-jax", "tiny_cnn", 32, 2, ["train", "bn_trainable"],
                                False, tmp_path)
    assert worker.compilations["from_cache"] == 1
    assert runs["train"].modes == runs["bn_trainable"].modes


@pytest.mark.parametrize("framework", ["keras", "keras-tensorflow", "keras-jax",
                                       pytest.param(TF_KERAS, marks=needs_tf_keras)])
def test_fit_validation_does_not_overwrite_the_steps_observations(framework, tmp_path):
    """fit(validation_data=...) calls every layer again in inference mode after the step."""
    if framework == "keras":
        from comparator.pipeline import compare

        report = compare(CompareConfig(model="tiny_cnn", image_size=32, batch_size=2,
                                       validate=True, frameworks=("pytorch", "keras"),
                                       recipes=("keras:train",))).report
        run = report.run("keras:train")
    else:
        runs, _ = _worker_runs(framework, "tiny_cnn", 32, 2, ["train"], False, tmp_path,
                               validate=True)
        run = runs["train"]
    assert run.losses.fit_validation is not None
    assert run.modes.bn_batch_stats == run.modes.bn_layers == 3
    assert run.modes.dropout_active == run.modes.dropout_layers == 1
