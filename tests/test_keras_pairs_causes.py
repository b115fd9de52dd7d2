"""A pair of two Keras runs (backends or versions) whose weights differ gets its cause from
the float64 rerun of the PyTorch recipe both were held against in their pairs with it: no
rerun of its own. Where none held both, the float64 rerun of a PyTorch recipe that computes
the same step as both gives it; for two bn_trainable runs, which no default PyTorch recipe
steps like, pytorch:requires_grad_except_bn is run for the pair."""

import contextlib
import os
from types import SimpleNamespace

import numpy as np
import pytest

import comparator
from comparator.analysis.keras_pair_causes import explain_keras_pair
from comparator.config.frameworks import missing_modules
from comparator.schema import Equivalence
from tests.user_pair_models import seeded_torch_net

SPEC = f"{os.path.join(os.path.dirname(__file__), 'user_pair_models.py')}:ported_keras_net"


def _pair(weights: float, *differences: str) -> Equivalence:
    return Equivalence(a="keras:train", b="keras-tensorflow:train", equivalent=False,
                       max_diff=3.2e-5, expected=True, reason="the same recipe",
                       differences=(f"weights after the step differ by up to {weights:.3g}",
                                    *differences),
                       max_weight_diff=weights, max_bn_stat_diff=None)


def _reruns(keras: float, tensorflow: float, torch: float = 0.013) -> dict:
    errors = {"pytorch:train": torch, "keras:train": keras, "keras-tensorflow:train": tensorflow}
    return {"pytorch:train": SimpleNamespace(recipe=SimpleNamespace(id="pytorch:train"),
                                             float32_errors=errors)}


def test_two_keras_runs_as_close_to_float64_as_float32_allows_differ_by_rounding():
    # The numbers of a user's pair on 2026-11-29 (Adam, 2 steps, batch 2).
    eq = explain_keras_pair(_pair(0.0039), _reruns(0.0042, 0.0043))
    (cause,) = eq.causes
    assert cause["cause"] == "float32_rounding" and cause["explains"]
    assert cause["float32_errors"] == {"keras:train": 0.0042, "keras-tensorflow:train": 0.0043}
    assert cause["value"] == 0.0043 and cause["before"] == 0.0039
    assert cause["torch_float32_error"] == 0.013
    assert ("each is as close to it as float32 allows (keras:train 0.0042, "
            "keras-tensorflow:train 0.0043; PyTorch's own float32 0.013)") in cause["text"]
    assert cause["text"].startswith("Re-run of pytorch:train in float64")
    # As for a Keras run against PyTorch: weights alone, parted by rounding, are the same
    # computation.
    assert eq.equivalent


def test_a_pair_that_differs_in_more_than_weights_stays_not_equivalent():
    eq = explain_keras_pair(
        _pair(0.0039, "BatchNorm running statistics after the step differ by up to 0.000166"),
        _reruns(0.0042, 0.0043))
    assert eq.causes[0]["explains"] and not eq.equivalent


def test_the_run_further_than_rounding_allows_is_named():
    eq = explain_keras_pair(_pair(0.2), _reruns(0.0042, 0.21))
    (cause,) = eq.causes
    assert not cause["explains"] and not eq.equivalent
    assert "keras-tensorflow:train is further from it than float32 rounding explains, the " \
           "other is not" in cause["text"]


def test_no_cause_without_both_runs_held_against_the_same_rerun():
    reruns = _reruns(0.0042, 0.0043)
    del reruns["pytorch:train"].float32_errors["keras-tensorflow:train"]
    assert explain_keras_pair(_pair(0.0039), reruns).causes == ()
    # Weights that agree need no cause.
    assert explain_keras_pair(_pair(1e-6), _reruns(0.0042, 0.0043)).causes == ()


def _run(bn_batch_stats=121, trainable_params=10, dropout_active=0, max_weight_delta=0.0036):
    """A run whose train-step loss is every other's (these pairs part only after the step)."""
    return SimpleNamespace(
        modes=SimpleNamespace(bn_batch_stats=bn_batch_stats, dropout_active=dropout_active),
        state=SimpleNamespace(trainable_params=trainable_params,
                              max_weight_delta=max_weight_delta),
        losses=SimpleNamespace(train_step=[6.9]))


