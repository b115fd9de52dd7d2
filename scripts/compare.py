#!/usr/bin/env python
"""Compare freezing recipes of PyTorch and Keras 3 on one backbone: see README.md."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from comparator.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
