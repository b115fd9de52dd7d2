#!/usr/bin/env python
"""Validate a port layer by layer: see comparator/cli/validate_port.py and README.md."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from comparator.cli.validate_port import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
