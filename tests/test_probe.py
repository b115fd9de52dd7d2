"""The defaults probe of a Keras worker (adapters/keras/probe.py), which
tools/version_table.py writes into docs/behaviors-versions.md: which batch variance each
Keras's BatchNormalization updates its moving variance with, on vectors and on images."""

import json

import pytest

from comparator.config.frameworks import missing_modules
from tests.conftest import python_code
BIASED, UNBIASED = "biased (divided by n)", "unbiased (divided by n - 1)"


def test_keras_3_keeps_the_biased_variance_on_vectors_and_images():
    from adapters.keras.backend import keras
    from adapters.keras.probe import _batch, _defaults

    found = _defaults(keras, _batch()[0])
    assert found == {"bn_momentum": 0.99, "bn_epsilon": 0.001,
                     "bn_moving_variance_update": BIASED,
                     "bn_moving_variance_update_images": BIASED}


@pytest.mark.skipif(bool(missing_modules(["tf_keras"])), reason="tf_keras is not installed")
def test_tf_keras_keeps_the_unbiased_variance_on_images():
    """Its fused kernel, which BatchNormalization uses on 4-D inputs, keeps the unbiased one."""
    code = ("import json, os\n"
            "os.environ['TF_USE_LEGACY_KERAS'] = '1'\n"
            "import tf_keras\n"
            "from adapters.keras.probe import _batch, _defaults\n"
            "print(json.dumps(_defaults(tf_keras, _batch()[0])))")
    result = python_code(code)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert (found["bn_moving_variance_update"], found["bn_moving_variance_update_images"]) == (
        BIASED, UNBIASED)
