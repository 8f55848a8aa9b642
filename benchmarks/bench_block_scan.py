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
the same sizes.
"""

from __future__ import annotations

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
    return rows


def layer_rows(B: int, H: int, N: int, L: int) -> list[Row]:
    """The S4D layer forward and forward + backward, per ``implementation``."""
    u = jnp.asarray(np.random.default_rng(2).standard_normal((B, L, H)), jnp.float32)
    label = f"B={B} H={H} N={N} L={L}"
    params = hippox.S4DConfig(H, N).init_params(jax.random.key(0))
    rows = []
    for group, loss in (("s4d_layer_forward", False), ("s4d_layer_fwd_bwd", True)):
        for impl in ("fft", "block", "auto"):
            cfg = hippox.S4DConfig(H, N, implementation=impl)
            fn = cfg.apply
            if loss:
                fn = jax.grad(lambda p, u, cfg=cfg: jnp.sum(cfg.apply(p, u) ** 2), (0, 1))
            name = f"S4D implementation={impl!r}"
            if impl == "auto":
                name += f" (-> {hippox.diag_implementation(L, cfg.M)})"
            rows.append(measure(group, name, label, fn, params, u, baseline=impl == "fft"))
    return rows
