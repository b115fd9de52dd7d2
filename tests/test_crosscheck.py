"""The reruns that test a suspected cause of a Keras-against-PyTorch difference: a cause
whose rerun leaves the difference where it was is reported as ruled out, never as why."""

import io
import types

import numpy as np
import pytest
from rich.console import Console

from comparator.analysis.crosscheck import _weight_causes
from comparator.report.html import render_html
from comparator.report.markdown import render_markdown
from comparator.report.terminal import render_equivalences
from tests.conftest import run_once


@pytest.fixture(scope="module")
def dense_adam_three_steps():
    """Adam over three steps: the weights part by more than PyTorch's own float32 rounding;
    Keras's epsilon as PyTorch's eps leaves them apart, its placement accounts for them."""
    return run_once(model="dense_mlp", scenario="regress", optimizer="adam", steps=3)


def _causes(outcome, a="keras:train", b="pytorch:train"):
    (eq,) = [e for e in outcome.report.equivalences if (e.a, e.b) == (a, b)]
    return eq, {c["cause"]: c for c in eq.causes}


def test_epsilon_placement_explains_adam_over_several_steps(dense_adam_three_steps):
    """Keras's epsilon acts as a PyTorch eps that changes with the step (1e-7 / sqrt(1 -
    0.999^t)): one constant cannot match three steps, the per-step value does."""
    eq, causes = _causes(dense_adam_three_steps)
    assert not eq.equivalent and eq.max_weight_diff > 1e-3
    epsilon, placement = causes["adam_epsilon"], causes["adam_epsilon_placement"]
    assert not epsilon["explains"] and epsilon["value"] > 1e-5
    assert "still differ" in epsilon["text"]
    assert placement["explains"] and placement["value"] < 1e-5
    assert "(3.16e-06, 2.24e-06, 1.83e-06 for steps 1 to 3)" in placement["text"]
    assert "float32_rounding" not in causes  # a cause already accounts for the weights


def test_every_report_prints_a_ruled_out_cause_as_ruled_out(dense_adam_three_steps):
    report = dense_adam_three_steps.report
    console = Console(file=io.StringIO(), width=400)
    render_equivalences(report, console)
    terminal = console.file.getvalue()
    markdown, html = render_markdown(report), render_html(report)
    for text, label in ((terminal, "{}: "), (markdown, "{}: "), (html, "<b>{}:</b> ")):
        assert label.format("ruled out") + "Adam epsilon" in text
        assert label.format("why") + "Adam epsilon" not in text
        assert label.format("why") + "Keras adds epsilon" in text


def _run(bn_batch_stats=0, trainable_params=10, first_loss=1.0):
    return types.SimpleNamespace(
        modes=types.SimpleNamespace(bn_batch_stats=bn_batch_stats),
        state=types.SimpleNamespace(trainable_params=trainable_params, max_weight_delta=1.0),
        losses=types.SimpleNamespace(train_step=[first_loss]))


def _never():
    raise AssertionError("rerun for a pair whose steps differ")


@pytest.mark.parametrize("other", [_run(bn_batch_stats=3), _run(trainable_params=4)])
def test_no_optimizer_rerun_for_steps_that_computed_different_gradients(other):
    """Different BatchNorm modes or trainable weights: the gradients differ, and no
    optimizer constant can bring the weights together, so none is rerun."""
    rerun = types.SimpleNamespace(adapter=types.SimpleNamespace(), final_state=_never)
    eq = types.SimpleNamespace(a="keras:x", b="pytorch:y", max_weight_diff=0.01)
    config = types.SimpleNamespace(optimizer="adam", steps=1)
    runs = {"keras:x": _run(), "pytorch:y": other}
    assert _weight_causes(eq, config, rerun, runs, {}) == []


def _held_to_float64(max_weight_diff: float):
    """A Keras run and a PyTorch run of the same step function that reported other first
    losses, and a rerun whose float64 weights are [1, 2]."""
    exact = {"w": np.array([1.0, 2.0])}
    rerun = types.SimpleNamespace(adapter=types.SimpleNamespace(), final_state=_never,
                                  float64_state=lambda: exact, float32_errors={})
    eq = types.SimpleNamespace(a="keras:x", b="pytorch:y", max_weight_diff=max_weight_diff)
    return rerun, eq, {"keras:x": _run(first_loss=1.5), "pytorch:y": _run()}


def test_a_step_of_the_same_function_that_reported_another_loss_is_held_to_float64():
    """The same modes and trainable weights, another first loss: float32 rounding parted the
    losses (Keras's one-pass batch variance over two values per channel) or something else
    did. No optimizer constant is rerun; the float64 rerun says which."""
    rerun, eq, runs = _held_to_float64(max_weight_diff=0.01)
    config = types.SimpleNamespace(optimizer="adam", steps=1)
    states = {"keras:x": {"w": np.array([1.0, 2.01])}, "pytorch:y": {"w": np.array([1.0, 2.02])}}
    (cause,) = _weight_causes(eq, config, rerun, runs, states)
    assert cause["cause"] == "float32_rounding" and cause["explains"]
    assert cause["text"].startswith("The train-step losses differ (1.5 vs 1), and so do the "
                                    "gradients. Re-run of pytorch:y in float64:")
    states["keras:x"]["w"] = np.array([1.0, 2.5])
    (cause,) = _weight_causes(eq, config, rerun, runs, states)
    assert not cause["explains"]


