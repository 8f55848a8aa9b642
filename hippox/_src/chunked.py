"""Chunked processing: one chunk of a sequence at a time, from a carried state.

A chunk ``u`` of length L is run through the recurrence ``x_k = Ab x_{k-1} + Bb u_k``,
``y_k = Re(C x_k) + D u_k`` of a step-mode system (parameters from
``hippox/_src/step.py``) starting from a carried state ``x0``, and the state after the
chunk is returned, so a long sequence can be processed piece by piece with the same
result as one long call (or as `hippox.scan_steps`). No L-step loop is run: the output
is an FFT causal convolution with the kernel ``K_l = Re(C Ab^l Bb)`` (`hippox.causal_conv`)
plus the free response ``Re(C Ab^{l+1} x0)`` of the carried state, and the final state
is a contraction of the input with the powers ``Ab^l Bb``::

    y, x = forward_chunk_diag(params, u_chunk, x)    # u_chunk (n, H, L) -> y (n, H, L)

Shapes, dtypes and the output convention are those of the step mode (its module
docstring): ``C`` carries the ``conj_sym`` factor, states are ``(..., H, M)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from hippox._src.block_scan import block_length, diag_block_forward, diag_implementation
from hippox._src.conv import causal_conv
from hippox._src.parameterization import conj_closed
from hippox._src.step import (
    DenseStepParams,
    DiagStepParams,
    cast_state_and_input,
    check_params,
    init_state,
    state_and_input,
)

__all__ = ["forward_chunk_dense", "forward_chunk_diag"]


def _krylov(A: jax.Array, v: jax.Array, L: int) -> jax.Array:
    """``[A^l v for l < L]`` as ``(..., L, N)``, by doubling: log2(L) batched matmuls."""
    seq = v[..., None, :]
    power = A
    while seq.shape[-2] < L:
        seq = jnp.concatenate([seq, jnp.einsum("...ij,...lj->...li", power, seq)], axis=-2)
        if seq.shape[-2] < L:
            power = power @ power
    return seq[..., :L, :]


def _chunk_input(params, u, x0):
    """Validates a chunk ``u (..., H, L)`` and an optional state ``x0 (..., H, M)``."""
    x, u = state_and_input(params, init_state(params) if x0 is None else x0, u, 2)
    if u.shape[-1] < 1:
        raise ValueError(f"`u` must have length L >= 1 on its last axis, got {u.shape}.")
    return (None if x0 is None else x), u


def forward_chunk_diag(
    params: DiagStepParams,
    u: ArrayLike,
    x0: ArrayLike | None = None,
    *,
    implementation: str = "auto",
) -> tuple[jax.Array, jax.Array]:
    """Processes one chunk of a diagonal SSM from a carried state, without an L-step loop.

    ``y_l = Re(Σ_{j<=l} C Ab^{l-j} Bb u_j + C Ab^{l+1} x0) + D u_l`` (an FFT causal
    convolution with the kernel ``K_l = Re(C Ab^l Bb)`` plus the free response of
    ``x0``) and ``x_L = Ab^L x0 + Σ_l Ab^{L-1-l} Bb u_l`` (a Vandermonde contraction).
    Splitting a sequence into chunks and carrying the state gives the same result as
    one call or `scan_steps`. Memory is O(H·M·L) for the chunk's Vandermonde matrix:
    choose the chunk length to bound it.

    ``implementation='block'`` computes the same result by the FFT-free block form
    instead (`hippox.block_scan_diag` with blocks of ``min(L, 64)``: no Vandermonde
    matrix, memory O(H·(L + M·64)) per sequence); ``implementation='auto'`` (default)
    picks by `hippox.diag_implementation` (the block form for ``L >= 128``). Both follow
    `hippox.causal_conv`'s non-finite policy.

    Args:
      params: `DiagStepParams` from `diag_step_params`.
      u: ``(..., H, L)`` real input chunk.
      x0: ``(..., H, M)`` complex state carried from the previous chunk, or None
        (zeros).
      implementation: ``'auto'``, ``'fft'`` or ``'block'`` (above).

    Returns:
      ``(y, x_next)``: ``(..., H, L)`` real output and the ``(..., H, M)`` complex
      state after the chunk (batch shapes of ``u`` and ``x0`` broadcast).

    Raises:
      ValueError: on shapes that do not match ``params``, or an unknown ``implementation``.
      TypeError: on a complex ``u``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> p = hippox.diag_step_params(-jnp.ones(3) + 0j, jnp.ones(3), jnp.ones(3), jnp.ones(2))
      >>> u = jnp.ones((4, 2, 10))
      >>> y1, x1 = hippox.forward_chunk_diag(p, u[..., :6])
      >>> y2, x2 = hippox.forward_chunk_diag(p, u[..., 6:], x1)
      >>> y, x = hippox.forward_chunk_diag(p, u)
      >>> bool(jnp.allclose(jnp.concatenate([y1, y2], -1), y, atol=1e-5))
      True
    """
    check_params("params", params, DiagStepParams, "diag_step_params")
    x0, u = _chunk_input(params, u, x0)
    L, M = u.shape[-1], params.Bb.shape[-1]
    if diag_implementation(L, M, state=True, implementation=implementation) == "fft":
        return _chunk_diag(params, x0, u)
    x0, u = cast_state_and_input(params, x0, u)
    Ab, Bb, C, D = params
    y, x = diag_block_forward(
        Ab, Bb, C[None], D[None], u, x0, None, T=block_length(L), need_state=True
    )
    return y[..., 0, :, :], x


@jax.jit
def _chunk_diag(params: DiagStepParams, x0: jax.Array | None, u: jax.Array):
    x0, u = cast_state_and_input(params, x0, u)
    Ab, Bb, C, D = params.Ab, params.Bb, params.C, params.D
    L = u.shape[-1]
    V = jnp.power(Ab[..., None], jnp.arange(L))  # (H, M, L): Ab^l
    K = jnp.real(jnp.einsum("hm,hml->hl", C * Bb, V)).astype(D.dtype)
    y = causal_conv(u, K, D=D)
    drive = jnp.einsum("hml,...hl->...hm", V[..., ::-1], u.astype(V.dtype))
    x = Bb * drive
    if x0 is not None:
        y = y + jnp.real(jnp.einsum("...hm,hml->...hl", C * Ab * x0, V)).astype(D.dtype)
        x = x + (Ab * V[..., -1]) * x0
    return y, x


def forward_chunk_dense(
    params: DenseStepParams, u: ArrayLike, x0: ArrayLike | None = None
) -> tuple[jax.Array, jax.Array]:
    """Processes one chunk of a dense SSM (or a DPLR SSM's dense form) from a carried state.

    Same semantics as `forward_chunk_diag`: ``y = causal_conv(u, K) + D u`` plus the free
    response ``Re(C Ab^{l+1} x0)``, and ``x_L = Ab^L x0 + Σ_l Ab^{L-1-l} Bb u_l``. The
    Krylov sequences ``C Ab^l`` and ``Ab^l Bb`` (l < L) are built by doubling
    (⌈log2 L⌉ batched matrix products, no L-step loop); memory O(H·N·(N + L)). The
    half state of a conjugate-closed system (``params.Abc`` set, from
    `dplr_step_dense_params` with ``conj_sym=True``) is processed through the closed
    ``2N`` system.

    Args:
      params: `DenseStepParams` from `dense_step_params` or `dplr_step_dense_params`.
      u: ``(..., H, L)`` real input chunk.
      x0: ``(..., H, N)`` state carried from the previous chunk, or None (zeros).

    Returns:
      ``(y, x_next)``: ``(..., H, L)`` real output and the ``(..., H, N)`` state after
      the chunk.

    Raises:
      ValueError: on shapes that do not match ``params``.
      TypeError: on a complex ``u`` (or a complex ``x0`` for a real system).

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> p = hippox.dense_step_params(0.5 * jnp.eye(3), jnp.ones(3), jnp.ones(3), jnp.zeros(2))
      >>> y, x = hippox.forward_chunk_dense(p, jnp.ones((2, 8)))
      >>> y.shape, x.shape
      ((2, 8), (2, 3))
    """
    check_params("params", params, DenseStepParams, "dense_step_params")
    return _chunk_dense(params, *_chunk_input(params, u, x0))


@jax.jit
def _chunk_dense(params: DenseStepParams, x0: jax.Array | None, u: jax.Array):
    x0, u = cast_state_and_input(params, x0, u)
    if params.Abc is None:
        return _chunk_dense_plain(params.Ab, params.Bb, params.C, params.D, u, x0)
    # Half state of a conjugate-closed system: run the closed 2N system on [x, conj(x)]
    # (output from the first half only) and keep the first half of the final state.
    N = params.Bb.shape[-1]
    Ab, Abc = params.Ab, params.Abc
    Ab_full = jnp.concatenate(
        [jnp.concatenate([Ab, Abc], -1), jnp.concatenate([jnp.conj(Abc), jnp.conj(Ab)], -1)], -2
    )
    Bb_full = conj_closed(params.Bb)
    C_full = jnp.concatenate([params.C, jnp.zeros_like(params.C)], -1)
    x0_full = None if x0 is None else conj_closed(x0)
    y, x = _chunk_dense_plain(Ab_full, Bb_full, C_full, params.D, u, x0_full)
    return y, x[..., :N]


def _chunk_dense_plain(Ab, Bb, C, D, u, x0):
    L = u.shape[-1]
    rows = _krylov(jnp.swapaxes(Ab, -1, -2), C, L)  # (H, L, N): C Ab^l
    cols = _krylov(Ab, Bb, L)  # (H, L, N): Ab^l Bb
    K = jnp.real(jnp.einsum("hln,hn->hl", rows, Bb)).astype(D.dtype)
    y = causal_conv(u, K, D=D)
    x = jnp.einsum("hln,...hl->...hn", cols, u[..., ::-1].astype(cols.dtype))
    if x0 is not None:
        Ax0 = jnp.einsum("hnm,...hm->...hn", Ab, x0)
        y = y + jnp.real(jnp.einsum("hln,...hn->...hl", rows, Ax0)).astype(D.dtype)
        x = x + jnp.einsum("hnm,...hm->...hn", jnp.linalg.matrix_power(Ab, L), x0)
    return y, x
