"""Step (streaming) mode: the recurrence of a discretised SSM, one step at a time.

The same SSM parameters that define a convolution kernel also define a recurrence
``x_k = Ab x_{k-1} + Bb u_k``, ``y_k = C x_k + D u_k`` (one system per channel
``h = 0 … H-1``; kernel ``K_l = C Ab^l Bb``). This module runs that recurrence one
step at a time (autoregressive generation, streaming inference), or over a whole
sequence with `scan_steps`. The parameter containers made here are also what the
chunked functions of ``hippox/_src/chunked.py`` take (`forward_chunk_diag`,
`forward_chunk_dense`: one chunk at a time from a carried state, without an L-step loop).

Usage pattern: discretise once with a ``*_step_params`` function, start from
`init_state`, then call the matching step (or chunk) function::

    params = diag_step_params(Lambda, B, C, dt, D)   # once
    x = init_state(params, batch_shape=(n,))         # (n, H, M) complex zeros
    x, y = diag_step(params, x, u_k)                 # u_k (n, H) -> y (n, H)
    y, x = forward_chunk_diag(params, u_chunk, x)    # u_chunk (n, H, L) -> y (n, H, L)

Forms:

* diagonal (S4D): ``Ab = diag(...)`` from `hippox.discretize_diag` (zoh, bilinear, dss);
  state ``(..., H, M)`` complex. `diag_step`: O(M) per channel and step.
* dense: any discrete ``(Ab, Bb, C, D)`` per channel (e.g. from `hippox.discretize`);
  state ``(..., H, N)`` real or complex. `dense_step`: O(N²).
* DPLR (S4): ``A = diag(Lambda) - Pᵀ conj(P)`` (``A[n, m] = Lambda[n] δ_nm -
  Σ_r P[r, n] conj(P[r, m])``) on the conjugate-closed mode set, discretised
  bilinearly, ``Ab = (I - dt/2 A)^{-1} (I + dt/2 A)``, ``Bb = (I - dt/2 A)^{-1} dt B``.
  With ``conj_sym=False`` the M modes are the system. With ``conj_sym=True`` (as in S4)
  the M arrays are one half of the closed set ``Lambda_full = [Lambda, conj(Lambda)]``,
  ``P_full = [P, conj(P)]``, ``B_full = [B, conj(B)]``, ``C_full = [C, conj(C)]``: the
  low-rank term couples the two halves, the closed state ``[x, conj(x)]`` stays
  conjugate-symmetric, and hippox keeps only its first half ``x`` (M modes). For an NPLR
  operator (`hippox.nplr`) this is exactly the real HiPPO system (``C = c V`` for a real
  output row ``c``; conventions of ``hippox/_src/dplr.py``). `dplr_step_dense_params`
  forms the discretised matrices once, for `dense_step` (also named `dplr_step_dense`;
  O(M²) per step; with ``conj_sym=True`` the half-state update is ``x' = Ab x + Abc
  conj(x) + Bb u``). `dplr_step_linear` never forms them: ``(I + dt/2 A) x`` is a diagonal plus a
  rank-r product and ``(I - dt/2 A)^{-1}`` is applied with the Woodbury identity around
  the diagonal ``(1 - dt/2 Lambda)^{-1}``, O(M·rank) per step (with ``conj_sym=True`` the
  low-rank projections of the closed state are ``conj(P) x + P conj(x)``).

Output convention: with ``conj_sym=True`` (the default for diagonal and DPLR systems)
the M modes are one half of conjugate pairs and the real output is
``y = 2 Re(C x) + D u``; with ``conj_sym=False`` it is ``y = Re(C x) + D u``. The
setup functions fold the factor into the stored ``C`` (``params.C`` is 2 C for
``conj_sym=True``), so every step function computes ``y = Re(params.C x) + D u``.

Note the step uses the plain ``C``. An S4 layer that trains ``C_tilde = C (I - Ab^L)``
(the kernel parameterisation) must convert with `hippox.dplr_c_from_tilde` (with the
same ``conj_sym``) first.

Dtypes: float32 / complex64 parameters give complex64 states and float32 outputs;
float64 / complex128 only when the parameters are (bfloat16/float16 parameters are
computed in float32/complex64, JAX has no half-precision complex type). Inputs ``u``
and states ``x`` are cast to the parameters' precision.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from hippox._src import _validate
from hippox._src.discretize import (
    DIAG_METHODS,
    DiagMethod,
    check_dss_length,
    discretize,
    discretize_diag,
)
from hippox._src.dplr import check_rank_axis, closed_modes, dplr_matrix

__all__ = [
    "DPLRStepParams",
    "DenseStepParams",
    "DiagStepParams",
    "dense_step",
    "dense_step_params",
    "diag_step",
    "diag_step_params",
    "dplr_step_dense",
    "dplr_step_dense_params",
    "dplr_step_linear",
    "dplr_step_linear_params",
    "init_state",
    "scan_steps",
]


# --------------------------------------------------------------------------- containers


class DiagStepParams(NamedTuple):
    """A discretised diagonal SSM, ready for `diag_step` / `forward_chunk_diag`.

    Attributes:
      Ab: ``(H, M)`` complex, diagonal of the discrete state matrix.
      Bb: ``(H, M)`` complex, discrete input vector.
      C: ``(H, M)`` complex output vector with the output factor folded in
        (``2 C`` for ``conj_sym=True``), so ``y = Re(C x) + D u``.
      D: ``(H,)`` real skip term.
    """

    Ab: jax.Array
    Bb: jax.Array
    C: jax.Array
    D: jax.Array


class DenseStepParams(NamedTuple):
    """A dense discrete SSM per channel, ready for `dense_step` / `forward_chunk_dense`.

    The update is ``x' = Ab x + Bb u`` or, when ``Abc`` is set, ``x' = Ab x + Abc conj(x)
    + Bb u`` (the half state of a conjugate-closed system, see `dplr_step_dense_params`);
    the output is ``y = Re(C x') + D u``.

    Attributes:
      Ab: ``(H, N, N)`` discrete state matrix (real or complex).
      Bb: ``(H, N)`` discrete input vector.
      C: ``(H, N)`` output vector (output factor folded in).
      D: ``(H,)`` real skip term.
      Abc: ``(H, N, N)`` complex coefficient of ``conj(x)``, or None (a plain system).
        For a closed system with ``Ab_full = [[Ab, Abc], [conj(Abc), conj(Ab)]]``.
    """

    Ab: jax.Array
    Bb: jax.Array
    C: jax.Array
    D: jax.Array
    Abc: jax.Array | None = None


class DPLRStepParams(NamedTuple):
    """Precomputed factors of the O(M·rank) bilinear DPLR step (`dplr_step_linear`).

    The low-rank projection of the state is ``proj(x) = conj(P) x`` (``conj_sym=False``)
    or, for the closed state ``[x, conj(x)]`` (``conj_sym=True``),
    ``proj(x) = conj(P) x + Pbar conj(x)`` with ``Pbar = P`` (``= 2 Re(conj(P) x)``).
    With ``F = (1 - dt/2 Lambda)^{-1}`` (diagonal) and the Woodbury identity,
    ``(I - dt/2 A)^{-1} v = F v - Gᵀ proj(F v)``, so one step is::

        v = Ad x - Pdtᵀ proj(x)        # (I + dt/2 A) x
        w = F v
        x_new = w - Gᵀ proj(w) + Bb u

    Attributes:
      Ad: ``(H, M)`` complex, ``1 + dt/2 Lambda``.
      F: ``(H, M)`` complex, ``1 / (1 - dt/2 Lambda)``.
      P: ``(H, rank, M)`` complex low-rank factor (channel axis first).
      Pdt: ``(H, rank, M)`` complex, ``dt/2 P``.
      G: ``(H, rank, M)`` complex Woodbury factor
        ``G[r', n] = dt/2 F[n] Σ_r P[r, n] K[r, r']`` with ``K = (I + dt/2 S)^{-1}``
        (rank × rank), ``S = conj(P) diag(F) Pᵀ`` (``conj_sym=False``) or its closed-set
        version ``2 Re(S)`` (``conj_sym=True``).
      Bb: ``(H, M)`` complex discrete input vector.
      C: ``(H, M)`` complex output vector, output factor folded in.
      D: ``(H,)`` real skip term.
      Pbar: ``(H, rank, M)`` coefficient of ``conj(x)`` in the projection (``P``) for
        ``conj_sym=True``; None for ``conj_sym=False``.
    """

    Ad: jax.Array
    F: jax.Array
    P: jax.Array
    Pdt: jax.Array
    G: jax.Array
    Bb: jax.Array
    C: jax.Array
    D: jax.Array
    Pbar: jax.Array | None = None


StepParams = DiagStepParams | DenseStepParams | DPLRStepParams


# --------------------------------------------------------------------------- validation


def _check_dt(dt: jax.Array) -> None:
    """Checks ``dt`` finite and > 0 when its value is known (skipped for traced values)."""
    _validate.check_step("dt", dt)


def _channels(leading: dict[str, tuple[int, ...]], describe: str) -> int:
    """Infers H from the leading (channel) shapes of the arguments."""
    shapes = ", ".join(f"{k} {v}" for k, v in leading.items())
    try:
        batch = jnp.broadcast_shapes(*leading.values())
    except ValueError:
        batch = (None, None)
    if len(batch) > 1:
        raise ValueError(
            f"the arguments must agree on one channel count H ({describe}), got leading "
            f"(channel) shapes {shapes}."
        )
    if not batch:
        raise ValueError(
            f"at least one argument must carry the channel axis H ({describe}), got leading "
            f"(channel) shapes {shapes}."
        )
    return batch[0]


def _core(name: str, x: jax.Array, core_ndim: int, desc: str) -> tuple[int, ...]:
    """Returns the leading (channel) shape of `x`, which has core_ndim or core_ndim+1 axes."""
    if x.ndim not in (core_ndim, core_ndim + 1):
        raise ValueError(f"`{name}` must have shape {desc}, got {x.shape}.")
    return x.shape[: x.ndim - core_ndim]


def _skip(D: ArrayLike | None, H: int, rdtype) -> jax.Array:
    if D is None:
        return jnp.zeros((H,), rdtype)
    D = _validate.as_inexact("D", D, allow_complex=False)
    if D.ndim > 1 or (D.ndim == 1 and D.shape[0] not in (1, H)):
        raise ValueError(f"`D` must be a scalar or have shape (H,) with H={H}, got {D.shape}.")
    return jnp.broadcast_to(D.astype(rdtype), (H,))


def check_params(name: str, params, cls: type, made_by: str) -> None:
    """Checks that `params` is a `cls` container (made by ``hippox.<made_by>``)."""
    if not isinstance(params, cls):
        raise TypeError(
            f"`{name}` must be a {cls.__name__} (made by hippox.{made_by}), "
            f"got {type(params).__name__}."
        )


def state_and_input(params, x: ArrayLike, u: ArrayLike, u_core: int):
    """Validates a state ``x (..., H, M)`` and an input ``u`` against ``params.Bb (H, M)``.

    ``u`` is ``(..., H)`` (one step, ``u_core=1``) or ``(..., H, L)`` (a sequence,
    ``u_core=2``); returns ``(x, u)`` as inexact arrays, not yet cast (`cast_state_and_input`).
    """
    H, M = params.Bb.shape
    dtype = params.Bb.dtype
    x = _validate.as_inexact("x", x)
    u = _validate.as_inexact("u", u, allow_complex=False)
    if x.ndim < 2 or x.shape[-2:] != (H, M):
        raise ValueError(f"`x` must have shape (..., H, M) = (..., {H}, {M}), got {x.shape}.")
    if jnp.issubdtype(x.dtype, jnp.complexfloating) and not jnp.issubdtype(
        dtype, jnp.complexfloating
    ):
        raise TypeError(
            f"`x` must be real for a real system (parameters of dtype {dtype}), got dtype "
            f"{x.dtype}."
        )
    want = "(..., H)" if u_core == 1 else "(..., H, L)"
    if u.ndim < u_core or u.shape[u.ndim - u_core] != H:
        raise ValueError(f"`u` must have shape {want} with H={H}, got {u.shape}.")
    try:
        jnp.broadcast_shapes(x.shape[:-2], u.shape[: u.ndim - u_core])
    except ValueError as err:
        raise ValueError(
            f"`x` and `u` must have broadcastable batch shapes, got x {x.shape} and u {u.shape}."
        ) from err
    return x, u


def cast_state_and_input(params, x: jax.Array | None, u: jax.Array):
    """Casts a validated state (or None) and input to the parameters' (state, real) dtypes."""
    return (None if x is None else x.astype(params.Bb.dtype)), u.astype(params.D.dtype)


def _output(C: jax.Array, x: jax.Array, D: jax.Array, u: jax.Array) -> jax.Array:
    y = jnp.sum(C * x, axis=-1)
    return (jnp.real(y) + D * u).astype(D.dtype)


# --------------------------------------------------------------------------- setup


def diag_step_params(
    Lambda: ArrayLike,
    B: ArrayLike,
    C: ArrayLike,
    dt: ArrayLike,
    D: ArrayLike | None = None,
    *,
    method: DiagMethod = "zoh",
    conj_sym: bool = True,
    L: int | None = None,
) -> DiagStepParams:
    """Discretises a diagonal (S4D) SSM once for `diag_step` / `forward_chunk_diag`.

    Args:
      Lambda: ``(H, M)`` or ``(M,)`` (shared by all channels) diagonal of A, complex
        (or real).
      B: ``(H, M)`` or ``(M,)`` input vector.
      C: ``(H, M)`` or ``(M,)`` output vector.
      dt: ``(H,)`` step sizes (> 0), or a scalar.
      D: ``(H,)`` real skip term, a scalar, or None (zero).
      method: ``zoh``, ``bilinear`` or ``dss``, as in `hippox.discretize_diag`.
      conj_sym: if True, the M modes are one half of conjugate pairs and
        ``y = 2 Re(C x) + D u``; if False, ``y = Re(C x) + D u``.
      L: kernel length, only for ``method='dss'`` (its normalisation depends on L).

    Returns:
      `DiagStepParams(Ab, Bb, C, D)` with shapes ``(H, M)``, ``(H, M)``, ``(H, M)``,
      ``(H,)``; complex64/float32 unless an input is (complex) float64.

    Raises:
      ValueError: on inconsistent shapes, a non-positive concrete ``dt`` or a bad
        ``method``.
      TypeError: on a complex ``dt`` or ``D``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> Lambda = jnp.array([-0.5 - 1.0j, -0.5 - 2.0j])
      >>> p = hippox.diag_step_params(Lambda, jnp.ones(2), jnp.ones(2), jnp.full(3, 0.1))
      >>> p.Ab.shape, p.D.shape
      ((3, 2), (3,))
    """
    _validate.check_choice("method", method, DIAG_METHODS)
    conj_sym = _validate.check_bool("conj_sym", conj_sym)
    Lam, B, C = (_validate.as_inexact(n, a) for n, a in (("Lambda", Lambda), ("B", B), ("C", C)))
    dt = _validate.as_inexact("dt", dt, allow_complex=False)
    M = Lam.shape[-1] if Lam.ndim else None
    lead = {
        "Lambda": _core("Lambda", Lam, 1, "(H, M) or (M,)"),
        "B": _core("B", B, 1, "(H, M) or (M,)"),
        "C": _core("C", C, 1, "(H, M) or (M,)"),
        "dt": _core("dt", dt, 0, "(H,) or ()"),
    }
    if B.shape[-1] != M or C.shape[-1] != M:
        raise ValueError(
            f"`B` and `C` must have M={M} modes like `Lambda`, got B {B.shape}, C {C.shape}."
        )
    H = _channels(lead, "Lambda/B/C (H, M), dt (H,)")
    _check_dt(dt)
    L = check_dss_length(method, L)
    rdtype = _validate.compute_dtype(Lam, B, C, dt)
    Ab, Bb, C = _diag_setup(
        Lam, B, C, dt, H=H, method=method, L=L, scale=2.0 if conj_sym else 1.0, rdtype=rdtype
    )
    return DiagStepParams(Ab, Bb, C, _skip(D, H, rdtype))


@functools.partial(jax.jit, static_argnames=("H", "method", "L", "scale", "rdtype"))
def _diag_setup(Lam, B, C, dt, *, H, method, L, scale, rdtype):
    cdtype = _validate.complex_dtype(rdtype)
    M = Lam.shape[-1]
    Lam, B, C = (jnp.broadcast_to(a.astype(cdtype), (H, M)) for a in (Lam, B, C))
    dt = jnp.broadcast_to(dt.astype(rdtype), (H,))
    Ab, Bb = discretize_diag(Lam, B, dt, method=method, L=L)
    return Ab.astype(cdtype), Bb.astype(cdtype), scale * C


def dense_step_params(
    Ab: ArrayLike, Bb: ArrayLike, C: ArrayLike, D: ArrayLike | None = None
) -> DenseStepParams:
    """Validates and packs a dense discrete SSM per channel for `dense_step`.

    Discretise a continuous system first, e.g. with `hippox.discretize`
    (``Ab, Bb = hippox.discretize(A, B, dt)`` with ``dt`` of shape ``(H,)``).

    Args:
      Ab: ``(H, N, N)`` or ``(N, N)`` discrete state matrix (real or complex).
      Bb: ``(H, N)`` or ``(N,)`` discrete input vector.
      C: ``(H, N)`` or ``(N,)`` output vector; the output is ``y = Re(C x) + D u``.
      D: ``(H,)`` real skip term, a scalar, or None (zero). At least one argument
        must carry the channel axis H.

    Returns:
      `DenseStepParams(Ab, Bb, C, D)`, shapes ``(H, N, N)``, ``(H, N)``, ``(H, N)``,
      ``(H,)``; real if all of ``Ab, Bb, C`` are real, else complex.

    Raises:
      ValueError: on inconsistent shapes.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> A, B = hippox.transition("legs", 4)
      >>> Ab, Bb = hippox.discretize(A, B, jnp.array([0.1, 0.01]))
      >>> p = hippox.dense_step_params(Ab, Bb, jnp.ones(4))
      >>> p.Ab.shape, p.C.shape, p.D.shape
      ((2, 4, 4), (2, 4), (2,))
    """
    Ab, Bb, C = (_validate.as_inexact(n, a) for n, a in (("Ab", Ab), ("Bb", Bb), ("C", C)))
    if Ab.ndim < 2 or Ab.shape[-1] != Ab.shape[-2]:
        raise ValueError(f"`Ab` must have shape (H, N, N) or (N, N), got {Ab.shape}.")
    N = Ab.shape[-1]
    lead = {
        "Ab": _core("Ab", Ab, 2, "(H, N, N) or (N, N)"),
        "Bb": _core("Bb", Bb, 1, "(H, N) or (N,)"),
        "C": _core("C", C, 1, "(H, N) or (N,)"),
    }
    if Bb.shape[-1] != N or C.shape[-1] != N:
        raise ValueError(
            f"`Bb` and `C` must have N={N} entries like `Ab`, got Bb {Bb.shape}, C {C.shape}."
        )
    if D is not None:
        D = _validate.as_inexact("D", D, allow_complex=False)
        lead["D"] = _core("D", D, 0, "(H,) or ()")
    H = _channels(lead, "Ab (H, N, N), Bb/C (H, N), D (H,)")
    rdtype = _validate.compute_dtype(Ab, Bb, C)
    complex_ = any(jnp.issubdtype(a.dtype, jnp.complexfloating) for a in (Ab, Bb, C))
    dtype = _validate.complex_dtype(rdtype) if complex_ else rdtype
    return DenseStepParams(*_dense_setup(Ab, Bb, C, H=H, dtype=dtype), _skip(D, H, rdtype))


@functools.partial(jax.jit, static_argnames=("H", "dtype"))
def _dense_setup(Ab, Bb, C, *, H, dtype):
    N = Ab.shape[-1]
    return (
        jnp.broadcast_to(Ab.astype(dtype), (H, N, N)),
        jnp.broadcast_to(Bb.astype(dtype), (H, N)),
        jnp.broadcast_to(C.astype(dtype), (H, N)),
    )


def _dplr_inputs(Lambda, P, B, C, dt, conj_sym):
    """Validates DPLR parameters; returns the arrays, H, conj_sym and the real compute dtype."""
    conj_sym = _validate.check_bool("conj_sym", conj_sym)
    Lam, P, B, C = (
        _validate.as_inexact(n, a) for n, a in (("Lambda", Lambda), ("P", P), ("B", B), ("C", C))
    )
    dt = _validate.as_inexact("dt", dt, allow_complex=False)
    M = Lam.shape[-1] if Lam.ndim else None
    if P.ndim not in (2, 3):
        raise ValueError(f"`P` must have shape (rank, H, M) or (rank, M), got {P.shape}.")
    lead = {
        "Lambda": _core("Lambda", Lam, 1, "(H, M) or (M,)"),
        "P": P.shape[1:2] if P.ndim == 3 else (),
        "B": _core("B", B, 1, "(H, M) or (M,)"),
        "C": _core("C", C, 1, "(H, M) or (M,)"),
        "dt": _core("dt", dt, 0, "(H,) or ()"),
    }
    if P.shape[-1] != M or B.shape[-1] != M or C.shape[-1] != M:
        raise ValueError(
            f"`P`, `B` and `C` must have M={M} modes like `Lambda`, got P {P.shape}, "
            f"B {B.shape}, C {C.shape}."
        )
    check_rank_axis(P, {"Lambda": Lam, "B": B, "C": C})
    H = _channels(lead, "Lambda/B/C (H, M), P (rank, H, M), dt (H,)")
    _check_dt(dt)
    return (Lam, P, B, C, dt), H, conj_sym, _validate.compute_dtype(Lam, P, B, C, dt)


def _dplr_cast(Lam, P, B, C, dt, *, H, closed, rdtype):
    """Casts and broadcasts DPLR parameters to (H, M), P to (H, rank, M) (traced code).

    The output factor is folded into C (``2 C`` for the closed system).
    """
    scale = 2.0 if closed else 1.0
    cdtype = _validate.complex_dtype(rdtype)
    rank, M = P.shape[0], P.shape[-1]
    P = P.astype(cdtype)
    P = jnp.broadcast_to(P[:, None] if P.ndim == 2 else P, (rank, H, M))
    P = jnp.moveaxis(P, 0, 1)  # (H, rank, M)
    Lam, B, C = (jnp.broadcast_to(a.astype(cdtype), (H, M)) for a in (Lam, B, C))
    return Lam, P, B, scale * C, jnp.broadcast_to(dt.astype(rdtype), (H,))


def dplr_step_dense_params(
    Lambda: ArrayLike,
    P: ArrayLike,
    B: ArrayLike,
    C: ArrayLike,
    dt: ArrayLike,
    D: ArrayLike | None = None,
    *,
    conj_sym: bool = True,
) -> DenseStepParams:
    """Discretises a DPLR (S4) SSM into dense matrices for `dplr_step_dense`.

    ``A = diag(Lambda) - Pᵀ conj(P)`` on the conjugate-closed mode set (module
    docstring), ``Ab = (I - dt/2 A)^{-1} (I + dt/2 A)``, ``Bb = (I - dt/2 A)^{-1} dt B``
    (one dense solve per channel, done once). With ``conj_sym=False`` this is the
    ``M × M`` system. With ``conj_sym=True`` the closed ``2M × 2M`` system is discretised
    and its action on the half state kept: ``Ab_full = [[Ab, Abc], [conj(Abc),
    conj(Ab)]]``, ``x' = Ab x + Abc conj(x) + Bb u``.

    Args:
      Lambda: ``(H, M)`` or ``(M,)`` complex diagonal.
      P: ``(rank, H, M)`` or ``(rank, M)`` complex low-rank factor.
      B: ``(H, M)`` or ``(M,)`` input vector.
      C: ``(H, M)`` or ``(M,)`` output vector: the plain C, not the kernel's
        ``C_tilde`` (convert with `hippox.dplr_c_from_tilde`).
      dt: ``(H,)`` step sizes (> 0), or a scalar.
      D: ``(H,)`` real skip term, a scalar, or None (zero).
      conj_sym: True: the arrays are one half of the conjugate-closed system (as in
        S4), ``y = 2 Re(C x) + D u``; False: they are the whole system,
        ``y = Re(C x) + D u``.

    Returns:
      `DenseStepParams(Ab, Bb, C, D, Abc)`: ``(H, M, M)``, ``(H, M)``, ``(H, M)``
      complex, ``(H,)`` real, and ``Abc`` ``(H, M, M)`` complex (``conj_sym=True``) or
      None. Usable with `dplr_step_dense`, `dense_step` and `forward_chunk_dense`.

    Raises:
      ValueError: on inconsistent shapes or a non-positive concrete ``dt``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> Lambda, P, B, V = hippox.nplr("legs", 8)
      >>> p = hippox.dplr_step_dense_params(Lambda, P, B, jnp.ones(4), jnp.full(2, 0.1))
      >>> p.Ab.shape
      (2, 4, 4)
    """
    arrays, H, closed, rdtype = _dplr_inputs(Lambda, P, B, C, dt, conj_sym)
    Ab, Bb, C, Abc = _dplr_dense_setup(*arrays, H=H, closed=closed, rdtype=rdtype)
    return DenseStepParams(Ab, Bb, C, _skip(D, H, rdtype), Abc)


@functools.partial(jax.jit, static_argnames=("H", "closed", "rdtype"))
def _dplr_dense_setup(Lam, P, B, C, dt, *, H, closed, rdtype):
    Lam, P, B, C, dt = _dplr_cast(Lam, P, B, C, dt, H=H, closed=closed, rdtype=rdtype)
    M = Lam.shape[-1]
    if closed:
        Lam, P, B = closed_modes(Lam, P, B)
    A = dplr_matrix(Lam, jnp.moveaxis(P, 1, 0))
    Ab, Bb = discretize(A, B, dt, method="bilinear")
    if closed:
        return Ab[..., :M, :M], Bb[..., :M], C, Ab[..., :M, M:]
    return Ab, Bb, C, None


def dplr_step_linear_params(
    Lambda: ArrayLike,
    P: ArrayLike,
    B: ArrayLike,
    C: ArrayLike,
    dt: ArrayLike,
    D: ArrayLike | None = None,
    *,
    conj_sym: bool = True,
) -> DPLRStepParams:
    """Precomputes the O(M·rank) bilinear step of a DPLR (S4) SSM (`dplr_step_linear`).

    Same system and arguments as `dplr_step_dense_params`, but no M × M matrix is
    formed: ``I - dt/2 A = diag(1 - dt/2 Lambda) + (dt/2) Pᵀ conj(P)`` is inverted with
    the Woodbury identity (one rank × rank inverse per channel). With ``conj_sym=True``
    the sums run over the conjugate-closed mode set without forming it (each becomes
    ``2 Re`` of the half sum), so the two halves are coupled exactly as in S4.

    Args:
      Lambda: ``(H, M)`` or ``(M,)`` complex diagonal.
      P: ``(rank, H, M)`` or ``(rank, M)`` complex low-rank factor.
      B: ``(H, M)`` or ``(M,)`` input vector.
      C: ``(H, M)`` or ``(M,)`` output vector (the plain C, not ``C_tilde``).
      dt: ``(H,)`` step sizes (> 0), or a scalar.
      D: ``(H,)`` real skip term, a scalar, or None (zero).
      conj_sym: True: the arrays are one half of the conjugate-closed system,
        ``y = 2 Re(C x) + D u``; False: the whole system, ``y = Re(C x) + D u``.

    Returns:
      `DPLRStepParams` (see its attributes), all ``(H, M)`` or ``(H, rank, M)``
      complex except ``D`` ``(H,)`` real (and ``Pbar`` None for ``conj_sym=False``).

    Raises:
      ValueError: on inconsistent shapes or a non-positive concrete ``dt``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> Lambda, P, B, V = hippox.nplr("legs", 8)
      >>> p = hippox.dplr_step_linear_params(Lambda, P, B, jnp.ones(4), jnp.full(2, 0.1))
      >>> p.G.shape, p.Bb.shape
      ((2, 1, 4), (2, 4))
    """
    arrays, H, closed, rdtype = _dplr_inputs(Lambda, P, B, C, dt, conj_sym)
    factors = _dplr_linear_setup(*arrays, H=H, closed=closed, rdtype=rdtype)
    return DPLRStepParams(*factors[:-1], _skip(D, H, rdtype), factors[-1])


def _project(P: jax.Array, Pbar: jax.Array | None, x: jax.Array) -> jax.Array:
    """Projection ``conj(P) x [+ Pbar conj(x)]``: ``(H, r, M), (..., H, M) -> (..., H, r)``."""
    q = jnp.einsum("hrm,...hm->...hr", jnp.conj(P), x)
    if Pbar is not None:
        q = q + jnp.einsum("hrm,...hm->...hr", Pbar, jnp.conj(x))
    return q


@functools.partial(jax.jit, static_argnames=("H", "closed", "rdtype"))
def _dplr_linear_setup(Lam, P, B, C, dt, *, H, closed, rdtype):
    Lam, P, B, C, dt = _dplr_cast(Lam, P, B, C, dt, H=H, closed=closed, rdtype=rdtype)
    rank = P.shape[1]
    half = (dt / 2.0)[:, None]  # (H, 1)
    Ad = 1.0 + half * Lam
    F = 1.0 / (1.0 - half * Lam)
    Pbar = P if closed else None
    # S[r, s] = Σ_m conj(P[r, m]) F[m] P[s, m] over the mode set (the closed set: S + conj S)
    S = jnp.einsum("hrm,hm,hsm->hrs", jnp.conj(P), F, P)
    if closed:
        S = S + jnp.conj(S)
    K = jnp.linalg.inv(jnp.eye(rank, dtype=P.dtype) + half[..., None] * S)
    G = half[..., None] * F[:, None, :] * jnp.einsum("hrs,hrm->hsm", K, P)
    Pdt = half[..., None] * P
    w = F * (dt[:, None] * B)  # Bb = (I - dt/2 A)^{-1} dt B
    Bb = w - jnp.einsum("hrm,hr->hm", G, _project(P, Pbar, w))
    return Ad, F, P, Pdt, G, Bb, C, Pbar


# --------------------------------------------------------------------------- state / steps


def init_state(params: StepParams, batch_shape: Sequence[int] = ()) -> jax.Array:
    """A zero state for any of the step parameter containers.

    Args:
      params: `DiagStepParams`, `DenseStepParams` or `DPLRStepParams`.
      batch_shape: leading batch shape of the state.

    Returns:
      ``(*batch_shape, H, M)`` zeros (``M`` the state size of ``params``), of the
      parameters' dtype: complex for diagonal and DPLR systems, real for a real dense
      system.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> p = hippox.diag_step_params(-jnp.ones(3) + 0j, jnp.ones(3), jnp.ones(3), jnp.ones(2))
      >>> x = hippox.init_state(p, (5,))
      >>> x.shape, bool(jnp.iscomplexobj(x))
      ((5, 2, 3), True)
    """
    if not isinstance(params, DiagStepParams | DenseStepParams | DPLRStepParams):
        raise TypeError(
            "`params` must be a DiagStepParams, DenseStepParams or DPLRStepParams, got "
            f"{type(params).__name__}."
        )
    batch_shape = _validate.check_batch_shape(batch_shape)
    return jnp.zeros((*batch_shape, *params.Bb.shape), params.Bb.dtype)


def diag_step(params: DiagStepParams, x: ArrayLike, u: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """One step of a diagonal SSM: ``x' = Ab x + Bb u``, ``y = Re(C x') + D u``.

    Args:
      params: `DiagStepParams` from `diag_step_params`.
      x: ``(..., H, M)`` complex state (e.g. `init_state`).
      u: ``(..., H)`` real input at this step (batch shape broadcasting with x's).

    Returns:
      ``(x_new, y)``: ``(..., H, M)`` complex state and ``(..., H)`` real output.

    Raises:
      ValueError: on shapes that do not match ``params``.
      TypeError: on a complex ``u``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> p = hippox.diag_step_params(-jnp.ones(3) + 0j, jnp.ones(3), jnp.ones(3), jnp.ones(2))
      >>> x, y = hippox.diag_step(p, hippox.init_state(p), jnp.ones(2))
      >>> x.shape, y.shape
      ((2, 3), (2,))
    """
    check_params("params", params, DiagStepParams, "diag_step_params")
    return _diag_step(params, *state_and_input(params, x, u, 1))


@jax.jit
def _diag_step(params: DiagStepParams, x: jax.Array, u: jax.Array):
    x, u = cast_state_and_input(params, x, u)
    x = params.Ab * x + params.Bb * u[..., None]
    return x, _output(params.C, x, params.D, u)


def dense_step(params: DenseStepParams, x: ArrayLike, u: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """One step of a dense SSM per channel, O(N²): ``x' = Ab x + Bb u``, ``y = Re(C x') + D u``.

    Also exported as `dplr_step_dense`: with ``params`` from `dplr_step_dense_params` it
    is one O(M²) step of a DPLR (S4) SSM through its dense discretisation (with
    ``conj_sym=True``, ``x' = Ab x + Abc conj(x) + Bb u`` on the half state).

    Args:
      params: `DenseStepParams` from `dense_step_params` or `dplr_step_dense_params`.
      x: ``(..., H, N)`` state (complex if the parameters are; ``(..., H, M)`` complex
        for a DPLR system).
      u: ``(..., H)`` real input at this step.

    Returns:
      ``(x_new, y)``: ``(..., H, N)`` state and ``(..., H)`` real output.

    Raises:
      ValueError: on shapes that do not match ``params``.
      TypeError: on a complex ``u`` (or a complex ``x`` for a real system).

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> p = hippox.dense_step_params(0.5 * jnp.eye(3), jnp.ones(3), jnp.ones(3), jnp.zeros(2))
      >>> x, y = hippox.dense_step(p, hippox.init_state(p), jnp.ones(2))
      >>> [round(float(v), 4) for v in y]
      [3.0, 3.0]

      A DPLR system (`hippox.dplr_step_dense` is this function):

      >>> Lambda, P, B, V = hippox.nplr("legs", 8)
      >>> p = hippox.dplr_step_dense_params(Lambda, P, B, jnp.ones(4), jnp.full(2, 0.1))
      >>> x, y = hippox.dplr_step_dense(p, hippox.init_state(p), jnp.ones(2))
      >>> x.shape, y.shape
      ((2, 4), (2,))
    """
    check_params("params", params, DenseStepParams, "dense_step_params")
    return _dense_step(params, *state_and_input(params, x, u, 1))


@jax.jit
def _dense_step(params: DenseStepParams, x: jax.Array, u: jax.Array):
    x, u = cast_state_and_input(params, x, u)
    x_new = jnp.einsum("hnm,...hm->...hn", params.Ab, x) + params.Bb * u[..., None]
    if params.Abc is not None:
        x_new = x_new + jnp.einsum("hnm,...hm->...hn", params.Abc, jnp.conj(x))
    return x_new, _output(params.C, x_new, params.D, u)


#: One O(M²) step of a DPLR SSM through its dense discretisation: `dense_step` itself,
#: named for the parameters of `dplr_step_dense_params`.
dplr_step_dense = dense_step


def dplr_step_linear(
    params: DPLRStepParams, x: ArrayLike, u: ArrayLike
) -> tuple[jax.Array, jax.Array]:
    """One O(M·rank) bilinear step of a DPLR (S4) SSM.

    Computes ``x' = (I - dt/2 A)^{-1} (I + dt/2 A) x + Bb u`` with
    ``A = diag(Lambda) - Pᵀ conj(P)`` using only diagonal and rank-r products, and
    ``y = Re(C x') + D u`` (``C`` with the conj_sym factor folded in).

    Args:
      params: `DPLRStepParams` from `dplr_step_linear_params`.
      x: ``(..., H, M)`` complex state.
      u: ``(..., H)`` real input.

    Returns:
      ``(x_new, y)``: ``(..., H, M)`` complex state and ``(..., H)`` real output.

    Raises:
      ValueError: on shapes that do not match ``params``.
      TypeError: on a complex ``u``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> Lambda, P, B, V = hippox.nplr("legs", 8)
      >>> p = hippox.dplr_step_linear_params(Lambda, P, B, jnp.ones(4), jnp.full(2, 0.1))
      >>> x, y = hippox.dplr_step_linear(p, hippox.init_state(p, (3,)), jnp.ones((3, 2)))
      >>> x.shape, y.shape
      ((3, 2, 4), (3, 2))
    """
    check_params("params", params, DPLRStepParams, "dplr_step_linear_params")
    return _dplr_linear_step(params, *state_and_input(params, x, u, 1))


@jax.jit
def _dplr_linear_step(params: DPLRStepParams, x: jax.Array, u: jax.Array):
    x, u = cast_state_and_input(params, x, u)
    P, Pbar = params.P, params.Pbar
    low = jnp.einsum("hrm,...hr->...hm", params.Pdt, _project(P, Pbar, x))
    w = params.F * (params.Ad * x - low)
    corr = jnp.einsum("hrm,...hr->...hm", params.G, _project(P, Pbar, w))
    x = w - corr + params.Bb * u[..., None]
    return x, _output(params.C, x, params.D, u)


_STEPS: dict[type, Callable] = {
    DiagStepParams: _diag_step,
    DenseStepParams: _dense_step,
    DPLRStepParams: _dplr_linear_step,
}


def scan_steps(
    params: StepParams, u: ArrayLike, x0: ArrayLike | None = None
) -> tuple[jax.Array, jax.Array]:
    """Runs the step recurrence over a whole sequence with `jax.lax.scan` (O(L) sequential).

    Dispatches on the parameter type: `diag_step`, `dense_step` (also DPLR dense) or
    `dplr_step_linear`. This is the reference the chunked functions must match, and
    the way to run the linear DPLR step over a sequence.

    Args:
      params: `DiagStepParams`, `DenseStepParams` or `DPLRStepParams`.
      u: ``(..., H, L)`` real input sequence.
      x0: ``(..., H, M)`` initial state, or None (zeros).

    Returns:
      ``(y, x_L)``: ``(..., H, L)`` real outputs and the ``(..., H, M)`` state after
      the last step.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> p = hippox.diag_step_params(-jnp.ones(3) + 0j, jnp.ones(3), jnp.ones(3), jnp.ones(2))
      >>> y, x = hippox.scan_steps(p, jnp.ones((4, 2, 10)))
      >>> y.shape, x.shape
      ((4, 2, 10), (4, 2, 3))
    """
    step = _STEPS.get(type(params))
    if step is None:
        raise TypeError(
            "`params` must be a DiagStepParams, DenseStepParams or DPLRStepParams, got "
            f"{type(params).__name__}."
        )
    u = _validate.as_inexact("u", u, allow_complex=False)
    if x0 is None:
        x0 = init_state(params, u.shape[:-2] if u.ndim >= 2 else ())
    return _scan(step, params, *state_and_input(params, x0, u, 2))


@functools.partial(jax.jit, static_argnums=0)
def _scan(step: Callable, params, x0: jax.Array, u: jax.Array):
    x0, u = cast_state_and_input(params, x0, u)
    batch = jnp.broadcast_shapes(x0.shape[:-2], u.shape[:-2])
    x0 = jnp.broadcast_to(x0, (*batch, *x0.shape[-2:]))
    u = jnp.broadcast_to(u, (*batch, *u.shape[-2:]))

    def body(x, u_k):
        return step(params, x, u_k)

    x, ys = jax.lax.scan(body, x0, jnp.moveaxis(u, -1, 0))
    return jnp.moveaxis(ys, 0, -1), x
