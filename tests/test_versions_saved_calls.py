"""A .keras file saved by Keras 3.15.1 records training=False on a functional model's Dropout
calls, though the model's code never passes it; Keras 3.16.0.dev2026102704, loading the file,
keeps those Dropout layers off inside fit while 3.15.1 lets fit's training=True through. The
comparison measured it (drop 1/1 against 0/1) and said only "Dropout layers active in the
train step: 1 vs 0"; now the version findings name the Dropout difference and the file's
recorded calls."""

import types

import numpy as np
import pytest

import comparator
from adapters.keras.overlays import cached_versions
from comparator.analysis.versions import recorded_training_calls, version_findings
from tests import user_pair_models as pair
from tests.user_pair_models import keras

X = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)


def _run(framework, version, dropout_active):
    return types.SimpleNamespace(
        framework=framework, framework_version=version, backend="torch", recipe="train",
        modes=types.SimpleNamespace(bn_layers=2, bn_batch_stats=2, dropout_layers=1,
                                    dropout_active=dropout_active),
        state=types.SimpleNamespace(bn_stats_changed=True))


def test_versions_that_differ_only_in_their_dropout_are_a_finding():
    runs = [_run("keras", "3.15.1", 1), _run("keras-torch@nightly", "3.16.0.dev2026102704", 0)]
    assert version_findings(runs) == [
        "nothing frozen (train): batch statistics, moving statistics updated, Dropout active "
        "1/1 in 3.15.1; batch statistics, moving statistics updated, Dropout active 0/1 in "
        "3.16.0.dev2026102704 (measured in this run)"]
    alike = [_run("keras", "3.15.1", 1), _run("keras-torch@nightly", "3.16.0.dev2026102704", 1)]
    assert version_findings(alike) == []


def test_the_calls_a_keras_file_records_with_training_false_are_read(tmp_path):
    path = str(tmp_path / "net.keras")
    pair.ported_keras_net().save(path)
    assert recorded_training_calls(path) == (keras.__version__, ["dropout"])
    assert recorded_training_calls(str(tmp_path / "missing.keras")) == ("", [])


def test_a_nightly_run_of_a_keras_file_names_its_recorded_dropout_calls(tmp_path):
    if not cached_versions("keras-nightly"):
        pytest.skip("no keras-nightly overlay is built here; build it with: "
                    "python -m adapters.keras.overlays keras-torch@nightly (make test does)")
    path = str(tmp_path / "net.keras")
    pair.ported_keras_net().save(path)
    report = comparator.compare_pair(
        pair.seeded_torch_net(), path, X, recipes="keras:train,keras-torch@nightly:train",
        frameworks="pytorch,keras,keras-torch@nightly")
    modes = {run.id: run.modes.dropout_active for run in report.runs}
    assert modes == {"keras:train": 1, "keras-torch@nightly:train": 0}
    assert any("Dropout active 1/1 in 3.15.1" in f for f in report.findings)
    assert (f"the .keras file (saved by Keras {keras.__version__}) records training=False on "
            "the calls of dropout") in report.findings[-1]
