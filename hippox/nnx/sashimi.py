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

The input length must be a multiple of the product of the pool factors. Step mode
follows the reference's pooling ``step``: down-pooling buffers ``pool[k]`` inputs and
runs the coarser level once its window is full, up-pooling emits the buffered outputs of
the previous coarse position (`SaShiMi.step`, `SaShiMi.initialize_carry`), so the model
generates autoregressively; ``__call__`` accepts and returns the same carry for chunks
that start at a multiple of ``prod(pool)`` (prefill a prompt, then step). The maths is
`hippox._src.layers.sashimi`, shared with the linen, Haiku and Equinox versions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import sashimi as core
from hippox.nnx import layers as _layers

__all__ = ["SaShiMi"]

SaShiMiCarry = core.SaShiMiCarry

_LAYERS = {"s4d": _layers.S4D, "s4": _layers.S4, "s5": _layers.S5, "lssl": _layers.LSSL}


class _FeedForward(nnx.Module):
    """``Dense(H, ff·H) -> GELU -> dropout -> Dense(ff·H, H)`` (parameters; maths in core)."""

    def __init__(self, H: int, expand: int, lin: dict):
        self.inner = nnx.Linear(H, expand * H, **lin)
        self.outer = nnx.Linear(expand * H, H, **lin)


class _Residual(nnx.Module):
    """``x + dropout(layer(LayerNorm(x)))`` (parameters; maths in core)."""

    def __init__(self, H: int, layer, lin: dict):
        self.norm = nnx.LayerNorm(H, **lin)
        self.layer = layer


class _Pool(nnx.Module):
    """The dense layer of a down- or up-pooling (parameters; maths in core)."""

    def __init__(self, d_in: int, d_out: int, lin: dict):
        self.linear = nnx.Linear(d_in, d_out, **lin)


