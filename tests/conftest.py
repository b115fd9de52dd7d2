"""Shared, session-scoped comparisons: each model is built and run once per test session."""

import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest  # noqa: E402

from comparator.config import CompareConfig  # noqa: E402

from comparator.pipeline import compare  # noqa: E402

_CACHE = {}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_code(code: str, env: dict | None = None, timeout: int = 600):
    """`code` run by a fresh Python in the project's root, the project importable (env: the
    environment, os.environ by default); its CompletedProcess, output as text."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**(os.environ if env is None else env),
                                         "PYTHONPATH": ROOT}, timeout=timeout)


@pytest.fixture(autouse=True)
def _command_line_state_given_back():
    """compare.py's main(), run in the test process, points XFRAME_CACHE_DIR at --cache-dir
    (where Keras version overlays are looked for) and blocks TensorFlow's and JAX's imports:
    each test leaves both as it found them, or later tests look for overlays elsewhere."""
    cache_dir = os.environ.get(CACHE_VARIABLE)
    unimported = [name for name in BLOCKED_IMPORTS if name not in sys.modules]
    yield
    if cache_dir is None:
        os.environ.pop(CACHE_VARIABLE, None)
    else:
        os.environ[CACHE_VARIABLE] = cache_dir
    for name in unimported:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]


CACHE_VARIABLE, BLOCKED_IMPORTS = "XFRAME_CACHE_DIR", ("tensorflow", "jax")


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One ONNX export cache folder per test module: its referee runs share the exports."""
    return str(tmp_path_factory.mktemp("onnx-cache"))


def run_once(**kwargs):
    key = tuple(sorted(kwargs.items()))
    if key not in _CACHE:
        _CACHE[key] = compare(CompareConfig(**kwargs))
    return _CACHE[key]


def refereed_pair(cache_dir, recipes=("pytorch:eval",), **pair):
    """A user's pair (comparator.config.pair.UserPair fields, x among them) compared on the
    recipes and refereed with ONNX Runtime, exports in cache_dir: its report and the
    referee's result. --output's hook stays on until the referee has exported."""
    from comparator.config.pair import UserPair
    from comparator.pipeline import compare_user_pair, referee

    outcome = compare_user_pair(UserPair(**pair), CompareConfig(
        model="user pair", batch_size=len(pair["x"]), recipes=tuple(recipes)))
    try:
        return outcome.report, referee(outcome, cache_dir=str(cache_dir))
    finally:
        outcome.release()


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
