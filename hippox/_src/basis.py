"""Orthogonal bases of the HiPPO measures, and reconstruction of the memorised past.

A HiPPO memory ``dc/dt = A c + B f`` (``A, B = hippox.transition(measure, N)``)
holds, at the current time ``t``, coefficients ``c(t)`` of the *past* of the input
``f`` in a basis of functions ``g_n``. hippox evaluates those functions at the
**time ago** ``s >= 0``: ``s = 0`` is now, ``s > 0`` is ``s`` time units in the
past, so ::

    f(t - s)  ≈  Σ_n c_n(t) g_n(s)          (reconstruct(c, measure, s))

For the scaled LegS memory (``scaled=True``), whose measure is uniform over the whole
history ``[0, t]``, ``s`` is measured in units of the history length: ``s = 0`` is
now, ``s = 1`` is the start of the history, and ``f(t (1 - s)) ≈ Σ c_n g_n(s)``.

This is consistent with the LTI recurrence obtained from `hippox.discretize`
(``c_k = Ab c_{k-1} + Bb f_k`` with a small step ``dt``: after K steps ``t = K dt``
and ``s = j dt`` is the sample ``f_{K-j}``), and for ``scaled=True`` with the
time-varying LegS memory ``dc/dt = (A c + B f) / t``.

Bases (``P_n`` Legendre, ``L_n^{(α)}`` generalized Laguerre, ``q_n = sqrt(2n+1)``):

=================  ===================================================  ==================
measure            ``g_n(s)``                                           support of ``s``
=================  ===================================================  ==================
``legs``           ``q_n P_n(2 e^{-s} - 1)`` (LTI LegS, as in S4)       ``[0, ∞)``
``legs``, scaled   ``q_n P_n(1 - 2 s)`` (memory of the whole history)   ``[0, 1]``
``legt``           ``q_n P_n(1 - 2 s / θ)``, ``θ = theta`` (default 2)  ``[0, θ]``
``lmu``            ``P_n(2 s / θ - 1)``, ``θ = theta`` (default 1)      ``[0, θ]``
``lagt``           ``e^{-s/2} L_n(s) / β``                              ``[0, ∞)``
``tlagt``          ``e^{-(1-β) s/2} L_n(s) / β``                        ``[0, ∞)``
``glagt``          ``s^α e^{-(1-β) s/2} L_n^{(α)}(s) / (κ ℓ_n)``        ``[0, ∞)``
``fout``           ``1, 0, √2 cos(ω_1 s), √2 sin(ω_1 s), …``,           ``[0, 2]``
                   ``ω_k = π k`` (pair k in slots 2k, 2k+1)
``fourier_decay``  as ``fout``                                          ``[0, 2]``
``fourier2``       as ``fout`` with ``ω_k = 2 π k``                     ``[0, 1]``
=================  ===================================================  ==================

with ``ℓ_n = sqrt(Γ(n+α+1) / n!)`` and ``κ = β^{(1-α)/2} / sqrt(Γ(1-α))``. Outside
its support a windowed basis is 0. ``fourier`` is an alias of ``fout``. The Fourier
slot 1 is ``sin(0·s) = 0``: its state is decoupled from the input.

Each basis is orthonormal under the measure ``ω(s) ds`` of its memory — ``e^{-s}``
(LTI ``legs``), ``1`` (scaled ``legs``, on [0, 1]), ``1/θ`` (``legt``, ``lmu``),
``β²`` (``lagt``), ``β² e^{-β s}`` (``tlagt``), ``κ² s^{-α} e^{-β s}`` (``glagt``),
``1/2`` (``fout``, ``fourier_decay``) and ``1`` (``fourier2``) — except ``lmu``,
whose Legendre Memory Unit state is orthogonal with ``∫ g_n² ω = 1/(2n+1)``, and the
Fourier slot 1. The memory state is the projection ``c_n = ∫ f(t-s) g_n(s) ω(s) ds /
∫ g_n² ω``.

How exact the memory is: ``legs``, ``lagt``, ``tlagt`` and ``glagt`` are exact
projections (``expm(s A) B = ω(s) g(s)``); ``legt``, ``lmu`` and the Fourier measures
approximate the input leaving the window by the reconstruction itself, which is very
accurate for smooth inputs (Legendre) or inputs periodic with the window length
(Fourier), and only O(1/N) accurate otherwise for the Fourier measures (Gibbs).
``foud``, ``legsd`` and the random ablations have no such basis.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike
from scipy import special

from hippox._src import _validate, checks, matrices

#: Measures with a basis (`basis`, `reconstruct`); ``fourier`` is an alias of ``fout``.
BASIS_MEASURES: tuple[str, ...] = (
    "legs",
    "legt",
    "lmu",
    "lagt",
    "tlagt",
    "glagt",
    "fout",
    "fourier_decay",
    "fourier2",
    "fourier",
)


# Every evaluator takes ``xp`` (NumPy for a concrete ``t``, evaluated in float64 on the
# host; jax.numpy for a traced ``t``) and returns the ``(T, N)`` basis matrix.


def _recurrence(xp, init, step, N: int, dtype):
    """Columns of a two-term recurrence ``carry -> (carry', column)`` for n = 0 … N-1."""
    if xp is np:
        cols = []
        for n in range(N):
            init, col = step(init, float(n))
            cols.append(col)
        return np.stack(cols, axis=-1)
    _, cols = jax.lax.scan(step, init, jnp.arange(N, dtype=dtype))
    return cols.T


def _legendre(xp, x, N: int):
    """``(T, N)`` Legendre polynomials P_0 … P_{N-1} at x (three-term recurrence)."""

    def step(carry, n):
        p_prev, p = carry
        return (p, ((2.0 * n + 1.0) * x * p - n * p_prev) / (n + 1.0)), p

    return _recurrence(xp, (xp.zeros_like(x), xp.ones_like(x)), step, N, x.dtype)


def _laguerre(xp, s, N: int, alpha: float, scale):
    """``(T, N)`` values ``scale(s) L_n^{(alpha)}(s)``; the recurrence is linear, so the
    factor rides along from the start (keeps ``e^{-s/2} L_n`` bounded for large s)."""

    def step(carry, n):
        l_prev, l = carry
        nxt = ((2.0 * n + 1.0 + alpha - s) * l - (n + alpha) * l_prev) / (n + 1.0)
        return (l, nxt), l

    return _recurrence(xp, (xp.zeros_like(s), scale), step, N, s.dtype)


def _window(xp, s, length: float, G):
    return xp.where(((s >= 0) & (s <= length))[:, None], G, 0.0)


def _past(xp, s, G):
    return xp.where((s >= 0)[:, None], G, 0.0)


def _q(xp, N: int, dtype):
    return xp.sqrt(2.0 * xp.arange(N, dtype=dtype) + 1.0)


def _legs(xp, s, N, p, scaled):
    q = _q(xp, N, s.dtype)
    if scaled:
        return _window(xp, s, 1.0, q * _legendre(xp, 1.0 - 2.0 * s, N))
    return _past(xp, s, q * _legendre(xp, 2.0 * xp.exp(-s) - 1.0, N))


def _legt(xp, s, N, p, scaled):
    theta = p["theta"]
    return _window(xp, s, theta, _q(xp, N, s.dtype) * _legendre(xp, 1.0 - 2.0 * s / theta, N))


def _lmu(xp, s, N, p, scaled):
    theta = p["theta"]
    return _window(xp, s, theta, _legendre(xp, 2.0 * s / theta - 1.0, N))


def _lagt(xp, s, N, p, scaled):
    return _past(xp, s, _laguerre(xp, s, N, 0.0, xp.exp(-0.5 * s)) / p["beta"])


def _tlagt(xp, s, N, p, scaled):
    beta = p["beta"]
    return _past(xp, s, _laguerre(xp, s, N, 0.0, xp.exp(-0.5 * (1.0 - beta) * s)) / beta)


def _glagt(xp, s, N, p, scaled):
    alpha, beta = p["alpha"], p["beta"]
    n = np.arange(N, dtype=np.float64)
    ell = np.exp(0.5 * (special.gammaln(n + alpha + 1.0) - special.gammaln(n + 1.0)))
    kappa = beta ** ((1.0 - alpha) / 2.0) * np.exp(-0.5 * special.gammaln(1.0 - alpha))
    G = _laguerre(xp, s, N, alpha, xp.exp(-0.5 * (1.0 - beta) * s))
    if alpha != 0.0:  # applied after the recurrence: s^alpha is infinite at 0 for alpha < 0
        with np.errstate(divide="ignore"):
            G = G * (xp.where(s >= 0, s, 0.0) ** alpha)[:, None]
    G = G * xp.asarray(1.0 / (kappa * ell), dtype=s.dtype)
    return _past(xp, s, G)


def _fourier(length: float):
    def evaluate(xp, s, N, p, scaled):
        k = xp.arange(N // 2, dtype=s.dtype)
        phase = (2.0 * np.pi / length) * s[:, None] * k
        cos = xp.where(k == 0, 1.0, np.sqrt(2.0) * xp.cos(phase))
        sin = np.sqrt(2.0) * xp.sin(phase)
        G = xp.stack([cos, sin], axis=-1).reshape(s.shape[0], N)
        return _window(xp, s, length, G)

    return evaluate


_EVALUATORS: dict[str, Callable] = {
    "legs": _legs,
    "legt": _legt,
    "lmu": _lmu,
    "lagt": _lagt,
    "tlagt": _tlagt,
    "glagt": _glagt,
    "fout": _fourier(2.0),
    "fourier_decay": _fourier(2.0),
    "fourier2": _fourier(1.0),
}


def _resolve(measure: str, N: int, scaled: bool, params: dict) -> tuple[str, dict]:
    """Validates measure, N, scaled and params; returns the canonical name and the
    parameters with the measure's defaults filled in (the defaults of `transition`)."""
    if not isinstance(measure, str) or measure not in matrices.MEASURES:
        _validate.check_choice("measure", measure, BASIS_MEASURES)
    canonical = matrices.canonical_measure(measure)
    if canonical not in _EVALUATORS:
        raise ValueError(
            f"`measure` must be one with a reconstruction basis, one of {BASIS_MEASURES}, "
            f"got {measure!r} (foud, legsd and the random ablations have no basis)."
        )
    scaled = _validate.check_bool("scaled", scaled)
    if scaled and canonical != "legs":
        raise ValueError(
            f"`scaled` must be False for measure {measure!r} (only 'legs' has a scaled "
            f"form), got {scaled}."
        )
    matrices.transition_np(canonical, N, **params)  # validates N and parameter values
    full = matrices.measure_defaults(canonical)
    full.update({k: float(v) for k, v in params.items()})
    return canonical, full


def basis(
    measure: str,
    N: int,
    t: ArrayLike,
    *,
    scaled: bool = False,
    dtype: DTypeLike | None = None,
    **params,
) -> jax.Array:
    """Evaluates the basis functions ``g_n`` of a HiPPO measure at times ago ``t``.

    See the module docstring for the time convention (``t = 0`` is now, ``t > 0`` the
    past) and the formula of each basis. The memory state ``c`` of
    ``hippox.transition(measure, N, **params)`` approximates the past as
    ``f(now - t) ≈ basis(measure, N, t) @ c``.

    A concrete ``t`` (the usual case: fixed evaluation times) is evaluated in float64
    NumPy on the host, checked for negative entries, and cast once; a traced ``t``
    (inside `jax.jit`, `jax.grad`, ...) is evaluated with jnp in ``dtype``, with
    negative entries giving 0.

    Args:
      measure: one of `hippox.BASIS_MEASURES`.
      N: state size (even for the Fourier measures).
      t: ``(T,)`` times ago, ``>= 0`` (for ``scaled=True``: fractions of the history,
        in ``[0, 1]``). Values outside a window give 0; a NaN time gives a NaN row.
      scaled: ``legs`` only: the scaled LegS memory of the whole history instead of the
        LTI LegS memory that `hippox.transition` + `hippox.discretize` give.
      dtype: real floating dtype of the result (default: the floating dtype of ``t``,
        else float32). Half precision is computed in float32 and cast.
      **params: the measure's parameters, as for `hippox.transition` (``theta`` for
        ``legt``/``lmu``, ``beta`` for ``lagt``/``tlagt``, ``alpha``, ``beta`` for
        ``glagt``).

    Returns:
      ``(T, N)`` array, ``G[i, n] = g_n(t[i])``. For ``glagt`` with ``alpha < 0``,
      ``g_n(0)`` is infinite (the basis has an integrable singularity at now).

    Raises:
      ValueError: unsupported measure, bad ``N``, bad parameters, ``t`` not 1-D, a
        concrete ``t`` with negative entries, or ``scaled=True`` for a measure other
        than ``legs``.
      TypeError: non-integer ``N``, unexpected parameter names, non-bool ``scaled``.

    Examples:
      >>> import numpy as np
      >>> import hippox
      >>> G = hippox.basis("legt", 4, np.array([0.0, 1.0, 2.0]))
      >>> G.shape
      (3, 4)
      >>> np.round(np.asarray(G, np.float64), 4)  # q_n P_n(1 - t): +q_n now, (-1)^n q_n at t=θ=2
      array([[ 1.    ,  1.7321,  2.2361,  2.6458],
             [ 1.    ,  0.    , -1.118 , -0.    ],
             [ 1.    , -1.7321,  2.2361, -2.6458]])
    """
    canonical, p = _resolve(measure, N, scaled, params)
    if t is None or isinstance(t, (str, bytes)):
        raise TypeError(f"`t` must be a 1-D array of times, got {t!r}.")
    if not isinstance(t, jax.core.Tracer):
        t = np.asarray(t)
    if t.ndim != 1:
        raise ValueError(f"`t` must be a 1-D array of shape (T,), got shape {t.shape}.")
    if not (jnp.issubdtype(t.dtype, jnp.floating) or jnp.issubdtype(t.dtype, jnp.integer)):
        raise TypeError(f"`t` must be a real array of times, got dtype {t.dtype}.")
    if dtype is None:  # t's floating dtype as JAX would store it (float64 -> float32 without x64)
        floating = jnp.issubdtype(t.dtype, jnp.floating)
        dtype = jax.dtypes.canonicalize_dtype(t.dtype) if floating else np.dtype(np.float32)
    dtype = _validate.real_dtype(dtype)
    evaluate = _EVALUATORS[canonical]
    if isinstance(t, jax.core.Tracer):
        # half-precision requests are evaluated in float32 and cast at the end
        t = t.astype(_validate.compute_dtype(dtype))
        checks.traced_nonnegative("t", t)
        G = evaluate(jnp, t, N, p, scaled)
        return jnp.where(jnp.isnan(t)[:, None], jnp.nan, G).astype(dtype)
    s = np.asarray(t, dtype=np.float64)
    if np.any(s < 0):
        raise ValueError(f"`t` must be >= 0 (time ago; 0 is now), got {s[s < 0][0]!r}.")
    with np.errstate(invalid="ignore"):
        G = evaluate(np, s, N, p, scaled)
    return jnp.asarray(np.where(np.isnan(s)[:, None], np.nan, G), dtype)


def reconstruct(
    c: ArrayLike, measure: str, t: ArrayLike, *, scaled: bool = False, **params
) -> jax.Array:
    """Reconstructs the memorised past from HiPPO coefficients: ``f(now - t) ≈ Σ c_n g_n(t)``.

    ``c`` is the state of the memory ``dc/dt = A c + B f`` with
    ``A, B = hippox.transition(measure, N, **params)`` at the current time (for
    ``scaled=True``: the scaled LegS memory ``dc/dt = (A c + B f)/t``). Pure jnp: works
    under `jax.jit`, `jax.vmap` and `jax.grad` with respect to ``c`` (and ``t``).

    Args:
      c: ``(..., N)`` coefficients, real or complex; N is taken from the last axis.
      measure: one of `hippox.BASIS_MEASURES`.
      t: ``(T,)`` times ago (see `basis`).
      scaled: ``legs`` only, see `basis`.
      **params: the measure's parameters, as for `hippox.transition`.

    Returns:
      ``(..., T)`` approximations of ``f(now - t)`` (of the history at ``t`` for
      ``scaled=True``), in the (real or complex) dtype of ``c`` (float32 for integer
      ``c``).

    Raises:
      ValueError: ``c`` is a scalar, or as for `basis`.
      TypeError: as for `basis`.

    Examples:
      >>> import numpy as np
      >>> import hippox
      >>> c = np.array([1.0, 0.0, 0.0, 0.0])  # a constant memory
      >>> hippox.reconstruct(c, "legs", np.array([0.0, 3.0])).tolist()
      [1.0, 1.0]
    """
    c = _validate.as_array("c", c)
    if c.ndim < 1:
        raise ValueError(f"`c` must have shape (..., N), got a scalar of shape {c.shape}.")
    if not jnp.issubdtype(c.dtype, jnp.inexact):
        c = c.astype(jnp.float32)
    rdtype = jnp.finfo(c.dtype).dtype  # real counterpart (float32 for complex64)
    G = basis(measure, c.shape[-1], t, scaled=scaled, dtype=rdtype, **params)
    return jnp.einsum("...n,tn->...t", c, G.astype(c.dtype))
