"""Convolution kernels of discretised state space models.

A channel of a linear SSM, discretised with step ``dt`` as ``x_k = Ab x_{k-1} + Bb u_k``,
``y_k = C x_k + D u_k``, is the causal convolution ``y = K * u + D u`` with the kernel

    K_l = C Ab^l Bb,   l = 0 … L-1.

This module computes ``K`` three ways:

* `kernel_naive`: the reference, one matrix-vector product per step (``lax.scan``),
  for any dense ``(N, N)`` or diagonal ``Ab``.
* `kernel_diag` (S4D): diagonal ``A = diag(Lambda)``; ``K_l = Σ_m C_m Bb_m Ab_m^l`` is a
  Vandermonde product, evaluated in blocks (``Ab^(qc + r) = Ab^(qc) Ab^r``) so that only
  ``O(H N (L/c + c))`` complex powers are formed and the contraction is a batched matmul.
* `kernel_dplr` (S4): diagonal plus low rank ``A = diag(Lambda) - Pᵀ conj(P)``, bilinear
  discretisation. The truncated generating function ``Σ_{l<L} K_l z^l`` at the L-th roots
  of unity equals ``C̃ (I - Ab z)^{-1} Bb`` with ``C̃ = C (I - Ab^L)``; the resolvent is a
  Cauchy sum over the modes corrected by the Woodbury identity, and ``K`` is one inverse
  real FFT away.

Conventions (shared with `hippox.causal_conv` and the step mode):

* Shapes: ``Lambda``, ``B``, ``C``: ``(H, M)`` (or ``(M,)``, broadcast), ``dt``: ``(H,)``,
  ``P``: ``(rank, H, M)`` (or ``(rank, M)``). Any leading batch shape that broadcasts is
  accepted; kernels have shape ``(..., H, L)``.
* ``conj_sym=True`` (default): the ``M = N/2`` arrays are one half of a conjugate-closed
  set of ``N`` modes (``Im(Lambda) <= 0`` by convention); the system is the closed one and
  its real kernel is ``Re`` of the closed system's kernel. For a diagonal system the halves
  do not interact, so this is ``K_l = 2 Re(C Ab^l Bb)`` over the ``M`` stored modes.
  ``conj_sym=False``: the arrays hold all ``M = N`` modes and ``K_l = Re(C Ab^l Bb)`` (for
  a conjugate-closed set ``Re`` drops only rounding error).
* DPLR state matrix: ``A[n, m] = Lambda[n] δ_nm - Σ_r P[r, n] conj(P[r, m])`` on the
  conjugate-closed mode set. With ``conj_sym=True`` that set is ``Lambda_full = [Lambda,
  conj(Lambda)]``, ``P_full = [P, conj(P)]``, ``B_full = [B, conj(B)]``, ``C_full = [C,
  conj(C)]`` (``2M`` modes): the low-rank term couples the two halves, exactly as in S4,
  and the half system ``diag(Lambda) - Pᵀ conj(P)`` alone is *not* used. The closed
  system's state stays conjugate-symmetric, so its kernel is real and its output is
  ``2 Re(C x)`` for the first-half state ``x``. For a real NPLR operator (e.g.
  ``Lambda, P, B, V = hippox.nplr("legs", N)`` and ``A, b = hippox.transition("legs",
  N)``) this closed system is ``V_full* A V_full`` with the unitary ``V_full = [V,
  conj(V)]``: a real output row ``c`` ``(N,)`` maps to ``C = c V`` ``(N/2,)``, and the
  S4 kernel reproduces the real system's bilinear kernel ``c Ab^l Bb`` exactly.
* dtypes: float32/complex64 inputs compute in complex64 and return float32; float64 or
  complex128 inputs compute in complex128 and return float64. Half-precision inputs
  compute in complex64 (JAX has no half-precision complex type).

Memory: neither `kernel_diag` nor `kernel_dplr` materialises an ``(H, N, L)`` array for
large problems. Work is split into blocks along the length axis (``chunk_size``) and, where
the blocks of all channels together would exceed about ``2**22`` complex elements
(32 MiB in complex64), the channels are processed in groups with ``lax.map``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from hippox._src import _validate
from hippox._src.discretize import discretize_diag

DiagMethod = Literal["zoh", "bilinear", "dss"]
DIAG_KERNEL_METHODS: tuple[str, ...] = ("zoh", "bilinear", "dss")

# Complex elements one block of intermediate values may hold (summed over the channels
# processed together). 2**22 complex64 numbers are 32 MiB.
_BUDGET = 1 << 22


# --------------------------------------------------------------------------- helpers


def _inexact(name: str, x: ArrayLike, *, allow_complex: bool = True) -> jax.Array:
    """``x`` as a floating or complex array (integers become the default float)."""
    try:
        x = jnp.asarray(x)
    except TypeError as err:
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}.") from err
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        if not allow_complex:
            raise TypeError(f"`{name}` must be real, got dtype {x.dtype}.")
    elif not jnp.issubdtype(x.dtype, jnp.floating):
        if not (jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == bool):
            raise TypeError(f"`{name}` must be a numeric array, got dtype {x.dtype}.")
        x = x.astype(jnp.result_type(float))
    return x


def _compute_dtypes(*arrays: jax.Array) -> tuple[np.dtype, np.dtype]:
    """(complex, real) compute dtypes: complex128/float64 iff an input is 64-bit."""
    ctype = np.dtype(jnp.result_type(*arrays, jnp.complex64))
    if ctype != np.complex128:
        ctype = np.dtype(np.complex64)
    return ctype, np.dtype(np.float64 if ctype == np.complex128 else np.float32)


def _batch_shape(shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    try:
        return tuple(jnp.broadcast_shapes(*shapes.values()))
    except ValueError as err:
        desc = ", ".join(f"{k}: {v}" for k, v in shapes.items())
        raise ValueError(
            f"the batch (channel) shapes of the arguments must broadcast together, got {desc}."
        ) from err


def _check_modes(name: str, x: jax.Array, M: int, what: str = "(..., M)") -> None:
    if x.ndim < 1 or x.shape[-1] != M:
        raise ValueError(
            f"`{name}` must have shape {what} with M={M} (from Lambda), got {x.shape}."
        )


def _check_chunk(chunk_size) -> int | None:
    return None if chunk_size is None else _validate.check_size("chunk_size", chunk_size)


def _map_rows(fn: Callable, args: tuple[jax.Array, ...], per_row: int) -> jax.Array:
    """``fn(*args)`` with the leading (row) axis processed in groups within `_BUDGET`.

    ``per_row`` is the number of complex intermediates one row needs. Rows are padded
    with copies of row 0 (so padded values stay finite and gradients NaN-free).
    """
    rows = args[0].shape[0]
    group = max(1, _BUDGET // max(per_row, 1))
    if group >= rows:
        return fn(*args)
    n = -(-rows // group)
    pad = n * group - rows

    def split(a):
        if pad:
            a = jnp.concatenate([a, jnp.broadcast_to(a[:1], (pad, *a.shape[1:]))], axis=0)
        return a.reshape(n, group, *a.shape[1:])

    out = jax.lax.map(lambda xs: fn(*xs), tuple(split(a) for a in args))
    return out.reshape(n * group, *out.shape[2:])[:rows]


def _real_part(K: jax.Array, conj_sym: bool) -> jax.Array:
    return 2.0 * K.real if conj_sym else K.real


# --------------------------------------------------------------------------- naive


def kernel_naive(
    Ab: ArrayLike,
    Bb: ArrayLike,
    C: ArrayLike,
    L: int,
    *,
    diagonal: bool | None = None,
) -> jax.Array:
    """Reference kernel ``K_l = C Ab^l Bb`` for ``l < L``, one step at a time.

    A ``lax.scan`` of ``L`` matrix-vector (or elementwise, for diagonal ``Ab``) products:
    ``O(L N^2)`` work per channel for dense ``Ab``, ``O(L N)`` for diagonal. Meant as the
    slow, obviously-correct reference for `kernel_diag` and `kernel_dplr`.

    Args:
      Ab: discrete state matrix, dense ``(..., N, N)`` or diagonal ``(..., N)``.
      Bb: ``(..., N)`` discrete input vector.
      C: ``(..., N)`` output vector.
      L: kernel length, an int >= 1.
      diagonal: whether ``Ab`` holds a diagonal. ``None`` (default) infers it: ``Ab`` is
        dense when it has one more axis than ``Bb`` and its last two axes are equal,
        diagonal otherwise. Pass it explicitly when the shapes are ambiguous (e.g. a
        diagonal ``(N, N)`` batch with a shared ``Bb`` of shape ``(N,)``).

    Returns:
      ``(..., L)`` kernel (the broadcast batch shape of the arguments), in the dtype of
      ``Ab @ Bb`` (complex when any input is complex; no real part is taken).

    Raises:
      ValueError: if the shapes do not match or ``L < 1``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> K = hippox.kernel_naive(jnp.array([0.5]), jnp.array([1.0]), jnp.array([2.0]), 4)
      >>> [float(k) for k in K]
      [2.0, 1.0, 0.5, 0.25]
    """
    L = _validate.check_size("L", L)
    Ab, Bb, C = _inexact("Ab", Ab), _inexact("Bb", Bb), _inexact("C", C)
    if Bb.ndim < 1:
        raise ValueError(f"`Bb` must have shape (..., N), got {Bb.shape}.")
    N = Bb.shape[-1]
    if diagonal is None:
        diagonal = not (Ab.ndim == Bb.ndim + 1 and Ab.ndim >= 2 and Ab.shape[-1] == Ab.shape[-2])
    if diagonal:
        if Ab.ndim < 1 or Ab.shape[-1] != N:
            raise ValueError(
                f"`Ab` (diagonal) must have shape (..., N) with N={N}, got {Ab.shape}."
            )
        shapes = {"Ab": Ab.shape[:-1], "Bb": Bb.shape[:-1], "C": C.shape[:-1]}
    else:
        if Ab.ndim < 2 or Ab.shape[-2:] != (N, N):
            raise ValueError(
                f"`Ab` (dense) must have shape (..., N, N) with N={N}, got {Ab.shape}."
            )
        shapes = {"Ab": Ab.shape[:-2], "Bb": Bb.shape[:-1], "C": C.shape[:-1]}
    if C.ndim < 1 or C.shape[-1] != N:
        raise ValueError(f"`C` must have shape (..., N) with N={N}, got {C.shape}.")
    batch = _batch_shape(shapes)
    return _kernel_naive(Ab, Bb, C, L=L, diagonal=bool(diagonal), batch=batch)


@functools.partial(jax.jit, static_argnames=("L", "diagonal", "batch"))
def _kernel_naive(Ab, Bb, C, *, L, diagonal, batch):
    N = Bb.shape[-1]
    dtype = jnp.result_type(Ab, Bb, C)
    x0 = jnp.broadcast_to(Bb, (*batch, N)).astype(dtype)
    Ab, C = Ab.astype(dtype), C.astype(dtype)

    def step(x, _):
        y = jnp.sum(C * x, axis=-1)
        x = Ab * x if diagonal else jnp.einsum("...nm,...m->...n", Ab, x)
        return x, y

    _, ys = jax.lax.scan(step, x0, None, length=L)
    return jnp.moveaxis(ys, 0, -1)


# --------------------------------------------------------------------------- diagonal


def _vandermonde(W: jax.Array, logA: jax.Array, L: int, block: int | None) -> jax.Array:
    """``out[h, s, l] = Σ_m W[h, s, m] exp(l logA[h, m])`` for l < L, blockwise.

    ``l = q c + r`` with block length ``c``: ``exp(l logA) = exp(q c logA) exp(r logA)``, so
    only ``(L/c + c)`` powers per mode are formed and the sum over modes is a batched matmul.
    """
    rows, S, M = W.shape
    c = block if block is not None else 1 << max(0, math.ceil(math.log2(math.sqrt(L))))
    c = min(c, L)
    nq = -(-L // c)
    rdtype = jnp.finfo(logA.dtype).dtype

    def fn(W, logA):
        r = jnp.arange(c, dtype=rdtype)
        q = jnp.arange(nq, dtype=rdtype) * c
        base = jnp.exp(logA[..., None] * r)  # (h, M, c)
        starts = jnp.exp(logA[..., None] * q)  # (h, M, nq)
        coef = W[..., None] * starts[:, None]  # (h, S, M, nq)
        out = jnp.einsum("hsmq,hmr->hsqr", coef, base)
        return out.reshape(out.shape[0], S, nq * c)[..., :L]

    per_row = M * (c + nq * (S + 1)) + S * nq * c
    return _map_rows(fn, (W, logA), per_row)


def kernel_diag(
    Lambda: ArrayLike,
    B: ArrayLike,
    C: ArrayLike,
    dt: ArrayLike,
    L: int,
    *,
    method: DiagMethod = "zoh",
    conj_sym: bool = True,
    chunk_size: int | None = None,
) -> jax.Array:
    """S4D convolution kernel of a diagonal SSM (a Vandermonde product).

    ``K_l = 2 Re(Σ_m C_m Bb_m Ab_m^l)`` (``conj_sym=True``) or ``Re(...)``
    (``conj_sym=False``) for ``l < L``, with ``Ab, Bb`` from `hippox.discretize_diag`.

    ``method='dss'`` is zero-order hold with ``Bb`` divided by ``Ab^L - 1`` (the DSS-exp
    normalisation). It is evaluated stably for modes with ``Re(Lambda) > 0`` too: for those
    the term is rewritten with ``Lambda' = -Lambda`` (``Re <= 0``) as
    ``-Σ C Bb' Ab'^(L-1-l)``, so nothing overflows however large ``Re(dt Lambda) L`` is.

    Args:
      Lambda: ``(..., M)`` complex (or real) diagonal of ``A``; ``Re(Lambda) < 0`` for a
        stable system (any sign allowed with ``dss``).
      B: ``(..., M)`` input vector.
      C: ``(..., M)`` output vector.
      dt: ``(...)`` positive real step sizes, one per channel (e.g. ``(H,)``).
      L: kernel length, an int >= 1.
      method: ``zoh``, ``bilinear`` or ``dss``.
      conj_sym: whether the modes are one half of conjugate pairs (output ``2 Re``) or the
        full set (output ``Re``).
      chunk_size: length of the blocks the length axis is split into (``None``: the power
        of two nearest above ``sqrt(L)``, which minimises the powers formed; ``>= L``: one
        block, i.e. the plain ``(H, M, L)`` Vandermonde matrix). Channels are processed in
        groups when the blocks would exceed the memory budget (module docstring).

    Returns:
      ``(..., L)`` real kernel (the broadcast batch shape of ``Lambda, B, C, dt``; ``(H, L)``
      for the usual shapes), float32 or float64 (module docstring).

    Raises:
      ValueError: for bad shapes, ``L < 1``, an unknown ``method`` or bad ``chunk_size``.
      TypeError: for a complex ``dt``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> Lambda = jnp.array([[-0.5 - 1.0j, -0.5 - 3.0j]], jnp.complex64)  # H = 1, M = 2
      >>> B = jnp.ones((1, 2), jnp.complex64)
      >>> C = jnp.array([[1.0 + 0.5j, 0.3 - 0.2j]], jnp.complex64)
      >>> K = hippox.kernel_diag(Lambda, B, C, jnp.array([0.1], jnp.float32), 8)
      >>> K.shape, K.dtype
      ((1, 8), dtype('float32'))
    """
    _validate.check_choice("method", method, DIAG_KERNEL_METHODS)
    L = _validate.check_size("L", L)
    chunk_size = _check_chunk(chunk_size)
    Lam = _inexact("Lambda", Lambda)
    B, C = _inexact("B", B), _inexact("C", C)
    dt = _inexact("dt", dt, allow_complex=False)
    if Lam.ndim < 1:
        raise ValueError(f"`Lambda` must have shape (..., M), got {Lam.shape}.")
    M = Lam.shape[-1]
    _check_modes("B", B, M)
    _check_modes("C", C, M)
    batch = _batch_shape(
        {"Lambda": Lam.shape[:-1], "B": B.shape[:-1], "C": C.shape[:-1], "dt": dt.shape}
    )
    return _kernel_diag(
        Lam,
        B,
        C,
        dt,
        L=L,
        method=method,
        conj_sym=bool(conj_sym),
        chunk_size=chunk_size,
        batch=batch,
    )


@functools.partial(jax.jit, static_argnames=("L", "method", "conj_sym", "chunk_size", "batch"))
def _kernel_diag(Lam, B, C, dt, *, L, method, conj_sym, chunk_size, batch):
    M = Lam.shape[-1]
    ctype, rtype = _compute_dtypes(Lam, B, C, dt)
    rows = math.prod(batch)
    Lam, B, C = (
        jnp.broadcast_to(x.astype(ctype), (*batch, M)).reshape(rows, M) for x in (Lam, B, C)
    )
    dt = jnp.broadcast_to(dt.astype(rtype), batch).reshape(rows)

    if method == "dss":
        pos = Lam.real > 0
        Lam_s = jnp.where(pos, -Lam, Lam)  # Re <= 0 for every mode
        _, Bb = discretize_diag(Lam_s, B, dt, method="dss", L=L)
        WB = C * Bb
        zero = jnp.zeros_like(WB)
        W = jnp.stack([jnp.where(pos, zero, WB), jnp.where(pos, -WB, zero)], axis=1)
        logA = dt[:, None] * Lam_s
    else:
        _, Bb = discretize_diag(Lam, B, dt, method=method)
        W = (C * Bb)[:, None]
        x = dt[:, None] * Lam
        logA = x if method == "zoh" else jnp.log1p(x / 2) - jnp.log1p(-x / 2)
    K = _vandermonde(W, logA, L, chunk_size)  # (rows, S, L)
    K = K[:, 0] + K[:, 1, ::-1] if method == "dss" else K[:, 0]
    return _real_part(K, conj_sym).astype(rtype).reshape(*batch, L)


# --------------------------------------------------------------------------- DPLR


def _dplr_arrays(Lambda, P, B, C, dt, *, c_name: str):
    """Validates DPLR arrays; returns them and the broadcast batch shape."""
    Lam = _inexact("Lambda", Lambda)
    P, C = _inexact("P", P), _inexact(c_name, C)
    B = jnp.zeros(Lam.shape[-1:], Lam.dtype) if B is None else _inexact("B", B)
    dt = _inexact("dt", dt, allow_complex=False)
    if Lam.ndim < 1:
        raise ValueError(f"`Lambda` must have shape (..., M), got {Lam.shape}.")
    M = Lam.shape[-1]
    if P.ndim < 2 or P.shape[-1] != M:
        raise ValueError(
            f"`P` must have shape (rank, ..., M) with M={M} (from Lambda), got {P.shape}."
        )
    _check_modes("B", B, M)
    _check_modes(c_name, C, M)
    batch = _batch_shape(
        {
            "Lambda": Lam.shape[:-1],
            "P": P.shape[1:-1],
            "B": B.shape[:-1],
            c_name: C.shape[:-1],
            "dt": dt.shape,
        }
    )
    return Lam, P, B, C, dt, batch


def _dplr_flatten(Lam, P, B, C, dt, batch):
    """Broadcasts and flattens to (rows, M), (rows, R, M), (rows,) in the compute dtypes."""
    R, M = P.shape[0], Lam.shape[-1]
    ctype, rtype = _compute_dtypes(Lam, P, B, C, dt)
    rows = math.prod(batch)
    Lam, B, C = (
        jnp.broadcast_to(x.astype(ctype), (*batch, M)).reshape(rows, M) for x in (Lam, B, C)
    )
    # Align P's batch axes to the right of the rank axis before broadcasting (a (rank, M)
    # P must not have its rank axis matched against the channel axis).
    P = P.reshape(R, *(1,) * (len(batch) + 2 - P.ndim), *P.shape[1:])
    P = jnp.broadcast_to(P.astype(ctype), (R, *batch, M)).reshape(R, rows, M)
    dt = jnp.broadcast_to(dt.astype(rtype), batch).reshape(rows)
    return Lam, jnp.moveaxis(P, 0, 1), B, C, dt, rtype


def _woodbury(k: jax.Array, b: jax.Array) -> jax.Array:
    """``k00 - b k01 (I + b k11)^{-1} k10`` from the Cauchy sums ``k`` (..., 1+R, 1+R)."""
    R = k.shape[-1] - 1
    k00, k01, k10, k11 = k[..., 0, 0], k[..., 0, 1:], k[..., 1:, 0], k[..., 1:, 1:]
    b = b[..., None]
    if R == 1:
        return k00 - b[..., 0] * k01[..., 0] * k10[..., 0] / (1.0 + b[..., 0] * k11[..., 0, 0])
    Mx = jnp.eye(R, dtype=k.dtype) + b[..., None] * k11
    if R == 2:
        a, bb, c, d = Mx[..., 0, 0], Mx[..., 0, 1], Mx[..., 1, 0], Mx[..., 1, 1]
        det = a * d - bb * c
        x0 = (d * k10[..., 0] - bb * k10[..., 1]) / det
        x1 = (a * k10[..., 1] - c * k10[..., 0]) / det
        return k00 - b[..., 0] * (k01[..., 0] * x0 + k01[..., 1] * x1)
    x = jnp.linalg.solve(Mx, k10[..., None])[..., 0]
    return k00 - b[..., 0] * jnp.sum(k01 * x, axis=-1)


def kernel_dplr(
    Lambda: ArrayLike,
    P: ArrayLike,
    B: ArrayLike,
    C_tilde: ArrayLike,
    dt: ArrayLike,
    L: int,
    *,
    conj_sym: bool = True,
    chunk_size: int | None = None,
) -> jax.Array:
    """S4 convolution kernel of a diagonal-plus-low-rank SSM (Cauchy kernel + Woodbury).

    The system ``A = diag(Lambda) - Pᵀ conj(P)`` on the conjugate-closed mode set (with
    ``conj_sym=True``: ``Lambda_full = [Lambda, conj(Lambda)]``, ``P_full = [P, conj(P)]``,
    ``B_full``, ``C̃_full`` likewise; module docstring) is discretised with the bilinear
    method and its length-``L`` kernel is obtained from the generating function
    ``Σ_{l<L} K_l z^l = C̃ (I - Ab z)^{-1} Bb`` at the L-th roots of unity
    (``C̃ = C (I - Ab^L)``, see `dplr_c_tilde`). At ``z = e^{iθ}`` the resolvent is
    ``(I - z Ab)^{-1} Bb = e^{-iθ/2} (a I - b A)^{-1} dt B`` with ``a = -2i sin(θ/2)`` and
    ``b = dt cos(θ/2)``: finite at every node, including the Nyquist node ``z = -1``
    (``b = 0``) where the usual ``2/dt (1-z)/(1+z)`` is infinite. The inverse of
    ``diag(a - b Lambda) + b Pᵀ conj(P)`` is expanded with the Woodbury identity (a
    closed form for rank 1 and 2, a small ``rank × rank`` solve per node otherwise).

    With ``conj_sym=True`` the Cauchy sums run over the closed set without forming it:
    ``Σ_m [v_m / (a - b λ_m) + conj(v_m) / (a - b conj(λ_m))]``, whose second term is the
    conjugate of the plain sum at the node ``conj(z)`` (``a -> -a``); the Woodbury
    correction is applied to these symmetrised sums, so the two halves are coupled through
    ``P`` as in the real system. The closed system's kernel is real, and its spectrum at
    the ``L//2 + 1`` nodes `jnp.fft.irfft` needs is the value itself. With
    ``conj_sym=False`` the ``M`` modes are the system and the spectrum of ``Re K`` is
    ``(k̂(z) + conj(k̂(conj z))) / 2``. Either way the cost is ``O(H M L)`` (times
    ``rank²``) with no ``M × M`` (or ``2M × 2M``) matrices.

    Reproducing a real NPLR system: for ``Lambda, P, B, V = hippox.nplr(measure, N)``,
    ``A, b = hippox.transition(measure, N)`` and a real output row ``c`` ``(N,)``, the
    kernel ``c Ab^l Bb`` of the real bilinear system equals
    ``kernel_dplr(Lambda, P, B, dplr_c_tilde(c @ V, Lambda, P, dt, L), dt, L)``
    (``conj_sym=True``; ``C = c V`` because ``c V_full = [c V, conj(c V)]``).

    Args:
      Lambda: ``(..., M)`` complex diagonal part, ``Re(Lambda) < 0`` strictly: the
        Cauchy/Woodbury evaluation divides by ``g(z) - Lambda``, which vanishes at the
        ``z = 1`` node for an eigenvalue exactly 0 (the raw ``nplr`` spectra of ``fout``,
        ``legt``, ``lagt`` have ``Re(Lambda) = 0``, ``fout`` an exact 0). Clamp
        ``Re(Lambda) <= -1e-4`` first, as hippox's layers (`hippox.initializers`) and the
        reference S4 init do.
      P: ``(rank, ..., M)`` complex low-rank factor (the rank axis first).
      B: ``(..., M)`` input vector.
      C_tilde: ``(..., M)`` the output vector in S4's parameterisation,
        ``C_tilde = C (I - Ab^L)`` (`dplr_c_tilde` with the same ``conj_sym``;
        `dplr_c_from_tilde` inverts it). With ``conj_sym=True`` it is the first half of
        the conjugate-symmetric ``C̃_full``.
      dt: ``(...)`` positive real step sizes, one per channel (e.g. ``(H,)``).
      L: kernel length, an int >= 1 (even or odd).
      conj_sym: ``True``: the arrays are one half of a conjugate-closed set of ``2M``
        modes and ``K`` is the (real) kernel of that closed system; ``False``: the ``M``
        modes are the system and ``K = Re`` of its kernel.
      chunk_size: number of frequency nodes evaluated together (``None``: as many as fit
        the memory budget, module docstring).

    Returns:
      ``(..., L)`` real kernel (``(H, L)`` for the usual shapes), float32 or float64.

    Raises:
      ValueError: for bad shapes, ``L < 1`` or a bad ``chunk_size``.
      TypeError: for a complex ``dt``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import hippox
      >>> Lambda, P, B, V = hippox.nplr("legs", 8)
      >>> C = jnp.ones((2, 4), jnp.complex64)                 # H = 2 channels
      >>> dt = jnp.array([0.01, 0.1], jnp.float32)
      >>> Ct = hippox.dplr_c_tilde(C, Lambda, P, dt, 64)
      >>> K = hippox.kernel_dplr(Lambda, P, B, Ct, dt, 64)
      >>> K.shape, K.dtype
      ((2, 64), dtype('float32'))

      The real LegS system with output row ``c``: ``C = c V``.

      >>> A, b = hippox.transition("legs", 8)
      >>> c = jnp.arange(8.0) / 8
      >>> Ab, Bb = hippox.discretize(A, b, 0.1, method="bilinear")
      >>> K_real = hippox.kernel_naive(Ab, Bb, c, 16)
      >>> Ct = hippox.dplr_c_tilde(c @ V, Lambda, P, 0.1, 16)
      >>> bool(np.allclose(hippox.kernel_dplr(Lambda, P, B, Ct, 0.1, 16), K_real, atol=1e-5))
      True
    """
    L = _validate.check_size("L", L)
    chunk_size = _check_chunk(chunk_size)
    arrays = _dplr_arrays(Lambda, P, B, C_tilde, dt, c_name="C_tilde")
    return _kernel_dplr(*arrays, L=L, conj_sym=bool(conj_sym), chunk_size=chunk_size)


@functools.partial(jax.jit, static_argnames=("L", "conj_sym", "chunk_size", "batch"))
def _kernel_dplr(Lam, P, B, Ct, dt, batch, *, L, conj_sym, chunk_size):
    Lam, P, B, Ct, dt, rtype = _dplr_flatten(Lam, P, B, Ct, dt, batch)
    ctype = Lam.dtype
    rows, R, M = P.shape
    # Cauchy numerators v[h, i, j, m] = left[i] right[j]: left = (C̃, conj P), right = (B, P).
    # On the conjugate half both are conjugated, so the numerators there are conj(v).
    left = jnp.concatenate([Ct[:, None], P.conj()], axis=1)
    right = jnp.concatenate([B[:, None], P], axis=1)
    v = (left[:, :, None] * right[:, None]).reshape(rows, (R + 1) ** 2, M)

    nf = L // 2 + 1  # the nodes z = e^{iθ} irfft needs; each also gives its conjugate
    per_node = rows * (2 * M + 3 * (R + 1) ** 2)
    zc = chunk_size if chunk_size is not None else max(1, _BUDGET // per_node)
    zc = min(zc, nf)
    nchunk = -(-nf // zc)
    theta = -2.0 * np.pi * np.arange(nf) / L
    theta = np.concatenate([theta, np.zeros(nchunk * zc - nf)]).reshape(nchunk, zc)
    # Node constants in float64 on the host, cast once: a = -2i sin(θ/2), cos(θ/2), e^{-iθ/2}.
    # The conjugate node conj(z) has -a, the same cos(θ/2), and the conjugate phase.
    a_nodes = jnp.asarray(-2j * np.sin(theta / 2), ctype)
    c_nodes = jnp.asarray(np.cos(theta / 2), rtype)
    phase_nodes = jnp.asarray(np.exp(-0.5j * theta), ctype)

    def spectrum(nodes):  # (zc,) node constants -> (rows, zc) spectrum of the real kernel
        a, c, phase = nodes
        b = dt[:, None] * c  # (rows, zc)
        bl = b[..., None] * Lam[:, None, :]  # (rows, zc, M)
        shape = (rows, a.shape[0], R + 1, R + 1)
        k_z = jnp.einsum("hzm,hvm->hzv", 1.0 / (a[None, :, None] - bl), v).reshape(shape)
        k_c = jnp.einsum("hzm,hvm->hzv", 1.0 / (-a[None, :, None] - bl), v).reshape(shape)
        if conj_sym:
            # Σ over the closed set: the half at z plus the conjugate of the half at conj(z).
            g = _woodbury(k_z + k_c.conj(), b)
        else:
            g = 0.5 * (_woodbury(k_z, b) + _woodbury(k_c, b).conj())
        return (dt[:, None] * phase) * g

    nodes = (a_nodes, c_nodes, phase_nodes)
    if nchunk == 1:
        spec = spectrum(tuple(x[0] for x in nodes))
    else:
        spec = jax.lax.map(spectrum, nodes)  # (nchunk, rows, zc)
        spec = jnp.moveaxis(spec, 0, 1).reshape(rows, nchunk * zc)
    K = jnp.fft.irfft(spec[:, :nf], n=L, axis=-1)
    return K.astype(rtype).reshape(*batch, L)


def _closed(x: jax.Array) -> jax.Array:
    """``concat([x, conj(x)])`` along the mode (last) axis."""
    return jnp.concatenate([x, x.conj()], axis=-1)


def _dplr_power(Lam, P, dt, L):
    """(I - Ab^L) per row, (rows, M, M), from the dense bilinear discretisation."""
    M = Lam.shape[-1]
    eye = jnp.eye(M, dtype=Lam.dtype)
    A = Lam[:, :, None] * eye - jnp.einsum("hrn,hrm->hnm", P, P.conj())
    half = (dt / 2)[:, None, None].astype(Lam.dtype)
    Ab = jnp.linalg.solve(eye - half * A, eye + half * A)
    result, base, n = None, Ab, L
    while n:  # repeated squaring; L is a static Python int
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if n:
            base = base @ base
    return eye - result


def dplr_c_tilde(
    C: ArrayLike,
    Lambda: ArrayLike,
    P: ArrayLike,
    dt: ArrayLike,
    L: int,
    *,
    conj_sym: bool = True,
) -> jax.Array:
    """S4's output parameterisation ``C̃ = C (I - Ab^L)`` (row vector times matrix).

    ``Ab`` is the bilinear discretisation of ``A = diag(Lambda) - Pᵀ conj(P)`` with step
    ``dt`` on the conjugate-closed mode set (module docstring). With ``conj_sym=True``
    the transform is applied to the closed ``2M``-mode system, ``C̃_full = C_full (I -
    Ab_full^L)`` with ``C_full = [C, conj(C)]``; ``C̃_full`` is again conjugate-symmetric
    and its first half is returned. ``Ab^L`` is computed by repeated squaring of the dense
    ``M × M`` (``2M × 2M`` with ``conj_sym``) matrix, ``O(M^3 log L)`` per channel: meant
    for initialisation or length changes, not for every training step.

    Args:
      C: ``(..., M)`` output vector (the first half of ``C_full`` with ``conj_sym``).
      Lambda: ``(..., M)`` diagonal part.
      P: ``(rank, ..., M)`` low-rank factor.
      dt: ``(...)`` step sizes.
      L: kernel length, an int >= 1.
      conj_sym: whether the arrays are one half of a conjugate-closed set (as for
        `kernel_dplr`; use the same value there).

    Returns:
      ``(..., M)`` complex ``C̃`` (the broadcast batch shape), complex64 or complex128.

    Raises:
      ValueError: for bad shapes or ``L < 1``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import hippox
      >>> Lambda, P, B, V = hippox.nplr("legs", 8)
      >>> C = jnp.ones((4,), jnp.complex64)
      >>> Ct = hippox.dplr_c_tilde(C, Lambda, P, 0.1, 16)
      >>> C2 = hippox.dplr_c_from_tilde(Ct, Lambda, P, 0.1, 16)
      >>> bool(np.allclose(C2, C, atol=1e-4))
      True
    """
    L = _validate.check_size("L", L)
    arrays = _dplr_arrays(Lambda, P, None, C, dt, c_name="C")
    return _c_tilde(*arrays, L=L, inverse=False, conj_sym=bool(conj_sym))


def dplr_c_from_tilde(
    C_tilde: ArrayLike,
    Lambda: ArrayLike,
    P: ArrayLike,
    dt: ArrayLike,
    L: int,
    *,
    conj_sym: bool = True,
) -> jax.Array:
    """Inverse of `dplr_c_tilde`: ``C = C̃ (I - Ab^L)^{-1}``.

    Used by the step (recurrent) mode, which needs the plain ``C``. With ``conj_sym=True``
    the inverse is taken on the closed system (``C_full = C̃_full (I - Ab_full^L)^{-1}``,
    first half returned). Same cost remarks as `dplr_c_tilde`; ``I - Ab^L`` is invertible
    when ``Ab`` has no eigenvalue that is an L-th root of unity (always true for a stable
    ``A``).

    Args:
      C_tilde: ``(..., M)`` output vector in S4's parameterisation.
      Lambda: ``(..., M)`` diagonal part.
      P: ``(rank, ..., M)`` low-rank factor.
      dt: ``(...)`` step sizes.
      L: the kernel length ``C_tilde`` was defined for, an int >= 1.
      conj_sym: whether the arrays are one half of a conjugate-closed set (as for
        `dplr_c_tilde` and `kernel_dplr`).

    Returns:
      ``(..., M)`` complex ``C``, complex64 or complex128.

    Raises:
      ValueError: for bad shapes or ``L < 1``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> Lambda, P, B, V = hippox.nplr("legs", 8)
      >>> hippox.dplr_c_from_tilde(jnp.ones((3, 4)), Lambda, P, jnp.full((3,), 0.1), 32).shape
      (3, 4)
    """
    L = _validate.check_size("L", L)
    arrays = _dplr_arrays(Lambda, P, None, C_tilde, dt, c_name="C_tilde")
    return _c_tilde(*arrays, L=L, inverse=True, conj_sym=bool(conj_sym))


@functools.partial(jax.jit, static_argnames=("batch", "L", "inverse", "conj_sym"))
def _c_tilde(Lam, P, B, C, dt, batch, *, L, inverse, conj_sym):
    Lam, P, _, C, dt, _ = _dplr_flatten(Lam, P, B, C, dt, batch)
    M = Lam.shape[-1]
    if conj_sym:  # the conjugate-closed 2M-mode system; its C and C̃ are conj-symmetric
        Lam, P, C = _closed(Lam), _closed(P), _closed(C)
    IA = _dplr_power(Lam, P, dt, L)  # I - Ab^L
    if inverse:
        out = jnp.linalg.solve(jnp.swapaxes(IA, -1, -2), C[..., None])[..., 0]
    else:
        out = jnp.einsum("hn,hnm->hm", C, IA)
    return out[:, :M].reshape(*batch, M)
