"""Benchmarks of the SSM convolution kernels and the FFT convolution.

Groups (``ratio`` in the table = baseline median / row median, same run):

* ``kernel_diag``: `hippox.kernel_diag` (S4D Vandermonde, zoh) vs `hippox.kernel_naive`
  on the same diagonal system (a ``lax.scan`` of L elementwise steps, the baseline).
* ``kernel_dplr``: `hippox.kernel_dplr` (S4 Cauchy + Woodbury + irfft, rank 1,
  ``conj_sym=True``) vs `hippox.kernel_naive` on the dense discretised matrix of the same
  system, the conjugate-closed ``2M × 2M`` one (the baseline).
  Both kernel groups use H = 256 channels and N = 64 (the conjugate-symmetric half:
  M = 32 complex modes), L in {1024, 4096, 16384}, complex64/float32.
* ``kernel_dplr_fix``: `hippox.kernel_dplr` against its own formulation before the
  float32 accuracy fix of issue 10 (``kernel_dplr_previous``: plain Woodbury, no pole
  taken out of the Cauchy sums; the baseline), rank 1, at H = 64, N = 64, L = 1024 and
  H = 256, N = 64, L = 4096.
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


def _woodbury_previous(k, b):
    """``k00 - b k01 (I + b k11)^{-1} k10`` for rank 1 (the plain Woodbury formula)."""
    k00, k01, k10, k11 = k[..., 0, 0], k[..., 0, 1], k[..., 1, 0], k[..., 1, 1]
    return k00 - b * k01 * k10 / (1.0 + b * k11)


def kernel_dplr_previous(Lam, P, B, Ct, dt, L):
    """`kernel_dplr` as it was before the float32 accuracy fix (issue 10), the baseline.

    Rank 1, ``conj_sym=True``, ``(H, M)`` complex64 inputs, ``P`` ``(1, H, M)``: the
    Cauchy sums over all modes at z and conj(z), the plain Woodbury correction (no pole
    taken out), nodes in chunks of the 32 MiB budget, irfft.
    """
    rows, M = Lam.shape
    left = jnp.stack([Ct, P[0].conj()], axis=1)
    right = jnp.stack([B, P[0]], axis=1)
    v = (left[:, :, None] * right[:, None]).reshape(rows, 4, M)
    nf = L // 2 + 1
    zc = min(nf, max(1, (32 << 20) // 8 // (rows * (2 * M + 12))))
    nchunk = -(-nf // zc)
    theta = -2.0 * np.pi * np.arange(nf) / L
    theta = np.concatenate([theta, np.zeros(nchunk * zc - nf)]).reshape(nchunk, zc)
    nodes = (
        jnp.asarray(-2j * np.sin(theta / 2), jnp.complex64),
        jnp.asarray(np.cos(theta / 2), jnp.float32),
        jnp.asarray(np.exp(-0.5j * theta), jnp.complex64),
    )

    def spectrum(node):
        a, c, phase = node
        b = dt[:, None] * c
        bl = b[..., None] * Lam[:, None, :]
        shape = (rows, a.shape[0], 2, 2)
        k_z = jnp.einsum("hzm,hvm->hzv", 1.0 / (a[None, :, None] - bl), v).reshape(shape)
        k_c = jnp.einsum("hzm,hvm->hzv", 1.0 / (-a[None, :, None] - bl), v).reshape(shape)
        return (dt[:, None] * phase) * _woodbury_previous(k_z + k_c.conj(), b)

    spec = jax.lax.map(spectrum, nodes)  # (nchunk, rows, zc)
    spec = jnp.moveaxis(spec, 0, 1).reshape(rows, nchunk * zc)[:, :nf]
    return jnp.fft.irfft(spec, n=L, axis=-1)


def _dplr_fix_group(shapes, repeats) -> list[Row]:
    """`kernel_dplr` now against its formulation before the float32 fix, same run."""
    rows = []
    for H, N, L in shapes:
        Lam, P, B, C, dt = _system(H, N // 2, rank=1, seed=4)
        params = f"H={H} N={N} L={L}"
        args = (Lam, P, B, C, dt)
        rows.append(
            measure(
                "kernel_dplr_fix",
                "previous (plain Woodbury)",
                params,
                functools.partial(kernel_dplr_previous, L=L),
                *args,
                repeats=repeats,
                baseline=True,
            )
        )
        rows.append(
            measure(
                "kernel_dplr_fix",
                "kernel_dplr (pole taken out)",
                params,
                functools.partial(hippox.kernel_dplr, L=L),
                *args,
                repeats=repeats,
            )
        )
    return rows


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


def run(quick: bool, only_fix: bool = False) -> list[Row]:
    if quick:
        fix = _dplr_fix_group([(32, 16, 1024)], 3)
        return (
            fix
            if only_fix
            else _kernel_groups(32, 16, (256, 1024), 1024, 3)
            + fix
            + (_layer_group(2, 32, 16, 512, 3))
        )
    fix = _dplr_fix_group([(64, 64, 1024), (256, 64, 4096)], 5)
    if only_fix:
        return fix
    return (
        _kernel_groups(256, 64, (1024, 4096, 16384), 16384, 3)
        + fix
        + _layer_group(8, 256, 64, 4096, 3)
    )


def _cpu_ms(fn, *args, repeats: int = 7) -> float:
    """Median CPU time (``time.process_time``) of a jitted call, in ms: robust to a loaded
    machine when XLA runs single-threaded (see ``__main__``)."""
    import time

    fn = jax.jit(fn)
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        jax.block_until_ready(fn(*args))
        times.append(time.process_time() - t0)
    return 1e3 * float(np.median(times))


if __name__ == "__main__":
    # The kernel_dplr_fix group alone, CPU time single-threaded (set the XLA flags first):
    #   XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
    #     taskset -c 0 python benchmarks/bench_kernels.py
    for H, N, L in [(64, 64, 1024), (256, 64, 4096)]:
        args = _system(H, N // 2, rank=1, seed=4)
        prev = _cpu_ms(functools.partial(kernel_dplr_previous, L=L), *args)
        now = _cpu_ms(functools.partial(hippox.kernel_dplr, L=L), *args)
        print(
            f"H={H} N={N} L={L}: previous {prev:.1f} ms, kernel_dplr {now:.1f} ms, "
            f"ratio {now / prev:.2f}"
        )
