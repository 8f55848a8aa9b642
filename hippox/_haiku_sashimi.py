"""Haiku SaShiMi (re-exported as `hippox.haiku.SaShiMi`).

The pooling backbone of `hippox.nnx.SaShiMi` as a Haiku module; the maths is
`hippox._src.layers.sashimi`, shared with the NNX, linen and Equinox versions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import haiku as hk
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from hippox._haiku_params import get_params
from hippox._src import _validate
from hippox._src.layers import backbone as bb
from hippox._src.layers import sashimi as core

__all__ = ["SaShiMi"]


class _Group(hk.Module):
    """One innermost parameter dict of the nested layout, as a Haiku sub-module."""

    def __init__(self, specs: Mapping, param_dtype, name: str):
        super().__init__(name=name)
        self.specs, self.param_dtype = specs, param_dtype

    def __call__(self) -> dict:
        return get_params(self.specs, self.param_dtype)


class SaShiMi(hk.Module):
    """The SaShiMi pooling backbone (`hippox.nnx.SaShiMi`) as a Haiku module.

    ``u`` ``(..., L, d_model)`` -> ``(..., L, d_model)``, ``L`` a multiple of
    ``prod(pool)``; step mode (``initialize_carry``, ``setup_step``, ``step``) and
    chunked calls with a carry as in the NNX model. Dropout is active with
    ``is_training=True`` (keys from the transform's rng).

    The parameters are one sub-module per innermost dict of the NNX layout, named by
    its path: ``down_0_linear``, ``center_0_norm``, ``center_0_layer`` (the layer's
    leaves), ``center_1_layer_inner``, ``up_0_0_linear``, ..., ``norm``
    (`hippox._src.layers.sashimi.group_params` converts an NNX parameter tree).

    Args:
      d_model: width H at the finest resolution.
      n_layers: residual layer blocks per resolution.
      pool: the pooling factors, finest first.
      expand: width factor per down-pooling.
      ff: expansion of the feed-forward blocks (0: none).
      layer: ``'s4d'``, ``'s4'``, ``'s5'`` or ``'lssl'``.
      layer_kwargs: keyword options of the layer (S4 needs ``l_max``).
      unet: the UNet variant.
      dropout: dropout rate in ``[0, 1)``.
      name: module name (default ``'sashimi'``).
      dtype: computation dtype of the dense and norm layers and the layers' output
        dtype (None: inferred).
      param_dtype: parameter storage dtype.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import haiku as hk
      >>> import hippox.haiku
      >>> f = hk.transform(lambda u: hippox.haiku.SaShiMi(
      ...     4, n_layers=1, pool=(2,), layer_kwargs={"N": 4})(u))
      >>> u = jnp.ones((2, 8, 4), jnp.float32)
      >>> f.apply(f.init(jax.random.key(0), u), None, u).shape
      (2, 8, 4)
    """

    def __init__(
        self,
        d_model: int,
        *,
        n_layers: int = 8,
        pool: Sequence[int] = (4, 4),
        expand: int = 2,
        ff: int = 2,
        layer: str = "s4d",
        layer_kwargs: Mapping[str, Any] | None = None,
        unet: bool = False,
        dropout: float = 0.0,
        name: str | None = "sashimi",
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
    ):
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
            allow_callable=False,
        )
        super().__init__(name=name)
        self.options = opts
        self.param_dtype = _validate.real_dtype(param_dtype, name="param_dtype")
        self.dtype = bb.output_dtype(dtype)
        specs = core.group_params(core.param_specs(opts))
        self.groups = {g: _Group(s, self.param_dtype, name=g) for g, s in specs.items()}

    def params(self) -> dict:
        """The parameters as the nested dict of the NNX layout."""
        return core.ungroup_params({g: m() for g, m in self.groups.items()}, self.options)

    def __call__(
        self,
        u: ArrayLike,
        *,
        initial_carry: core.SaShiMiCarry | None = None,
        return_carry: bool = False,
        is_training: bool = False,
    ):
        """The backbone over a sequence (or a chunk); see `hippox.nnx.SaShiMi.__call__`.

        Args:
          u: ``(..., L, d_model)`` real input.
          initial_carry: a `SaShiMiCarry` at a multiple of ``prod(pool)`` positions.
          return_carry: also return the carry.
          is_training: apply dropout (keys from the transform's rng).

        Returns:
          ``y`` or ``(carry, y)``.
        """
        opts = self.options
        is_training = _validate.check_bool("is_training", is_training)

        def drop(x):
            if not is_training or opts.dropout == 0.0:
                return x
            return bb.dropout(x, opts.dropout, hk.next_rng_key())

        return core.call(
            opts,
            self.params(),
            u,
            initial_carry=initial_carry,
            return_carry=return_carry,
            drop=drop,
            param_dtype=self.param_dtype,
            dtype=self.dtype,
        )

    def initialize_carry(
        self, batch_shape: Sequence[int] = (), dtype: DTypeLike | None = None
    ) -> core.SaShiMiCarry:
        """Zero step-mode carry with batch shape ``batch_shape``."""
        return core.builtin_initial_carry(self.options, batch_shape, self.param_dtype, dtype)

    def setup_step(self) -> dict:
        """``{path: step params}`` of every layer block (discretise once)."""
        return core.builtin_setup_step(self.options, self.params())

    def step(self, carry: core.SaShiMiCarry, u_k: ArrayLike, step_params=None):
        """One position: ``u_k`` ``(..., d_model)`` -> ``(carry, y_k)`` (evaluation)."""
        return core.step_call(
            self.options,
            self.params(),
            carry,
            u_k,
            step_params,
            param_dtype=self.param_dtype,
            dtype=self.dtype,
        )
