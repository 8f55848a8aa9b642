"""The host cache returns freed heap memory after a large build (issue 10, resources)."""

from __future__ import annotations

import sys

import numpy as np

from hippox._src import cache


def test_trim_after_large_build_only(monkeypatch):
    calls = []
    monkeypatch.setattr(cache, "trim_heap", lambda: calls.append(1) or True)
    big = cache.host_cache(lambda n: np.zeros(n))
    small = cache.host_cache(lambda n: np.zeros(n))
    try:
        before = cache.total_bytes()
        big(cache.TRIM_BYTES // 8)  # exactly TRIM_BYTES: trimmed
        assert calls == [1]
        assert cache.total_bytes() == before + cache.TRIM_BYTES
        big(cache.TRIM_BYTES // 8)  # a hit computes nothing: no trim
        small(cache.TRIM_BYTES // 8 - 1)
        assert calls == [1]
    finally:
        big.cache_clear()
        small.cache_clear()


def test_trim_heap_runs():
    """On Linux with glibc ``malloc_trim`` is found and runs; elsewhere it is a no-op."""
    done = cache.trim_heap()
    assert isinstance(done, bool)
    if sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver()):
        assert done
