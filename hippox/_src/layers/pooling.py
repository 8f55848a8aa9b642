"""Causal down- and up-pooling of sequences: the resampling steps of the SaShiMi backbone.

SaShiMi (Goel et al., 2022) runs its SSM blocks at several time resolutions. Between
two resolutions the sequence is resampled by a factor ``p`` (``pool``) while the width
changes by ``expand``:

* down-pooling folds ``p`` consecutive positions into one,
  ``(..., L, H) -> (..., L/p, p·H)`` (`fold`), then a dense layer maps ``p·H`` to
  ``expand·H``;
* up-pooling maps the width with a dense layer, ``H -> p·H/expand``, shifts the
  coarse sequence one step to the right (`shift_right`: the first coarse position
  becomes zero) and unfolds it, ``(..., L', p·H') -> (..., p·L', H')`` (`unfold`).

The shift keeps the whole backbone causal: fine position ``t`` (coarse index
``j = t // p``) receives the coarse output ``j - 1``, which was computed from fine
inputs ``< j·p <= t`` only.

Folding uses the layout ``(position within the window, feature)``: feature ``s·H + h``
of the coarse position ``j`` is feature ``h`` of fine position ``j·p + s``.
(The reference's ``DownPool``/``UpPool`` fold and unfold feature-major, ``h·p + s``: a
permutation of the down-pool dense layer's rows and of the up-pool's columns, so
parameters copied from it need that permutation.)

In step mode (`hippox._src.layers.sashimi`) the same resampling runs one position at a
time: a down-pooling buffers ``p`` inputs and folds them when the window is full, an
up-pooling emits the ``p`` outputs of the previous coarse position one by one.

References:
  Goel, Gu, Donahue, Ré. "It's Raw! Audio Generation with State-Space Models."
  ICML 2022.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def fold(x: jax.Array, pool: int) -> jax.Array:
    """``(..., L, H) -> (..., L / pool, pool · H)``: each window of ``pool`` positions in one.

    ``L`` must be a multiple of ``pool`` (checked by the caller).
    """
    *batch, L, H = x.shape
    return x.reshape(*batch, L // pool, pool * H)


def unfold(x: jax.Array, pool: int) -> jax.Array:
    """``(..., L, pool · H) -> (..., pool · L, H)``, the inverse of `fold`."""
    *batch, L, F = x.shape
    return x.reshape(*batch, L * pool, F // pool)


def shift_right(x: jax.Array) -> jax.Array:
    """``y[..., l, :] = x[..., l - 1, :]`` and ``y[..., 0, :] = 0`` (one causal delay)."""
    return jnp.concatenate([jnp.zeros_like(x[..., :1, :]), x[..., :-1, :]], axis=-2)
