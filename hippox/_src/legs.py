"""Structured ``O(N)`` operations with the HiPPO-LegS operator.

The LegS operator (``dx/dt = A x + B u``, stable) is lower triangular with rank-one
structure below the diagonal (``q_n = sqrt(2n + 1)``, ``n, k = 0 … N-1``)::

    A[n, k] = -q_n q_k  (n > k),   -(n + 1)  (n = k),   0  (n < k);     B[n] = q_n

so neither ``A c`` nor a solve with ``I - a A`` needs an ``N × N`` matrix:

* ``(A c)_n = -q_n S_n - (n + 1) c_n`` with ``S_n = Σ_{k<n} q_k c_k``, an exclusive
  cumulative sum (`legs_matvec`).
* ``(I - a A) x = y`` (``a >= 0``) is solved by forward substitution:
  ``x_n = (y_n - a q_n T_n) / (1 + a (n + 1))`` with ``T_n = Σ_{k<n} q_k x_k``, and
  ``T`` obeys the first-order recurrence over ``n``::

      T_{n+1} = alpha_n T_n + beta_n,   alpha_n = (1 - a n) / (1 + a (n + 1)),
                                          beta_n = q_n y_n / (1 + a (n + 1)).

  ``|alpha_n| < 1`` (and ``alpha_n = 0`` exactly when ``a n = 1``), so closed forms
  that divide by cumulative products of ``alpha`` under- or overflow; `legs_solve`
  evaluates the recurrence with `jax.lax.associative_scan` over ``n`` (``O(N)``
  work, depth ``O(log N)``), which only ever multiplies factors of size < 1.

The scale-invariant LegS memory ``dc/dt = (A c + B f) / t`` is discretised step by
step with the generalised bilinear transform (GBT) at step size ``dt_k`` (``1/(k+1)``
for samples at ``t_k = k + 1``)::

    (I - alpha dt_k A) c_k = (I + (1 - alpha) dt_k A) c_{k-1} + dt_k B f_k

(``alpha`` = 0 forward Euler, 1/2 bilinear, 1 backward Euler). `legs_step` takes one
such step with the structured operations above. `legs_transition` builds the dense
``(Ab, Bb)`` of one step (for references and tests, and for ``zoh``, which needs a
matrix exponential).

Long sequences (``hippox.hippo_project(f, 'legs', N)``) use a *skewed* schedule
instead of one step at a time. Writing ``U_n(k) = Σ_{j<n} q_j c_j(k)``, row ``n`` of
the step reads::

    c_n(k) (1 + a_k (n+1)) = c_n(k-1) (1 - b_k (n+1)) - q_n (b_k U_n(k-1) + a_k U_n(k))
                             + q_n dt_k f_k,           U_{n+1}(k) = U_n(k) + q_n c_n(k)

with ``a_k = alpha dt_k``, ``b_k = (1 - alpha) dt_k``. Entry ``(n, k)`` depends only on
entries on the previous anti-diagonal ``n + k - 1``, so sweeping anti-diagonals
``d = n + k`` turns every step into one fused elementwise update of two length-``N``
vectors: ``L + N - 1`` sweeps of ``O(N)`` work, no prefix sums inside the loop.
For the full sequence of states, every block of ``N`` sweeps is de-skewed in cache
and written in place into the ``(L, N)`` output, so peak memory is the output plus
``O(N²)``.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate, matrices
from hippox._src.discretize import Discretized, discretize

LegsMethod = Literal["bilinear", "forward_euler", "backward_euler"]
LegsSchedule = Literal["shifted", "reference", "log"]
#: Step schedules of the scale-invariant LegS memory over uniform samples (`legs_dt`).
LEGS_SCHEDULES: tuple[str, ...] = ("shifted", "reference", "log")
#: GBT parameter of each method of the structured LegS recurrence.
LEGS_ALPHA: dict[str, float] = {"forward_euler": 0.0, "bilinear": 0.5, "backward_euler": 1.0}
LEGS_METHODS: tuple[str, ...] = tuple(LEGS_ALPHA)


def check_legs_method(method) -> float:
    """Validates a LegS method name; returns its GBT alpha (0, 1/2 or 1)."""
    if method == "zoh":
        raise ValueError(
            "`method` 'zoh' needs a dense N × N matrix exponential per LegS step, so the "
            f"structured O(N) LegS recurrence supports only {LEGS_METHODS}; use "
            "`hippox.legs_transition(N, k, method='zoh')` for dense zoh steps, got 'zoh'."
        )
    _validate.check_choice("method", method, LEGS_METHODS)
    return LEGS_ALPHA[method]


def _real_of(dtype) -> np.dtype:
    """The real counterpart of a floating or complex dtype (float32 for complex64)."""
    return np.dtype(jnp.finfo(dtype).dtype)


def _q(N: int, dtype) -> jax.Array:
    return jnp.sqrt(2.0 * jnp.arange(N, dtype=dtype) + 1.0)


def _exclusive_cumsum(x: jax.Array) -> jax.Array:
    csum = jnp.cumsum(x[..., :-1], axis=-1)
    return jnp.concatenate([jnp.zeros_like(x[..., :1]), csum], axis=-1)


def legs_matvec(c: ArrayLike) -> jax.Array:
    """Multiplies by the LegS matrix, ``A @ c``, in ``O(N)`` without forming ``A``.

    Args:
      c: ``(..., N)`` vector(s), real or complex.

    Returns:
      ``(..., N)`` array ``A c`` (same dtype as ``c``), with ``A`` the LegS operator
      of `hippox.transition` (``'legs'``).

    Examples:
      >>> import numpy as np
      >>> import hippox
      >>> A, _ = hippox.transition("legs", 4)
      >>> c = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
      >>> bool(np.allclose(hippox.legs_matvec(c), A @ c, atol=1e-5))
      True
    """
    return _matvec(_validate.as_inexact("c", c, min_ndim=1))


@jax.jit
def _matvec(c: jax.Array) -> jax.Array:
    N = c.shape[-1]
    rdtype = _real_of(c.dtype)
    q = _q(N, rdtype)
    S = _exclusive_cumsum(q * c)
    return -(q * S) - jnp.arange(1, N + 1, dtype=rdtype) * c


def legs_solve(y: ArrayLike, a: ArrayLike) -> jax.Array:
    """Solves ``(I - a A) x = y`` for the LegS matrix ``A`` in ``O(N)``.

    Args:
      y: ``(..., N)`` right-hand side(s), real or complex.
      a: scale ``a >= 0``: a scalar or an array broadcasting against
        ``y.shape[:-1]`` (one scale per right-hand side). ``I - a A`` is
        nonsingular for every ``a >= 0`` (its diagonal is ``1 + a (n + 1)``);
        negative ``a`` is refused when ``a`` is concrete (under `jax.jit` it is
        not checked).

    Returns:
      ``(..., N)`` solution ``x``, in the promoted dtype of ``y`` and ``a``.

    Raises:
      ValueError: a concrete ``a`` with a negative or non-finite entry, or shapes
        that do not broadcast.

    Examples:
      >>> import numpy as np
      >>> import hippox
      >>> A, _ = hippox.transition("legs", 5)
      >>> y = np.arange(1.0, 6.0, dtype=np.float32)
      >>> x = hippox.legs_solve(y, 0.3)
      >>> bool(np.allclose((np.eye(5) - 0.3 * A) @ x, y, atol=1e-4))
      True
    """
    y = _validate.as_inexact("y", y, min_ndim=1)
    a = _validate.as_inexact("a", a, allow_complex=False)
    a_val = _validate.concrete_value(a)
    if a_val is not None and not (np.all(np.isfinite(a_val)) and np.all(a_val >= 0)):
        raise ValueError(f"`a` must be finite and >= 0, got {a_val}.")
    try:
        jnp.broadcast_shapes(a.shape, y.shape[:-1])
    except ValueError as err:
        raise ValueError(
            f"`a` must broadcast against y.shape[:-1] = {y.shape[:-1]}, got shape {a.shape}."
        ) from err
    dtype = jnp.result_type(y, a)
    return _solve(y.astype(dtype), a.astype(_real_of(dtype)))


@jax.jit
def _solve(y: jax.Array, a: jax.Array) -> jax.Array:
    N = y.shape[-1]
    rdtype = a.dtype
    a = a[..., None]
    q = _q(N, rdtype)
    n = jnp.arange(N, dtype=rdtype)
    den = 1.0 + a * (n + 1.0)
    alpha = (1.0 - a * n) / den
    beta = q * y / den
    if N == 1:
        return y / den
    alpha, beta = jnp.broadcast_arrays(alpha[..., :-1], beta[..., :-1])

    def combine(e1, e2):  # e1 earlier: T -> a1 T + b1, then a2 (.) + b2
        a1, b1 = e1
        a2, b2 = e2
        return a2 * a1, a2 * b1 + b2

    _, T = lax.associative_scan(combine, (alpha, beta), axis=-1)
    T = jnp.concatenate([jnp.zeros_like(T[..., :1]), T], axis=-1)  # T_0 = 0
    return (y - a * q * T) / den


def legs_step(c: ArrayLike, f: ArrayLike, dt: ArrayLike, *, method: LegsMethod = "bilinear"):
    """One step of the discretised LegS memory, in ``O(N)``.

    Computes ``c_new = (I - alpha dt A)^{-1} ((I + (1 - alpha) dt A) c + dt B f)``
    with the LegS ``(A, B)``, using `legs_matvec` and `legs_solve`. For the
    scale-invariant memory of samples at ``t_k = k + 1`` use ``dt = 1 / (k + 1)``
    (in general ``dt = (t_k - t_{k-1}) / t_k``); the memory starts at
    ``c_0 = f_0 e_0`` (see `hippox.hippo_project`).

    Args:
      c: ``(..., N)`` state, real or complex.
      f: input sample, shape broadcasting against ``c.shape[:-1]``.
      dt: step size ``>= 0``, shape broadcasting against ``c.shape[:-1]``.
      method: ``'bilinear'``, ``'forward_euler'`` or ``'backward_euler'``.

    Returns:
      ``(..., N)`` new state, dtype promoted from ``c``, ``f``, ``dt``.

    Raises:
      ValueError: unknown method (``'zoh'`` is dense-only, see `legs_transition`),
        a concrete negative ``dt``.

    Examples:
      >>> import numpy as np
      >>> import hippox
      >>> Ab, Bb = hippox.legs_transition(3, k=4, method="bilinear")
      >>> c = np.array([0.5, -1.0, 2.0], np.float32)
      >>> new = hippox.legs_step(c, 1.5, 1 / 5)
      >>> bool(np.allclose(new, Ab @ c + Bb * 1.5, atol=1e-5))
      True
    """
    alpha = check_legs_method(method)
    c = _validate.as_inexact("c", c, min_ndim=1)
    f = _validate.as_inexact("f", f)
    dt = _validate.as_inexact("dt", dt)
    dt_val = _validate.concrete_value(dt)
    if dt_val is not None and not np.all(np.isfinite(dt_val) & (dt_val >= 0)):
        raise ValueError(f"`dt` must be >= 0 and finite, got {dt_val}.")
    dtype = jnp.result_type(c, f, dt)
    rdtype = _real_of(dtype)
    return _step(c.astype(dtype), f.astype(dtype), dt.astype(rdtype), alpha)


@functools.partial(jax.jit, static_argnums=3)
def _step(c: jax.Array, f: jax.Array, dt: jax.Array, alpha: float) -> jax.Array:
    q = _q(c.shape[-1], dt.dtype)
    y = c + ((1.0 - alpha) * dt)[..., None] * _matvec(c) + (dt * f)[..., None] * q
    if alpha == 0.0:
        return y
    return _solve(y, alpha * dt)


def check_legs_schedule(schedule) -> str:
    """Validates a LegS step schedule name (`LEGS_SCHEDULES`)."""
    return _validate.check_choice("schedule", schedule, LEGS_SCHEDULES)


def legs_dt(k: ArrayLike, *, schedule: LegsSchedule = "shifted", dtype: DTypeLike | None = None):
    """The step size of the LegS memory at the 0-based uniform sample ``k >= 1``.

    The scale-invariant memory ``dc/dt = (A c + B f) / t`` over uniform samples
    ``f_0, f_1, …`` starts with ``c_0 = f_0 e_0`` and takes one step per later sample.
    The schedules place the samples differently in time and so step differently:

    * ``'shifted'`` (hippox's `hippo_project` default): samples at ``t_k = k + 1``,
      step ``dt_k = (t_k - t_{k-1}) / t_k = 1 / (k + 1)``;
    * ``'reference'`` (the authors' HiPPO-LegS cell and C++ LegS extension): step
      ``dt_k = 1 / k`` (so ``dt_1 = 1``), the ``1 / t`` factor taken at the start
      ``t = k`` of the step from ``k`` to ``k + 1``;
    * ``'log'`` (exact): ``dt_k = log((k + 1) / k)``. In log-time ``s = log t`` the
      memory is time-invariant, ``dc/ds = A c + B f``, and the interval ``[k, k + 1]``
      spans ``log((k + 1) / k)``, so ``zoh`` with this step integrates a
      piecewise-constant input exactly (``c_k`` is then the projection of the step
      function ``f(t) = f_j`` on ``[j, j + 1)``, over ``[0, k + 1]``). The authors'
      ``zoh`` LegS cell uses this step.

    All three agree as ``k`` grows (``1/(k+1) < log((k+1)/k) < 1/k``) and differ at
    small ``k``: for an impulse ``f_0 = 1`` the bilinear ``c_0`` after 40 samples is
    ``3/81 = 0.0370`` (shifted), ``1/79 = 0.0127`` (reference); the exact value
    (``zoh`` + ``log``) is ``1/40 = 0.025``.

    Args:
      k: integer sample index(es), ``>= 1`` (checked when concrete; ``'shifted'``
        also accepts ``k = 0``, step 1).
      schedule: ``'shifted'``, ``'reference'`` or ``'log'``.
      dtype: real floating dtype of the result (default float32).

    Returns:
      Array of step sizes with the shape of ``k``.

    Raises:
      ValueError: unknown schedule, a concrete ``k`` out of range.
      TypeError: non-integer ``k``.

    Examples:
      >>> from hippox._src.legs import legs_dt
      >>> [round(float(legs_dt(2, schedule=s)), 4) for s in ("shifted", "reference", "log")]
      [0.3333, 0.5, 0.4055]
    """
    check_legs_schedule(schedule)
    dtype = _validate.real_dtype(dtype)
    k = _validate.as_array("k", k)
    if not jnp.issubdtype(k.dtype, jnp.integer):
        raise TypeError(f"`k` must be an integer sample index, got dtype {k.dtype}.")
    low = 0 if schedule == "shifted" else 1
    k_val = _validate.concrete_value(k)
    if k_val is not None and np.any(k_val < low):
        raise ValueError(f"`k` must be >= {low} for schedule {schedule!r}, got {k_val}.")
    return schedule_dt(k, schedule, dtype)


def schedule_dt(k: jax.Array, schedule: str, dtype) -> jax.Array:
    """`legs_dt` without checks (``k`` an integer array; traced values welcome)."""
    kf = k.astype(dtype)
    if schedule == "shifted":
        return 1.0 / (kf + 1.0)
    if schedule == "reference":
        return 1.0 / kf
    return jnp.log1p(1.0 / kf)


def legs_transition(
    N: int,
    k: ArrayLike | None = None,
    *,
    dt: ArrayLike | None = None,
    method: str = "bilinear",
    schedule: LegsSchedule = "shifted",
    dtype: DTypeLike | None = None,
) -> Discretized:
    """Dense ``(Ab, Bb)`` of one step of the scale-invariant LegS memory.

    ``c_k = Ab c_{k-1} + Bb f_k`` is the discretisation (`hippox.discretize`) of the
    LegS ``(A, B)`` with step ``dt``; uniform samples at ``t_k = k + 1`` use
    ``dt = 1 / (k + 1)``. This builds ``N × N`` matrices: use it for references,
    tests and ``zoh``; `legs_step` and `hippox.hippo_project` never form them.

    Args:
      N: state size (int >= 1).
      k: 0-based step index; an int or an integer array. Its step size is
        `legs_dt` ``(k, schedule=schedule)`` (``1 / (k + 1)`` by default). Exactly
        one of ``k`` and ``dt`` must be given.
      dt: step size(s) (scalar or array); ``(t_k - t_{k-1}) / t_k`` for irregular
        samples.
      method: any `hippox.discretize` method (``zoh``, ``bilinear``,
        ``forward_euler``, ``backward_euler``). ``method='zoh'`` with
        ``schedule='log'`` is the exact scale-invariant step (`legs_dt`).
      schedule: step schedule of ``k`` (`legs_dt`): ``'shifted'``, ``'reference'``
        or ``'log'`` (the last two need ``k >= 1``).
      dtype: real floating dtype (default float32; float64 needs x64).

    Returns:
      `Discretized(Ab, Bb)`: ``Ab`` ``(..., N, N)`` and ``Bb`` ``(..., N)``, with
      ``...`` the shape of ``k`` or ``dt``.

    Raises:
      ValueError: both or neither of ``k`` and ``dt``, bad ``N``, unknown method.

    Examples:
      >>> import hippox
      >>> Ab, Bb = hippox.legs_transition(4, k=9)
      >>> Ab.shape, Bb.shape
      ((4, 4), (4,))
    """
    N = _validate.check_size("N", N)
    dtype = _validate.real_dtype(dtype)
    if (k is None) == (dt is None):
        raise ValueError(
            f"exactly one of `k` (step index) and `dt` (step size) must be given, got "
            f"k={k!r}, dt={dt!r}."
        )
    if k is not None:
        k = jnp.asarray(k)
        if not jnp.issubdtype(k.dtype, jnp.integer):
            raise TypeError(f"`k` must be an integer step index, got dtype {k.dtype}.")
        dt = legs_dt(k, schedule=schedule, dtype=dtype)
    else:
        check_legs_schedule(schedule)
    A, B = matrices.transition_np("legs", N)
    return discretize(
        jnp.asarray(A, dtype), jnp.asarray(B, dtype), jnp.asarray(dt, dtype), method=method
    )


# ------------------------------------------------------------------ skewed recurrence


@functools.partial(jax.jit, static_argnames=("N", "final_only"))
def legs_scan_skewed(
    a: jax.Array,
    b: jax.Array,
    g: jax.Array,
    init: jax.Array,
    N: int,
    *,
    final_only: bool,
) -> jax.Array:
    """The LegS recurrence over anti-diagonals (internal; see the module docstring).

    Step ``k`` computes ``c_n(k)(1 + a_k(n+1)) = c_n(k-1)(1 - b_k(n+1))
    - q_n(b_k U_n(k-1) + a_k U_n(k)) + q_n g_k`` (``g_k = dt_k f_k``), except where
    ``init[k]``, which sets ``c(k) = g_k e_0``. Zero ``a_k, b_k, g_k`` leave the state
    unchanged (a skipped step).

    Args:
      a, b, g: ``(..., L)`` real per-step coefficients (same dtype).
      init: ``(..., L)`` bool, the initialising step(s).
      N: state size.
      final_only: return only ``c(L-1)``.

    Returns:
      ``(..., L, N)`` states, or ``(..., N)``.
    """
    *batch, L = g.shape
    dtype = g.dtype
    nd = len(batch)
    # Sweeps d = 0 … D-1 with D = (blocks) * N >= L + N - 1 (extra sweeps are no-ops).
    blocks = -(-L // N) + 1
    coef = jnp.stack([a, b, g, init.astype(dtype)], axis=-1)
    # coef_pad[..., N + k, :] holds step k; rows outside 0 … L-1 are zero (skipped).
    coef_pad = jnp.concatenate(
        [
            jnp.zeros((*batch, N, 4), dtype),
            coef,
            jnp.zeros((*batch, blocks * N + N - L, 4), dtype),
        ],
        axis=-2,
    )
    q = _q(N, dtype)
    m1 = jnp.arange(1, N + 1, dtype=dtype)
    first = m1 == 1.0
    zero = jnp.zeros((*batch, 1), dtype)

    def sweep(carry, d):
        # carry: X[..., n] = c_n(d - 1 - n), W[..., n] = U_n(d - 1 - n).
        X, W = carry
        # Entry n of this sweep is step k = d - n, stored at row N + d - n.
        cf = lax.dynamic_slice_in_dim(coef_pad, d + 1, N, axis=-2)
        cf = jnp.flip(cf, axis=-2)
        ak, bk, gk, ik = (cf[..., i] for i in range(4))
        U_new = jnp.concatenate([zero, W[..., :-1] + q[:-1] * X[..., :-1]], axis=-1)
        # The step as an increment of X (better in float32 than X (1 - b (n+1)) + ...).
        delta = (q * (gk - bk * W - ak * U_new) - (ak + bk) * m1 * X) / (1.0 + ak * m1)
        X_new = jnp.where(ik > 0, jnp.where(first, gk, 0.0), X + delta)
        return (X_new, U_new), (None if final_only else X_new)

    state = jnp.zeros((*batch, N), dtype)
    if final_only:
        (X, _), _ = lax.scan(sweep, (state, state), jnp.arange(L + N - 1))
        return X

    def block(carry, j):
        # Sweeps jN … jN + N - 1; then the N times s … s + N - 1, s = min((j-1)N, L-N),
        # whose entries lie on the diagonals of this block and the two before, are
        # de-skewed and written in place (a clamped, overlapping write for the last
        # block; block 0 writes rows 0 … N-1, rewritten by block 1).
        X, W, older, old, out = carry
        (X, W), cur = lax.scan(sweep, (X, W), j * N + jnp.arange(N))
        S = jnp.concatenate([older, old, cur], axis=0)  # S[r] = diagonal (j-2)N + r
        start = jnp.minimum((j - 1) * N, L - N)
        S = lax.dynamic_slice_in_dim(S, jnp.clip(start - (j - 2) * N, 0, N), 2 * N, axis=0)
        Z = jnp.moveaxis(S, 0, -1).reshape(*batch, 2 * N * N)  # Z[..., n*2N + r]
        Z = jnp.concatenate([Z, jnp.zeros((*batch, N), dtype)], axis=-1)
        Z = Z.reshape(*batch, N, 2 * N + 1)[..., :N]  # Z[..., n, i] = c_n(start + i)
        out = lax.dynamic_update_slice_in_dim(out, jnp.swapaxes(Z, -1, -2), start, axis=nd)
        return (X, W, old, cur, out), None

    if L < N:  # too short for whole blocks: de-skew the sweeps directly
        _, diag = lax.scan(sweep, (state, state), jnp.arange(L + N - 1))
        Z = jnp.moveaxis(diag, 0, -1).reshape(*batch, N * (L + N - 1))
        Z = jnp.concatenate([Z, jnp.zeros((*batch, N), dtype)], axis=-1)
        return jnp.swapaxes(Z.reshape(*batch, N, L + N)[..., :L], -1, -2)
    empty = jnp.zeros((N, *batch, N), dtype)
    out = jnp.zeros((*batch, L, N), dtype)
    carry, _ = lax.scan(block, (state, state, empty, empty, out), jnp.arange(blocks))
    return carry[-1]