@pytest.mark.parametrize("framework", ["pytorch", "keras"])
def test_a_rerun_leaves_the_state_run_recipe_leaves(tiny_classify, framework):
    """Reruns take only the steps (no inference passes, no explanations); the weights and
    statistics they leave must be run_recipe's, bit for bit, Dropout masks included."""
    import numpy as np

    from comparator.config.recipes import recipes_for

    adapter = tiny_classify.adapters[framework]
    recipe = next(r for r in recipes_for(framework) if r.name == "train")
    batch = tiny_classify.batch
    measured = adapter.run_recipe(recipe, batch, 2, 0.01, "adam", ablate=False).final_state
    rerun = adapter.state_after_steps(recipe, batch, 2, 0.01, "adam")
    assert measured.keys() == rerun.keys()
    for name, array in measured.items():
        np.testing.assert_array_equal(rerun[name], array, err_msg=name)


def test_a_keras_worker_against_pytorch_gets_the_same_reruns():
    """The reruns are PyTorch's, held against the Keras run's final state, whichever backend
    that ran on: Keras on TensorFlow got no cause at all before."""
    from comparator.config.frameworks import missing_modules

    if missing_modules(("tensorflow",)):
        pytest.skip("tensorflow is not installed (optional extra: pip install -e '.[tensorflow]')")
    outcome = run_once(model="dense_mlp", scenario="regress", optimizer="adam", steps=3,
                       frameworks=("pytorch", "keras-tensorflow"),
                       recipes=("pytorch:train", "keras-tensorflow:train"))
    eq, causes = _causes(outcome, a="keras-tensorflow:train")
    assert eq.max_weight_diff > 1e-3
    assert causes["adam_epsilon_placement"]["explains"]
    assert not causes["adam_epsilon"]["explains"]


def test_a_pair_with_dropout_in_one_run_compares_first_steps_over_several():
    """MobileNetV2's Keras side has no Dropout, torchvision's has one: over several steps the
    Keras run's running statistics were its last step's, PyTorch's its Dropout-free first
    pass's, and the momentum rerun was ruled out (0.0016 left at 64 px, 3 steps). Both runs
    are now compared as their first step's forward pass left them."""
    outcome = run_once(model="mobilenet_v2", image_size=32, batch_size=4, steps=3,
                       recipes=("keras:train", "pytorch:train"))
    eq, causes = _causes(outcome)
    assert "judged on the Dropout-free passes" in eq.judged_on
    momentum = causes["bn_momentum_convention"]
    assert momentum["explains"] and momentum["value"] < 1e-5 < momentum["before"]


def test_one_momentum_rerun_serves_every_keras_framework_with_those_momenta():
    """The backends of one model share their BatchNorm momenta: PyTorch's rerun with them
    runs once however many Keras frameworks it explains."""
    import contextlib

    from comparator.analysis.crosscheck import _Rerun

    class Counting:
        calls, momenta = 0, None

        @contextlib.contextmanager
        def bn_momentum(self, momenta):
            self.momenta = momenta
            yield

        def statistics_after_forward(self, recipe, batch, dropout_off):
            self.calls += 1
            return {"momenta": dict(self.momenta), "dropout_off": dropout_off}

    adapter = Counting()
    rerun = _Rerun(adapter, None, None, types.SimpleNamespace(steps=1))
    first = rerun.statistics_with_momenta({"bn": 0.01}, first_step=False)
    assert rerun.statistics_with_momenta({"bn": 0.01}, first_step=False) is first
    assert adapter.calls == 1 and first == {"momenta": {"bn": 0.01}, "dropout_off": False}
    rerun.statistics_with_momenta({"bn": 0.1}, first_step=False)
    rerun.statistics_with_momenta({"bn": 0.01}, first_step=True)
    assert adapter.calls == 3


@pytest.mark.parametrize("value, before, label", [
    (1e-6, 0.0077, "why"), (0.00022, 0.0077, "part of why"), (0.0007, 0.00089, "ruled out")])
def test_a_rerun_that_closed_most_of_the_gap_is_not_printed_as_ruled_out(value, before, label):
    """Adam's epsilon placement on a user's pair over one step closed 0.0077 to 0.00022 and
    was printed as ruled out, which says the rerun left the difference where it was."""
    from comparator.report.markdown import cause_label

    cause = {"value": value, "before": before, "explains": value <= 1e-5}
    assert cause_label(cause) == label


def test_a_step_float32_cannot_pin_is_inconclusive_not_rounding():
    """DenseNet121 at 32 px, batch 2: PyTorch's float32 weights after the step were 22 from
    its float64 rerun, where the step moved them by up to 2.2, and the report said 'the
    difference is rounding'. Against such noise the rerun judges nothing."""
    from comparator.report.markdown import cause_label

    rerun, eq, runs = _held_to_float64(max_weight_diff=0.4)
    config = types.SimpleNamespace(optimizer="sgd", steps=1)
    runs["pytorch:y"].state.max_weight_delta = 2.2
    states = {"keras:x": {"w": np.array([1.0, 2.4])}, "pytorch:y": {"w": np.array([1.0, 2.3])}}
    (cause,) = _weight_causes(eq, config, rerun, runs, states)
    assert cause["inconclusive"] and not cause["explains"]
    assert "where the step moved them by up to 2.2: float32 cannot pin this step" in cause["text"]
    assert cause_label(cause) == "inconclusive"
    assert rerun.float32_errors == {}  # judges no pair of two Keras runs either
    runs["pytorch:y"].state.max_weight_delta = 22.0  # the same errors, a step ten times as large
    (cause,) = _weight_causes(eq, config, rerun, runs, states)
    assert cause["explains"] and "inconclusive" not in cause
