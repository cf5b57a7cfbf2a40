"""Rendered pages of immutable views, kept per worker process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, NamedTuple, TypeVar

V = TypeVar("V")


class CachedPage(NamedTuple):
    """One rendered page of a view, with what its audit entry and headers need."""

    body: bytes
    rows: int
    row_ids: str  # which rows of the view it holds (gateway/audit/rowset.py)
    next_cursor: str | None  # None on the last page
    sha256: str  # of the body: the audit entry carries it


class PageCache(Generic[V]):
    """A small LRU shared by the threads of one worker: rendered pages of immutable views (and
    what is derived from them alone, such as their Link headers)."""

    def __init__(self, capacity: int = 512) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._pages: OrderedDict[Hashable, V] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            found = self._pages.get(key)
            if found is not None:
                self._pages.move_to_end(key)
            return found

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._pages[key] = value
            while len(self._pages) > self._capacity:
                self._pages.popitem(last=False)

    def get_or_put(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value under `key`, made (outside the lock) and kept when it is missing."""
        found = self.get(key)
        if found is None:
            found = make()
            self.put(key, found)
        return found
