import importlib.util
import os

import pytest

from tools.behaviors import generate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_behaviors_doc_regenerates_identically():
    # The document's Keras-backends section is measured on TensorFlow and JAX.
    missing = [m for m in ("tensorflow", "jax") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install -e '.[tensorflow,jax]'); "
                    "docs/behaviors.md is generated with them")
    with open(os.path.join(ROOT, "docs", "behaviors.md")) as handle:
        committed = handle.read()
    assert generate() == committed, (
        "docs/behaviors.md is stale: run python scripts/document_behaviors.py")