def _classify_runs(recipe="training_false", trainable_params=10, **torch_train) -> dict:
    """The classify scenario's runs: both Keras runs step as pytorch:train does, yet their
    pairs with PyTorch are with pytorch:eval (BatchNorm on moving statistics)."""
    return {"pytorch:train": _run(**torch_train), "pytorch:eval": _run(bn_batch_stats=0),
            f"keras:{recipe}": _run(trainable_params=trainable_params),
            f"keras-jax:{recipe}": _run(trainable_params=trainable_params)}


def _unheld_pair(weights=5.4e-5, recipe="training_false") -> Equivalence:
    return Equivalence(a=f"keras:{recipe}", b=f"keras-jax:{recipe}", equivalent=False,
                       max_diff=0.00126, expected=True, reason="the same recipe",
                       differences=("inference_after: 6.33042 vs 6.32916 (differ by 0.00126)",
                                    f"weights after the step differ by up to {weights:.3g}"),
                       max_weight_diff=weights, max_bn_stat_diff=None)


def _states(keras, jax, torch, recipe="training_false") -> dict:
    """Final states whose one weight is `exact` (1.0) plus each run's float32 error."""
    return {f"keras:{recipe}": {"w": np.array([1.0 + keras])},
            f"keras-jax:{recipe}": {"w": np.array([1.0 + jax])},
            "pytorch:train": {"w": np.array([1.0 + torch])},
            "pytorch:eval": {"w": np.array([0.5])}}


class _Float64Rerun:
    """pytorch:train's rerun as its pairs left it: float64 weights [1.0], kept, and the
    distances of the Keras runs it held (not the training_false ones)."""

    def __init__(self):
        self.recipe = SimpleNamespace(id="pytorch:train")
        self.float32_errors = {"pytorch:train": 3e-5, "keras:train": 5.4e-5,
                               "keras-jax:train": 9.8e-6}
        self.float64_runs = 0

    def float64_state(self):
        self.float64_runs += 1
        return {"w": np.array([1.0])}


def test_a_pair_no_rerun_held_is_held_against_a_pytorch_recipe_of_the_same_step():
    """DenseNet121 at 96 px, batch 4 (2026-11-30): keras:training_false and
    keras-jax:training_false, weights 5.4e-05 apart, had no cause, as their pairs were with
    pytorch:eval; pytorch:train steps the same function, and its float64 rerun is reused."""
    rerun = _Float64Rerun()
    reruns = {"pytorch:train": rerun, "pytorch:eval": SimpleNamespace(float32_errors={})}
    eq = explain_keras_pair(_unheld_pair(), reruns, (), {}, None, None, _classify_runs(),
                            _states(5.4e-5, 1e-5, 3e-5))
    (cause,) = eq.causes
    assert cause["cause"] == "float32_rounding" and cause["explains"]
    assert "inconclusive" not in cause
    assert cause["float32_errors"] == pytest.approx(
        {"keras:training_false": 5.4e-5, "keras-jax:training_false": 1e-5})
    assert cause["value"] == pytest.approx(5.4e-5) and cause["before"] == 5.4e-5
    assert cause["torch_float32_error"] == pytest.approx(3e-5)
    assert cause["text"].startswith("Re-run of pytorch:train in float64, which computes the "
                                    "same step as both")
    assert "each is as close to it as float32 allows" in cause["text"]
    assert rerun.float64_runs == 1 and set(reruns) == {"pytorch:train", "pytorch:eval"}
    # It differs in the losses after the step too, so rounding alone does not make it equal.
    assert not eq.equivalent


def test_a_keras_run_beyond_rounding_from_the_same_step_is_named():
    eq = explain_keras_pair(_unheld_pair(), {"pytorch:train": _Float64Rerun()}, (), {}, None,
                            None, _classify_runs(), _states(2e-3, 1e-5, 3e-5))
    (cause,) = eq.causes
    assert not cause["explains"]
    assert "keras:training_false is further from it than float32 rounding explains" in \
        cause["text"]


class _Float64Switch:
    """The precision a fake PyTorch adapter computes in, float64 within `float64()`."""

    precision = "float32"

    @contextlib.contextmanager
    def float64(self):
        self.precision = "float64"
        try:
            yield
        finally:
            self.precision = "float32"


class _Adapter(_Float64Switch):
    """A PyTorch adapter whose steps land on [1.0] in float64 and elsewhere in float32."""

    def __init__(self):
        self.steps = []

    def state_after_steps(self, recipe, batch, steps, lr, optimizer):
        self.steps.append((recipe.id, self.precision, steps, lr, optimizer))
        return {"w": np.array([1.0 if self.precision == "float64" else 7.0])}


