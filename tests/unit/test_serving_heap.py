"""settle_heap: what is alive after start-up is kept out of every later full collection."""

from __future__ import annotations

import gc
import weakref

from kubeline.serving.runtime import settle_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_settle_heap_frees_the_garbage_and_freezes_what_is_alive() -> None:
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage
    kept = [Node() for _ in range(1000)]
    try:
        settle_heap()
        assert gone() is None  # collected first, not frozen forever
        assert gc.get_freeze_count() >= len(kept)
        # A full collection no longer walks them: they are in no generation.
        assert not any(o is kept[0] for o in gc.get_objects())
    finally:
        gc.unfreeze()
