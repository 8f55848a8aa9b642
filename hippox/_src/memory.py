"""The fixed HiPPO memory of the HiPPO-RNN cell: ``c_t = Ab_t c_{t-1} + Bb_t u_t``.

Memories (`hippo_memory`; the ``(A, B)`` of `hippox.transition` are fixed, not
trained):

* ``legs`` (scaled Legendre) is scale-invariant, ``dc/dt = (A c + B u) / t``: the
  first step sets ``c_0 = u_0 e_0`` and step ``t >= 1`` discretises with step
  ``1 / (t + 1)``, in ``O(N)`` with `hippox.legs_step` (no ``N × N`` matrix). This is
  exactly the recurrence of ``hippox.hippo_project(u, 'legs', N)``. The step counter
  ``t`` travels in the carry.
* the time-invariant measures (``legt``, ``lmu``, ``lagt``, ``glagt``, …) use one
  dense ``(Ab, Bb)`` from discretising ``(A, B)`` at a fixed step ``dt``
  (default ``1e-2``), built once in float64 on the host; this is the recurrence of
  ``hippox.hippo_project(u, measure, N, dt=dt)``. With ``dt = 1 / L`` the window of
  ``lmu`` (``theta = 1``) spans ``L`` samples, that of ``legt`` (``theta = 2``) ``2L``.

References:
  Gu, Dao, Ermon, Rudra, Ré. "HiPPO: Recurrent Memory with Optimal Polynomial
  Projections." NeurIPS 2020.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate, legs, matrices

#: Default step of the time-invariant memories.
DEFAULT_DT = 1e-2
#: Discretisation methods of the time-invariant memories (``legs``: all but ``zoh``).
LTI_METHODS: tuple[str, ...] = ("zoh", "bilinear", "forward_euler", "backward_euler")
_ALPHA = {"forward_euler": 0.0, "bilinear": 0.5, "backward_euler": 1.0}


@functools.lru_cache(maxsize=128)
def _lti_np(measure: str, N: int, dt: float, method: str, params: tuple):
    """Float64 host ``(Ab, Bb)`` of a time-invariant measure at step ``dt`` (cached)."""
    A, B = matrices.transition_np(measure, N, **dict(params))
    if method == "zoh":
        block = np.zeros((N + 1, N + 1))
        block[:N, :N] = dt * A
        block[:N, N] = dt * B
        E = scipy.linalg.expm(block)
        Ab, Bb = E[:N, :N], E[:N, N]
    else:
        alpha = _ALPHA[method]
        lhs = np.eye(N) - alpha * dt * A
        Ab = np.linalg.solve(lhs, np.eye(N) + (1.0 - alpha) * dt * A)
        Bb = np.linalg.solve(lhs, dt * B)
    Ab, Bb = np.ascontiguousarray(Ab), np.ascontiguousarray(Bb)
    Ab.setflags(write=False)
    Bb.setflags(write=False)
    return Ab, Bb


@dataclasses.dataclass(frozen=True)
class HiPPOMemory:
    """A fixed HiPPO memory of order ``N`` (hashable, static; build with `hippo_memory`).

    Attributes:
      measure: canonical measure name (``legs`` or a time-invariant measure).
      N: memory order (state size per memory channel).
      method: discretisation method.
      dt: step of a time-invariant memory (None for ``legs``).
      params: measure parameters as a sorted tuple of ``(name, value)`` pairs.
    """

    measure: str
    N: int
    method: str
    dt: float | None
    params: tuple = ()

    @property
    def scale_invariant(self) -> bool:
        """True for ``legs`` (its step size shrinks as ``1 / (t + 1)``)."""
        return self.measure == "legs"

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
                "`memory` must be time-invariant for a fixed (Ab, Bb); 'legs' steps by "
                "1 / (t + 1), use hippox.legs_transition(N, k=t), got measure 'legs'."
            )
        dtype = _validate.real_dtype(dtype)
        Ab, Bb = _lti_np(self.measure, self.N, self.dt, self.method, self.params)
        return jnp.asarray(Ab, dtype), jnp.asarray(Bb, dtype)

    def update(self, c: ArrayLike, u: ArrayLike, t: ArrayLike) -> jax.Array:
        """One memory step: ``c_t = Ab_t c_{t-1} + Bb_t u_t``.

        Args:
          c: ``(..., N)`` previous memory ``c_{t-1}`` (real).
          u: ``(...)`` input ``u_t`` (one scalar per memory; broadcasts with
            ``c.shape[:-1]``).
          t: ``(...)`` integer 0-based step index of ``u_t`` (broadcasts with
            ``c.shape[:-1]``); used by ``legs`` only (``t = 0`` sets
            ``c = u e_0``, ``t >= 1`` steps by ``1 / (t + 1)``).

        Returns:
          ``(..., N)`` new memory, dtype promoted from ``c`` and ``u``.
        """
        c, u = jnp.asarray(c), jnp.asarray(u)
        dtype = jnp.result_type(c, u)
        if not jnp.issubdtype(dtype, jnp.floating):
            dtype = jnp.result_type(float)
        c, u = c.astype(dtype), u.astype(dtype)
        if self.scale_invariant:
            t = jnp.asarray(t)
            step = 1.0 / (t.astype(dtype) + 1.0)
            stepped = legs.legs_step(c, u, step, method=self.method)
            first = jnp.where(jnp.arange(self.N) == 0, u[..., None], jnp.zeros((), dtype))
            return jnp.where((t == 0)[..., None], first, stepped).astype(dtype)
        Ab, Bb = _lti_np(self.measure, self.N, self.dt, self.method, self.params)
        Ab, Bb = jnp.asarray(Ab, dtype), jnp.asarray(Bb, dtype)
        return c @ Ab.T + u[..., None] * Bb


def hippo_memory(
    measure: str = "legs",
    N: int = 32,
    *,
    method: str = "bilinear",
    dt: float | None = None,
    **params,
) -> HiPPOMemory:
    """Validates and builds the static description of a HiPPO-RNN memory.

    Args:
      measure: ``legs`` (scale-invariant) or a deterministic time-invariant measure of
        `hippox.MEASURES` (``legt``, ``lmu``, ``lagt``, ``glagt``, ``fout``, …).
      N: memory order (int >= 1; even for the Fourier measures).
      method: ``bilinear``, ``forward_euler``, ``backward_euler``, or ``zoh``
        (time-invariant measures only).
      dt: step of a time-invariant memory (``> 0``; default ``1e-2``); must be None
        for ``legs``.
      **params: measure parameters (e.g. ``theta`` for ``legt``/``lmu``).

    Returns:
      A `HiPPOMemory`.

    Raises:
      ValueError: unknown or random measure, bad ``N``, method or ``dt``.
      TypeError: unknown measure parameters.

    Examples:
      >>> import hippox
      >>> mem = hippox.hippo_memory("legt", 4, dt=0.1)
      >>> Ab, Bb = mem.transition()
      >>> Ab.shape, Bb.shape
      ((4, 4), (4,))
    """
    measure = matrices.canonical_measure(measure)
    if measure in matrices.RANDOM_MEASURES:
        raise ValueError(
            f"`measure` must be a deterministic HiPPO measure for a HiPPO-RNN memory, got "
            f"the random ablation {measure!r}."
        )
    N = _validate.check_size("N", N)
    if measure == "legs":
        legs.check_legs_method(method)
        if dt is not None:
            raise ValueError(
                "`dt` must be None for the scale-invariant memory 'legs' (it steps by "
                f"1 / (t + 1)), got {dt!r}."
            )
        if params:
            raise TypeError(f"measure 'legs' takes no parameters, got {tuple(params)}.")
        return HiPPOMemory("legs", N, method, None, ())
    _validate.check_choice("method", method, LTI_METHODS)
    dt = DEFAULT_DT if dt is None else _validate.check_real("dt", dt, positive=True)
    ptuple = matrices.check_measure_params(measure, params)
    matrices.transition_np(measure, N, **dict(ptuple))  # validates N (e.g. even for Fourier)
    return HiPPOMemory(measure, N, method, dt, ptuple)
