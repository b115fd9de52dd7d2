"""adapters.keras.worker as the client starts it (`python -m tests.torch_free_worker DIR`), which
fails at its end where torch was imported, naming the project's lines that imported it.

tests/test_user_pair_worker_imports.py points the client at this module: a user pair's worker
on TensorFlow or JAX need not import torch (its import alone is 1.5 s of a TensorFlow worker's
start, docs/own-models.md), and nothing but this tells from outside whether it did."""

import importlib.abc
import os
import sys
import traceback

EXIT_TORCH_IMPORTED = 70
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _FirstTorchImport(importlib.abc.MetaPathFinder):
    """Keeps where torch was first imported from (the project's own frames), and finds
    nothing itself: the import goes on as usual."""

    def __init__(self):
        self.by = None

    def find_spec(self, name, path=None, target=None):
        if name == "torch" and self.by is None:
            frames = [f for f in traceback.extract_stack()[:-1]
                      if f.filename.startswith(ROOT) and "importlib" not in f.filename]
            self.by = " <- ".join(f"{os.path.relpath(f.filename, ROOT)}:{f.lineno}"
                                  for f in reversed(frames[-4:])) or "outside the project"
        return None


def main(argv: list[str]) -> int:
    watch = _FirstTorchImport()
    sys.meta_path.insert(0, watch)
    from adapters.keras import worker

    code = worker.main(argv)
    if "torch" in sys.modules:
        print(f"torch was imported by {watch.by}", file=sys.stderr, flush=True)
        return EXIT_TORCH_IMPORTED
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
