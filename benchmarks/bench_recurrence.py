"""Recurrences: the O(N) LegS online projection, and sequential vs associative scans.

Groups:

* ``legs_online``: `hippox.hippo_project(f, 'legs', N)` over 1,000,000 samples
  (skewed O(N) schedule), final state and full sequence, against the same
  recurrence run one `legs_step` at a time in a `lax.scan` (time-major, also O(N)
  per step: an exclusive cumsum plus an associative scan over n).
* ``legs_vs_dense``: the same memory with a dense N × N LegS matrix per step
  (mat-vec + triangular solve, O(N²) per step, the baseline) at N = 1024.
* ``scan_diag``: `hippox.linear_recurrence` on a complex64 diagonal system
  (H channels × N states), ``method='sequential'`` (baseline) vs
  ``'associative'``, full state sequence.
* ``scan_vs_s5``: the same system, input projection given and no ``x0``: S5's own
  formulation in plain JAX (baseline: `jax.lax.associative_scan` over
  ``(Lambda_bar, Bu)`` elements with ``(a_i, b_i), (a_j, b_j) -> (a_j a_i, a_j b_i + b_j)``,
  one channel's ``(L, N)`` at a time under `jax.vmap`) vs
  ``linear_recurrence(method='associative')``.
* ``legs_online`` also has a ``loop floor`` row: a `lax.scan` whose step is one
  ``N``-vector multiply-add (``L + N`` steps, as many as the skewed schedule's sweeps);
  XLA's per-iteration cost on CPU bounds every sequential O(N) memory from below.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _harness import Row, measure
from jax import lax

import hippox


def _timemajor_legs(f: jax.Array, N: int) -> jax.Array:
    """The bilinear LegS memory, one structured `legs_step` per sample (final state)."""

    def step(c, inputs):
        f_k, k = inputs
        return hippox.legs_step(c, f_k, 1.0 / (k + 1.0), method="bilinear"), None

    c0 = jnp.zeros(N, f.dtype).at[0].set(f[0])
    c, _ = lax.scan(step, c0, (f[1:], jnp.arange(1, f.shape[0], dtype=f.dtype)))
    return c


def _dense_legs(f: jax.Array, N: int) -> jax.Array:
    """The bilinear LegS memory with a dense N × N matrix (mat-vec + triangular solve)."""
    A, B = hippox.transition("legs", N, dtype=f.dtype)
    eye = jnp.eye(N, dtype=f.dtype)

    def step(c, inputs):
        f_k, k = inputs
        dt = 1.0 / (k + 1.0)
        y = c + 0.5 * dt * (A @ c) + dt * B * f_k
        return jax.scipy.linalg.solve_triangular(eye - 0.5 * dt * A, y, lower=True), None

    c0 = jnp.zeros(N, f.dtype).at[0].set(f[0])
    c, _ = lax.scan(step, c0, (f[1:], jnp.arange(1, f.shape[0], dtype=f.dtype)))
    return c


def _s5_scan(Lambda_bar: jax.Array, Bu: jax.Array) -> jax.Array:
    """S5's associative scan (its formulation, plain JAX): ``(H, N)``, ``(H, L, N)`` -> states."""

    def op(e_i, e_j):
        a_i, b_i = e_i
        a_j, b_j = e_j
        return a_j * a_i, a_j * b_i + b_j

    def one(lam, bu):
        elements = lam * jnp.ones((bu.shape[0], lam.shape[0]), lam.dtype)
        return lax.associative_scan(op, (elements, bu))[1]

    return jax.vmap(one)(Lambda_bar, Bu)


def _loop_floor(f: jax.Array, N: int) -> jax.Array:
    """The cheapest sequential loop of the same length: one N-vector multiply-add per step."""
    steps = jnp.concatenate([f, jnp.zeros(N, f.dtype)])
    w = jnp.linspace(0.5, 0.9, N, dtype=f.dtype)
    x, _ = lax.scan(lambda x, fk: (w * x + fk, None), jnp.zeros(N, f.dtype), steps)
    return x


