"""Keep garbage collection cheap while a comparison runs.

With Keras and torchvision loaded, a full collection walks every long-lived object
(0.2 s each, measured on DenseNet121). Those objects live as long as the comparison,
so none is collected while the frameworks are imported, and from then on, through the
recipes and the referee, they are frozen out of collections.

Returning freed heap to the OS between phases (gc plus malloc_trim) was tried and
removed: for DenseNet121 at 224 px, batch 8 (no referee) the comparison took 30.7 s
with it and 26.0 s without, as every pass after a trim faults its pages in again, and
the peak resident memory was the same (3.9 GiB): the peak is one Keras train step,
not phases stacking up.
"""

from __future__ import annotations

import contextlib
import gc


_frozen_blocks = 0  # long_lived_objects_frozen blocks now open


@contextlib.contextmanager
def long_lived_objects_frozen():
    """Within the block, the objects that exist when it starts (frameworks, models, their
    weights) are left out of garbage collections, so a collection scans only what the
    block allocated.

    Blocks nest: each one freezes what exists when it starts, and only the outermost one
    unfreezes, so the command line keeps the models frozen through the referee and the
    reports (one full collection there walked them for 0.19 s).

    No collection runs first: it walked every object of the frameworks for 0.21 s to find
    334 unreachable ones, 1.6 MB in all (DenseNet121, warm default command, 2026-11-27),
    which stay frozen until the block ends and are collected afterwards."""
    global _frozen_blocks
    gc.freeze()
    _frozen_blocks += 1
    try:
        yield
    finally:
        _frozen_blocks -= 1
        if not _frozen_blocks:
            gc.unfreeze()


@contextlib.contextmanager
def collections_paused():
    """No garbage collection within the block: for importing the frameworks, whose objects
    live as long as the process. Their imports set off four full collections in the default
    command, 0.29 s together, which found 73 unreachable objects (2026-11-28)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
