"""Flax NNX SaShiMi: a multi-resolution (pooling) backbone of hippox layers for long signals.

The backbone of Goel et al. (2022), with any hippox layer as the sequence mixer::

    x (..., L, H)
    down:   for each pool factor p_i:   [unet: n_layers residual blocks]
                                         x = DownPool(x)     L -> L / p_i, H -> expand·H
    center: n_layers residual blocks at the coarsest resolution, plus the skip
    up:     for each pool factor, coarsest first:
                                         x = UpPool(x) + skip   L -> L · p_i, H -> H / expand
                                         n_layers residual blocks, plus the skip
    y = LayerNorm(x)                                                   (..., L, H)

A residual block is ``x + dropout(layer(LayerNorm(x)))`` with ``layer`` a hippox layer
(``'s4d'``, ``'s4'``, ``'s5'``, ``'lssl'``) or the feed-forward block
``Dense(H, ff·H) -> GELU -> dropout -> Dense(ff·H, H)`` (after every layer block when
``ff > 0``). Pooling is causal (`hippox._src.layers.pooling`): the output at position
``t`` depends on inputs ``u_0 … u_t`` only, so the backbone can model audio
autoregressively. ``unet=True`` also runs residual blocks before each down-pooling
and adds every block's input as a skip (the reference's UNet variant, better for
non-autoregressive use).

Only the convolution (training) mode is offered; step mode is not implemented for
this backbone. The input length must be a multiple of the product of the pool factors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import pooling
from hippox.nnx import layers as _layers

__all__ = ["SaShiMi"]

_LAYERS = {"s4d": _layers.S4D, "s4": _layers.S4, "s5": _layers.S5, "lssl": _layers.LSSL}


class _FeedForward(nnx.Module):
    def __init__(self, H: int, expand: int, dropout: float, lin: dict, rngs: nnx.Rngs):
        self.inner = nnx.Linear(H, expand * H, **lin)
        self.outer = nnx.Linear(expand * H, H, **lin)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.outer(self.dropout(jax.nn.gelu(self.inner(x), approximate=False)))


class _Residual(nnx.Module):
    """``x + dropout(layer(LayerNorm(x)))``."""

    def __init__(self, H: int, layer, dropout: float, lin: dict, rngs: nnx.Rngs):
        self.norm = nnx.LayerNorm(H, **lin)
        self.layer = layer
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x + self.dropout(self.layer(self.norm(x)))


class _DownPool(nnx.Module):
    def __init__(self, H: int, expand: int, pool: int, lin: dict):
        self.pool = pool
        self.linear = nnx.Linear(pool * H, expand * H, **lin)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear(pooling.fold(x, self.pool))


class _UpPool(nnx.Module):
    def __init__(self, H: int, expand: int, pool: int, lin: dict):
        self.pool = pool
        self.linear = nnx.Linear(H, pool * (H // expand), **lin)

    def __call__(self, x: jax.Array) -> jax.Array:
        return pooling.unfold(pooling.shift_right(self.linear(x)), self.pool)


class SaShiMi(nnx.Module):
    """The SaShiMi pooling backbone (NNX): ``(..., L, d_model) -> (..., L, d_model)``.

    See the module docstring for the architecture.

    Args:
      d_model: width H at the finest resolution.
      n_layers: residual layer blocks per resolution (each followed by a feed-forward
        block when ``ff > 0``).
      pool: the pooling factors, finest first (``L`` must be a multiple of their
        product).
      expand: width factor per down-pooling.
      ff: expansion of the feed-forward blocks (0: none).
      layer: ``'s4d'``, ``'s4'``, ``'s5'``, ``'lssl'`` or a callable
        ``layer(H, *, rngs) -> nnx.Module`` mapping ``(..., L, H)`` to itself.
      layer_kwargs: keyword options of the built-in layer (e.g. ``{"N": 64}``; S4
        needs ``l_max``, any value: it runs at every length).
      unet: the UNet variant (blocks before each down-pooling, skips around every
        block).
      dropout: dropout rate in ``[0, 1)`` in every residual and feed-forward block.
      dtype: computation dtype of the dense and norm layers (None: inferred).
      param_dtype: parameter storage dtype.
      rngs: `flax.nnx.Rngs` (``params``; ``dropout`` when training with dropout).

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from hippox.nnx import SaShiMi
      >>> model = SaShiMi(8, n_layers=1, pool=(2, 2), layer_kwargs={"N": 8},
      ...                 rngs=nnx.Rngs(0))
      >>> model(jnp.ones((3, 16, 8), jnp.float32)).shape
      (3, 16, 8)
    """

    def __init__(
        self,
        d_model: int,
        *,
        n_layers: int = 8,
        pool: Sequence[int] = (4, 4),
        expand: int = 2,
        ff: int = 2,
        layer: str | Callable = "s4d",
        layer_kwargs: Mapping[str, Any] | None = None,
        unet: bool = False,
        dropout: float = 0.0,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"`rngs` must be a flax.nnx.Rngs, got {type(rngs).__name__}.")
        H = _validate.check_size("d_model", d_model)
        n_layers = _validate.check_size("n_layers", n_layers, minimum=0)
        if isinstance(pool, int) or not isinstance(pool, Sequence):
            raise TypeError(f"`pool` must be a sequence of ints, got {pool!r}.")
        pool = tuple(_validate.check_size("pool entry", p) for p in pool)
        expand = _validate.check_size("expand", expand)
        ff = _validate.check_size("ff", ff, minimum=0)
        unet = _validate.check_bool("unet", unet)
        dropout = _validate.check_real("dropout", dropout, low=0.0)
        if dropout >= 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout}.")
        if not callable(layer):
            _validate.check_choice("layer", layer, tuple(_LAYERS))
        if layer_kwargs is not None and not isinstance(layer_kwargs, Mapping):
            raise TypeError(f"`layer_kwargs` must be a mapping or None, got {layer_kwargs!r}.")
        kwargs = dict(layer_kwargs or {})
        pd = _validate.real_dtype(param_dtype, name="param_dtype")
        lin = dict(dtype=dtype, param_dtype=pd, rngs=rngs)

        def blocks(width: int) -> list:
            out = []
            for _ in range(n_layers):
                if callable(layer):
                    mixer = layer(width, rngs=rngs)
                else:
                    mixer = _LAYERS[layer](width, **kwargs, dtype=dtype, param_dtype=pd, rngs=rngs)
                out.append(_Residual(width, mixer, dropout, lin, rngs))
                if ff > 0:
                    ffn = _FeedForward(width, ff, dropout, lin, rngs)
                    out.append(_Residual(width, ffn, dropout, lin, rngs))
            return out

        self.d_model, self.pool, self.unet = H, pool, unet
        width, down = H, []
        for p in pool:
            if unet:
                down.extend(blocks(width))
            down.append(_DownPool(width, expand, p, lin))
            width *= expand
        self.down = nnx.List(down)
        self.center = nnx.List(blocks(width))
        up = []
        for p in reversed(pool):
            up.append(nnx.List([_UpPool(width, expand, p, lin), *blocks(width // expand)]))
            width //= expand
        self.up = nnx.List(up)
        self.norm = nnx.LayerNorm(H, **lin)

    def __call__(self, u: ArrayLike) -> jax.Array:
        """``u`` ``(..., L, d_model)`` -> ``(..., L, d_model)``; ``L`` a multiple of ∏ pool."""
        u = _validate.as_array("u", u)
        factor = math.prod(self.pool)
        if u.ndim < 2 or u.shape[-1] != self.d_model or u.shape[-2] % factor:
            raise ValueError(
                f"`u` must have shape (..., L, {self.d_model}) with L a multiple of "
                f"prod(pool)={factor}, got {u.shape}."
            )
        x, skips = u, [u]
        for block in self.down:
            x = block(x)
            skips.append(x)
        for block in self.center:
            x = block(x)
        x = x + skips.pop()
        for stage in self.up:
            if self.unet:
                for block in stage:
                    x = block(x) + skips.pop()
            else:
                x = stage[0](x) + skips.pop()
                skip = x
                for block in stage[1:]:
                    x = block(x)
                x = x + skip
        return self.norm(x)