def test_the_same_step_recipe_is_rerun_in_float64_where_no_pair_reran_it():
    """`--recipes pytorch:train,keras:training_false,keras-jax:training_false`: no pair
    holds pytorch:train, so its float64 rerun is made here, once, and kept."""
    adapter, reruns = _Adapter(), {}
    recipes = [SimpleNamespace(id="pytorch:train"), SimpleNamespace(id="pytorch:eval")]
    config = SimpleNamespace(steps=2, lr=0.1, optimizer="sgd")
    eq = explain_keras_pair(_unheld_pair(), reruns, recipes, {"pytorch": adapter}, "batch",
                            config, _classify_runs(), _states(5.4e-5, 1e-5, 3e-5))
    (cause,) = eq.causes
    assert cause["explains"] and cause["text"].startswith("Re-run of pytorch:train in float64")
    assert adapter.steps == [("pytorch:train", "float64", 2, 0.1, "sgd")]
    assert list(reruns) == ["pytorch:train"]


def test_a_same_step_rerun_float32_cannot_pin_is_inconclusive():
    """PyTorch's own float32 weights further than 0.1 of the step's largest change from
    float64 (DenseNet121 at 32 px, batch 2: 22 after a step of 2.2): the rerun judges
    neither Keras run. So for keras:train ~ keras-jax:train, whose pairs with pytorch:train
    kept no distance from such a rerun."""
    rerun = _Float64Rerun()
    rerun.float32_errors = {}  # an inconclusive rerun keeps none
    runs = _classify_runs(recipe="train", max_weight_delta=2.2)
    eq = explain_keras_pair(_unheld_pair(0.4, recipe="train"), {"pytorch:train": rerun}, (),
                            {}, None, None, runs, _states(0.4, 0.1, 22.0, recipe="train"))
    (cause,) = eq.causes
    assert cause["inconclusive"] and not cause["explains"] and not eq.equivalent
    assert cause["torch_float32_error"] == pytest.approx(22.0)
    assert cause["value"] == pytest.approx(0.4)
    assert "where the step moved them by up to 2.2: float32 cannot pin this step" in \
        cause["text"]
    assert cause["text"].startswith("Re-run of pytorch:train in float64, which computes")


class _NoRerun:
    float32_errors = {"pytorch:train": 3e-5}  # it held other runs

    def __getattr__(self, name):
        raise AssertionError(f"a rerun ({name}) for a pair no PyTorch recipe steps like")


@pytest.mark.parametrize("runs", [
    # Keras runs that train 4 weights where every PyTorch run trains 10 or none.
    _classify_runs(trainable_params=4),
    # A PyTorch run with active Dropout steps another function than Keras runs without.
    _classify_runs(dropout_active=2)])
def test_no_cause_where_no_pytorch_recipe_computes_the_same_step(runs):
    eq = explain_keras_pair(_unheld_pair(1.5e-5), {"pytorch:train": _NoRerun()}, (),
                            {"pytorch": _NoRerun()}, None, None, runs,
                            _states(1e-5, 1e-5, 1e-5))
    assert eq.causes == () and not eq.equivalent


class _BnStepAdapter(_Float64Switch):
    """A PyTorch adapter whose pytorch:requires_grad_except_bn lands on [1.0] in float64 and
    `torch_error` from it in float32, its float32 run measured as `measured` says."""

    def __init__(self, torch_error=1.5e-5, **measured):
        self.torch_error, self.measured = torch_error, {"trainable_params": 4,
                                                        "max_weight_delta": 0.0011, **measured}
        self.calls = []

    def state_after_steps(self, recipe, batch, steps, lr, optimizer):
        self.calls.append((recipe.id, self.precision, "steps"))
        return {"w": np.array([1.0 if self.precision == "float64" else 1.0 + self.torch_error])}

    def run_recipe(self, recipe, batch, steps, lr, optimizer, ablate=True):
        self.calls.append((recipe.id, self.precision, f"measured, ablate={ablate}"))
        return SimpleNamespace(result=_run(**self.measured),
                               final_state={"w": np.array([1.0 + self.torch_error])})


