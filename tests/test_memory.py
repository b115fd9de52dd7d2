"""Garbage collection around a comparison (comparator.memory)."""

import gc

import pytest

from comparator.memory import collections_paused, long_lived_objects_frozen


class _Node:
    def __init__(self):
        self.me = self  # a reference cycle: only a garbage collection frees it


@pytest.fixture
def nothing_frozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_nested_blocks_unfreeze_only_when_the_outermost_ends(nothing_frozen):
    with long_lived_objects_frozen():
        outer = gc.get_freeze_count()
        assert outer > 0
        with long_lived_objects_frozen():
            assert gc.get_freeze_count() >= outer
        assert gc.get_freeze_count() >= outer  # the inner block's end keeps them frozen
    assert gc.get_freeze_count() == 0


def test_a_cycle_made_in_the_block_is_still_collected(nothing_frozen):
    with long_lived_objects_frozen():
        _Node()
        assert gc.collect() >= 1
        kept = _Node()
        del kept
        with long_lived_objects_frozen():
            pass
        # Made before the inner block started: frozen until the outer one ends.
        assert gc.collect() == 0
    assert gc.collect() >= 1


@pytest.mark.parametrize("enabled", [True, False])
def test_collections_are_paused_in_the_block_and_restored_after(enabled):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with collections_paused():
            assert not gc.isenabled()
        assert gc.isenabled() == enabled
        with pytest.raises(RuntimeError), collections_paused():
            raise RuntimeError("a failed import")
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_a_comparison_leaves_nothing_frozen_and_collections_on(tiny_classify):
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()
