#!/usr/bin/env python
"""Compare freezing recipes of PyTorch and Keras 3 on one backbone: see README.md."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from comparator.cli.compare import main  # noqa: E402

if __name__ == "__main__":
    code = main()
    # Every file is written and closed by now. The interpreter's own teardown of torch,
    # Keras and ONNX Runtime took about a second more (measured) and does nothing the
    # user needs, so the process ends here.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
