"""Timing harness shared by the benchmark modules.

Each benchmark module ``benchmarks/bench_*.py`` defines ``run(quick: bool) -> list[Row]``.
`measure` jit-compiles a function once (compile time reported separately), runs it
``repeats`` times, and reports the median wall time and XLA's memory analysis of the
compiled program (arguments + outputs + temporaries: the peak the program needs).
Ratios are computed in `benchmarks/run.py` against the row of the same group whose
``baseline`` flag is set, so every ratio compares numbers measured in the same run.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable

import jax


@dataclasses.dataclass
class Row:
    group: str  # rows of one group are compared with each other
    name: str  # method name, e.g. "kernel_dplr"
    params: str  # e.g. "H=256 N=64 L=4096"
    median_s: float
    compile_s: float
    memory_bytes: int | None
    baseline: bool = False  # the reference the group's ratios are taken against
    note: str = ""


def _block(x):
    return jax.block_until_ready(x)


def measure(
    group: str,
    name: str,
    params: str,
    fn: Callable,
    *args,
    repeats: int = 5,
    baseline: bool = False,
    note: str = "",
    static_argnums=(),
) -> Row:
    """Compiles ``fn`` with jit, then times ``repeats`` calls; returns a `Row`."""
    jitted = jax.jit(fn, static_argnums=static_argnums)
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    dyn_args = [a for i, a in enumerate(args) if i not in static_argnums]
    memory = None
    try:
        ma = compiled.memory_analysis()
        if ma is not None:
            memory = int(
                ma.argument_size_in_bytes + ma.output_size_in_bytes + ma.temp_size_in_bytes
            )
    except Exception:  # noqa: BLE001 - memory analysis is best effort on some backends
        memory = None
    _block(compiled(*dyn_args))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _block(compiled(*dyn_args))
        times.append(time.perf_counter() - t0)
    return Row(group, name, params, statistics.median(times), compile_s, memory, baseline, note)


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"
