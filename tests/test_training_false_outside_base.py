"""training_false (the frozen base called with training=False in a functional model) is judged
on the base's own layers, and the layers outside the base are counted apart
(modes.outside_base): keras-nightly 3.16.0.dev2026102704 runs the head's Dropout, after the
base, in inference mode too, which a whole-model count called "honoured".

The nightly runs from an overlay that `make test` builds; these tests never download
(XFRAME_OVERLAYS_OFFLINE=1), and a missing overlay skips the worker's test with the reason.
"""


import pytest

from comparator.schema import Losses, Modes, RunResult, State

HEAD = dict(model="tiny_cnn", scenario="head", batch_size=4, image_size=16)
REACHING = "honoured, and reaching the layers outside the base"


def _modes(whole, outside=None) -> Modes:
    """whole: (bn_layers, bn_batch_stats, dropout_layers, dropout_active); built in the test,
    so that a Modes without outside_base fails that test alone."""
    return Modes(*whole, **({} if outside is None else {"outside_base": outside}))


def _outside(bn=(0, 0), dropout=(0, 0)) -> dict:
    """bn, dropout: (in batch-statistics or active mode, layers)."""
    return {"bn_layers": bn[1], "bn_batch_stats": bn[0],
            "dropout_layers": dropout[1], "dropout_active": dropout[0]}


def _run(framework, version, modes, moved=False, recipe="training_false"):
    """modes: (the whole model's four counts, outside_base)."""
    return RunResult(id=f"{framework}:{recipe}", framework=framework, recipe=recipe,
                     description="", losses=Losses(1.0, (1.0,), 1.0),
                     state=State(0, 0, True, 0.1, moved, 0.1 if moved else 0.0),
                     modes=_modes(*modes), seconds=0.0, backend="torch", framework_version=version)


# ----- behaviour() and version_findings on constructed runs ---------------------------------


@pytest.mark.parametrize("modes, moved, said", [
    # Keras 3.15.1 on the tiny CNN's head scenario: everything trains.
    (((3, 3, 1, 1), _outside(dropout=(1, 1))), True, "overridden"),
    # keras-nightly there: the head's Dropout, after the base, is off too.
    (((3, 0, 1, 0), _outside(dropout=(0, 1))), False, REACHING),
    # The base in inference mode, the head's BatchNorm on batch statistics moving its own
    # statistics, its Dropout active: what the recipe asks for.
    (((4, 1, 1, 1), _outside(bn=(1, 1), dropout=(1, 1))), True, "honoured"),
    # A base Dropout active: the base trained.
    (((3, 0, 2, 2), _outside(dropout=(1, 1))), False, "overridden"),
    # Nothing outside the base holds BatchNorm: moved statistics are the base's.
    (((3, 0, 1, 1), _outside(dropout=(1, 1))), True, "overridden"),
    # Of two layers outside, one trained, one in inference mode.
    (((4, 1, 1, 0), _outside(bn=(1, 1), dropout=(0, 1))), True,
     "honoured, and reaching some of the layers outside the base"),
])
def test_training_false_is_judged_on_the_base_and_the_layers_outside_it(modes, moved, said):
    from comparator.analysis.versions import behaviour

    assert behaviour(_run("keras", "3.15.1", modes, moved)) == said


@pytest.mark.parametrize("modes, moved, said", [
    (((3, 0, 1, 0), None), False, "honoured"),
    (((3, 0, 1, 0), None), True, "overridden"),
    (((3, 3, 0, 0), None), True, "overridden"),
])
def test_without_outside_counts_training_false_keeps_the_whole_model_reading(modes, moved,
                                                                             said):
    from comparator.analysis.versions import behaviour

    assert behaviour(_run("keras", "3.15.1", modes, moved)) == said


def test_the_version_finding_says_where_training_false_reached_the_head():
    from comparator.analysis.versions import side_by_side, version_findings

    runs = [_run("keras", "3.15.1", ((3, 3, 1, 1), _outside(dropout=(1, 1))), True),
            _run("keras-torch@nightly", "3.16.0.dev2026102704",
                 ((3, 0, 1, 0), _outside(dropout=(0, 1))))]
    finding, = version_findings(runs)
    assert finding.startswith("`training=False` inside `fit` (training_false): overridden in "
                              f"3.15.1; {REACHING} in 3.16.0.dev2026102704")
    _, (row,) = side_by_side(runs)
    assert row[0] == "training_false"
    assert row[2].endswith(f"; {REACHING} (Dropout active 0/1)")


def test_outside_counts_survive_a_report_and_older_reports_load_without_them():
    from comparator.schema import report_from_dict

    modes = ((3, 0, 1, 0), _outside(dropout=(0, 1)))
    assert _modes(*modes).to_dict()["outside_base"] == _outside(dropout=(0, 1))
    run = _run("keras", "3.15.1", modes).to_dict()
    old = {**run, "modes": {k: v for k, v in run["modes"].items() if k != "outside_base"}}
    for data, expected in ((run, _outside(dropout=(0, 1))), (old, None)):
        report = report_from_dict(_report_dict([data]))
        assert report.runs[0].modes.outside_base == expected


