"""Shared, session-scoped comparisons: each model is built and run once per test session."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest  # noqa: E402

from comparator.config import CompareConfig  # noqa: E402

from comparator.pipeline import compare  # noqa: E402

_CACHE = {}


def run_once(**kwargs):
    key = tuple(sorted(kwargs.items()))
    if key not in _CACHE:
        _CACHE[key] = compare(CompareConfig(**kwargs))
    return _CACHE[key]


@pytest.fixture(scope="session")
def tiny_classify():
    return run_once(model="tiny_cnn", batch_size=4, image_size=16)


@pytest.fixture(scope="session")
def tiny_head():
    return run_once(model="tiny_cnn", batch_size=4, image_size=16, scenario="head")


@pytest.fixture(scope="session")
def densenet_classify():
    return run_once(model="densenet121", batch_size=4, image_size=32)


@pytest.fixture(scope="session")
def densenet_head():
    return run_once(model="densenet121", batch_size=4, image_size=32, scenario="head")
