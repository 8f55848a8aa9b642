"""Framework-free pieces of the `SequenceModel` backbone (`hippox.nnx`, `hippox.linen`).

The backbone (Gu et al.'s S4 sequence model, with any hippox layer as the mixer)::

    x = encoder(u)                                    Dense d_input -> H
    for each of the n_layers blocks:
        z = norm(x)              if prenorm           LayerNorm / BatchNorm / none
        z = layer(z)                                  (..., L, H) -> (..., L, H)
        z = dropout(gelu(z))
        z = dense(z)             activation 'gelu':   Dense H -> H
        z = glu(dense(z))        activation 'glu':    Dense H -> 2H, a * sigmoid(b)
        x = x + dropout(z)
        x = norm(x)              if not prenorm (post-norm)
    x = final_norm(x)            if prenorm and a norm is used
    x = pool(x)                                       'mean' / 'last' over L, or None
    y = decoder(x)                                    Dense H -> d_output

``layer`` is ``'s4'``, ``'s4d'``, ``'s5'``, ``'lssl'``, ``'hippo_rnn'`` or a callable
building a layer. GELU is the exact (erf) GELU. Step mode runs the same network one
position at a time (every layer in its recurrent form, dropout off, BatchNorm with
its running averages) and pools on the fly (a running sum for ``'mean'``), so step
``k`` returns exactly what the full forward pass in evaluation mode returns on the
prefix ``u_0 … u_k``.

This module holds the validation of the options and the pure helpers (`glu`,
`pool`, `pool_step`), shared by the two Flax implementations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from hippox._src import _validate

#: Built-in layer names of `SequenceModel`.
LAYERS: tuple[str, ...] = ("s4", "s4d", "s5", "lssl", "hippo_rnn")
#: Pooling choices (None: sequence to sequence).
POOLINGS: tuple[str | None, ...] = ("mean", "last", None)
#: Normalisation choices (None: no normalisation).
NORMS: tuple[str | None, ...] = ("layer", "batch", None)
#: Output activation of a block.
ACTIVATIONS: tuple[str, ...] = ("gelu", "glu")


class BackboneOptions(NamedTuple):
    """Validated `SequenceModel` options (see `check_options`)."""

    d_output: int
    d_model: int
    n_layers: int
    layer: str | Callable
    layer_kwargs: dict
    l_max: int | None
    prenorm: bool
    norm: str | None
    dropout: float
    activation: str
    pooling: str | None


def check_options(
    *,
    d_output: int,
    d_model: int,
    n_layers: int,
    layer,
    layer_kwargs: Mapping[str, Any] | None,
    l_max: int | None,
    prenorm: bool,
    norm: str | None,
    dropout: float,
    activation: str,
    pooling: str | None,
) -> BackboneOptions:
    """Validates the `SequenceModel` options eagerly.

    Raises:
      ValueError: an unknown layer, norm, activation or pooling; a bad size; a
        dropout rate outside ``[0, 1)``; ``layer='s4'`` without ``l_max``.
      TypeError: wrongly typed options.
    """
    d_output = _validate.check_size("d_output", d_output)
    d_model = _validate.check_size("d_model", d_model)
    n_layers = _validate.check_size("n_layers", n_layers, minimum=0)
    if not callable(layer):
        _validate.check_choice("layer", layer, LAYERS)
    if layer_kwargs is None:
        layer_kwargs = {}
    if not isinstance(layer_kwargs, Mapping):
        raise TypeError(f"`layer_kwargs` must be a mapping or None, got {layer_kwargs!r}.")
    layer_kwargs = dict(layer_kwargs)
    if l_max is not None:
        l_max = _validate.check_size("l_max", l_max)
    if layer == "s4" and l_max is None and "l_max" not in layer_kwargs:
        raise ValueError(
            "`l_max` must be given for layer='s4' (S4 stores C_tilde for a fixed length), got None."
        )
    prenorm = _validate.check_bool("prenorm", prenorm)
    norm = _validate.check_none_or_choice("norm", norm, ("layer", "batch"))
    dropout = _validate.check_real("dropout", dropout, low=0.0)
    if dropout >= 1.0:
        raise ValueError(f"`dropout` must be in [0, 1), got {dropout}.")
    _validate.check_choice("activation", activation, ACTIVATIONS)
    pooling = _validate.check_none_or_choice("pooling", pooling, ("mean", "last"))
    return BackboneOptions(
        d_output,
        d_model,
        n_layers,
        layer,
        layer_kwargs,
        l_max,
        prenorm,
        norm,
        dropout,
        activation,
        pooling,
    )


def layer_arguments(opts: BackboneOptions) -> dict:
    """Keyword arguments of a built-in layer: ``layer_kwargs`` plus ``l_max`` for S4."""
    kw = dict(opts.layer_kwargs)
    if opts.layer == "s4" and "l_max" not in kw:
        kw["l_max"] = opts.l_max
    return kw


def gelu(x: jax.Array) -> jax.Array:
    """The exact (erf) GELU."""
    return jax.nn.gelu(x, approximate=False)


def glu(z: ArrayLike) -> jax.Array:
    """Gated linear unit over the last axis: ``a * sigmoid(b)`` for ``z = [a, b]``.

    Args:
      z: ``(..., 2H)``.

    Returns:
      ``(..., H)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from hippox._src.backbone import glu
      >>> glu(jnp.array([2.0, 0.0], jnp.float32))
      Array([1.], dtype=float32)
    """
    z = jnp.asarray(z)
    if z.ndim < 1 or z.shape[-1] % 2:
        raise ValueError(f"`z` must have an even last axis (..., 2H), got {z.shape}.")
    a, b = jnp.split(z, 2, axis=-1)
    return a * jax.nn.sigmoid(b)


def pool(x: ArrayLike, pooling: str | None) -> jax.Array:
    """Pools ``(..., L, H)`` over ``L``: ``'mean'``, ``'last'`` or None (identity).

    Examples:
      >>> import jax.numpy as jnp
      >>> from hippox._src.backbone import pool
      >>> x = jnp.arange(6.0).reshape(3, 2)
      >>> pool(x, "mean").tolist(), pool(x, "last").tolist(), pool(x, None).shape
      ([2.0, 3.0], [4.0, 5.0], (3, 2))
    """
    x = jnp.asarray(x)
    if pooling is None:
        return x
    if pooling == "mean":
        return jnp.mean(x, axis=-2)
    return x[..., -1, :]


def pool_step(
    total: jax.Array, count: jax.Array, x_k: jax.Array, pooling: str | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Streaming pooling: after ``count + 1`` positions, the pooled value so far.

    Args:
      total: ``(..., H)`` running sum of the previous positions.
      count: scalar int32, the number of previous positions.
      x_k: ``(..., H)`` this position.
      pooling: ``'mean'``, ``'last'`` or None.

    Returns:
      ``(total, count, pooled)`` after this position; ``pooled`` equals `pool` over
      the prefix (for None and ``'last'`` it is ``x_k``).
    """
    total = (total + x_k).astype(total.dtype)
    count = count + 1
    if pooling == "mean":
        return total, count, total / count.astype(total.dtype)
    return total, count, x_k


class SequenceCarry(NamedTuple):
    """The step-mode carry of a `SequenceModel`.

    Attributes:
      layers: one recurrent state per block (each layer's own carry).
      total: ``(..., H)`` running sum of the final features (for ``'mean'`` pooling).
      count: scalar int32, the number of positions processed.
    """

    layers: tuple
    total: jax.Array
    count: jax.Array


def initial_carry(layer_carries, batch_shape, H: int, dtype) -> SequenceCarry:
    """A `SequenceCarry` around the layers' zero carries."""
    return SequenceCarry(
        tuple(layer_carries), jnp.zeros((*batch_shape, H), dtype), jnp.zeros((), jnp.int32)
    )


def check_carry(carry, n_layers: int) -> SequenceCarry:
    """Checks the type and length of a `SequenceCarry`."""
    if not isinstance(carry, SequenceCarry) or len(carry.layers) != n_layers:
        raise TypeError(
            f"`carry` must be a SequenceCarry with {n_layers} layer states (from "
            f"initialize_carry), got {type(carry).__name__}."
        )
    return carry