def _report_dict(runs: list[dict]) -> dict:
    """The smallest report that report_from_dict reads: these runs and nothing else."""
    from comparator.schema import SCHEMA

    return {"schema": SCHEMA, "model": "tiny_cnn", "scenario": "head", "settings": {},
            "environment": {}, "runs": runs}


def test_a_workers_outside_counts_are_read_back_and_older_workers_still_load():
    from adapters.keras.client import WorkerError, _run_result

    run = _run("keras-torch@nightly", "3.16.0.dev2026102704",
               ((3, 0, 1, 0), _outside(dropout=(0, 1)))).to_dict()
    assert _run_result(run).modes.outside_base == _outside(dropout=(0, 1))
    del run["modes"]["outside_base"]
    assert _run_result(run).modes.outside_base is None
    run["modes"]["outside_base"] = {"bn_layers": "three"}
    with pytest.raises(WorkerError):
        _run_result(run)


# ----- measured: Keras 3.15.1 in this process, keras-nightly in a worker --------------------


def _head_comparison(frameworks, recipes):
    from adapters.keras.overlays import OFFLINE_VARIABLE
    from comparator.config import CompareConfig
    from comparator.pipeline import compare

    with pytest.MonkeyPatch.context() as patch:  # offline: never download an overlay
        patch.setenv(OFFLINE_VARIABLE, "1")
        return compare(CompareConfig(**HEAD, frameworks=frameworks, recipes=recipes)).report


def _run_of(report, run_id):
    return next(r for r in report.runs if r.id == run_id)


def test_keras_3_15_trains_the_base_and_the_head_under_training_false():
    report = _head_comparison(("pytorch", "keras"), ("pytorch:eval", "keras:training_false"))
    keras_run = _run_of(report, "keras:training_false")
    modes = keras_run.modes
    # The tiny CNN's base holds its three BatchNorm layers; the head one Dropout and none.
    assert modes.outside_base == _outside(dropout=(1, 1))
    assert (modes.bn_layers, modes.bn_batch_stats) == (3, 3)  # all in the base
    assert modes.dropout_layers - modes.outside_base["dropout_layers"] == 0
    assert _run_of(report, "pytorch:eval").modes.outside_base is None  # PyTorch does not say


def test_a_user_models_layers_outside_freeze_are_counted_and_forced_dropout_left_out():
    """The tests' residual pair: `features` (the stem's BatchNorm) frozen; bn1, bn2 and the
    Dropout after it. --dropout off runs the Dropout in inference mode whatever the recipe
    asks: it says nothing about training=False, and is left out of the counts."""
    import numpy as np

    import comparator
    from tests import user_pair_models as pair

    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    report = comparator.compare_pair(
        pair.seeded_torch_net(), pair.ported_keras_net(), x, freeze="features",
        dropout="off", recipes=("pytorch:eval", "keras:training_false"))
    modes = _run_of(report, "keras:training_false").modes
    assert (modes.bn_layers, modes.bn_batch_stats, modes.dropout_layers) == (3, 3, 1)
    assert modes.outside_base == _outside(bn=(2, 2))


@pytest.fixture(scope="module")
def nightly_head():
    from adapters.keras.overlays import cached_versions

    if not cached_versions("keras-nightly"):
        pytest.skip("no keras-nightly overlay is built here; build it with: "
                    "python -m adapters.keras.overlays keras-torch@nightly (make test does)")
    return _head_comparison(("pytorch", "keras", "keras-torch@nightly"),
                            ("keras:training_false", "keras-torch@nightly:training_false"))


def test_the_nightly_turns_the_heads_dropout_off_and_the_finding_says_so(nightly_head):
    from comparator.analysis.versions import behaviour

    nightly = _run_of(nightly_head, "keras-torch@nightly:training_false")
    assert nightly.framework_version.startswith("3.16.0.dev")
    assert nightly.modes.outside_base == _outside(dropout=(0, 1))
    assert (nightly.modes.bn_batch_stats, nightly.modes.dropout_active) == (0, 0)
    assert nightly.losses.train_step[0] == nightly.losses.inference_before
    assert behaviour(nightly) == REACHING
    assert behaviour(_run_of(nightly_head, "keras:training_false")) == "overridden"
    finding, = [f for f in nightly_head.findings if f.startswith("`training=False`")]
    assert f"{REACHING} in 3.16.0.dev" in finding


@pytest.mark.parametrize("modes, said", [
    (((3, 3, 1, 1), _outside(dropout=(1, 1))), "train"),  # Keras 3.15.1
    (((3, 0, 1, 0), _outside(dropout=(0, 1))), "inference mode too"),  # keras-nightly
    (((4, 1, 1, 0), _outside(bn=(1, 1), dropout=(0, 1))), "some in inference mode"),
    (((3, 3, 1, 1), None), "not counted"),  # a report from before outside_base
])
def test_the_version_tables_head_row_says_what_the_layers_after_the_base_did(modes, said):
    from tools.version_table import _after_base

    assert _after_base(_run("keras-torch@nightly", "3.16.0", modes)) == said
    assert _after_base(None) == "not run"
