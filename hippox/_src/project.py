"""Online HiPPO projection: the memory ``c(t)`` of a signal, updated sample by sample.

`hippo_project` runs the HiPPO memory ``dc/dt = A c + B f`` of a measure over a
sampled signal ``f_0 … f_{L-1}`` and returns the coefficients after every sample (or
after the last). ``c_n(t)`` are the coefficients of the projection of the signal's
history onto the measure's orthogonal basis (see `hippox.transition`).

* Time-invariant measures (``legt``, ``lmu``, ``lagt``, ``glagt``, ``fout``, …) are
  discretised with `hippox.discretize` at step ``dt``:
  ``c_k = Ab c_{k-1} + Bb f_k`` from ``c_{-1} = 0``.
* ``legs`` (scaled Legendre, uniform measure on ``[0, t]``) is scale-invariant,
  ``dc/dt = (A c + B f) / t``: the first sample sets ``c_0 = f_0 e_0`` (the projection
  of a constant), and step ``k >= 1`` discretises ``(A, B)`` with step
  ``dt_k = (t_k - t_{k-1}) / t_k``, which is ``1 / (k + 1)`` for the default samples
  at ``t_k = k + 1`` (``schedule`` chooses another step, `hippox.legs_dt`). It runs
  in ``O(N)`` per step with the structured LegS operations of ``hippox/_src/legs.py``
  (no ``N × N`` matrix). Its coefficients
  reconstruct the past on the unit interval,
  ``f(x t) ≈ Σ_n c_n sqrt(2n + 1) P_n(2x - 1)`` for ``x`` in ``[0, 1]``.

Time is measured from ``t = 0``: samples sit at ``t_k = (k + 1) dt`` (``t_k = k + 1``
for ``legs``) unless ``timestamps`` are given, and the first step spans ``[0, t_0]``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from hippox._src import _validate, legs, matrices
from hippox._src.discretize import DENSE_METHODS, discretize
from hippox._src.recurrence import apply_transition

PROJECT_METHODS: tuple[str, ...] = tuple(m for m in DENSE_METHODS if m != "gbt")


def _signal(f: ArrayLike) -> jax.Array:
    """The signal as a float32 or float64 array of shape ``(..., L)``, ``L >= 1``."""
    f = _validate.as_inexact("f", f, allow_complex=False)
    if f.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(
            "`f` must be float32 or float64 (a long recurrence in half precision loses "
            f"its accuracy; cast explicitly), got {f.dtype}."
        )
    if f.ndim < 1 or f.shape[-1] < 1:
        raise ValueError(f"`f` must have shape (..., L) with L >= 1, got {f.shape}.")
    return f


def _timestamp_steps(timestamps: ArrayLike, f: jax.Array, *, relative: bool) -> jax.Array:
    """Per-step sizes ``t_k - t_{k-1}`` (``t_{-1} = 0``), divided by ``t_k`` if ``relative``.

    Computed in the timestamps' own precision (float64 NumPy when they are concrete, so
    large absolute times keep their resolution) and cast to ``f``'s dtype at the end.
    """
    t_val = _validate.concrete_value(timestamps)
    t = np.asarray(t_val) if t_val is not None else jnp.asarray(timestamps)
    if not jnp.issubdtype(t.dtype, jnp.number) or jnp.issubdtype(t.dtype, jnp.complexfloating):
        raise TypeError(f"`timestamps` must be a real array, got dtype {t.dtype}.")
    L = f.shape[-1]
    ok = t.ndim >= 1 and t.shape[-1] == L
    if ok:
        try:
            ok = jnp.broadcast_shapes(t.shape, f.shape) == f.shape
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(
            f"`timestamps` must have shape (L,) with L={L} (or a shape broadcasting to f's "
            f"shape {f.shape}), got {t.shape}."
        )
    if t_val is not None:
        t = t.astype(np.float64)
        steps = np.diff(t, axis=-1, prepend=0.0)
        if not (np.all(np.isfinite(t)) and np.all(steps > 0)):
            raise ValueError(
                "`timestamps` must be finite, > 0 and strictly increasing along the last "
                f"axis, got {t}."
            )
        return jnp.asarray(steps / t if relative else steps, f.dtype)
    if not jnp.issubdtype(t.dtype, jnp.floating):
        t = t.astype(f.dtype)
    steps = jnp.diff(t, axis=-1, prepend=jnp.zeros_like(t[..., :1]))
    return (steps / t if relative else steps).astype(f.dtype)


def hippo_project(
    f: ArrayLike,
    measure: str,
    N: int,
    *,
    dt: ArrayLike | None = None,
    timestamps: ArrayLike | None = None,
    method: str = "bilinear",
    schedule: str | None = None,
    final_only: bool = False,
    **params,
) -> jax.Array:
    """The online HiPPO memory of a signal: coefficients after each sample.

    Missing samples: a NaN (or ±inf) in ``f`` skips its step, the state is carried over
    unchanged (``c_k = c_{k-1}``; zeros before the first observed sample). The next
    observed sample takes an ordinary step with its own ``dt_k`` (from its
    predecessor's timestamp, observed or not), so the skipped time is not integrated;
    to treat missing samples as absent instead, pass only the observed samples with
    their ``timestamps``. For ``legs`` the first *observed* sample initialises
    ``c = f e_0``.

    Args:
      f: ``(..., L)`` real signal (float32 or float64; integers become the default
        float), time on the last axis. NaN (or ±inf) marks a missing sample.
      measure: a deterministic measure of `hippox.MEASURES` (not ``random`` or
        ``diagonal``).
      N: state size (even for the Fourier measures).
      dt: step size of uniformly sampled time-invariant measures (required for them
        unless ``timestamps`` are given): a positive scalar or an array broadcasting
        against ``f.shape[:-1]`` (e.g. one step per channel). Must be None for
        ``legs`` (scale-invariant: a uniform step size does not change it).
      timestamps: ``(L,)`` (or broadcasting to ``f.shape``) sample times, finite,
        ``> 0`` and strictly increasing (checked when concrete, not under
        `jax.jit`); time starts at 0. Time-invariant measures step by
        ``dt_k = t_k - t_{k-1}`` (``t_{-1} = 0``), discretising ``(A, B)`` anew at
        every step (an ``N × N`` solve, or matrix exponential for ``zoh``, per
        step); ``legs`` steps by ``(t_k - t_{k-1}) / t_k``, still in ``O(N)``. The
        steps are computed in float64 on the host when ``timestamps`` are concrete
        (large absolute times keep their resolution with a float32 ``f``).
      method: ``'bilinear'``, ``'forward_euler'``, ``'backward_euler'`` or ``'zoh'``
        (for ``legs``, ``zoh`` takes a dense ``N × N`` matrix exponential per step and
        needs a ``schedule``; with ``schedule='log'`` it is exact for a
        piecewise-constant signal).
      schedule: ``legs`` over uniform samples only: the step schedule of
        `hippox.legs_dt`. None (default) is ``'shifted'`` (samples at
        ``t_k = k + 1``, step ``1 / (k + 1)``); ``'reference'`` (step ``1 / k``) is the
        recurrence of the authors' HiPPO-LegS cell and C++ LegS extension (formerly
        reproduced with ``timestamps`` ``t_k = k``); ``'log'`` steps by
        ``log((k + 1) / k)``. Must be None with ``timestamps`` and other measures.
      final_only: return only the last coefficients. Memory is then ``O(N)`` for
        the state plus ``O(L)`` per-step scalars (the same order as ``f``).
      **params: measure parameters, as for `hippox.transition` (e.g. ``theta``).

    Returns:
      ``(..., L, N)`` coefficients ``c_0 … c_{L-1}`` in ``f``'s dtype, or ``(..., N)``
      with ``final_only``; ``...`` is ``f.shape[:-1]`` broadcast with the shapes of
      ``dt`` and ``timestamps``.

    Raises:
      ValueError: unknown or random measure, bad ``N``, missing or superfluous
        ``dt``, both ``dt`` and ``timestamps``, bad ``timestamps``, non-positive
        ``dt``, an unsupported method.
      TypeError: non-real or half-precision ``f``, non-bool ``final_only``, unknown
        measure parameters.

    Examples:
      >>> import numpy as np
      >>> import hippox
      >>> t = np.linspace(0.0, 1.0, 1000)
      >>> c = hippox.hippo_project(1.0 + 2.0 * t, "legs", 4, final_only=True)
      >>> [round(float(v), 2) for v in c[:2]]  # 1 + 2x: c_0 = 2, c_1 = 1/sqrt(3)
      [2.0, 0.58]
      >>> bool(np.allclose(c[2:], 0.0, atol=1e-4))  # no degree-2, 3 components
      True
      >>> hippox.hippo_project(np.sin(t), "legt", 8, dt=1e-3).shape
      (1000, 8)
    """
    measure = matrices.canonical_measure(measure)
    if measure in ("random", "diagonal"):
        raise ValueError(
            f"`measure` must be a deterministic HiPPO measure, got the random ablation "
            f"{measure!r}; run `hippox.linear_recurrence` on its discretisation instead."
        )
    final_only = _validate.check_bool("final_only", final_only)
    f = _signal(f)
    if dt is not None and timestamps is not None:
        raise ValueError(
            "`dt` and `timestamps` are mutually exclusive (timestamps give every step), got both."
        )
    if measure == "legs":
        if dt is not None:
            raise ValueError(
                "`dt` must be None for the scale-invariant measure 'legs' (a uniform step "
                f"size does not change it; use `timestamps` for irregular samples), got {dt!r}."
            )
        N = _validate.check_size("N", N)
        if params:
            raise TypeError(f"measure 'legs' takes no parameters, got {tuple(params)}.")
        if schedule is not None and timestamps is not None:
            raise ValueError(
                "`schedule` is for uniform samples; with `timestamps` the steps come from "
                f"the timestamps, got schedule={schedule!r}."
            )
        if method == "zoh" and schedule is None:
            raise ValueError(
                "`method` 'zoh' for 'legs' needs a `schedule` ('log' is the exact "
                "scale-invariant step), got schedule=None."
            )
        if schedule is not None:
            legs.check_legs_schedule(schedule)
            _validate.check_choice("method", method, PROJECT_METHODS)
            if method == "zoh":
                return _project_legs_zoh(f, N, schedule, final_only)
        else:
            legs.check_legs_method(method)
        if timestamps is not None:
            steps = _timestamp_steps(timestamps, f, relative=True)
        elif schedule is None or schedule == "shifted":
            steps = None
        else:
            k = jnp.arange(f.shape[-1])
            steps = legs.schedule_dt(jnp.maximum(k, 1), schedule, f.dtype)  # step 0: init
        return _project_legs(f, steps, N, method, final_only)
    if schedule is not None:
        raise ValueError(
            f"`schedule` is for the scale-invariant measure 'legs' only, got {schedule!r} "
            f"for {measure!r}."
        )
    _validate.check_choice("method", method, PROJECT_METHODS)
    A, B = matrices.transition_np(measure, N, **params)
    A, B = jnp.asarray(A, f.dtype), jnp.asarray(B, f.dtype)
    steps = None if timestamps is None else _timestamp_steps(timestamps, f, relative=False)
    if steps is None:
        if dt is None:
            raise ValueError(
                f"`dt` (the step size) or `timestamps` must be given for the time-invariant "
                f"measure {measure!r}, got neither."
            )
        dt = _validate.as_inexact("dt", dt, allow_complex=False).astype(f.dtype)
        dt_val = _validate.concrete_value(dt)
        if dt_val is not None and not (np.all(np.isfinite(dt_val)) and np.all(dt_val > 0)):
            raise ValueError(f"`dt` must be finite and > 0, got {dt_val}.")
        try:
            jnp.broadcast_shapes(dt.shape, f.shape[:-1])
        except ValueError as err:
            raise ValueError(
                f"`dt` must broadcast against f.shape[:-1] = {f.shape[:-1]}, got shape {dt.shape}."
            ) from err
    return _project_lti(f, A, B, dt, steps, method, final_only)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _project_legs(f, steps, N, method, final_only):
    alpha = legs.LEGS_ALPHA[method]
    L = f.shape[-1]
    valid = jnp.isfinite(f)
    f0 = jnp.where(valid, f, 0.0)
    if steps is None:  # samples at t_k = k + 1
        s = jnp.broadcast_to(1.0 / jnp.arange(1, L + 1, dtype=f.dtype), f.shape)
    else:  # (t_k - t_{k-1}) / t_k
        s = steps
    init = valid & (jnp.cumsum(valid, axis=-1) == 1)
    active = valid & ~init
    shape = jnp.broadcast_shapes(f.shape, s.shape)
    a = jnp.broadcast_to(jnp.where(active, alpha * s, 0.0), shape)
    b = jnp.broadcast_to(jnp.where(active, (1.0 - alpha) * s, 0.0), shape)
    g = jnp.broadcast_to(jnp.where(active, s * f0, jnp.where(init, f0, 0.0)), shape)
    init = jnp.broadcast_to(init, shape)
    return legs.legs_scan_skewed(a, b, g, init, N, final_only=final_only)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _project_legs_zoh(f, N, schedule, final_only):
    """Dense zoh LegS steps (an N × N matrix exponential per step); NaN skips a step."""
    A, B = matrices.transition_np("legs", N)
    A, B = jnp.asarray(A, f.dtype), jnp.asarray(B, f.dtype)
    L = f.shape[-1]
    valid = jnp.isfinite(f)
    f0 = jnp.where(valid, f, 0.0)
    init = valid & (jnp.cumsum(valid, axis=-1) == 1)
    k = jnp.arange(L)
    Ab, Bb = discretize(A, B, legs.schedule_dt(jnp.maximum(k, 1), schedule, f.dtype), method="zoh")
    e0 = (jnp.arange(N) == 0).astype(f.dtype)

    def step(x, inputs):
        f_k, v_k, i_k, Ab_k, Bb_k = inputs
        new = apply_transition(Ab_k, x) + Bb_k * f_k[..., None]
        new = jnp.where(i_k[..., None], f_k[..., None] * e0, new)
        x = jnp.where(v_k[..., None], new, x)
        return x, (None if final_only else x)

    moved = (jnp.moveaxis(a, -1, 0) for a in (f0, valid, init))
    x_last, states = lax.scan(step, jnp.zeros((*f.shape[:-1], N), f.dtype), (*moved, Ab, Bb))
    if final_only:
        return x_last
    return jnp.moveaxis(states, 0, -2)


@functools.partial(jax.jit, static_argnums=(5, 6))
def _project_lti(f, A, B, dt, steps, method, final_only):
    N = A.shape[-1]
    valid = jnp.isfinite(f)
    f0 = jnp.where(valid, f, 0.0)
    if steps is None:
        Ab, Bb = discretize(A, B, dt, method=method)
        batch = jnp.broadcast_shapes(f.shape[:-1], Ab.shape[:-2])
        xs = (jnp.moveaxis(f0, -1, 0), jnp.moveaxis(valid, -1, 0))

        def step(x, inputs):
            f_k, v_k = inputs
            new = apply_transition(Ab, x) + Bb * f_k[..., None]
            x = jnp.where(v_k[..., None], new, x)
            return x, (None if final_only else x)

    else:
        batch = f.shape[:-1]  # steps (..., L): leading axes broadcast against f's
        xs = (jnp.moveaxis(f0, -1, 0), jnp.moveaxis(valid, -1, 0), jnp.moveaxis(steps, -1, 0))

        def step(x, inputs):
            f_k, v_k, dt_k = inputs
            Ab_k, Bb_k = discretize(A, B, dt_k, method=method)
            new = apply_transition(Ab_k, x) + Bb_k * f_k[..., None]
            x = jnp.where(v_k[..., None], new, x)
            return x, (None if final_only else x)

    x0 = jnp.zeros((*batch, N), f.dtype)
    x_last, states = lax.scan(step, x0, xs)
    if final_only:
        return x_last
    return jnp.moveaxis(states, 0, -2)
