"""A least-recently-used host cache bounded in bytes, shared by hippox's host builders.

hippox builds HiPPO matrices and their decompositions once in float64 NumPy and caches
them on their static arguments (Flax linen re-runs initializers on every trace). A cache
bounded by entry count is unbounded in memory: one ``nplr('legs', 2048)`` holds ~70 MB,
so nine sizes held ~600 MB. Here every cached result is charged its ``nbytes`` against one
budget shared by all host caches, `BUDGET_BYTES` (256 MiB by default); the least
recently used entries are dropped first, and a result larger than the budget is returned
without being cached. Set `BUDGET_BYTES` (e.g. ``hippox._src.cache.BUDGET_BYTES = 2**30``)
to trade memory for recomputation; `clear` empties every cache.

Freed temporaries: with glibc's malloc the large temporaries of a host build (the
eigensolver's ``N × N`` matrices) were kept in the heap after being freed (its mmap
threshold grows after the first large free), so resident memory grew past the cache's
bound: ``nplr`` for N = 512…1024 over four measures, twice, held a 256 MiB cache at
+572 MiB RSS. After computing a result of at least `TRIM_BYTES`, the cache therefore
returns free heap memory to the OS (`trim_heap`, ``malloc_trim(0)``; a no-op without
glibc). Measured with a 32 MiB budget: +137 MiB RSS before, +50 MiB after (the
cache plus one-off library memory), flat over repeated sweeps.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import functools
import sys
import threading
from typing import NamedTuple

import numpy as np

#: Bytes all host caches together may hold (NumPy ``nbytes`` of the cached results).
BUDGET_BYTES = 256 * 2**20

#: A computed result at least this large (bytes) is followed by `trim_heap`.
TRIM_BYTES = 2**20

_lock = threading.RLock()
_entries: collections.OrderedDict = collections.OrderedDict()  # (fn id, key) -> (value, bytes)
_total = 0


class CacheInfo(NamedTuple):
    """Statistics of one cached function (as `functools.lru_cache`'s, plus bytes)."""

    hits: int
    misses: int
    maxsize: int | None
    currsize: int
    nbytes: int


def nbytes(value) -> int:
    """NumPy bytes held by ``value`` (arrays inside tuples, lists and dicts are summed)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    return 0


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another C library or platform)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def trim_heap() -> bool:
    """Returns free heap memory to the OS (glibc ``malloc_trim(0)``); False if unavailable."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def _evict(budget: int) -> None:
    global _total
    while _entries and _total > budget:
        _, (_, size) = _entries.popitem(last=False)
        _total -= size


def total_bytes() -> int:
    """Bytes all host caches hold together (at most `BUDGET_BYTES`)."""
    with _lock:
        return _total


def clear() -> None:
    """Empties every host cache."""
    global _total
    with _lock:
        _entries.clear()
        _total = 0


def host_cache(fn):
    """Decorator: memoise ``fn`` (hashable arguments) within `BUDGET_BYTES`.

    The wrapper has ``cache_info()``, ``cache_clear()`` (this function's entries) and
    ``__wrapped__``, like `functools.lru_cache`. Results must be treated as read-only.
    """
    stats = {"hits": 0, "misses": 0}
    tag = object()

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        global _total
        key = (tag, args, tuple(sorted(kwargs.items())))
        with _lock:
            hit = _entries.get(key)
            if hit is not None:
                _entries.move_to_end(key)
                stats["hits"] += 1
                return hit[0]
            stats["misses"] += 1
        value = fn(*args, **kwargs)
        size = nbytes(value)
        if size >= TRIM_BYTES:  # the build's temporaries are freed by now
            trim_heap()
        with _lock:
            if size <= BUDGET_BYTES and key not in _entries:
                _entries[key] = (value, size)
                _total += size
                _evict(BUDGET_BYTES)
        return value

    def cache_info() -> CacheInfo:
        with _lock:
            mine = [size for k, (_, size) in _entries.items() if k[0] is tag]
        return CacheInfo(stats["hits"], stats["misses"], None, len(mine), sum(mine))

    def cache_clear() -> None:
        global _total
        with _lock:
            for k in [k for k in _entries if k[0] is tag]:
                _total -= _entries.pop(k)[1]
            stats["hits"] = stats["misses"] = 0

    wrapper.cache_info = cache_info
    wrapper.cache_clear = cache_clear
    return wrapper
