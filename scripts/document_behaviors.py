#!/usr/bin/env python
"""Regenerate docs/behaviors.md from real runs (CPU, fixed seeds)."""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools.behaviors import generate  # noqa: E402
from comparator.io import write_atomic  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "behaviors.md"))
    args = parser.parse_args()
    write_atomic(args.output, generate())
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
