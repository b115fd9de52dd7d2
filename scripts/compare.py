#!/usr/bin/env python
"""Compare freezing recipes of PyTorch and Keras 3 on one backbone: see README.md."""

import atexit
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from comparator.cli.compare import main  # noqa: E402

if __name__ == "__main__":
    code = main()
    # Every file is written and closed by now. The interpreter's own teardown of torch,
    # Keras and ONNX Runtime took about a second more (measured) and does nothing the
    # user needs, so the process ends here.
    # Exit-time cleanups still run (matplotlib removes its temporary config folder).
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # closed or broken: the exit code still tells
            pass
    os._exit(code)
