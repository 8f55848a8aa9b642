"""HiPPO transition matrices (A, B) and their low-rank corrections.

Convention: hippox writes every system as ``dx/dt = A x + B u``; a stable ``A`` has
eigenvalues with negative real part. Matrices are built in float64 NumPy on the host
(cached on their static arguments) and cast once to the requested dtype.

Measures (n, k = 0 … N-1, q_n = sqrt(2n+1)):

=================  ==================================================================
``legs``           scaled Legendre (uniform measure on [0, t]); eigenvalues -1 … -N
``legsd``          normal part of LegS: A_legs + B Bᵀ/2, B = q/2
``legt``           translated Legendre (sliding window of length ``theta``, default 2)
``lmu``            Legendre Memory Unit (window ``theta``, default 1)
``lagt``           translated Laguerre (exponential decay)
``tlagt``          truncated Laguerre
``glagt``          generalized Laguerre with parameters ``alpha``, ``beta``
``fout``           translated Fourier (alias ``fourier``), window 2
``fourier_decay``  Fourier with half the low-rank term
``fourier2``       2 × ``fout`` (window 1)
``foud``           diagonalizable Fourier without low-rank term (alias ``fourier_diag``)
``random``         dense Gaussian A (ablation; needs ``key``)
``diagonal``       negative-diagonal A (ablation; needs ``key``)
=================  ==================================================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from scipy import special

from hippox._src import _validate, cache


class Transition(NamedTuple):
    """A HiPPO operator for ``dx/dt = A x + B u``.

    Attributes:
      A: ``(N, N)`` state matrix.
      B: ``(N,)`` input vector.
    """

    A: jax.Array
    B: jax.Array


# --------------------------------------------------------------------------- builders
# Each builder returns float64 NumPy (A, B) with shapes (N, N), (N,).


def _q(N: int) -> np.ndarray:
    return np.sqrt(2.0 * np.arange(N) + 1.0)


def _legs(N: int):
    q = _q(N)
    A = -np.tril(np.outer(q, q), -1) - np.diag(np.arange(N) + 1.0)
    return A, q.copy()


def _legsd(N: int):
    A, B = _legs(N)
    return A + 0.5 * np.outer(B, B), 0.5 * B


def _legt(N: int, *, theta: float = 2.0):
    theta = _validate.check_real("theta", theta, positive=True)
    q = _q(N)
    n = np.arange(N)
    sign = np.where(n[:, None] >= n[None, :], 1.0, (-1.0) ** (n[:, None] - n[None, :]))
    return -np.outer(q, q) * sign / theta, q / theta


def _lmu(N: int, *, theta: float = 1.0):
    theta = _validate.check_real("theta", theta, positive=True)
    n = np.arange(N)
    r = 2.0 * n + 1.0
    sign = np.where(n[:, None] < n[None, :], -1.0, (-1.0) ** (n[:, None] - n[None, :] + 1))
    return r[:, None] * sign / theta, (-1.0) ** n * r / theta


def _lagt(N: int, *, beta: float = 1.0):
    beta = _validate.check_real("beta", beta, positive=True)
    return 0.5 * np.eye(N) - np.tril(np.ones((N, N))), beta * np.ones(N)


def _tlagt(N: int, *, beta: float = 1.0):
    beta = _validate.check_real("beta", beta, positive=True)
    return 0.5 * (1.0 - beta) * np.eye(N) - np.tril(np.ones((N, N))), beta * np.ones(N)


def _glagt(N: int, *, alpha: float = 0.0, beta: float = 0.01):
    alpha = _validate.check_real("alpha", alpha)
    if not -1.0 < alpha < 1.0:
        raise ValueError(f"`alpha` must lie in (-1, 1) for glagt, got {alpha}.")
    beta = _validate.check_real("beta", beta, positive=True)
    n = np.arange(N, dtype=np.float64)
    ell = np.exp(0.5 * (special.gammaln(n + alpha + 1.0) - special.gammaln(n + 1.0)))
    inner = -0.5 * (1.0 + beta) * np.eye(N) - np.tril(np.ones((N, N)), -1)
    A = inner * ell[None, :] / ell[:, None]
    B = (
        special.binom(n + alpha, n)
        / ell
        * np.exp(-0.5 * special.gammaln(1.0 - alpha))
        * beta ** ((1.0 - alpha) / 2.0)
    )
    return A, B


def _fourier_parts(N: int):
    """Returns (R, b): the skew rotation blocks and the cosine-slot vector."""
    if N % 2:
        raise ValueError(f"`N` must be even for the Fourier measures, got {N}.")
    k = np.arange(N // 2, dtype=np.float64)
    R = np.zeros((N, N))
    R[2 * np.arange(N // 2), 2 * np.arange(N // 2) + 1] = -np.pi * k
    R[2 * np.arange(N // 2) + 1, 2 * np.arange(N // 2)] = np.pi * k
    b = np.zeros(N)
    b[0::2] = np.sqrt(2.0)
    b[0] = 1.0
    return R, b


def _fout(N: int):
    R, b = _fourier_parts(N)
    return R - np.outer(b, b), b


def _fourier_decay(N: int):
    R, b = _fourier_parts(N)
    return R - 0.5 * np.outer(b, b), 0.5 * b


def _fourier2(N: int):
    A, B = _fout(N)
    return 2.0 * A, 2.0 * B


def _foud(N: int):
    R, b = _fourier_parts(N)
    return 2.0 * R - 0.5 * np.eye(N), b


_BUILDERS: dict[str, Callable] = {
    "legs": _legs,
    "legsd": _legsd,
    "legt": _legt,
    "lmu": _lmu,
    "lagt": _lagt,
    "tlagt": _tlagt,
    "glagt": _glagt,
    "fout": _fout,
    "fourier_decay": _fourier_decay,
    "fourier2": _fourier2,
    "foud": _foud,
}
#: Measures whose matrices are random draws (they need a key).
RANDOM_MEASURES: tuple[str, ...] = ("random", "diagonal")
#: Alternative names: alias -> canonical measure.
ALIASES: dict[str, str] = {"fourier": "fout", "fourier_diag": "foud"}
_EVEN_ONLY = ("fout", "fourier_decay", "fourier2", "foud")

#: Every measure name `transition` accepts (aliases included).
MEASURES: tuple[str, ...] = (*_BUILDERS, *RANDOM_MEASURES, *ALIASES)


def canonical_measure(measure: str) -> str:
    """Validates a measure name and resolves aliases (``fourier`` -> ``fout``)."""
    _validate.check_choice("measure", measure, MEASURES)
    return ALIASES.get(measure, measure)


def check_measure_params(measure: str, params: dict) -> tuple:
    """Checks the keyword parameters of a canonical measure; returns them sorted, as a tuple."""
    allowed = [p for p in inspect.signature(_BUILDERS[measure]).parameters if p != "N"]
    for name in params:
        if name not in allowed:
            raise TypeError(
                f"measure {measure!r} got an unexpected parameter `{name}`; it accepts "
                f"{tuple(allowed) if allowed else 'no parameters'}."
            )
    return tuple(sorted(params.items()))


def measure_defaults(measure: str) -> dict[str, float]:
    """The default parameters of a canonical deterministic measure (e.g. ``{'theta': 2.0}``)."""
    signature = inspect.signature(_BUILDERS[measure])
    return {n: float(p.default) for n, p in signature.parameters.items() if n != "N"}


@cache.host_cache
def transition_host(measure: str, N: int, params: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Float64 NumPy ``(A, B)`` of a deterministic measure (cached, read-only arrays).

    The internal core behind `transition_np` and `transition`: ``measure`` is already
    canonical (`canonical_measure`), ``N`` checked and ``params`` the tuple of
    `check_measure_params`. Only the parameter *values* are checked here, by the
    measure's builder (e.g. ``theta > 0``).
    """
    _validate.check_state_size("N", N)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        A, B = _BUILDERS[measure](N, **dict(params))
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(B))):
        given = ", ".join(f"`{k}`={v!r}" for k, v in params) or "its default parameters"
        raise ValueError(
            f"measure {measure!r} with N={N} and {given} gives a non-finite transition "
            "matrix (A or B overflows float64); choose parameters of moderate size."
        )
    A, B = A + 0.0, B + 0.0  # canonical zeros: -0.0 + 0.0 == +0.0
    A.setflags(write=False)
    B.setflags(write=False)
    return A, B


