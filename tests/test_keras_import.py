"""How adapters.keras.backend imports Keras: without matplotlib, which Keras 3 would import
for plots nothing here draws, and with matplotlib importable as usual afterwards. Each case
runs in a fresh process, since Keras is imported once per process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str) -> str:
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_keras_is_imported_without_matplotlib_which_imports_afterwards():
    out = _run("""
        import sys
        from adapters.keras.backend import keras
        print("matplotlib" in sys.modules)
        import matplotlib.pyplot as plt
        figure = plt.figure()
        print(type(figure).__name__, keras.backend.backend())
    """)
    assert out.splitlines() == ["False", "Figure torch"]


def test_matplotlib_imported_first_stays_as_it_is():
    out = _run("""
        import matplotlib.pyplot as plt
        from adapters.keras.backend import keras
        from keras.src.visualization import plot_image_gallery
        print(plot_image_gallery.plt is plt)
    """)
    assert out == "True"


def test_a_keras_that_needs_matplotlib_to_import_is_imported_with_it():
    # A stand-in for such a Keras: its import fails while matplotlib is hidden.
    out = _run("""
        import sys

        class NeedsMatplotlib:
            @staticmethod
            def find_spec(name, path=None, target=None):
                if name == "keras" and "matplotlib" in sys.modules \\
                        and sys.modules["matplotlib"] is None:
                    raise ImportError("No module named 'matplotlib'")
                return None

        sys.meta_path.insert(0, NeedsMatplotlib)
        from adapters.keras.backend import keras
        print(keras.backend.backend(), "matplotlib" in sys.modules)
    """)
    assert out == "torch True"
