"""The shortcuts that make a comparison fast must give exactly what the long way gives."""

import numpy as np
import pytest

from comparator.analysis.observe import variance
from comparator.config.recipes import RECIPES

RECIPE = {r.id: r for r in RECIPES}
STAT_SUFFIXES = (".running_mean", ".running_var")


@pytest.mark.parametrize("fixture", ["tiny_classify", "densenet_classify"])
def test_one_forward_pass_leaves_the_running_statistics_of_a_one_step_rerun(request, fixture):
    outcome = request.getfixturevalue(fixture)
    adapter, batch = outcome.adapters["pytorch"], outcome.batch
    recipe = RECIPE["pytorch:train"]
    try:
        with adapter.bn_momentum(0.01):
            fast = adapter.statistics_after_forward(recipe, batch)
            full = adapter.run_recipe(recipe, batch, 1, 0.01, ablate=False).final_state
    finally:
        adapter.reset()  # the session's outcome stays as it was
    stats = [name for name in full if name.endswith(STAT_SUFFIXES)]
    assert stats
    for name in stats:
        np.testing.assert_array_equal(fast[name], full[name], err_msg=name)
    initial = adapter._initial_canonical
    assert any(not np.array_equal(fast[name], initial[name]) for name in stats)


def test_a_reused_inference_loss_is_what_a_fresh_pass_gives(tiny_classify):
    report = tiny_classify.report
    assert report.timings["reused_inference_passes"] > 0
    # keras:trainable_false changes nothing: its inference loss after the step is the one
    # before, reused; keras:training_false ends where keras:train ends.
    for run_id in ("keras:trainable_false", "keras:training_false", "pytorch:eval_requires_grad"):
        framework = run_id.split(":")[0]
        adapter = tiny_classify.adapters[framework]
        reused = report.run(run_id).losses.inference_after
        adapter._inference_losses.clear()
        before = adapter.reused_inference_passes
        fresh = adapter.run_recipe(RECIPE[run_id], tiny_classify.batch, 1, 0.01)
        assert fresh.result.losses.inference_after == reused, run_id
        assert adapter.reused_inference_passes == before + (run_id != "keras:training_false")


def test_the_explanation_passes_are_timed_inside_the_runs(tiny_classify):
    timings = tiny_classify.report.timings
    recipes = sum(v for k, v in timings["phases"].items() if k.startswith("recipe:"))
    assert 0 < timings["ablation_seconds"] < recipes
    adapter = tiny_classify.adapters["pytorch"]
    before = adapter.ablation_seconds
    try:  # pytorch:train moves weights and running statistics: one more pass explains which
        adapter.run_recipe(RECIPE["pytorch:train"], tiny_classify.batch, 1, 0.01)
        after_one = adapter.ablation_seconds
        adapter.run_recipe(RECIPE["pytorch:train"], tiny_classify.batch, 1, 0.01, ablate=False)
    finally:
        adapter.reset()
    assert after_one > before
    assert adapter.ablation_seconds == after_one


def test_variance_from_moments_keeps_float32_precision():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=(8, 4, 16, 16)).astype(np.float32)
    dims = (0, 2, 3)
    mean, mean_of_squares = x.mean(axis=dims), (x * x).mean(axis=dims)
    exact = x.astype(np.float64).var(axis=dims)
    np.testing.assert_allclose(variance(mean, mean_of_squares), exact, rtol=1e-5)
    assert np.all(variance(np.ones(3), np.ones(3) - 1e-9) == 0.0)  # rounding never negative


def test_the_initial_state_the_models_were_loaded_from_is_held_once(tiny_classify):
    pytorch, keras = (tiny_classify.adapters[name] for name in ("pytorch", "keras"))
    shared = set(pytorch._initial_canonical) & set(keras._initial_canonical)
    assert shared
    for name in shared:  # both sides hold the array they were loaded from, not copies
        assert pytorch._initial_canonical[name] is keras._initial_canonical[name], name
    for adapter in (pytorch, keras):  # eight recipes later, nothing has written into it
        adapter.reset()
        fresh = adapter.canonical_weights()
        for name, array in adapter._initial_canonical.items():
            np.testing.assert_array_equal(array, fresh[name], err_msg=name)


def test_held_once_shares_only_arrays_with_the_same_bits_and_layout():
    from adapters.base import held_once

    given = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3, np.float32),
             "t": np.arange(6, dtype=np.float32).reshape(3, 2), "n": np.zeros(2, np.float32)}
    read = {"w": given["w"].copy(),  # same bits: shared
            "b": np.array([0.0, -0.0, 0.0], np.float32),  # equal values, other bits
            "t": np.asfortranarray(given["t"]),  # same values, other memory layout
            "n": np.zeros(2, np.float64),  # other dtype
            "x": np.ones(1, np.float32)}  # not given
    held = held_once(read, given)
    assert held["w"] is given["w"]
    for name in ("b", "t", "n", "x"):
        assert held[name] is read[name], name
