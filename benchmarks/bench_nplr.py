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


def _rss_mib() -> float:
    with open("/proc/self/status") as f:  # Linux
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_growth(sizes, measures, sweeps: int, budget_mib: int | None = None) -> None:
    """Resident memory after repeated `hippox.nplr` sweeps (run in a fresh process).

    Each sweep calls ``nplr(measure, N)`` for every size and measure and drops the
    result; the host cache keeps what fits its byte budget. Prints the cache's bytes and
    the RSS growth over the start (after one small warm-up call) per sweep.
    """
    import gc

    import hippox
    from hippox._src import cache

    if budget_mib is not None:
        cache.BUDGET_BYTES = budget_mib << 20
    hippox.nplr("legs", 64)
    base = _rss_mib()
    print(f"start: RSS {base:.0f} MiB (cache budget {cache.BUDGET_BYTES >> 20} MiB)")
    t0 = time.perf_counter()
    for sweep in range(sweeps):
        for N in sizes:
            for m in measures:
                out = hippox.nplr(m, N, rank=2 if m == "legt" else 1)
                del out
                gc.collect()
        held = cache.total_bytes() / 2**20
        rss = _rss_mib()
        print(
            f"after sweep {sweep + 1}: cache {held:.0f} MiB, RSS {rss:.0f} MiB "
            f"(+{rss - base:.0f}), {time.perf_counter() - t0:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    # RSS growth of repeated nplr calls, e.g. (N = 512..1024, 4 measures, 2 sweeps):
    #   python benchmarks/bench_nplr.py 512,640,768,896,1024 legs,legt,lagt,fout 2 [budget MiB]
    import sys

    rss_growth(
        [int(n) for n in sys.argv[1].split(",")],
        sys.argv[2].split(","),
        int(sys.argv[3]),
        int(sys.argv[4]) if len(sys.argv) > 4 else None,
    )