def _deterministic_host(measure: str, N, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """`transition_host` after checking N and the parameter names of a canonical measure."""
    N = _validate.check_state_size("N", N, even=measure in _EVEN_ONLY)
    return transition_host(measure, N, check_measure_params(measure, params))


def transition_np(measure: str, N: int, **params) -> tuple[np.ndarray, np.ndarray]:
    """Float64 NumPy ``(A, B)`` for a deterministic measure (cached, read-only arrays)."""
    measure = canonical_measure(measure)
    if measure in RANDOM_MEASURES:
        raise ValueError(
            f"measure {measure!r} is random and has no host matrix; call "
            "`hippox.transition(measure, N, key=...)`."
        )
    return _deterministic_host(measure, N, params)


def _random_transition(measure: str, N: int, key, dtype):
    key_a, key_b = jax.random.split(key)
    B = jax.random.normal(key_b, (N,), dtype)
    if measure == "random":
        A = jax.random.normal(key_a, (N, N), dtype) / N
    else:  # diagonal
        A = -jnp.diag(jnp.exp(jax.random.normal(key_a, (N,), dtype)))
    return Transition(A, B)


def transition(
    measure: str, N: int, *, dtype: DTypeLike | None = None, key=None, **params
) -> Transition:
    """The HiPPO operator ``(A, B)`` of a measure, for ``dx/dt = A x + B u``.

    Args:
      measure: one of `hippox.MEASURES` (see the module docstring for formulas).
      N: state size, a Python int >= 1 (even for the Fourier measures).
      dtype: real floating dtype of the result (default float32; float64 needs x64).
      key: PRNG key, required for the ``random`` and ``diagonal`` ablations; must be
        None for the deterministic measures.
      **params: measure parameters — ``legt``/``lmu``: ``theta`` (window length;
        ``legt`` defaults to 2.0, the S4 convention, ``theta=1.0`` is the HiPPO
        paper's un-halved form; ``lmu`` defaults to 1.0); ``lagt``/``tlagt``:
        ``beta``; ``glagt``: ``alpha``, ``beta``.

    Returns:
      `Transition(A, B)` with ``A`` of shape ``(N, N)`` and ``B`` of shape ``(N,)``.

    Raises:
      ValueError: unknown measure, bad N, odd N for a Fourier measure, bad parameter
        values, or a missing/unexpected key.
      TypeError: non-integer N or an unexpected parameter name.

    Examples:
      >>> import hippox
      >>> A, B = hippox.transition("legs", 3)
      >>> A
      Array([[-1.       ,  0.       ,  0.       ],
             [-1.7320508, -2.       ,  0.       ],
             [-2.236068 , -3.8729835, -3.       ]], dtype=float32)
    """
    dtype = _validate.real_dtype(dtype)
    measure = canonical_measure(measure)
    if measure in RANDOM_MEASURES:
        N = _validate.check_state_size("N", N)
        _validate.check_key("key", key, f"measure {measure!r}")
        if params:
            raise TypeError(f"measure {measure!r} takes no parameters, got {tuple(params)}.")
        return _random_transition(measure, N, key, dtype)
    if key is not None:
        raise ValueError(
            f"`key` must be None for the deterministic measure {measure!r}, got {key!r}."
        )
    A, B = _deterministic_host(measure, N, params)
    return Transition(jnp.asarray(A, dtype), jnp.asarray(B, dtype))


# --------------------------------------------------------------------- rank correction


def _legs_p(N: int):
    return np.sqrt(np.arange(N) + 0.5)[None, :]


def _legt_p(N: int):
    q = _q(N) / np.sqrt(2.0)
    odd = np.where(np.arange(N) % 2 == 1, q, 0.0)
    even = np.where(np.arange(N) % 2 == 0, q, 0.0)
    return np.stack([odd, even])


def _lagt_p(N: int):
    return np.sqrt(0.5) * np.ones((1, N))


def _fout_p(N: int):
    return _fourier_parts(N)[1][None, :]


_RANK_CORRECTIONS: dict[str, Callable[[int], np.ndarray]] = {
    "legs": _legs_p,
    "legsd": lambda N: np.zeros((1, N)),
    "legt": _legt_p,
    "lagt": _lagt_p,
    "tlagt": _lagt_p,
    "fout": _fout_p,
    "fourier_decay": lambda N: _fout_p(N) / np.sqrt(2.0),
    "fourier2": lambda N: _fout_p(N) * np.sqrt(2.0),
    "foud": lambda N: np.zeros((1, N)),
}

#: Measures whose A becomes normal after adding a low-rank ``PᵀP`` (the NPLR measures).
NPLR_MEASURES: tuple[str, ...] = tuple(_RANK_CORRECTIONS)
#: `NPLR_MEASURES` and their aliases: every name an NPLR-based initializer accepts.
NPLR_NAMES: tuple[str, ...] = (
    *NPLR_MEASURES,
    *(a for a, m in ALIASES.items() if m in NPLR_MEASURES),
)


def natural_rank(measure: str) -> int:
    """The rank of a measure's own low-rank correction: 2 for ``legt``, else 1.

    ``measure`` is a valid measure name (aliases accepted); it is not validated again.
    """
    return 2 if ALIASES.get(measure, measure) == "legt" else 1


def canonical_nplr_measure(measure: str) -> str:
    """Validates an NPLR measure name (one of `NPLR_NAMES`) and resolves aliases."""
    if not isinstance(measure, str) or measure not in NPLR_NAMES:
        raise ValueError(
            f"`measure` must be one with a normal-plus-low-rank form, one of {NPLR_NAMES}, "
            f"got {measure!r}."
        )
    return ALIASES.get(measure, measure)


@cache.host_cache
def rank_correction_host(measure: str, N: int, rank: int, params: tuple) -> np.ndarray:
    """Float64 NumPy ``P`` of shape ``(rank, N)`` (cached, read-only).

    The internal core behind `rank_correction_np`: ``measure`` is a canonical NPLR
    measure, ``N`` and ``rank`` are checked sizes and ``params`` the tuple of
    `check_measure_params` with valid values. Raises when ``rank`` is below the
    measure's `natural_rank`.
    """
    _validate.check_state_size("N", N)
    P = _RANK_CORRECTIONS[measure](N)
    if measure == "legt":  # A scales as 2/theta, so P scales as sqrt(2/theta)
        P = P * np.sqrt(2.0 / dict(params).get("theta", 2.0))
    if P.shape[0] > rank:
        raise ValueError(f"`rank` must be >= {P.shape[0]} for measure {measure!r}, got {rank}.")
    P = np.concatenate([P, np.zeros((rank - P.shape[0], N))])
    P.setflags(write=False)
    return P


def rank_correction_np(measure: str, N: int, *, rank: int = 1, **params) -> np.ndarray:
    """Float64 NumPy low-rank term ``P`` of shape ``(rank, N)`` (cached, read-only)."""
    measure = canonical_nplr_measure(measure)
    N = _validate.check_state_size("N", N, even=measure in _EVEN_ONLY)
    rank = _validate.check_size("rank", rank)
    params = check_measure_params(measure, params)
    transition_host(measure, N, params)  # the measure's builder checks the parameter values
    return rank_correction_host(measure, N, rank, params)


def rank_correction(
    measure: str, N: int, *, rank: int = 1, dtype: DTypeLike | None = None, **params
) -> jax.Array:
    """Low-rank term ``P`` such that ``A + PᵀP`` is normal (``-c I + skew``).

    Natural ranks: 1 for every NPLR measure except ``legt`` (2). Rows beyond the
    natural rank are zero; ``legsd`` and ``foud`` are already normal (P = 0).

    Args:
      measure: one of `hippox.NPLR_MEASURES` (or the aliases ``fourier``,
        ``fourier_diag``).
      N: state size.
      rank: number of rows of P (>= the measure's natural rank).
      dtype: real floating dtype (default float32).
      **params: the measure's parameters, as for `transition` (only ``legt``'s
        ``theta`` changes P).

    Returns:
      ``P`` of shape ``(rank, N)``.

    Examples:
      >>> import hippox
      >>> hippox.rank_correction("legs", 3)
      Array([[0.70710677, 1.2247449 , 1.5811388 ]], dtype=float32)
    """
    dtype = _validate.real_dtype(dtype)
    return jnp.asarray(rank_correction_np(measure, N, rank=rank, **params), dtype)
