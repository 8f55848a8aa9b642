"""Padded batches and carried states for the sequence layers (S4D, S4, S5, LSSL).

Conventions (those of ``flax.nnx.RNN``):

* ``seq_lengths``: an integer array of shape ``u.shape[:-2]`` (the batch shape of a
  channel-last input ``u`` ``(..., L, H)``), values in ``[0, L]``. Positions
  ``l >= seq_lengths[b]`` are padding: their inputs are ignored (zeroed before any
  convolution or scan, so they never reach a valid position, in either direction),
  their outputs are exactly zero, and the returned state is the state after each
  sequence's last valid step (the initial state when the length is 0).
* ``initial_state``: the step-mode carry of the layer (the structure of
  ``config.initial_state(batch_shape)``), batch shape equal to ``u.shape[:-2]``.

The state-passing maths run without an ``L``-step loop (module docstring of
``hippox/_src/chunked.py``): for ``x_k = Ab x_{k-1} + Bb u_k``, ``y_k = Re(C x_k)``
started from ``x0``, the output is the zero-state convolution (computed by the layer)
plus the free response ``Re(C Ab^{l+1} x0)``, and the state after ``n`` valid steps is
``Ab^n x0 + Σ_{l<n} Ab^{n-1-l} Bb u_l``. The input is right-aligned per sequence (its
valid part moved to the end) so that one contraction with the powers ``Ab^{L-1-j}``
gives every sequence's state at its own length.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hippox._src import _validate
from hippox._src.krylov import krylov, power_apply

# ------------------------------------------------------------------------ checks


def check_seq_lengths(seq_lengths, batch_shape: tuple[int, ...], L: int) -> jax.Array | None:
    """``seq_lengths`` as an int32 array of shape ``batch_shape`` (values in [0, L]), or None.

    Raises:
      TypeError: not an array of integers.
      ValueError: a shape other than ``batch_shape``, or (when concrete) a value outside
        ``[0, L]``.
    """
    if seq_lengths is None:
        return None
    lengths = _validate.as_array("seq_lengths", seq_lengths)
    if lengths.dtype == np.bool_ or not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"`seq_lengths` must be an array of integers, got dtype {lengths.dtype}.")
    if lengths.shape != tuple(batch_shape):
        raise ValueError(
            f"`seq_lengths` must have the batch shape of `u` (u.shape[:-2] = "
            f"{tuple(batch_shape)}), got shape {lengths.shape}."
        )
    values = _validate.concrete_value(lengths)
    if values is not None and values.size and (values.min() < 0 or values.max() > L):
        raise ValueError(
            f"`seq_lengths` must lie in [0, L] with L={L}, got values in "
            f"[{values.min()}, {values.max()}]."
        )
    return lengths.astype(jnp.int32)


def check_state(
    state,
    shape: tuple[int, ...],
    *,
    complex_state: bool,
    dtype=None,
    name: str = "initial_state",
    what: str = "(..., H, M)",
) -> jax.Array:
    """Validates a carried state: one array of exactly ``shape`` and the right kind of dtype.

    Args:
      state: the state.
      shape: the full expected shape (batch shape + the layer's state shape).
      complex_state: whether the state must be complex (else real floating).
      dtype: the exact dtype required, or None (any complex / real floating dtype).
      name: the argument's name in error messages (``initial_state``, ``initial_carry``).
      what: the state shape as written in error messages.

    Raises:
      TypeError: not a single array (e.g. a tuple or dict), or the wrong dtype.
      ValueError: the wrong shape (e.g. from a layer of another size, or a batch that
        does not match the input).
    """
    if isinstance(state, (tuple, list, dict)) or not hasattr(state, "shape"):
        raise TypeError(
            f"`{name}` must be a single array of shape {what} (the layer's step-mode state), "
            f"got {type(state).__name__}."
        )
    state = _validate.as_array(name, state)
    is_complex = jnp.issubdtype(state.dtype, jnp.complexfloating)
    if complex_state and not is_complex:
        raise TypeError(f"`{name}` must be a complex array (the layer's state), got {state.dtype}.")
    if not complex_state and not (jnp.issubdtype(state.dtype, jnp.floating) and not is_complex):
        raise TypeError(
            f"`{name}` must be a real floating array (the layer's state), got {state.dtype}."
        )
    if dtype is not None and state.dtype != np.dtype(dtype):
        raise TypeError(f"`{name}` must have dtype {np.dtype(dtype)}, got {state.dtype}.")
    if state.shape != tuple(shape):
        raise ValueError(
            f"`{name}` must have shape {what} = {tuple(shape)} (batch shape of `u`, then the "
            f"layer's state shape), got {state.shape}."
        )
    return state


def refuse_bidirectional_state(bidirectional: bool, initial_state, return_state: bool) -> None:
    """A bidirectional layer has no carried state."""
    if bidirectional and (initial_state is not None or return_state):
        raise ValueError(
            "`initial_state` and `return_state` must not be used with bidirectional=True (a "
            "bidirectional layer sees the future and has no carried state), got "
            f"initial_state={'an array' if initial_state is not None else None}, "
            f"return_state={return_state}."
        )


# ------------------------------------------------------------------------ masks


def valid_mask(lengths: jax.Array, L: int) -> jax.Array:
    """``(..., L)`` bool: position ``l`` is valid (``l < lengths``)."""
    return jnp.arange(L) < lengths[..., None]


def zero_padding(x: jax.Array, lengths: jax.Array | None, axis: int) -> jax.Array:
    """Zeroes the padding positions of ``x`` along its length ``axis`` (-1 or -2)."""
    if lengths is None:
        return x
    mask = valid_mask(lengths, x.shape[axis])
    if axis == -2:
        mask = mask[..., None]
    return jnp.where(mask, x, jnp.zeros((), x.dtype))


def right_align(u: jax.Array, lengths: jax.Array | None) -> jax.Array:
    """``(..., H, L)`` input with each sequence's valid part moved to the end (zeros before)."""
    if lengths is None:
        return u
    L = u.shape[-1]
    shift = (L - lengths)[..., None, None]
    pos = jnp.arange(L)
    idx = jnp.clip(pos - shift, 0, L - 1)
    idx = jnp.broadcast_to(idx, u.shape)
    moved = jnp.take_along_axis(u, idx, axis=-1)
    return jnp.where(pos >= shift, moved, jnp.zeros((), u.dtype))


def last_valid(xs: jax.Array, lengths: jax.Array | None, x0: jax.Array | None) -> jax.Array:
    """``xs`` ``(..., L, N)`` states at each sequence's last valid step (``x0`` or 0 if none)."""
    if lengths is None:
        return xs[..., -1, :]
    idx = jnp.maximum(lengths - 1, 0)[..., None, None]
    x = jnp.take_along_axis(xs, jnp.broadcast_to(idx, (*xs.shape[:-2], 1, xs.shape[-1])), -2)
    x = x[..., 0, :]
    before = jnp.zeros_like(x) if x0 is None else jnp.broadcast_to(x0, x.shape).astype(x.dtype)
    return jnp.where((lengths == 0)[..., None], before, x)


# ------------------------------------------------------------------------ state passing


def diag_state_pass(Ab, Bb, C, x0, u, lengths, *, need_state: bool):
    """Free response and final state of a diagonal system (``Ab``, ``Bb`` ``(H, M)``).

    Args:
      Ab, Bb: ``(H, M)`` complex discrete system.
      C: ``(c, H, M)`` complex output rows (output factor folded in).
      x0: ``(..., H, M)`` complex initial state, or None (zero).
      u: ``(..., H, L)`` real input, padding already zeroed.
      lengths: ``(...)`` int valid lengths, or None (all L).
      need_state: whether to compute the final state.

    Returns:
      ``(y_free, x)``: ``(..., c, H, L)`` real free response ``Re(C Ab^{l+1} x0)`` (None
      when ``x0`` is None) and the ``(..., H, M)`` state after each sequence's valid
      steps (None unless ``need_state``).
    """
    L = u.shape[-1]
    V = jnp.power(Ab[..., None], jnp.arange(L))  # (H, M, L): Ab^l
    y_free = None
    if x0 is not None:
        y_free = jnp.einsum("...hm,chm,hml->...chl", Ab * x0, C, V).real
    x = None
    if need_state:
        ur = right_align(u, lengths).astype(V.dtype)
        x = Bb * jnp.einsum("hml,...hl->...hm", V[..., ::-1], ur)
        if x0 is not None:
            x = x + power_apply(Ab, x0, L if lengths is None else lengths, diagonal=True, max_n=L)
    return y_free, x


def dense_state_pass(Ab, Bb, C, x0, u, lengths, *, need_state: bool):
    """Free response and final state of a dense system (``Ab`` ``(H, N, N)``).

    Same as `diag_state_pass` with a dense ``Ab``: the Krylov sequences ``C Ab^l`` and
    ``Ab^l Bb`` (``l < L``) are built by doubling (`hippox._src.krylov.krylov`).

    Args:
      Ab: ``(H, N, N)`` real or complex.
      Bb: ``(H, N)``.
      C: ``(c, H, N)`` output rows (output factor folded in).
      x0: ``(..., H, N)`` initial state, or None.
      u: ``(..., H, L)`` real input, padding already zeroed.
      lengths: ``(...)`` int valid lengths, or None.
      need_state: whether to compute the final state.

    Returns:
      ``(y_free, x)`` as in `diag_state_pass` (``y_free`` real ``(..., c, H, L)``).
    """
    L = u.shape[-1]
    y_free = None
    if x0 is not None:
        rows = krylov(jnp.swapaxes(Ab, -1, -2), C, L)  # (c, H, L, N): C Ab^l
        Ax0 = jnp.einsum("hnm,...hm->...hn", Ab, x0)
        y_free = jnp.einsum("chln,...hn->...chl", rows, Ax0).real
    x = None
    if need_state:
        cols = krylov(Ab, Bb, L)  # (H, L, N): Ab^l Bb
        ur = right_align(u, lengths)[..., ::-1].astype(cols.dtype)
        x = jnp.einsum("hln,...hl->...hn", cols, ur)
        if x0 is not None:
            x = x + power_apply(Ab, x0, L if lengths is None else lengths, diagonal=False, max_n=L)
    return y_free, x
