"""Benchmarks of the FFT-free block form of a diagonal SSM (`hippox.block_scan_diag`).

Group ``diag_ssm_forward`` (and ``diag_ssm_fwd_bwd``: forward + backward of a scalar
loss with respect to the input): one diagonal SSM (S4D's system, ``M = N/2`` complex
modes per channel) over ``u`` of shape ``(B, H, L)`` from a carried state, returning the
output and the final state. The baseline is the straightforward FFT path
(`hippox.forward_chunk_diag`: the kernel from a full-length Vandermonde matrix, a
zero-padded rFFT convolution, the state as a Vandermonde contraction); the rows are
`hippox.block_scan_diag` with several block lengths T. Full size: B = 8, H = 256,
N = 64, L = 4096 (the issue's sizes). ``quick=True`` runs a small size.

Groups ``s4d_layer_forward`` and ``s4d_layer_fwd_bwd`` (forward + backward of a scalar
loss with respect to the parameters and the input): the S4D layer (`hippox.S4DConfig`,
``(B, L, H)`` input, zero initial state) with ``implementation='fft'`` (the baseline:
kernel + FFT convolution), ``'block'`` and ``'auto'`` (`hippox.diag_implementation`), at
the same sizes. Group ``s4d_layer_state``: the forward with a carried initial state and
the returned final state (chunked processing), where the FFT path adds ``(H, M, L)``
Vandermonde contractions.

Group ``s5_recurrence``: S5's diagonal recurrence with the input projection given
(``x_l = Ab x_{l-1} + Bu_l``, ``(B, L, M)`` complex, every state returned), by
`hippox.linear_recurrence` (sequential: the baseline; associative) and by the block
form written out here (a ``T × T`` decay matmul per mode inside blocks plus an
``L/T``-step recurrence), to see whether S5 would gain from a block path.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from _harness import Row, measure

import hippox


def _system(H: int, M: int):
    rng = np.random.default_rng(0)
    Lam = -rng.uniform(0.05, 1.0, (H, M)) + 1j * np.pi * rng.integers(0, M, (H, M))
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), H))
    B = np.ones((H, M)) + 0j
    C = rng.standard_normal((H, M)) + 1j * rng.standard_normal((H, M))
    cast = lambda a: jnp.asarray(a, jnp.complex64)
    return hippox.diag_step_params(
        cast(Lam), cast(B), cast(C), jnp.asarray(dt, jnp.float32), jnp.ones(H, jnp.float32)
    )


def run(quick: bool = False) -> list[Row]:
    B, H, N, L = (2, 16, 16, 512) if quick else (8, 256, 64, 4096)
    params = _system(H, N // 2)
    rng = np.random.default_rng(1)
    u = jnp.asarray(rng.standard_normal((B, H, L)), jnp.float32)
    x0 = jnp.zeros((B, H, N // 2), jnp.complex64)
    label = f"B={B} H={H} N={N} L={L}"
    rows = []
    for group, loss in (("diag_ssm_forward", False), ("diag_ssm_fwd_bwd", True)):

        def wrap(fn, loss=loss):
            if not loss:
                return fn
            return jax.grad(lambda u, x: jnp.sum(fn(u, x)[0] ** 2) + jnp.sum(jnp.abs(fn(u, x)[1])))

        fft = wrap(lambda u, x: hippox.forward_chunk_diag(params, u, x, implementation="fft"))
        rows.append(measure(group, "fft (forward_chunk_diag)", label, fft, u, x0, baseline=True))
        for T in (32, 64, 128):
            blk = wrap(lambda u, x, T=T: hippox.block_scan_diag(params, u, x, block=T))
            rows.append(measure(group, f"block_scan_diag T={T}", label, blk, u, x0))
    rows += layer_rows(B, H, N, L)
    rows += s5_rows(B, N // 2, L)
    return rows


def layer_rows(B: int, H: int, N: int, L: int) -> list[Row]:
    """The S4D layer forward and forward + backward, per ``implementation``."""
    u = jnp.asarray(np.random.default_rng(2).standard_normal((B, L, H)), jnp.float32)
    label = f"B={B} H={H} N={N} L={L}"
    params = hippox.S4DConfig(H, N).init_params(jax.random.key(0))
    x0 = jnp.full((B, H, N // 2), 0.1 + 0.1j, jnp.complex64)
    rows = []
    for group in ("s4d_layer_forward", "s4d_layer_fwd_bwd", "s4d_layer_state"):
        for impl in ("fft", "block", "auto"):
            cfg = hippox.S4DConfig(H, N, implementation=impl)
            fn = cfg.apply
            if group == "s4d_layer_fwd_bwd":
                fn = jax.grad(lambda p, u, cfg=cfg: jnp.sum(cfg.apply(p, u) ** 2), (0, 1))
            if group == "s4d_layer_state":
                fn = functools.partial(cfg.apply, initial_state=x0, return_state=True)
            name = f"S4D implementation={impl!r}"
            if impl == "auto":
                state = group == "s4d_layer_state"
                name += f" (-> {hippox.diag_implementation(L, cfg.M, state=state)})"
            rows.append(measure(group, name, label, fn, params, u, baseline=impl == "fft"))
    return rows


@functools.partial(jax.jit, static_argnames=("T",))
def _block_states(Ab, Bu, T: int):
    """Every state of ``x_l = Ab x_{l-1} + Bu_l`` (zero start) by the block form."""
    B, L, M = Bu.shape
    nc = L // T
    ub = Bu.reshape(B, nc, T, M)
    t = jnp.arange(T)
    lag = t[:, None] - t[None, :]
    powers = jnp.power(Ab[:, None], t)  # (M, T)
    decay = jnp.where(lag >= 0, powers[:, jnp.clip(lag, 0, T - 1)], 0)  # (M, T, T)
    hi = jax.lax.Precision.HIGHEST
    inner = jnp.einsum("mts,bnsm->bntm", decay, ub, precision=hi)

    def body(x, s):
        x = Ab * powers[:, -1] * x + s
        return x, x

    _, ends = jax.lax.scan(body, jnp.zeros((B, M), Bu.dtype), jnp.moveaxis(inner[:, :, -1], 1, 0))
    before = jnp.concatenate([jnp.zeros((1, B, M), Bu.dtype), ends[:-1]], 0)
    free = jnp.einsum("tm,nbm->bntm", Ab * powers.T, before, precision=hi)
    return (inner + free).reshape(B, L, M)


def s5_rows(B: int, M: int, L: int) -> list[Row]:
    """S5's diagonal recurrence: the scans against the block form."""
    rng = np.random.default_rng(3)
    lam = -rng.uniform(0.1, 1, M) + 10j * rng.standard_normal(M)
    Ab = jnp.asarray(np.exp(0.01 * lam), jnp.complex64)
    Bu = rng.standard_normal((B, L, M)) + 1j * rng.standard_normal((B, L, M))
    Bu = jnp.asarray(Bu, jnp.complex64)
    label = f"B={B} M={M} L={L}"
    rows = []
    for method in ("sequential", "associative"):
        fn = functools.partial(hippox.linear_recurrence, Ab, diagonal=True, method=method)
        rows.append(
            measure(
                "s5_recurrence",
                f"linear_recurrence {method}",
                label,
                fn,
                Bu,
                baseline=method == "sequential",
            )
        )
    for T in (32, 64):
        fn = functools.partial(_block_states, Ab, T=T)
        rows.append(measure("s5_recurrence", f"block form T={T}", label, fn, Bu))
    return rows