def _bn_trainable_pair(adapter, reruns=None, keras=1.6e-5, jax=1.2e-5, **runs):
    """DenseNet121 at 96 px, batch 4, on pytorch, keras-torch and keras-jax (2026-11-30): the
    two bn_trainable runs' weights 1.54e-05 apart, paired with pytorch:requires_grad (which
    trains nothing), and no other run training BatchNorm's gamma and beta alone."""
    config = SimpleNamespace(steps=1, lr=0.01, optimizer="sgd")
    pair = Equivalence(a="keras:bn_trainable", b="keras-jax:bn_trainable", equivalent=False,
                       max_diff=2.86e-6, expected=True, reason="the same recipe",
                       differences=("weights after the step differ by up to 1.54e-05",),
                       max_weight_diff=1.54e-5, max_bn_stat_diff=4.8e-7)
    return explain_keras_pair(
        pair, {} if reruns is None else reruns, (),
        {"pytorch": adapter}, "batch", config,
        _classify_runs(recipe="bn_trainable", trainable_params=4, **runs),
        _states(keras, jax, 0.5, recipe="bn_trainable"))


def test_two_bn_trainable_runs_are_held_against_pytorchs_recipe_of_their_step_run_for_them():
    adapter, reruns = _BnStepAdapter(), {}
    eq = _bn_trainable_pair(adapter, reruns)
    (cause,) = eq.causes
    assert cause["cause"] == "float32_rounding" and cause["explains"]
    assert "inconclusive" not in cause
    assert cause["float32_errors"] == pytest.approx(
        {"keras:bn_trainable": 1.6e-5, "keras-jax:bn_trainable": 1.2e-5})
    assert cause["torch_float32_error"] == pytest.approx(1.5e-5)
    assert cause["value"] == pytest.approx(1.6e-5) and cause["before"] == 1.54e-5
    # It names the recipe and says it is none of the report's runs.
    assert cause["text"].startswith(
        "Run of pytorch:requires_grad_except_bn in float64, made for this pair since none of "
        "the report's runs computes their step (its float32 run, made too, measured the same "
        "BatchNorm modes and trainable weights as both): each is as close to it as float32 "
        "allows (keras:bn_trainable 1.6e-05, keras-jax:bn_trainable 1.2e-05; PyTorch's own "
        "float32 1.5e-05)")
    # One float32 run, measured without explanation passes, and one float64 run.
    assert adapter.calls == [
        ("pytorch:requires_grad_except_bn", "float32", "measured, ablate=False"),
        ("pytorch:requires_grad_except_bn", "float64", "steps")]
    assert list(reruns) == ["pytorch:requires_grad_except_bn"]
    # The pair differs in its weights alone, by rounding: the same computation.
    assert eq.equivalent


def test_the_bn_trainable_step_is_run_once_for_every_pair_of_keras_backends():
    adapter, reruns = _BnStepAdapter(), {}
    for _ in range(3):  # keras ~ keras-jax, keras ~ keras-tensorflow, keras-jax ~ ...
        assert _bn_trainable_pair(adapter, reruns).causes
    assert len(adapter.calls) == 2


def test_a_bn_trainable_run_beyond_rounding_from_the_step_is_named():
    eq = _bn_trainable_pair(_BnStepAdapter(), keras=2e-3)
    (cause,) = eq.causes
    assert not cause["explains"] and not eq.equivalent
    assert "keras:bn_trainable is further from it than float32 rounding explains" in \
        cause["text"]


def test_a_bn_trainable_step_float32_cannot_pin_is_inconclusive():
    # PyTorch's own float32 further than NOISE_CAP (0.1) of the step's largest weight change,
    # as its float32 run measured it.
    eq = _bn_trainable_pair(_BnStepAdapter(torch_error=5e-4, max_weight_delta=0.0011))
    (cause,) = eq.causes
    assert cause["inconclusive"] and not cause["explains"] and not eq.equivalent
    assert "where the step moved them by up to 0.0011: float32 cannot pin this step" in \
        cause["text"]
    assert cause["text"].startswith("Run of pytorch:requires_grad_except_bn in float64, made "
                                    "for this pair")


@pytest.mark.parametrize("measured", [
    {"trainable_params": 6},  # a port whose BatchNorm layers Keras trains otherwise
    {"bn_batch_stats": 120},
    {"dropout_active": 1}])
def test_a_bn_trainable_step_pytorch_computes_otherwise_holds_neither_run(measured):
    adapter = _BnStepAdapter(**measured)
    eq = _bn_trainable_pair(adapter)
    assert eq.causes == () and not eq.equivalent
    assert [call[1] for call in adapter.calls] == ["float32"]  # no float64 run after it