class SaShiMi(nnx.Module):
    """The SaShiMi pooling backbone (NNX): ``(..., L, d_model) -> (..., L, d_model)``.

    See the module docstring for the architecture and step mode.

    Args:
      d_model: width H at the finest resolution.
      n_layers: residual layer blocks per resolution (each followed by a feed-forward
        block when ``ff > 0``).
      pool: the pooling factors, finest first (``L`` must be a multiple of their
        product).
      expand: width factor per down-pooling.
      ff: expansion of the feed-forward blocks (0: none).
      layer: ``'s4d'``, ``'s4'``, ``'s5'``, ``'lssl'`` or a callable
        ``layer(H, *, rngs) -> nnx.Module`` mapping ``(..., L, H)`` to itself (for
        carries and step mode it needs the sequence-layer convention and
        ``initialize_carry``/``setup_step``/``step``, as the built-in layers).
      layer_kwargs: keyword options of the built-in layer (e.g. ``{"N": 64}``; S4
        needs ``l_max``, any value: it runs at every length).
      unet: the UNet variant (blocks before each down-pooling, skips around every
        block).
      dropout: dropout rate in ``[0, 1)`` in every residual and feed-forward block.
      dtype: computation dtype of the dense and norm layers and the layers' output
        dtype (None: inferred).
      param_dtype: parameter storage dtype.
      rngs: `flax.nnx.Rngs` (``params``; ``dropout`` when training with dropout).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from hippox.nnx import SaShiMi
      >>> model = SaShiMi(8, n_layers=1, pool=(2, 2), layer_kwargs={"N": 8},
      ...                 rngs=nnx.Rngs(0))
      >>> u = jnp.ones((3, 16, 8), jnp.float32)
      >>> model(u).shape
      (3, 16, 8)
      >>> carry, y = model(u[:, :8], return_carry=True)      # prefill 8 positions
      >>> sp = model.setup_step()
      >>> carry, y8 = model.step(carry, u[:, 8], sp)           # then step
      >>> bool(jnp.allclose(y8, model(u)[:, 8], atol=1e-5))
      True
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
        opts = core.check_options(
            d_model=d_model,
            n_layers=n_layers,
            pool=pool,
            expand=expand,
            ff=ff,
            layer=layer,
            layer_kwargs=layer_kwargs,
            unet=unet,
            dropout=dropout,
        )
        pd = _validate.real_dtype(param_dtype, name="param_dtype")
        self.dtype = None if dtype is None else _validate.real_dtype(dtype, name="dtype")
        self.param_dtype = pd
        lin = dict(dtype=self.dtype, param_dtype=pd, rngs=rngs)
        kwargs = dict(opts.layer_kwargs)

        def block(kind: str, k: int):
            width = opts.width(k)
            if kind == "ff":
                return _Residual(width, _FeedForward(width, opts.ff, lin), lin)
            if callable(layer):
                mixer = layer(width, rngs=rngs)
            else:
                mixer = _LAYERS[layer](width, **kwargs, dtype=self.dtype, param_dtype=pd, rngs=rngs)
            return _Residual(width, mixer, lin)

        tree: dict = {"down": {}, "center": {}, "up": {}}
        for path, kind, k in core.layout(opts).kinds:
            if kind != "pool":
                module = block(kind, k)
            elif path.startswith("down"):
                module = _Pool(opts.pool[k] * opts.width(k), opts.width(k + 1), lin)
            else:
                module = _Pool(opts.width(k + 1), opts.pool[k] * opts.width(k), lin)
            core.put(tree, path, module)
        self.options = opts
        self.d_model, self.pool, self.unet = opts.d_model, opts.pool, opts.unet
        self.down = nnx.List([tree["down"][i] for i in sorted(tree["down"])])
        self.center = nnx.List([tree["center"][i] for i in sorted(tree["center"])])
        self.up = nnx.List(
            [nnx.List([s[j] for j in sorted(s)]) for _, s in sorted(tree["up"].items())]
        )
        self.norm = nnx.LayerNorm(opts.d_model, **lin)
        self.dropout = nnx.Dropout(opts.dropout, rngs=rngs)

    def _params(self) -> dict:
        return nnx.to_pure_dict(nnx.state(self, nnx.Param))

    def _layer(self, path: str):
        node = self
        for part in path.split("/"):
            node = node[int(part)] if part.isdigit() else getattr(node, part)
        return node.layer

    def __call__(
        self,
        u: ArrayLike,
        *,
        initial_carry: core.SaShiMiCarry | None = None,
        return_carry: bool = False,
    ):
        """The backbone over a sequence (or a chunk of one).

        Args:
          u: ``(..., L, d_model)`` real input, ``L`` a positive multiple of ``prod(pool)``.
          initial_carry: a `SaShiMiCarry` (from `initialize_carry`, `step` or a call
            with ``return_carry=True``) that has seen a multiple of ``prod(pool)``
            positions, or None.
          return_carry: also return the carry after the last position.

        Returns:
          ``y`` ``(..., L, d_model)``, or ``(carry, y)``.
        """

        def layer(path, z, carry, want):
            module = self._layer(path)
            if not want:
                return None, module(z)
            return module(z, initial_carry=carry, return_carry=True)

        return core.call(
            self.options,
            self._params(),
            u,
            initial_carry=initial_carry,
            return_carry=return_carry,
            drop=self.dropout,
            param_dtype=self.param_dtype,
            dtype=self.dtype,
            layer=layer,
            initialize=self.initialize_carry,
        )

    def initialize_carry(
        self, batch_shape: Sequence[int] = (), dtype: DTypeLike | None = None
    ) -> core.SaShiMiCarry:
        """Zero step-mode carry with batch shape ``batch_shape`` (buffers in ``dtype``,
        default the parameters' dtype promoted to at least float32)."""
        batch = _validate.check_batch_shape(batch_shape)
        layers = {
            p: self._layer(p).initialize_carry(batch)
            for p in core.layout(self.options).layer_paths()
        }
        rd = jnp.promote_types(self.param_dtype, jnp.float32) if dtype is None else dtype
        return core.initial_carry(self.options, layers, batch, rd)

    def setup_step(self) -> dict:
        """``{path: step params}`` of every layer block (discretise once; pass to `step`)."""
        return {p: self._layer(p).setup_step() for p in core.layout(self.options).layer_paths()}

    def step(self, carry: core.SaShiMiCarry, u_k: ArrayLike, step_params=None):
        """One position: ``u_k`` ``(..., d_model)`` -> ``(carry, y_k (..., d_model))``.

        Evaluation semantics (no dropout). ``step_params`` from `setup_step`
        (recomputed when None).
        """
        sp = self.setup_step() if step_params is None else step_params

        def layer_step(path, c, z):
            return self._layer(path).step(c, z, sp[path])

        return core.step_call(
            self.options,
            self._params(),
            carry,
            u_k,
            sp,
            param_dtype=self.param_dtype,
            dtype=self.dtype,
            layer_step=layer_step,
            initialize=self.initialize_carry,
        )
