"""`python -m comparator.sweep.cell ARGS`: one sweep cell, i.e. `compare.py ARGS` in a process
of its own (a Keras backend is chosen once per process)."""

import os
import sys

if __name__ == "__main__":
    from comparator.cli.compare import main

    code = main()
    # As scripts/compare.py: every file is written by now; the interpreter's teardown of
    # the frameworks adds time and nothing else.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