def test_no_bn_trainable_step_where_its_run_is_in_the_report_or_pytorch_is_absent():
    # Selected with --recipes, it is a run of the report: held in its pairs, or found as a
    # run of the same step; a second run of it would measure the same.
    adapter = _BnStepAdapter()
    runs = _classify_runs(recipe="bn_trainable", trainable_params=4)
    runs["pytorch:requires_grad_except_bn"] = _run(trainable_params=6)
    eq = explain_keras_pair(_unheld_pair(1.54e-5, recipe="bn_trainable"), {}, (),
                            {"pytorch": adapter}, "batch", None, runs,
                            _states(1.6e-5, 1.2e-5, 0.5, recipe="bn_trainable"))
    assert eq.causes == () and adapter.calls == []
    eq = explain_keras_pair(_unheld_pair(1.54e-5, recipe="bn_trainable"), {}, (), {}, None,
                            None, _classify_runs(recipe="bn_trainable", trainable_params=4),
                            _states(1.6e-5, 1.2e-5, 0.5, recipe="bn_trainable"))
    assert eq.causes == ()


def test_a_bn_trainable_step_that_diverges_gives_no_cause():
    from comparator.errors import Diverged

    adapter = _BnStepAdapter()

    def diverged(*args, **kwargs):
        raise Diverged("the inference loss after step 1 is not finite", 1)
    adapter.run_recipe = diverged
    assert _bn_trainable_pair(adapter).causes == ()


@pytest.mark.skipif(bool(missing_modules(["jax"])),
                    reason="jax is not installed: pip install -e '.[jax]'")
def test_keras_and_keras_jax_reuse_their_pairs_float64_rerun():
    """The tests' small pair, Adam over 2 steps at lr 0.1: Keras's conventions carry both
    Keras runs about 0.15 from PyTorch's float64 weights (PyTorch's own float32 1.5e-06), and
    the two Keras runs' weights differ by about 6e-05 (measured 2026-11-29)."""
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    report = comparator.compare_pair(seeded_torch_net(), SPEC, x,
                                     frameworks="pytorch,keras,keras-jax",
                                     recipes=("pytorch:train", "keras:train", "keras-jax:train"),
                                     dropout="off", optimizer="adam", steps=2, lr=0.1)
    pairs = {(eq.a, eq.b): eq for eq in report.equivalences}
    held = {a: next(c for c in pairs[(a, "pytorch:train")].causes
                    if c["cause"] == "float32_rounding")
            for a in ("keras:train", "keras-jax:train")}
    keras_pair = pairs[("keras:train", "keras-jax:train")]
    assert keras_pair.max_weight_diff > 1e-5
    (cause,) = keras_pair.causes
    assert cause["cause"] == "float32_rounding"
    # The pairs' own measurements, no new rerun.
    assert cause["float32_errors"] == {run: c["value"] for run, c in held.items()}
    assert cause["torch_float32_error"] == held["keras:train"]["torch_float32_error"]
    assert not cause["explains"] and not keras_pair.equivalent
    assert "both are further from it than float32 rounding explains" in cause["text"]


@pytest.mark.skipif(bool(missing_modules(["jax"])),
                    reason="jax is not installed: pip install -e '.[jax]'")
def test_keras_training_false_pair_is_held_against_pytorch_train_rerun_for_it():
    """The tests' small pair, Adam over 2 steps at lr 0.1, without keras:train: the two
    training_false runs are paired with pytorch:eval, so no pair reran pytorch:train, whose
    step they compute. Its float64 rerun is made for them: PyTorch's own float32 lands
    1.5e-06 from it, both Keras runs (Keras's Adam conventions) 0.15; their weights differ by
    5.6e-05 (measured 2026-11-30, about 5 s)."""
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    recipes = ("pytorch:train", "pytorch:eval", "keras:training_false",
               "keras-jax:training_false")
    report = comparator.compare_pair(seeded_torch_net(), SPEC, x,
                                     frameworks="pytorch,keras,keras-jax", recipes=recipes,
                                     dropout="off", optimizer="adam", steps=2, lr=0.1)
    pairs = {(eq.a, eq.b): eq for eq in report.equivalences}
    assert not any(b == "pytorch:train" for _, b in pairs)
    keras_pair = pairs[("keras:training_false", "keras-jax:training_false")]
    assert keras_pair.max_weight_diff > 1e-5
    (cause,) = keras_pair.causes
    assert cause["cause"] == "float32_rounding" and not cause["explains"]
    assert cause["text"].startswith("Re-run of pytorch:train in float64, which computes the "
                                    "same step as both")
    assert cause["torch_float32_error"] < 1e-5
    assert all(0.05 < error < 0.5 for error in cause["float32_errors"].values())
    assert "both are further from it than float32 rounding explains" in cause["text"]
