"""Krylov sequences and matrix powers by doubling, and the dense kernel built from them.

A discretised linear SSM ``x_k = Ab x_{k-1} + Bb u_k``, ``y_k = C x_k`` has the
convolution kernel ``K_l = C Ab^l Bb`` (``l < L``). Stepping ``L`` times costs ``L``
dependent matrix-vector products (`hippox.kernel_naive`). Doubling builds the Krylov
sequence ``[v, A v, A² v, …, A^{L-1} v]`` in ``⌈log2 L⌉`` batched matrix products
instead: with the first ``2^j`` vectors known, the next ``2^j`` are ``A^{2^j}`` times
them, and ``A^{2^{j+1}} = (A^{2^j})²``. The work is the same order (``O(L N²)`` per
channel plus ``O(N³ log L)`` for the squarings) but it is ``log L`` parallel steps
instead of ``L`` sequential ones, which is what accelerators want.

Names (documented internal helpers, used by the layers):

* `krylov`: ``[A^l v for l < L]``.
* `kernel_krylov`: ``K_l = C Ab^l Bb`` of a dense system.
* `power_apply`: ``A^n x`` with a per-batch-element integer ``n`` (binary powers).

Shapes: ``A`` ``(..., N, N)`` dense (or ``(..., N)`` diagonal for `power_apply`), vectors
``(..., N)``; leading axes broadcast (NumPy rules).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["kernel_krylov", "krylov", "power_apply"]


def krylov(A: jax.Array, v: jax.Array, L: int) -> jax.Array:
    """``[A^l v for l < L]`` as ``(..., L, N)``, by doubling (``⌈log2 L⌉`` batched matmuls).

    Args:
      A: ``(..., N, N)`` matrix (real or complex).
      v: ``(..., N)`` vector; leading axes broadcast against ``A``'s.
      L: a static Python int >= 1.

    Returns:
      ``(..., L, N)`` with row ``l`` equal to ``A^l v`` (the broadcast leading shape).

    Examples:
      >>> import jax.numpy as jnp
      >>> from hippox._src.krylov import krylov
      >>> krylov(jnp.array([[0.5]]), jnp.array([1.0]), 4)[:, 0].tolist()
      [1.0, 0.5, 0.25, 0.125]
    """
    seq = v[..., None, :]
    power = A
    while seq.shape[-2] < L:
        seq = jnp.concatenate([seq, jnp.einsum("...ij,...lj->...li", power, seq)], axis=-2)
        if seq.shape[-2] < L:
            power = power @ power
    return seq[..., :L, :]


def kernel_krylov(Ab: jax.Array, Bb: jax.Array, C: jax.Array, L: int) -> jax.Array:
    """The kernel ``K_l = C Ab^l Bb`` (``l < L``) of a dense system, by doubling.

    Equal to `hippox.kernel_naive` (dense ``Ab``) but built from `krylov` in
    ``⌈log2 L⌉`` batched matrix products instead of an ``L``-step scan; memory
    ``O(H L N)`` for the Krylov sequence.

    Args:
      Ab: ``(..., N, N)`` discrete state matrix.
      Bb: ``(..., N)`` discrete input vector.
      C: ``(..., N)`` output vector (leading axes broadcast against ``Ab``'s and ``Bb``'s,
        e.g. ``(channels, H, N)`` with ``Ab`` ``(H, N, N)``).
      L: a static Python int >= 1.

    Returns:
      ``(..., L)`` kernel in the promoted dtype (no real part is taken).

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> from hippox._src.krylov import kernel_krylov
      >>> A, b = hippox.transition("legs", 4)
      >>> Ab, Bb = hippox.discretize(A, b, 0.1, method="bilinear")
      >>> c = jnp.arange(4.0)
      >>> bool(jnp.allclose(kernel_krylov(Ab, Bb, c, 9), hippox.kernel_naive(Ab, Bb, c, 9)))
      True
    """
    cols = krylov(Ab, Bb, L)  # (..., L, N): Ab^l Bb
    return jnp.einsum("...n,...ln->...l", C, cols)


def power_apply(A: jax.Array, x: jax.Array, n, *, diagonal: bool, max_n: int) -> jax.Array:
    """``A^n x`` with an integer ``n`` per batch element, by binary powers.

    ``A^n = Π_{k: bit k of n} A^{2^k}``: ``⌈log2(max_n + 1)⌉`` squarings of ``A`` and as
    many selective products with ``x`` (``n = 0`` leaves ``x`` unchanged).

    Args:
      A: ``(H, N, N)`` dense or ``(H, N)`` diagonal matrix.
      x: ``(..., H, N)`` vectors.
      n: Python int, or an integer array of shape ``x.shape[:-2]`` with ``0 <= n <= max_n``.
      diagonal: whether ``A`` holds diagonals.
      max_n: a static bound on ``n`` (a Python int >= 0).

    Returns:
      ``(..., H, N)`` array ``A^n x`` (promoted dtype).
    """
    if isinstance(n, int):
        bits = [(n >> k) & 1 for k in range(max(n, 1).bit_length())]
    else:
        n = jnp.asarray(n)[..., None, None]
        bits = [(n >> k) & 1 for k in range(max(max_n, 1).bit_length())]
    out = x
    power = A
    for k, bit in enumerate(bits):
        if k:
            power = power * power if diagonal else power @ power
        if isinstance(bit, int) and not bit:
            continue
        moved = power * out if diagonal else jnp.einsum("hij,...hj->...hi", power, out)
        out = moved if isinstance(bit, int) else jnp.where(bit == 1, moved, out)
    return out
