"""Linear recurrences ``x_k = Ab_k x_{k-1} + Bu_k`` over a time axis.

`linear_recurrence` runs the recurrence for a dense (``N × N``) or diagonal (``N``,
real or complex) transition, constant or time-varying, with any leading batch or
channel axes, either sequentially (`jax.lax.scan`, ``O(L)`` depth) or as a parallel
prefix scan (`jax.lax.associative_scan`, ``O(log L)`` depth).

The associative form uses the composition of affine maps: the pair ``(A, b)`` stands
for ``x -> A x + b``, and applying ``(A1, b1)`` then ``(A2, b2)`` gives
``(A2 A1, A2 b1 + b2)``. The identity is ``(I, 0)``.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from hippox._src import _validate

RecurrenceMethod = Literal["sequential", "associative"]
RECURRENCE_METHODS: tuple[str, ...] = ("sequential", "associative")


def _shape_error(Ab_shape, Bu_shape, diagonal: bool, time_varying: bool) -> ValueError:
    want = {
        (False, False): "(..., N, N) (dense; pass diagonal=True for a diagonal Ab (..., N))",
        (True, False): "(..., N) (diagonal; pass diagonal=False for a dense Ab (..., N, N))",
        (False, True): "(..., L, N, N) (dense, time-varying)",
        (True, True): "(..., L, N) (diagonal, time-varying)",
    }[(diagonal, time_varying)]
    return ValueError(
        f"`Ab` must have shape {want} matching `Bu` of shape {tuple(Bu_shape)} "
        f"(L={Bu_shape[-2]}, N={Bu_shape[-1]}), got {tuple(Ab_shape)}."
    )


def _combine(diagonal: bool):
    """Composition of affine maps: ``e1`` (earlier) then ``e2`` (later)."""

    def combine(e1, e2):
        A1, b1 = e1
        A2, b2 = e2
        if diagonal:
            return A2 * A1, A2 * b1 + b2
        return jnp.matmul(A2, A1), jnp.matmul(A2, b1[..., None])[..., 0] + b2

    return combine


def _tree_reduce(A: jax.Array, b: jax.Array, axis: int, diagonal: bool):
    """Composes all maps along ``axis`` pairwise (``L - 1`` compositions, depth log2 L)."""
    combine = _combine(diagonal)
    n = b.shape[axis]
    while n > 1:
        if n % 2:  # pad with the identity map at the end
            eye_shape = list(A.shape)
            eye_shape[axis] = 1
            if diagonal:
                ident = jnp.ones(eye_shape, A.dtype)
            else:
                ident = jnp.broadcast_to(jnp.eye(A.shape[-1], dtype=A.dtype), eye_shape)
            b_shape = list(b.shape)
            b_shape[axis] = 1
            A = jnp.concatenate([A, ident], axis=axis)
            b = jnp.concatenate([b, jnp.zeros(b_shape, b.dtype)], axis=axis)
            n += 1
        even = (lax.slice_in_dim(A, 0, n, 2, axis), lax.slice_in_dim(b, 0, n, 2, axis))
        odd = (lax.slice_in_dim(A, 1, n, 2, axis), lax.slice_in_dim(b, 1, n, 2, axis))
        A, b = combine(even, odd)
        n //= 2
    return lax.index_in_dim(b, 0, axis, keepdims=False)


def linear_recurrence(
    Ab: ArrayLike,
    Bu: ArrayLike,
    *,
    x0: ArrayLike | None = None,
    diagonal: bool = False,
    time_varying: bool = False,
    method: RecurrenceMethod = "sequential",
    unroll: int = 1,
    final_only: bool = False,
) -> jax.Array:
    """Runs ``x_k = Ab_k x_{k-1} + Bu_k`` for ``k = 0 … L-1`` from ``x_{-1} = x0``.

    The layout of ``Ab`` is never guessed from its shape (an ``(N, N)`` array could be
    one dense matrix or ``N`` diagonal channels; an ``(L, N)`` array could be a
    time-varying diagonal or a batch): it is given by the keywords ``diagonal`` and
    ``time_varying``, both ``False`` by default (one dense matrix for every step).

    ==============================  ====================  =============================
    keywords                        ``Ab`` shape          step
    ==============================  ====================  =============================
    (defaults)                      ``(..., N, N)``       ``x = Ab @ x + Bu_k``
    ``diagonal=True``               ``(..., N)``          ``x = Ab * x + Bu_k``
    ``time_varying=True``           ``(..., L, N, N)``    ``x = Ab[k] @ x + Bu_k``
    both                            ``(..., L, N)``       ``x = Ab[k] * x + Bu_k``
    ==============================  ====================  =============================

    Leading axes ``...`` of ``Ab`` and ``x0`` broadcast against the leading axes of
    ``Bu`` (NumPy rules, aligned from the right); they may not have more leading
    axes than ``Bu`` (this catches a forgotten ``time_varying=True``).

    Args:
      Ab: the transition, shaped as in the table; real or complex.
      Bu: ``(..., L, N)`` input term of each step; time is axis -2.
      x0: ``(..., N)`` initial state ``x_{-1}`` (default zeros).
      diagonal: whether ``Ab`` holds diagonals (``(..., N)``) instead of dense
        matrices (``(..., N, N)``).
      time_varying: whether ``Ab`` has a time axis of length ``L`` before its
        state axes (one transition per step).
      method: ``'sequential'`` (`jax.lax.scan`: ``L`` dependent steps, ``O(N)``
        (diagonal) or ``O(N²)`` (dense) work per step) or ``'associative'``
        (`jax.lax.associative_scan` over the composition of affine maps: depth
        ``O(log L)`` but about twice the work, and ``O(N³)`` per composition for
        dense ``Ab``; it materialises ``Ab`` broadcast over all ``L`` steps).
      unroll: loop unrolling factor of the sequential scan (an int >= 1); only
        ``method='sequential'`` uses it.
      final_only: return only the last state ``x_{L-1}``. Sequential: the scan
        keeps only the carry, ``O(N)`` memory per batch element beyond the inputs.
        Associative: a pairwise tree reduction (``L - 1`` compositions, depth
        ``log2 L``) whose first level holds ``L/2`` composed maps, i.e. ``O(L N)``
        (diagonal) or ``O(L N²)`` (dense) temporary memory.

    Returns:
      States ``(..., L, N)`` (``x_0 … x_{L-1}``), or ``(..., N)`` with
      ``final_only``; ``...`` is the broadcast of the leading axes of ``Ab``, ``Bu``
      and ``x0``, and the dtype is the promoted dtype of ``Ab``, ``Bu``, ``x0``
      (integer inputs become the default float).

    Raises:
      ValueError: shapes that do not fit the layout chosen by ``diagonal`` and
        ``time_varying``, ``L == 0``, an unknown ``method``, or ``unroll != 1``
        with ``method='associative'``.
      TypeError: non-numeric arrays, or non-bool ``diagonal``, ``time_varying``,
        ``final_only``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> Ab = jnp.array([0.5, -1.0])  # diagonal
      >>> Bu = jnp.ones((3, 2))  # L=3, N=2
      >>> x = hippox.linear_recurrence(Ab, Bu, diagonal=True)
      >>> x.tolist()
      [[1.0, 1.0], [1.5, 0.0], [1.75, 1.0]]
      >>> y = hippox.linear_recurrence(Ab, Bu, diagonal=True, method="associative")
      >>> bool(jnp.allclose(x, y))
      True
    """
    diagonal = _validate.check_bool("diagonal", diagonal)
    time_varying = _validate.check_bool("time_varying", time_varying)
    final_only = _validate.check_bool("final_only", final_only)
    _validate.check_choice("method", method, RECURRENCE_METHODS)
    unroll = _validate.check_size("unroll", unroll)
    if method == "associative" and unroll != 1:
        raise ValueError(
            f"`unroll` is only used with method='sequential', got unroll={unroll} with "
            "method='associative'."
        )
    Ab = _validate.as_inexact("Ab", Ab)
    Bu = _validate.as_inexact("Bu", Bu)
    if Bu.ndim < 2:
        raise ValueError(f"`Bu` must have shape (..., L, N) (time axis -2), got {Bu.shape}.")
    L, N = Bu.shape[-2:]
    if L == 0:
        raise ValueError(f"`Bu` must have at least one time step (L >= 1), got shape {Bu.shape}.")
    core = (1 if diagonal else 2) + (1 if time_varying else 0)
    if Ab.ndim < core or Ab.shape[-1] != N or (not diagonal and Ab.shape[-2] != N):
        raise _shape_error(Ab.shape, Bu.shape, diagonal, time_varying)
    if time_varying and Ab.shape[-core] != L:
        raise _shape_error(Ab.shape, Bu.shape, diagonal, time_varying)
    Bu_batch = Bu.shape[:-2]
    Ab_batch = Ab.shape[: Ab.ndim - core]
    if len(Ab_batch) > len(Bu_batch):
        hint = "" if time_varying else " (if Ab changes with time, pass time_varying=True)"
        raise ValueError(
            f"`Ab` must not have more leading (batch) axes than `Bu`; got Ab of shape "
            f"{Ab.shape} with {len(Ab_batch)} batch axes for Bu of shape {Bu.shape}{hint}. "
            "Broadcast Bu explicitly to add batch axes."
        )
    arrays = [Ab, Bu]
    if x0 is not None:
        x0 = _validate.as_inexact("x0", x0)
        if x0.ndim < 1 or x0.shape[-1] != N or x0.ndim - 1 > len(Bu_batch):
            raise ValueError(
                f"`x0` must have shape (..., N) with N={N} and at most {len(Bu_batch)} "
                f"leading axes (those of Bu), got {x0.shape}."
            )
        arrays.append(x0)
    try:
        batch = jnp.broadcast_shapes(Ab_batch, Bu_batch, *(() if x0 is None else (x0.shape[:-1],)))
    except ValueError as err:
        raise ValueError(
            f"the leading (batch) axes of `Ab` {Ab_batch}, `Bu` {Bu_batch}"
            + ("" if x0 is None else f" and `x0` {x0.shape[:-1]}")
            + " must broadcast together."
        ) from err
    dtype = jnp.result_type(*arrays)
    Ab, Bu = Ab.astype(dtype), Bu.astype(dtype)
    if method == "sequential":
        x0 = jnp.zeros((*batch, N), dtype) if x0 is None else x0.astype(dtype)
        return _sequential(Ab, Bu, x0, batch, diagonal, time_varying, unroll, final_only)
    # Associative: without x0 there is nothing to fold into the first input (no copy).
    x0 = None if x0 is None else x0.astype(dtype)
    return _associative(Ab, Bu, x0, batch, diagonal, time_varying, final_only)


def apply_transition(Ab: jax.Array, x: jax.Array, *, diagonal: bool = False) -> jax.Array:
    """``Ab x`` for a diagonal ``(..., N)`` or dense ``(..., N, N)`` ``Ab`` and ``x (..., N)``.

    One shared dense ``(N, N)`` matrix is applied as a single ``(batch, N) x (N, N)``
    product.
    """
    if diagonal:
        return Ab * x
    if Ab.ndim == 2:  # one shared matrix: a single (batch, N) x (N, N) product
        return x @ Ab.T
    return jnp.matmul(Ab, x[..., None])[..., 0]


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6, 7))
def _sequential(Ab, Bu, x0, batch, diagonal, time_varying, unroll, final_only):
    x0 = jnp.broadcast_to(x0, (*batch, x0.shape[-1]))
    Bu_t = jnp.moveaxis(Bu, -2, 0)
    if time_varying:
        Ab_t = jnp.moveaxis(Ab, Ab.ndim - (2 if diagonal else 3), 0)

        def step(x, inputs):
            A_k, b_k = inputs
            x = apply_transition(A_k, x, diagonal=diagonal) + b_k
            return x, (None if final_only else x)

        xs = (Ab_t, Bu_t)
    else:

        def step(x, b_k):
            x = apply_transition(Ab, x, diagonal=diagonal) + b_k
            return x, (None if final_only else x)

        xs = Bu_t
    x_last, states = lax.scan(step, x0, xs, unroll=unroll)
    if final_only:
        return x_last
    return jnp.moveaxis(states, 0, -2)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _associative(Ab, Bu, x0, batch, diagonal, time_varying, final_only):
    L, N = Bu.shape[-2:]
    axis = len(batch)
    state_shape = (N,) if diagonal else (N, N)
    if time_varying:
        A = jnp.broadcast_to(Ab, (*batch, L, *state_shape))
    else:
        A = jnp.expand_dims(Ab, Ab.ndim - len(state_shape))
        A = jnp.broadcast_to(A, (*batch, L, *state_shape))
    b = jnp.broadcast_to(Bu, (*batch, L, N))
    if x0 is not None:  # fold x0 into the first input: b_0 <- A_0 x0 + b_0
        A_first = lax.index_in_dim(A, 0, axis, keepdims=False)
        b0 = apply_transition(A_first, jnp.broadcast_to(x0, (*batch, N)), diagonal=diagonal)
        b = lax.dynamic_update_index_in_dim(
            b, lax.index_in_dim(b, 0, axis, keepdims=False) + b0, 0, axis
        )
    if final_only:
        return _tree_reduce(A, b, axis, diagonal)
    _, states = lax.associative_scan(_combine(diagonal), (A, b), axis=axis)
    return states
