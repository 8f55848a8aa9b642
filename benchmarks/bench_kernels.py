"""Benchmarks of the SSM convolution kernels and the FFT convolution.

Groups (``ratio`` in the table = baseline median / row median, same run):

* ``kernel_diag``: `hippox.kernel_diag` (S4D Vandermonde, zoh) vs `hippox.kernel_naive`
  on the same diagonal system (a ``lax.scan`` of L elementwise steps, the baseline).
* ``kernel_dplr``: `hippox.kernel_dplr` (S4 Cauchy + Woodbury + irfft, rank 1,
  ``conj_sym=True``) vs `hippox.kernel_naive` on the dense discretised matrix of the same
  system, the conjugate-closed ``2M × 2M`` one (the baseline).
  Both kernel groups use H = 256 channels and N = 64 (the conjugate-symmetric half:
  M = 32 complex modes), L in {1024, 4096, 16384}, complex64/float32.
* ``s4d_layer``: one S4D layer (B = 8, H = 256, N = 64, L = 4096) in convolution mode
  (`kernel_diag` + `causal_conv`, and `causal_conv` alone with a precomputed kernel) vs
  the sequential recurrence (``lax.scan`` over L of the diagonal system, with the output
  ``y = 2 Re(C x) + D u``; the baseline).

``quick=True`` runs the same groups at small sizes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from _harness import Row, measure

import hippox
from hippox._src import dplr


def _system(H: int, M: int, rank: int, seed: int = 0):
    """S4D-Lin-like diagonal system and a DPLR one (float32 / complex64 on the device)."""
    rng = np.random.default_rng(seed)
    Lam = -0.5 + 1j * np.pi * np.arange(M)
    Lam = np.broadcast_to(Lam, (H, M)) + 0.01 * rng.standard_normal((H, M))
    cn = lambda *s: (rng.standard_normal(s) + 1j * rng.standard_normal(s)) / np.sqrt(2)  # noqa: E731
    B, C = cn(H, M), cn(H, M)
    P = 0.3 * cn(rank, H, M)
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), H))
    c64 = lambda x: jnp.asarray(x, jnp.complex64)  # noqa: E731
    return c64(Lam), c64(P), c64(B), c64(C), jnp.asarray(dt, jnp.float32)


def _dense_dplr(Lam, P, B, dt):
    """Dense bilinear (Ab, Bb) of the conjugate-closed A = diag(Λ_full) - P_fullᵀ conj(P_full).

    The system `kernel_dplr` computes with ``conj_sym=True``: ``x_full = [x, conj(x)]``.
    """
    Lam, P, B = dplr.closed_modes(Lam, P, B)
    return hippox.discretize(dplr.dplr_matrix(Lam, P), B, dt, method="bilinear")


def _naive_row(group, label, params, L, naive_L, args, repeats) -> Row:
    """The `kernel_naive` baseline, timed at ``naive_L <= L`` and scaled linearly to L."""
    scaled = naive_L < L
    note = f"timed at L={naive_L}, scaled ×{L // naive_L} (linear in L)" if scaled else "lax.scan"
    r = measure(
        group,
        label,
        params,
        functools.partial(hippox.kernel_naive, L=naive_L),
        *args,
        repeats=repeats,
        baseline=True,
        note=note,
    )
    if scaled:
        r.median_s *= L / naive_L
        r.memory_bytes = None
    return r


def _kernel_groups(H, N, lengths, naive_max_L, repeats) -> list[Row]:
    diag_rows: list[Row] = []
    dplr_rows: list[Row] = []
    M = N // 2
    Lam, P, B, C, dt = _system(H, M, rank=1)
    Ab_d, Bb_d = hippox.discretize_diag(Lam, B, dt, method="zoh")
    Ab_p, Bb_p = jax.jit(_dense_dplr)(Lam, P, B, dt)
    (C_full,) = dplr.closed_modes(C)
    for L in lengths:
        params = f"H={H} N={N} (M={M}) L={L}"
        naive_L = min(L, naive_max_L)
        # diagonal
        diag_rows.append(
            _naive_row(
                "kernel_diag",
                "kernel_naive (diag scan)",
                params,
                L,
                naive_L,
                (Ab_d, Bb_d, C),
                repeats,
            )
        )
        diag_rows.append(
            measure(
                "kernel_diag",
                "kernel_diag (zoh)",
                params,
                functools.partial(hippox.kernel_diag, L=L),
                Lam,
                B,
                C,
                dt,
                repeats=repeats,
            )
        )
        # DPLR
        dplr_rows.append(
            _naive_row(
                "kernel_dplr",
                "kernel_naive (dense scan)",
                params,
                L,
                naive_L,
                (Ab_p, Bb_p, C_full),
                max(1, repeats // 2),
            )
        )
        dplr_rows.append(
            measure(
                "kernel_dplr",
                "kernel_dplr (rank 1)",
                params,
                functools.partial(hippox.kernel_dplr, L=L),
                Lam,
                P,
                B,
                C,
                dt,
                repeats=repeats,
            )
        )
    return diag_rows + dplr_rows


def _layer_group(Bs, H, N, L, repeats) -> list[Row]:
    M = N // 2
    Lam, _, B, C, dt = _system(H, M, rank=1, seed=1)
    D = jnp.asarray(np.random.default_rng(2).standard_normal(H), jnp.float32)
    u = jnp.asarray(np.random.default_rng(3).standard_normal((Bs, H, L)), jnp.float32)
    params = f"B={Bs} H={H} N={N} L={L}"

    def recurrence(lam, b, c, d, dt, u):
        Ab, Bb = hippox.discretize_diag(lam, b, dt, method="zoh")

        def step(x, uk):  # x (B, H, M), uk (B, H)
            x = Ab * x + Bb * uk[..., None].astype(Bb.dtype)
            return x, 2 * jnp.sum(c * x, axis=-1).real + d * uk

        x0 = jnp.zeros((*u.shape[:-1], lam.shape[-1]), Ab.dtype)
        _, ys = jax.lax.scan(step, x0, jnp.moveaxis(u, -1, 0))
        return jnp.moveaxis(ys, 0, -1)

    def conv_layer(lam, b, c, d, dt, u):
        return hippox.causal_conv(u, hippox.kernel_diag(lam, b, c, dt, L), D=d)

    K = jax.jit(lambda *a: hippox.kernel_diag(*a, L))(Lam, B, C, dt)
    args = (Lam, B, C, D, dt, u)
    return [
        measure(
            "s4d_layer",
            "recurrence (lax.scan)",
            params,
            recurrence,
            *args,
            repeats=repeats,
            baseline=True,
        ),
        measure(
            "s4d_layer", "kernel_diag + causal_conv", params, conv_layer, *args, repeats=repeats
        ),
        measure(
            "s4d_layer",
            "causal_conv (kernel given)",
            params,
            lambda u, k, d: hippox.causal_conv(u, k, D=d),
            u,
            K,
            D,
            repeats=repeats,
        ),
    ]


def run(quick: bool) -> list[Row]:
    if quick:
        return _kernel_groups(32, 16, (256, 1024), 1024, 3) + _layer_group(2, 32, 16, 512, 3)
    return _kernel_groups(256, 64, (1024, 4096, 16384), 16384, 3) + _layer_group(
        8, 256, 64, 4096, 3
    )
