"""Keras workers run beside each other and beside this process's own runs when the
machine has the cores and memory (comparator.limits.workers_may_overlap), one after
another otherwise; either way the report's numbers are the same."""

import time

import pytest

import adapters.keras.client as client
from comparator.config import CompareConfig
from comparator.config.frameworks import missing_modules
from comparator.limits import workers_may_overlap
from comparator.pipeline import compare

TINY = dict(model="tiny_cnn", batch_size=4, image_size=16,
            frameworks=("pytorch", "keras", "keras-tensorflow", "keras-jax"))


def _run(monkeypatch, overlap: bool):
    spans = []
    bounded = client.run_bounded

    def timed(command, env, timeout):
        started = time.monotonic()
        try:
            return bounded(command, env, timeout)
        finally:
            spans.append((started, time.monotonic()))

    monkeypatch.setattr(client, "run_bounded", timed)
    monkeypatch.setattr("comparator.pipeline.workers_may_overlap", lambda *a: overlap)
    return compare(CompareConfig(**TINY)).report, sorted(spans)


def _numbers(report) -> dict:
    """Everything measured, without timings."""
    return {"runs": [{**r.to_dict(), "seconds": None} for r in report.runs],
            "checks": [c.to_dict() for c in report.checks],
            "equivalences": [e for e in report.to_dict()["equivalences"]],
            "explanations": report.to_dict()["explanations"]}


@pytest.fixture(scope="module")
def both(request):
    if missing_modules(("tensorflow", "jax")):
        pytest.skip("the tensorflow and jax extras are not installed")
    monkeypatch = pytest.MonkeyPatch()
    try:
        together = _run(monkeypatch, True)
        monkeypatch.undo()
        apart = _run(monkeypatch, False)
    finally:
        monkeypatch.undo()
    return together, apart


def test_workers_overlap_each_other_when_allowed(both):
    (_, spans), _ = both
    (a_start, a_end), (b_start, b_end) = spans
    assert b_start < a_end, spans


def test_workers_run_one_after_another_otherwise(both):
    _, (_, spans) = both
    (_, a_end), (b_start, _) = spans
    assert b_start >= a_end, spans


def test_the_report_is_the_same_either_way(both):
    (together, _), (apart, _) = both
    assert [r.id for r in together.runs] == [r.id for r in apart.runs]
    assert [c.name for c in together.checks] == [c.name for c in apart.checks]
    assert _numbers(together) == _numbers(apart)
    assert together.unavailable_runs == apart.unavailable_runs == ()
    assert set(together.timings["worker_seconds"]) == {"keras-tensorflow", "keras-jax"}


def test_overlap_needs_two_cores_and_the_memory(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert not workers_may_overlap("densenet121", 8, 224, 2, None)
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert workers_may_overlap("densenet121", 8, 224, 2, 64 * 1024 ** 3)
    # Three processes of about 4.5 GiB each do not fit in 8 GiB.
    assert not workers_may_overlap("densenet121", 8, 224, 2, 8 * 1024 ** 3)
    assert not workers_may_overlap("densenet121", 8, 224, 0, None)
