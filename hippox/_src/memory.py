"""The fixed linear memory of the HiPPO-RNN cells: ``c_t = Ab_t c_{t-1} + Bb_t u_t``.

Memories (`hippo_memory`; the ``(A, B)`` are fixed, not trained):

* ``legs`` (scaled Legendre) is scale-invariant, ``dc/dt = (A c + B u) / t``: the
  first step sets ``c_0 = u_0 e_0`` and step ``t >= 1`` discretises ``(A, B)`` with the
  step size of the ``schedule`` (`hippox.legs_dt`): ``'reference'`` ``1 / t`` (the
  authors' cell and C++ extension; the default, see below), ``'shifted'``
  ``1 / (t + 1)`` (the recurrence of ``hippox.hippo_project(u, 'legs', N)``) or
  ``'log'`` ``log((t + 1) / t)`` (exact with ``zoh``). The GBT methods run in ``O(N)``
  with `hippox.legs_step`; ``zoh`` uses a float64 host table of the ``l_max`` first
  steps (``l_max × N × N``) and, beyond it, the ``O(N)`` bilinear step of the same
  schedule. The step counter ``t`` travels in the carry.
* time-invariant measures (``legt``, ``lmu``, ``lagt``, ``glagt``, …) use one dense
  ``(Ab, Bb)`` from discretising ``(A, B)`` at a fixed step ``dt`` (default
  ``1e-2``), built once in float64 on the host; this is the recurrence of
  ``hippox.hippo_project(u, measure, N, dt=dt)``.
* ``random`` (HiPPO-Rand, the paper's ablation): a fixed random ``A`` with
  N(0, 1/N) entries and ``B`` with N(0, 1) entries (the authors' ``RandomCell``),
  drawn on the host from the integer ``seed``, then treated as a time-invariant
  measure. The authors do not stabilise it: the eigenvalues of such an ``A`` fill the
  unit disc, so the memory grows like ``exp(L dt max Re λ(A))``. The measure
  parameter ``max_real`` (default None: the authors' matrix) shifts ``A`` by a
  multiple of the identity so that ``max Re λ(A) = max_real``; a negative value gives
  a stable random memory, a fairer ablation (see ``examples/RESULTS.md``).
* timestamped memories (`HiPPOMemory.update_timed`, the authors' ``tlsi``/``tlti``
  cells): the step comes from the actual time gap, ``(t_k - t_{k-1}) / t_k`` for
  ``legs`` (``c = u e_0`` when ``t_k = 0``) and ``dt (t_k - t_{k-1})`` for ``legt``,
  ``lagt`` (and every time-invariant measure), discretised anew each step (GBT only).

Why ``schedule='reference'`` is the cell's default: it is the authors' HiPPO-LegS cell,
whose training runs hippox reproduces with it, and it is cheap (``O(N)``). Its first
steps are coarse (for an impulse at ``t = 0`` the bilinear ``c_0`` after 40 samples is
``0.0127``, the exact value ``0.025``, ``'shifted'`` gives ``0.0370``); ``'log'`` with
``zoh`` is exact for piecewise-constant input at the price of the table.

References:
  Gu, Dao, Ermon, Rudra, Ré. "HiPPO: Recurrent Memory with Optimal Polynomial
  Projections." NeurIPS 2020.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate, cache, legs, matrices

#: Default step of the time-invariant memories.
DEFAULT_DT = 1e-2
#: Discretisation methods of the memories.
LTI_METHODS: tuple[str, ...] = ("zoh", "bilinear", "forward_euler", "backward_euler")
#: Default LegS step schedule of the cell memory (`hippox.legs_dt`).
DEFAULT_SCHEDULE = "reference"
#: Default number of tabulated ``zoh`` LegS steps (the authors' ``l_max``).
DEFAULT_L_MAX = 1024
_ALPHA = {"forward_euler": 0.0, "bilinear": 0.5, "backward_euler": 1.0}


@cache.host_cache
def random_transition_np(
    N: int, seed: int, max_real: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """HiPPO-Rand's float64 ``(A, B)``: ``A`` N(0, 1/N) entries, ``B`` N(0, 1) (cached).

    With ``max_real``, ``A`` is shifted by ``(max_real - max Re λ(A)) I``, which moves
    every eigenvalue by the same real amount, so its rightmost one has real part
    ``max_real``.
    """
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(N, N)) / math.sqrt(N)
    B = rng.normal(size=N)
    if max_real is not None:
        A = A + (max_real - np.linalg.eigvals(A).real.max()) * np.eye(N)
    A.setflags(write=False)
    B.setflags(write=False)
    return A, B


def _continuous_np(measure: str, N: int, params: tuple, seed: int):
    if measure == "random":
        return random_transition_np(N, seed, dict(params).get("max_real"))
    return matrices.transition_np(measure, N, **dict(params))


def _gbt_np(A, B, dt, method):
    N = A.shape[0]
    if method == "zoh":
        block = np.zeros((N + 1, N + 1))
        block[:N, :N] = dt * A
        block[:N, N] = dt * B
        E = scipy.linalg.expm(block)
        return E[:N, :N], E[:N, N]
    alpha = _ALPHA[method]
    lhs = np.eye(N) - alpha * dt * A
    Ab = np.linalg.solve(lhs, np.eye(N) + (1.0 - alpha) * dt * A)
    return Ab, np.linalg.solve(lhs, dt * B)


@cache.host_cache
def _lti_np(measure: str, N: int, dt: float, method: str, params: tuple, seed: int = 0):
    """Float64 host ``(Ab, Bb)`` of a time-invariant measure at step ``dt`` (cached)."""
    A, B = _continuous_np(measure, N, params, seed)
    Ab, Bb = (np.ascontiguousarray(a) for a in _gbt_np(A, B, dt, method))
    Ab.setflags(write=False)
    Bb.setflags(write=False)
    return Ab, Bb


@cache.host_cache
def _legs_zoh_table(N: int, l_max: int, schedule: str):
    """Float64 ``zoh`` LegS steps ``(Ab_t, Bb_t)`` for ``t = 0 … l_max - 1`` (row 0 unused)."""
    A, B = matrices.transition_np("legs", N)
    Ab = np.zeros((l_max, N, N))
    Bb = np.zeros((l_max, N))
    if l_max > 1:
        k = np.arange(1, l_max)
        dts = {"shifted": 1.0 / (k + 1.0), "reference": 1.0 / k, "log": np.log1p(1.0 / k)}
        for t, dt in zip(k, dts[schedule], strict=True):
            Ab[t], Bb[t] = _gbt_np(A, B, dt, "zoh")
    Ab.setflags(write=False)
    Bb.setflags(write=False)
    return Ab, Bb


@dataclasses.dataclass(frozen=True)
class HiPPOMemory:
    """A fixed HiPPO memory of order ``N`` (hashable, static; build with `hippo_memory`).

    Attributes:
      measure: canonical measure name (``legs``, a time-invariant measure, or
        ``random``).
      N: memory order (state size per memory channel).
      method: discretisation method.
      dt: step of a time-invariant memory, or the time scale of a timestamped one
        (None for ``legs``).
      params: measure parameters as a sorted tuple of ``(name, value)`` pairs.
      schedule: LegS step schedule (`hippox.legs_dt`; None for other measures).
      l_max: number of tabulated ``zoh`` LegS steps (None otherwise).
      seed: the seed of ``random``'s ``(A, B)`` (None otherwise).
    """

    measure: str
    N: int
    method: str
    dt: float | None
    params: tuple = ()
    schedule: str | None = None
    l_max: int | None = None
    seed: int | None = None

    @property
    def scale_invariant(self) -> bool:
        """True for ``legs`` (its step size shrinks as ``1 / t``)."""
        return self.measure == "legs"

    def continuous(self, dtype: DTypeLike | None = None) -> tuple[jax.Array, jax.Array]:
        """The continuous ``(A, B)``: ``A`` ``(N, N)``, ``B`` ``(N,)`` (default float32)."""
        dtype = _validate.real_dtype(dtype)
        A, B = _continuous_np(self.measure, self.N, self.params, self.seed or 0)
        return jnp.asarray(A, dtype), jnp.asarray(B, dtype)

    def transition(self, dtype: DTypeLike | None = None) -> tuple[jax.Array, jax.Array]:
        """The discrete ``(Ab, Bb)`` of a time-invariant memory.

        Args:
          dtype: real dtype of the result (default float32).

        Returns:
          ``Ab`` ``(N, N)`` and ``Bb`` ``(N,)``.

        Raises:
          ValueError: for ``legs``, whose step changes with ``t`` (see
            `hippox.legs_transition`).
        """
        if self.scale_invariant:
            raise ValueError(
                "`memory` must be time-invariant for a fixed (Ab, Bb); 'legs' changes its "
                "step with t, use hippox.legs_transition(N, k=t, schedule=...), got measure "
                "'legs'."
            )
        dtype = _validate.real_dtype(dtype)
        Ab, Bb = _lti_np(self.measure, self.N, self.dt, self.method, self.params, self.seed or 0)
        return jnp.asarray(Ab, dtype), jnp.asarray(Bb, dtype)

    def update(self, c: ArrayLike, u: ArrayLike, t: ArrayLike) -> jax.Array:
        """One memory step: ``c_t = Ab_t c_{t-1} + Bb_t u_t``.

        Args:
          c: ``(..., N)`` previous memory ``c_{t-1}`` (real).
          u: ``(...)`` input ``u_t`` (one scalar per memory; broadcasts with
            ``c.shape[:-1]``).
          t: ``(...)`` integer 0-based step index of ``u_t`` (broadcasts with
            ``c.shape[:-1]``); used by ``legs`` only (``t = 0`` sets ``c = u e_0``,
            ``t >= 1`` steps by `hippox.legs_dt` ``(t, schedule)``).

        Returns:
          ``(..., N)`` new memory, dtype promoted from ``c`` and ``u``.
        """
        c, u, dtype = _promote(c, u)
        if not self.scale_invariant:
            Ab, Bb = self.transition(dtype)
            return c @ Ab.T + u[..., None] * Bb
        t = jnp.asarray(t)
        tc = jnp.maximum(t, 1)
        dt = legs.schedule_dt(tc, self.schedule, dtype)
        if self.method == "zoh":
            Ab, Bb = _legs_zoh_table(self.N, self.l_max, self.schedule)
            Ab, Bb = jnp.asarray(Ab, dtype), jnp.asarray(Bb, dtype)
            idx = jnp.minimum(tc, self.l_max - 1)
            tab = jnp.einsum("...nk,...k->...n", Ab[idx], c) + Bb[idx] * u[..., None]
            far = legs.legs_step(c, u, dt, method="bilinear")
            stepped = jnp.where((t < self.l_max)[..., None], tab, far)
        else:
            stepped = legs.legs_step(c, u, dt, method=self.method)
        return jnp.where((t == 0)[..., None], _first(u, self.N, dtype), stepped).astype(dtype)

    def update_timed(
        self, c: ArrayLike, u: ArrayLike, t_prev: ArrayLike, t_now: ArrayLike
    ) -> jax.Array:
        """One timestamped memory step (the authors' ``tlsi``/``tlti`` cells).

        ``legs``: ``c = u e_0`` where ``t_now == 0``, else a GBT step of size
        ``(t_now - t_prev) / t_now``. Other measures: a GBT step of size
        ``dt (t_now - t_prev)`` (``dt`` the time scale), discretised anew (an
        ``N × N`` solve per element for ``bilinear``/``backward_euler``).

        Args:
          c: ``(..., N)`` previous memory.
          u: ``(...)`` input.
          t_prev: ``(...)`` real timestamp of the previous input.
          t_now: ``(...)`` real timestamp of the current input.

        Returns:
          ``(..., N)`` new memory.
        """
        c, u, dtype = _promote(c, u)
        t_prev = jnp.asarray(t_prev, dtype)
        t_now = jnp.asarray(t_now, dtype)
        alpha = _ALPHA[self.method]
        if self.scale_invariant:
            zero = t_now == 0
            dt = (t_now - t_prev) / jnp.where(zero, 1.0, t_now)
            stepped = legs.legs_step(c, u, jnp.where(zero, 0.0, dt), method=self.method)
            return jnp.where(zero[..., None], _first(u, self.N, dtype), stepped)
        A, B = self.continuous(dtype)
        dt = (self.dt * (t_now - t_prev))[..., None]
        y = c + (1.0 - alpha) * dt * (c @ A.T) + dt * u[..., None] * B
        if alpha == 0.0:
            return y
        lhs = jnp.eye(self.N, dtype=dtype) - alpha * dt[..., None] * A
        lhs, y = jnp.broadcast_to(lhs, (*y.shape, self.N)), y
        return jnp.linalg.solve(lhs, y[..., None])[..., 0]


def _promote(c, u):
    c, u = jnp.asarray(c), jnp.asarray(u)
    dtype = jnp.result_type(c, u)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return c.astype(dtype), u.astype(dtype), dtype


def _first(u, N, dtype):
    return jnp.where(jnp.arange(N) == 0, u[..., None], jnp.zeros((), dtype))


def hippo_memory(
    measure: str = "legs",
    N: int = 32,
    *,
    method: str = "bilinear",
    dt: float | None = None,
    schedule: str | None = None,
    l_max: int | None = None,
    seed: int | None = None,
    timestamped: bool = False,
    **params,
) -> HiPPOMemory:
    """Validates and builds the static description of a HiPPO-RNN memory.

    Args:
      measure: ``legs`` (scale-invariant), a deterministic time-invariant measure of
        `hippox.MEASURES` (``legt``, ``lmu``, ``lagt``, ``glagt``, ``fout``, …), or
        ``random`` (HiPPO-Rand).
      N: memory order (int >= 1; even for the Fourier measures).
      method: ``bilinear``, ``forward_euler``, ``backward_euler``, or ``zoh`` (not
        for timestamped memories).
      dt: step of a time-invariant memory (``> 0``; default ``1e-2``), or the time
        scale of a timestamped one (default 1); must be None for ``legs``.
      schedule: LegS step schedule (`hippox.legs_dt`; default ``'reference'``, the
        authors' ``1 / t``); None for other measures.
      l_max: number of tabulated ``zoh`` LegS steps (default 1024); only with
        ``legs`` and ``zoh``.
      seed: integer seed of ``random``'s ``(A, B)`` (default 0); only with ``random``.
      timestamped: a memory stepped by time gaps (`HiPPOMemory.update_timed`):
        ``legs`` or a time-invariant measure, GBT methods only.
      **params: measure parameters (e.g. ``theta`` for ``legt``/``lmu``; ``max_real``
        for ``random``: None, the authors' matrix, or the real part to shift its
        rightmost eigenvalue to).

    Returns:
      A `HiPPOMemory`.

    Raises:
      ValueError: unknown measure, bad ``N``, method, ``dt``, schedule, ``l_max``.
      TypeError: unknown measure parameters, a misplaced option.

    Examples:
      >>> import hippox
      >>> mem = hippox.hippo_memory("legt", 4, dt=0.1)
      >>> Ab, Bb = mem.transition()
      >>> Ab.shape, Bb.shape
      ((4, 4), (4,))
    """
    measure = matrices.canonical_measure(measure)
    if measure == "diagonal":
        raise ValueError(
            "`measure` must be a deterministic HiPPO measure or 'random' (HiPPO-Rand) for a "
            "HiPPO-RNN memory, got the random ablation 'diagonal'."
        )
    N = _validate.check_size("N", N)
    timestamped = _validate.check_bool("timestamped", timestamped)
    allowed = LTI_METHODS[1:] if timestamped else LTI_METHODS
    _validate.check_choice("method", method, allowed)
    if measure != "legs" and schedule is not None:
        raise ValueError(f"`schedule` is for measure 'legs' only, got {schedule!r}.")
    if l_max is not None and (measure != "legs" or method != "zoh" or timestamped):
        raise ValueError(f"`l_max` is for 'legs' with method 'zoh' only, got {l_max!r}.")
    if measure != "random" and seed is not None:
        raise ValueError(f"`seed` is for measure 'random' only, got {seed!r}.")
    if measure == "legs":
        if dt is not None:
            raise ValueError(
                "`dt` must be None for the scale-invariant memory 'legs' (its step comes "
                f"from the schedule or the timestamps), got {dt!r}."
            )
        if params:
            raise TypeError(f"measure 'legs' takes no parameters, got {tuple(params)}.")
        if timestamped:
            return HiPPOMemory("legs", N, method, None, ())
        sched = legs.check_legs_schedule(DEFAULT_SCHEDULE if schedule is None else schedule)
        lm = None
        if method == "zoh":
            lm = _validate.check_size("l_max", DEFAULT_L_MAX if l_max is None else l_max)
        return HiPPOMemory("legs", N, method, None, (), sched, lm)
    default_dt = 1.0 if timestamped else DEFAULT_DT
    dt = default_dt if dt is None else _validate.check_real("dt", dt, positive=True)
    if measure == "random":
        if set(params) - {"max_real"}:
            raise TypeError(
                f"measure 'random' takes only the parameter `max_real`, got {tuple(params)}."
            )
        seed = _validate.check_size("seed", 0 if seed is None else seed, minimum=0)
        max_real = params.get("max_real")
        if max_real is None:
            return HiPPOMemory("random", N, method, dt, (), seed=seed)
        max_real = _validate.check_real("max_real", max_real)
        return HiPPOMemory("random", N, method, dt, (("max_real", max_real),), seed=seed)
    ptuple = matrices.check_measure_params(measure, params)
    matrices.transition_np(measure, N, **dict(ptuple))  # validates N (e.g. even for Fourier)
    return HiPPOMemory(measure, N, method, dt, ptuple)
