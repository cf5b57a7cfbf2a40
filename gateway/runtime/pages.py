"""Rendered pages of immutable views, kept per worker process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable


class PageCache:
    """Rendered pages of immutable views (a small LRU shared by the threads of one worker)."""

    def __init__(self, capacity: int = 512) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._pages: OrderedDict[Hashable, tuple[bytes, int]] = OrderedDict()

    def get(self, key: Hashable) -> tuple[bytes, int] | None:
        with self._lock:
            found = self._pages.get(key)
            if found is not None:
                self._pages.move_to_end(key)
            return found

    def put(self, key: Hashable, value: tuple[bytes, int]) -> None:
        with self._lock:
            self._pages[key] = value
            while len(self._pages) > self._capacity:
                self._pages.popitem(last=False)
