"""Discretisation of ``dx/dt = A x + B u`` into ``x_k = Ab x_{k-1} + Bb u_k``.

Dense systems (`discretize`) and diagonal systems (`discretize_diag`). All functions
are pure jnp code: they work under `jax.jit`, `jax.vmap` and `jax.grad`, and broadcast
a batch of step sizes ``dt`` against the system.

Methods (generalised bilinear transform, GBT, with parameter ``alpha``)::

    Ab = (I - alpha dt A)^{-1} (I + (1 - alpha) dt A)
    Bb = (I - alpha dt A)^{-1} dt B

``forward_euler`` is alpha = 0, ``bilinear`` (Tustin) alpha = 1/2, ``backward_euler``
alpha = 1. ``zoh`` (zero-order hold) is exact for piecewise-constant input:
``Ab = exp(dt A)``, ``Bb = ∫_0^dt exp(s A) ds B``, computed from one matrix
exponential of the block matrix ``[[A, B], [0, 0]] dt`` (no inverse of A needed).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from hippox._src import _validate

DenseMethod = Literal["zoh", "bilinear", "forward_euler", "backward_euler", "gbt"]
DiagMethod = Literal["zoh", "bilinear", "dss"]
DENSE_METHODS: tuple[str, ...] = ("zoh", "bilinear", "forward_euler", "backward_euler", "gbt")
DIAG_METHODS: tuple[str, ...] = ("zoh", "bilinear", "dss")
_GBT_ALPHA = {"forward_euler": 0.0, "bilinear": 0.5, "backward_euler": 1.0}


class Discretized(NamedTuple):
    """A discrete-time system ``x_k = Ab x_{k-1} + Bb u_k``.

    Attributes:
      Ab: state matrix ``(..., N, N)`` (dense) or diagonal ``(..., N)``.
      Bb: input matrix ``(..., N)`` or ``(..., N, M)``.
    """

    Ab: jax.Array
    Bb: jax.Array


def _as_float(name: str, x: ArrayLike) -> jax.Array:
    """``x`` as a floating or complex array (integers and bools become the default float)."""
    return _validate.as_inexact(name, x, allow_bool=True)


def check_dss_length(method: str, L) -> int | None:
    """Validates the kernel length ``L`` of a diagonal method: an int >= 1 for ``dss``
    (its normalisation depends on ``L``), None for the others."""
    if method == "dss":
        if L is None:
            raise ValueError("`L` (the kernel length, an int >= 1) is required with method='dss'.")
        return _validate.check_size("L", L)
    if L is not None:
        raise ValueError(f"`L` is only used with method='dss', got L={L!r} with method={method!r}.")
    return None


def discretize(
    A: ArrayLike,
    B: ArrayLike,
    dt: ArrayLike,
    *,
    method: DenseMethod = "bilinear",
    alpha: float | None = None,
) -> Discretized:
    """Discretises a dense linear system with step ``dt``.

    Args:
      A: ``(..., N, N)`` state matrix.
      B: ``(..., N)`` input vector (``A.ndim - 1`` axes, or 1), or ``(..., N, M)``
        input matrix (``A.ndim`` axes).
      dt: step size; a scalar or an array of shape ``(...)`` broadcasting against the
        batch dimensions of ``A``: ``dt`` of shape ``(D,)`` with ``A`` of shape
        ``(N, N)`` gives ``Ab`` of shape ``(D, N, N)``.
      method: ``zoh``, ``bilinear``, ``forward_euler``, ``backward_euler`` or ``gbt``.
      alpha: GBT parameter in [0, 1]; required with ``method='gbt'`` and refused
        otherwise.

    Returns:
      `Discretized(Ab, Bb)` with ``Ab`` of shape ``(..., N, N)`` and ``Bb`` the shape
      of ``B`` with the broadcast batch dimensions.

    Examples:
      >>> import hippox
      >>> A, B = hippox.transition("legs", 2)
      >>> Ab, Bb = hippox.discretize(A, B, 0.1, method="bilinear")
      >>> [round(float(b), 5) for b in Bb]
      [0.09524, 0.14996]
    """
    _validate.check_choice("method", method, DENSE_METHODS)
    if method == "gbt":
        if alpha is None:
            raise ValueError("`alpha` must be given (a number in [0, 1]) with method='gbt'.")
        alpha = _validate.check_real("alpha", alpha, low=0.0, high=1.0)
    elif alpha is not None:
        raise ValueError(
            f"`alpha` is only used with method='gbt', got alpha={alpha!r} with method={method!r}."
        )
    else:
        alpha = _GBT_ALPHA.get(method)
    A, B = _as_float("A", A), _as_float("B", B)
    dt = _validate.check_step("dt", dt)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"`A` must have shape (..., N, N), got {A.shape}.")
    N = A.shape[-1]
    vector_b = B.ndim in (1, A.ndim - 1)
    if not (vector_b or B.ndim == A.ndim) or B.shape[-1 if vector_b else -2] != N:
        raise ValueError(
            f"`B` must have shape (..., N) (a vector, A.ndim - 1 axes) or (..., N, M) (a "
            f"matrix, A.ndim axes) with N={N}, got {B.shape} for A of shape {A.shape}."
        )
    if vector_b:
        B = B[..., None]
    dtype = jnp.result_type(A, B, dt)
    A, B, dt = A.astype(dtype), B.astype(dtype), dt.astype(dtype)
    try:
        batch = jnp.broadcast_shapes(A.shape[:-2], B.shape[:-2], dt.shape)
    except ValueError:
        raise ValueError(
            f"`dt` must broadcast against the batch axes of A {A.shape[:-2]} and B "
            f"{B.shape[:-2]}, got dt of shape {dt.shape}."
        ) from None
    A = jnp.broadcast_to(A, (*batch, N, N))
    B = jnp.broadcast_to(B, (*batch, N, B.shape[-1]))
    dtA = dt[..., None, None] * A
    dtB = dt[..., None, None] * B
    if method == "zoh":
        M = B.shape[-1]
        top = jnp.concatenate([dtA, dtB], axis=-1)
        block = jnp.concatenate([top, jnp.zeros((*batch, M, N + M), dtype)], axis=-2)
        E = jax.scipy.linalg.expm(block.reshape(-1, N + M, N + M)).reshape(block.shape)
        Ab, Bb = E[..., :N, :N], E[..., :N, N:]
    else:
        eye = jnp.eye(N, dtype=dtype)
        lhs = eye - alpha * dtA
        rhs = jnp.concatenate([eye + (1.0 - alpha) * dtA, dtB], axis=-1)
        sol = jnp.linalg.solve(lhs, rhs)
        Ab, Bb = sol[..., :N], sol[..., N:]
    return Discretized(Ab, Bb[..., 0] if vector_b else Bb)


def discretize_diag(
    Lambda: ArrayLike,
    B: ArrayLike,
    dt: ArrayLike,
    *,
    method: DiagMethod = "zoh",
    L: int | None = None,
) -> Discretized:
    """Discretises a diagonal system ``dx/dt = diag(Lambda) x + B u``.

    Args:
      Lambda: ``(..., N)`` diagonal of A (real or complex).
      B: ``(..., N)`` input vector or ``(..., N, M)`` input matrix.
      dt: step size, scalar or ``(...)`` broadcasting against ``Lambda.shape[:-1]``
        (e.g. one step per channel: ``Lambda`` ``(N,)`` or ``(H, N)``, ``dt`` ``(H,)``
        gives ``Ab`` of shape ``(H, N)``).
      method: ``zoh`` (``Ab = exp(dt Λ)``, ``Bb = expm1(dt Λ)/Λ B``), ``bilinear``
        (``Ab = (1 + dtΛ/2)/(1 - dtΛ/2)``, ``Bb = dt/(1 - dtΛ/2) B``) or ``dss``
        (the DSS-exp normalisation: zoh with ``Bb`` divided by ``Ab**L - 1``, so the
        length-``L`` kernel is ``Σ_l C Ab^l Bb`` without extra factors; needs ``L``).
      L: sequence length, required for ``dss`` only.

    Returns:
      `Discretized(Ab, Bb)`: ``Ab`` ``(..., N)``, ``Bb`` shaped like the broadcast ``B``.

    Note:
      ``zoh`` and ``dss`` divide by Lambda; an exact ``Lambda = 0`` (an integrator, e.g.
      the raw ``fout`` spectrum) takes the limit: ``Bb = dt B`` (zoh), ``Bb = B / L``
      (dss).

    Raises:
      ValueError: bad shapes, an unknown ``method``, a concrete ``dt`` that is not
        finite and > 0, or a ``dt`` that does not broadcast against ``Lambda``.
      TypeError: non-numeric inputs or a complex ``dt``.
    """
    _validate.check_choice("method", method, DIAG_METHODS)
    Lam, B = _as_float("Lambda", Lambda), _as_float("B", B)
    dt = _validate.check_step("dt", dt)
    if Lam.ndim < 1:
        raise ValueError(f"`Lambda` must have shape (..., N), got {Lam.shape}.")
    N = Lam.shape[-1]
    matrix_b = B.ndim == Lam.ndim + 1
    if B.ndim < 1 or B.shape[-2 if matrix_b else -1] != N:
        raise ValueError(
            f"`B` must have shape (..., N) (a vector) or (..., N, M) (a matrix, one more axis "
            f"than Lambda) with N={N}, got {B.shape} for Lambda of shape {Lam.shape}."
        )
    L = check_dss_length(method, L)
    try:
        jnp.broadcast_shapes(Lam.shape[:-1], (B.shape[:-2] if matrix_b else B.shape[:-1]), dt.shape)
    except ValueError:
        raise ValueError(
            f"`dt` must broadcast against the batch (channel) axes of Lambda {Lam.shape[:-1]}"
            f" and B, got dt of shape {dt.shape} (e.g. one step per channel: Lambda (H, N), "
            "dt (H,))."
        ) from None
    dt = dt[..., None]
    dtLam = dt * Lam
    if method == "bilinear":
        den = 1.0 - dtLam / 2.0
        Ab = (1.0 + dtLam / 2.0) / den
        scale = dt / den
    else:
        Ab = jnp.exp(dtLam)
        # expm1 (complex too): (exp(dtΛ) - 1)/Λ keeps full relative precision at small dtΛ.
        # Lambda = 0 (an integrator) takes the limit dt; the division is guarded so that
        # gradients stay finite there.
        zero = Lam == 0
        safe = jnp.where(zero, jnp.ones_like(Lam), Lam)
        scale = jnp.where(zero, dt * (1.0 + dtLam / 2.0), jnp.expm1(dtLam) / safe)
        if method == "dss":
            # ... and the DSS factor 1/(exp(dtΛL) - 1) -> 1/(dt L) for Λ = 0.
            den = jnp.where(zero, jnp.ones_like(dtLam), jnp.expm1(dtLam * L))
            scale = jnp.where(zero, jnp.ones_like(scale) / L, scale / den)
    Bb = scale[..., None] * B if matrix_b else scale * B
    return Discretized(Ab, Bb)