def _project(N: int, final_only: bool):
    return lambda f: hippox.hippo_project(f, "legs", N, final_only=final_only)


def run(quick: bool) -> list[Row]:
    rng = np.random.default_rng(0)
    rows: list[Row] = []

    # 1. LegS online projection over a long signal.
    L = 20_000 if quick else 1_000_000
    f = jnp.asarray(rng.standard_normal(L), jnp.float32)
    for N in (256, 64):
        params = f"N={N} L={L} final"
        rows.append(
            measure(
                "legs_online",
                "legs_step scan (time-major)",
                params,
                lambda f, N=N: _timemajor_legs(f, N),
                f,
                repeats=1,
                baseline=True,
            )
        )
        rows.append(
            measure(
                "legs_online",
                "hippo_project (skewed)",
                params,
                _project(N, True),
                f,
                repeats=3 if quick else 5,
            )
        )
        rows.append(
            measure(
                "legs_online",
                "loop floor (N-vector FMA scan)",
                params,
                lambda f, N=N: _loop_floor(f, N),
                f,
                repeats=3 if quick else 5,
            )
        )
        out_mib = L * N * 4 / 2**20
        rows.append(
            measure(
                "legs_online",
                "hippo_project (skewed)",
                f"N={N} L={L} full",
                _project(N, False),
                f,
                repeats=1 if not quick else 3,
                note=f"output {out_mib:.0f} MiB float32",
            )
        )

    # 2. Structured O(N) vs dense O(N^2) per step, same memory, N = 1024.
    N, L = (256, 2_000) if quick else (1024, 10_000)
    f = jnp.asarray(rng.standard_normal(L), jnp.float32)
    params = f"N={N} L={L} final"
    rows.append(
        measure(
            "legs_vs_dense",
            "dense matvec + triangular solve",
            params,
            lambda f: _dense_legs(f, N),
            f,
            repeats=1,
            baseline=True,
        )
    )
    rows.append(
        measure(
            "legs_vs_dense",
            "legs_step scan (time-major)",
            params,
            lambda f: _timemajor_legs(f, N),
            f,
            repeats=3,
        )
    )
    rows.append(
        measure("legs_vs_dense", "hippo_project (skewed)", params, _project(N, True), f, repeats=3)
    )

    # 3. Sequential vs associative scan, diagonal complex64 system.
    H, N = (16, 64) if quick else (256, 64)
    lengths = (1024,) if quick else (1024, 4096, 16384)
    lam = rng.uniform(0.9, 0.999, (H, N)) * np.exp(1j * rng.uniform(-np.pi, np.pi, (H, N)))
    Ab = jnp.asarray(lam, jnp.complex64)
    for i, L in enumerate(lengths):
        # complex64 drawn on the device: no float64 host copy of the input
        Bu = jax.random.normal(jax.random.key(i), (H, L, N), jnp.complex64)
        params = f"H={H} N={N} L={L}"
        for method in ("sequential", "associative"):
            rows.append(
                measure(
                    "scan_diag",
                    method,
                    params,
                    lambda A, b, m=method: hippox.linear_recurrence(A, b, diagonal=True, method=m),
                    Ab,
                    Bu,
                    repeats=3,
                    baseline=method == "sequential",
                )
            )
        rows.append(
            measure(
                "scan_vs_s5",
                "S5 associative_scan",
                params,
                _s5_scan,
                Ab,
                Bu,
                repeats=3,
                baseline=True,
            )
        )
        rows.append(
            measure(
                "scan_vs_s5",
                "linear_recurrence associative",
                params,
                lambda A, b: hippox.linear_recurrence(A, b, diagonal=True, method="associative"),
                Ab,
                Bu,
                repeats=3,
            )
        )
        del Bu
    return rows
