"""Dedupe memory that cannot grow without bound: the last `limit` keys seen, the oldest forgotten first."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class RecentKeys:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def add(self, key: Hashable) -> None:
        self._keys[key] = None
        while len(self._keys) > self.limit:
            self._keys.popitem(last=False)
