"""The ``jax.nn.initializers`` protocol, as every ``hippox.initializers`` factory uses it.

A factory validates its keyword-only options at once and returns ``init(key, shape,
dtype=None) -> jax.Array``. At call time ``shape`` is the source of truth: the helpers
here read the mode count M (and the channel count H) from it and raise a ValueError
naming the expected shape when it cannot fit. ``dtype`` is the real storage dtype
(default float32; float64 needs x64). Random draws are made in `draw_dtype` and cast
once at the end.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from hippox._src import _validate

#: ``init(key, shape, dtype=None) -> jax.Array`` (the jax.nn.initializers protocol).
Initializer = Callable[..., jax.Array]


def shape_and_dtype(shape, dtype) -> tuple[tuple[int, ...], np.dtype]:
    """``shape`` as a tuple of Python ints and ``dtype`` as the real storage dtype.

    Raises:
      TypeError: ``shape`` is not an int or a sequence of non-negative ints.
      ValueError/TypeError: ``dtype`` is not a usable real floating dtype.
    """
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        out = tuple(shape)
    except TypeError:
        raise TypeError(f"`shape` must be a tuple of ints, got {shape!r}.") from None
    for s in out:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise TypeError(f"`shape` must be a tuple of non-negative ints, got {shape!r}.")
    return tuple(int(s) for s in out), _validate.real_dtype(dtype)


def draw_dtype() -> np.dtype:
    """The dtype random draws are made in: float64 when x64 is enabled, else float32."""
    return np.dtype(np.float64 if jax.config.jax_enable_x64 else np.float32)


def split_modes(shape: tuple[int, ...], *, what: str, trail: tuple[int, ...] = ()) -> tuple:
    """``(lead, M)`` for ``shape == (*lead, M, *trail)`` with at most one leading (H) axis."""
    tail = "".join(f", {t}" for t in trail)
    expected = f"(M{tail},) or (H, M{tail})" if not trail else f"(M{tail}) or (H, M{tail})"
    core = 1 + len(trail)
    if len(shape) not in (core, core + 1) or shape[len(shape) - len(trail) :] != trail:
        raise ValueError(f"`shape` must be {expected} for {what}, got {shape}.")
    return shape[: len(shape) - core], shape[len(shape) - core]


def block_state_size(M: int, conj_sym: bool, blocks: int, *, what: str, shape) -> int:
    """The real state size ``N_block`` of one of ``blocks`` blocks holding M stored modes.

    ``N_block = 2 M / blocks`` in the half layout (``conj_sym=True``), ``M / blocks`` in
    the full one; it must be even and >= 2.
    """
    if M % blocks:
        raise ValueError(
            f"`shape` must have a mode count divisible by blocks={blocks} for {what}, got {shape}."
        )
    Mb = M // blocks
    N = 2 * Mb if conj_sym else Mb
    if N < 2 or N % 2:
        need = "M >= 1" if conj_sym else "an even M >= 2 (conj_sym=False stores pairs)"
        raise ValueError(f"`shape` must give {need} modes per block for {what}, got {shape}.")
    return N


def broadcast_cast(x: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
    """A host array broadcast to ``shape`` and cast once to ``dtype``."""
    return jnp.asarray(np.broadcast_to(x, shape), dtype)
