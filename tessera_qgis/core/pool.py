"""One opened store per store reference, shared by everything in a process that reads it
(every map layer and its clones, the dialog, the Browser, Processing)."""
from __future__ import annotations

import threading
from typing import Callable

from .sources import StoreOptions
from .store import TesseraStore, open_store
from .storeref import StoreRef


class StorePool:
    """Opened stores keyed by their normalised StoreRef. Opening happens outside the lock;
    two threads asking for the same store at once open it once."""

    def __init__(self) -> None:
        self._stores: dict[StoreRef, TesseraStore] = {}
        self._opening: dict[StoreRef, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, ref: StoreRef, options: Callable[[StoreRef], StoreOptions] | None = None,
            cancel: Callable[[], bool] | None = None) -> TesseraStore:
        """The opened store for `ref`; `options(ref)` gives the fetch options when it must
        be opened (default: the reference's own, over StoreOptions' defaults); `cancel()`
        may stop the opening."""
        with self._lock:
            store = self._stores.get(ref)
            if store is not None:
                return store
            gate = self._opening.setdefault(ref, threading.Lock())
        with gate:
            with self._lock:
                store = self._stores.get(ref)
            if store is not None:
                return store
            opts = options(ref) if options is not None else ref.options()
            store = open_store(ref.url, opts, cancel=cancel)
            with self._lock:
                self._stores[ref] = store
                self._opening.pop(ref, None)
            return store

    def opened(self, ref: StoreRef) -> TesseraStore | None:
        """The store if it is open already (never opens it)."""
        with self._lock:
            return self._stores.get(ref)

    def clear(self) -> None:
        with self._lock:
            self._stores.clear()
