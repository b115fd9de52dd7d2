"""Sweeps: many comparisons, each in its own process, locally or on a Ray cluster.

A spec (TOML) lists axes whose product is the cells; every cell is one `compare.py`
run writing its JSON report; `sweep.json` indexes them and a summary turns them into
the behaviour matrix. Nothing here imports a framework or Ray at module level.
"""

from comparator.sweep.spec import Cell, Spec, load_spec

__all__ = ["Cell", "Spec", "load_spec"]
