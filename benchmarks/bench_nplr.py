"""Host cost of `hippox.nplr` (float64 NumPy eigendecomposition) as N grows.

`nplr` runs once per model (its result is cached), on the host, so it is timed
directly with `time.perf_counter` on the uncached internal — no jit, no device. The
dense Hermitian eigensolver dominates, so the cost should grow as ~N³: the note of
each row gives the log-log slope against the previous N. ``fout`` also exercises the
null-space path (an SVD of the skew part for its zero-eigenvalue pair).
"""

from __future__ import annotations

import math
import statistics
import time

from _harness import Row

from hippox._src import decompositions

GROUP = "nplr (host float64)"


def _time(measure: str, N: int, repeats: int) -> float:
    compute = decompositions.nplr_host.__wrapped__  # bypass the lru_cache
    if N <= 512:
        compute(measure, N, 1, ())  # warm-up (BLAS/LAPACK initialisation, page faults)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        compute(measure, N, 1, ())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(quick: bool = False) -> list[Row]:
    sizes = [64 * 2**i for i in range(4 if quick else 7)]  # 64 ... 512 (quick) or 4096
    rows: list[Row] = []
    for measure in ("legs", "fout"):
        previous = None
        base = None
        for N in sizes:
            repeats = 5 if N <= 512 else (3 if N <= 1024 else 1)
            t = _time(measure, N, repeats)
            base = base if base is not None else t
            note = f"{t / base:.1f}× the N={sizes[0]} time"
            if previous is not None:
                slope = math.log(t / previous[1]) / math.log(N / previous[0])
                note += f"; log-log slope vs N={previous[0]}: {slope:.2f}"
            rows.append(
                Row(
                    GROUP,
                    f"nplr({measure!r})",
                    f"N={N}",
                    t,
                    0.0,
                    None,
                    baseline=(measure == "legs" and N == sizes[0]),
                    note=note,
                )
            )
            previous = (N, t)
    return rows
