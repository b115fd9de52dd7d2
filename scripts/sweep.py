#!/usr/bin/env python
"""Run a sweep of comparisons from a TOML spec: see README.md."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from comparator.cli.sweep import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
