"""The free response of a DPLR (S4) SSM from a carried state, through the Cauchy kernel.

When a sequence is processed in chunks, the output of a chunk is the convolution of
its input with the kernel plus the *free response* of the state ``x0`` carried from the
previous chunk: with the step convention ``x_l = Ab x_{l-1} + Bb u_l``, ``y_l = C x_l``
and ``x_{-1} = x0``, the zero-input output is ``y_l = C Ab^{l+1} x0``.

That sequence is itself an SSM kernel: ``C Ab^l (Ab x0)`` is the kernel ``C Ab^l Bb'``
of the same system with the discrete input vector ``Bb' = Ab x0``. Bilinear
discretisation gives ``Bb = (I - dt/2 A)^{-1} dt B``, so the continuous input vector
whose discretisation is ``Ab x0 = (I - dt/2 A)^{-1} (I + dt/2 A) x0`` is

    B' = (I + dt/2 A) x0 / dt,   (A x0)_n = Lambda_n x0_n - Σ_r P[r, n] s_r,

with ``s = conj(P) x0`` (``conj_sym=False``) or, for the half state of the
conjugate-closed system (``[x0, conj(x0)]``, ``conj_sym=True``),
``s = conj(P) x0 + P conj(x0) = 2 Re(conj(P) x0)``. `hippox.kernel_dplr` with ``B'``
then gives the free response in ``O(M L)`` per channel and sequence (Cauchy sums and
the Woodbury identity, no ``M × M`` matrix), with the layer's output convention
(``2 Re`` of the half system for ``conj_sym=True``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from hippox._src import _validate
from hippox._src.dplr import dplr_c_tilde, kernel_dplr


def dplr_free_response(
    Lambda: ArrayLike,
    P: ArrayLike,
    C: ArrayLike,
    dt: ArrayLike,
    x0: ArrayLike,
    L: int,
    *,
    conj_sym: bool = True,
) -> jax.Array:
    """Zero-input response ``y_l = C Ab^{l+1} x0`` (``l < L``) of a bilinear DPLR SSM.

    Args:
      Lambda: ``(H, M)`` complex diagonal part (``Re(Lambda) < 0``, as for
        `hippox.kernel_dplr`).
      P: ``(rank, H, M)`` complex low-rank factor.
      C: ``(H, M)`` the plain output vector (not ``C_tilde``).
      dt: ``(H,)`` positive steps.
      x0: ``(..., H, M)`` complex state (the half state for ``conj_sym=True``).
      L: number of output positions.
      conj_sym: the arrays are one half of the conjugate-closed system (output
        ``2 Re(C x)``), or the whole system (output ``Re(C x)``).

    Returns:
      ``(..., H, L)`` real free response, in the dtype of `hippox.kernel_dplr`.
    """
    L = _validate.check_size("L", L)
    conj_sym = _validate.check_bool("conj_sym", conj_sym)
    Lam, P, C = jnp.asarray(Lambda), jnp.asarray(P), jnp.asarray(C)
    dt = _validate.as_inexact("dt", dt, allow_complex=False)
    x0 = _validate.as_array("x0", x0)
    H, M = Lam.shape[-2:]
    if x0.ndim < 2 or x0.shape[-2:] != (H, M):
        raise ValueError(f"`x0` must have shape (..., {H}, {M}), got {x0.shape}.")
    ctype = jnp.result_type(Lam, P, C, x0, jnp.complex64)
    x0 = x0.astype(ctype)
    s = jnp.einsum("rhm,...hm->...rh", jnp.conj(P).astype(ctype), x0)
    if conj_sym:
        s = (2.0 * s.real).astype(ctype)
    Ax0 = Lam * x0 - jnp.einsum("rhm,...rh->...hm", P.astype(ctype), s)
    dtc = dt.astype(ctype)[:, None]
    B_eff = (x0 + 0.5 * dtc * Ax0) / dtc
    batch = x0.shape[:-2]
    Ct = dplr_c_tilde(C, Lam, P, dt, L, conj_sym=conj_sym)
    full = (*batch, H, M)
    return kernel_dplr(
        jnp.broadcast_to(Lam, full),
        jnp.broadcast_to(P[(slice(None),) + (None,) * len(batch)], (P.shape[0], *full)),
        B_eff,
        jnp.broadcast_to(Ct, full),
        jnp.broadcast_to(dt, (*batch, H)),
        L,
        conj_sym=conj_sym,
    )
