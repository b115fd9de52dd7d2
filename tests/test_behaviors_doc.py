import os

from comparator.behaviors import generate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_behaviors_doc_regenerates_identically():
    with open(os.path.join(ROOT, "docs", "behaviors.md")) as handle:
        committed = handle.read()
    assert generate() == committed, (
        "docs/behaviors.md is stale: run python scripts/document_behaviors.py")
