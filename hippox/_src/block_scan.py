"""The FFT-free block form of a diagonal SSM: small causal matmuls plus a state recurrence.

For a diagonal SSM (S4D; S5 after its input projection) the convolution kernel never
needs to exist at full length. Split the sequence into blocks of ``T`` positions; with
``x_l = Ab x_{l-1} + Bb u_l``, ``y_l = Re(C x_l) + D u_l`` and the state ``x_{c}`` at
the end of block ``c``::

    inside block c:  y[c, t] = Σ_{s<=t} K[t - s] u[c, s]            (T × T Toeplitz matmul)
                             + Re(Σ_m C_m Ab_m^{t+1} x_{c-1, m})    (state from earlier blocks)
    across blocks:   x_c = Ab^T x_{c-1} + Σ_s Ab^{T-1-s} Bb u[c, s]  (an L/T-step recurrence)

with ``K[l] = Re(Σ_m C_m Ab_m^l Bb_m)`` for ``l < T`` only. The work is
``O(L (T + M))`` per channel and sequence, almost all of it matrix products (what
BLAS, tensor cores and TPU matrix units do best), the memory ``O(L + T² + T M)`` per
channel, and there is no FFT. The result equals the FFT convolution to rounding.

This is the chunked "state passing" form of structured SSMs (as in Mamba-2's SSD for
scalar-times-identity matrices; here the state matrix is diagonal).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from hippox._src import _validate
from hippox._src.step import (
    DiagStepParams,
    cast_state_and_input,
    check_params,
    init_state,
    state_and_input,
)

#: Block length used when ``block=None``: a multiple of 8 that keeps the Toeplitz
#: matmul efficient on every backend without making it dominate the cost.
DEFAULT_BLOCK = 64


def block_scan_diag(
    params: DiagStepParams,
    u: ArrayLike,
    x0: ArrayLike | None = None,
    *,
    block: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Runs a diagonal SSM over ``u`` in blocks, without an FFT (module docstring).

    Same contract as `hippox.forward_chunk_diag`: the output
    ``y_l = Re(Σ_{j<=l} C Ab^{l-j} Bb u_j + C Ab^{l+1} x0) + D u_l`` and the state after
    the last position, ``x_L = Ab^L x0 + Σ_l Ab^{L-1-l} Bb u_l``.

    Args:
      params: `hippox.DiagStepParams` (``Ab``, ``Bb``, ``C`` ``(H, M)`` complex with
        the output factor folded into ``C``; ``D`` ``(H,)``).
      u: ``(..., H, L)`` real input.
      x0: ``(..., H, M)`` complex initial state, or None (zeros).
      block: block length ``T`` (None: ``min(L, DEFAULT_BLOCK)``).

    Returns:
      ``(y, x_L)``: ``(..., H, L)`` real output and the ``(..., H, M)`` complex final state.

    Raises:
      TypeError: ``params`` is not `DiagStepParams`, or a complex ``u``.
      ValueError: shapes that do not match ``params``, or a bad ``block``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> p = hippox.diag_step_params(-jnp.ones(3) + 0.5j, jnp.ones(3), jnp.ones(3), jnp.ones(2))
      >>> u = jnp.ones((4, 2, 100))
      >>> y, x = hippox.block_scan_diag(p, u, block=16)
      >>> y_fft, x_fft = hippox.forward_chunk_diag(p, u)
      >>> bool(jnp.allclose(y, y_fft, atol=1e-4)), bool(jnp.allclose(x, x_fft, atol=1e-4))
      (True, True)
    """
    check_params("params", params, DiagStepParams, "diag_step_params")
    x, u = state_and_input(params, init_state(params) if x0 is None else x0, u, 2)
    L = u.shape[-1]
    if L < 1:
        raise ValueError(f"`u` must have length L >= 1 on its last axis, got {u.shape}.")
    T = min(L, DEFAULT_BLOCK) if block is None else _validate.check_size("block", block)
    return _block_scan(params, None if x0 is None else x, u, T=min(T, L))


@functools.partial(jax.jit, static_argnames=("T",))
def _block_scan(params: DiagStepParams, x0, u, *, T: int):
    x0, u = cast_state_and_input(params, x0, u)
    Ab, Bb, C, D = params
    ctype, rtype = Ab.dtype, D.dtype
    *batch, H, L = u.shape
    nc = -(-L // T)
    pad = nc * T - L
    ub = jnp.pad(u, [(0, 0)] * (u.ndim - 1) + [(0, pad)]).reshape(*batch, H, nc, T)

    t = jnp.arange(T)
    powers = jnp.power(Ab[..., None], t)  # (H, M, T): Ab^t
    K = jnp.real(jnp.einsum("hm,hmt->ht", C * Bb, powers)).astype(rtype)
    lag = t[:, None] - t[None, :]
    toeplitz = jnp.where(lag >= 0, K[:, jnp.clip(lag, 0, T - 1)], 0.0)  # (H, T, T)
    y = jnp.einsum("hts,...hcs->...hct", toeplitz, ub)

    # Block-end drives s_c = Σ_s Ab^{T-1-s} Bb u[c, s], then x_c = Ab^T x_{c-1} + s_c.
    W = Bb[..., None] * powers[..., ::-1]  # (H, M, T)
    drive = jnp.moveaxis(jnp.einsum("hms,...hcs->...chm", W, ub.astype(ctype)), -3, 0)
    AT = Ab * powers[..., -1]  # Ab^T
    start = jnp.zeros((H, W.shape[1]), ctype) if x0 is None else x0
    start = jnp.broadcast_to(start, drive.shape[1:])  # (*batch, H, M)

    def body(x, s):
        x = AT * x + s
        return x, x

    _, ends = jax.lax.scan(body, start, drive)  # (nc, *batch, H, M)
    # The state before block c: x0 for c = 0, else the end state of block c - 1.
    before = jnp.concatenate([start[None], ends[:-1]], axis=0)
    V = C[..., None] * (Ab[..., None] * powers)  # (H, M, T): C Ab^{t+1}
    y = y + jnp.real(jnp.einsum("hmt,c...hm->...hct", V, before)).astype(rtype)
    y = y.reshape(*batch, H, nc * T)[..., :L] + D[:, None] * u

    if pad == 0:
        x_last = ends[-1]
    else:  # L ends inside the last block: r = T - pad of its positions are real
        r = T - pad
        Wr = Bb[..., None] * powers[..., :r][..., ::-1]  # Ab^{r-1-s} Bb, s < r
        tail = jnp.einsum("hms,...hs->...hm", Wr, ub[..., -1, :r].astype(ctype))
        x_last = powers[..., r] * before[-1] + tail if r < T else ends[-1]
    return y.astype(rtype), x_last
