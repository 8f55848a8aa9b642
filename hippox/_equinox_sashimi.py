"""Equinox SaShiMi (re-exported as `hippox.equinox.SaShiMi`).

The pooling backbone of `hippox.nnx.SaShiMi` as an Equinox module; the maths is
`hippox._src.layers.sashimi`, shared with the NNX, linen and Haiku versions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import backbone as bb
from hippox._src.layers import sashimi as core

__all__ = ["SaShiMi"]


def _dtype_of(params: Mapping) -> jnp.dtype:
    return jnp.result_type(*jax.tree.leaves(params))


class SaShiMi(eqx.Module):
    """The SaShiMi pooling backbone (`hippox.nnx.SaShiMi`) as an Equinox module.

    ``u`` ``(L, d_model)`` -> ``(L, d_model)`` (one sequence; batch with `jax.vmap`,
    extra leading axes are accepted too), ``L`` a multiple of ``prod(pool)``; step mode
    (``initialize_carry``, ``setup_step``, ``step``) and chunked calls with a carry as
    in the NNX model. Dropout follows Equinox: active unless ``inference=True``
    (`equinox.nn.inference_mode`), with a ``key``.

    Args:
      d_model: width H at the finest resolution.
      key: jax.random key for the parameters.
      n_layers: residual layer blocks per resolution.
      pool: the pooling factors, finest first.
      expand: width factor per down-pooling.
      ff: expansion of the feed-forward blocks (0: none).
      layer: ``'s4d'``, ``'s4'``, ``'s5'`` or ``'lssl'``.
      layer_kwargs: keyword options of the layer (S4 needs ``l_max``).
      unet: the UNet variant.
      dropout: dropout rate in ``[0, 1)``.
      inference: evaluation mode (dropout off).
      dtype: computation dtype of the dense and norm layers and the layers' output
        dtype (None: inferred).
      param_dtype: parameter storage dtype.

    Attributes:
      params: the nested dict ``flax.nnx.to_pure_dict`` makes of the NNX model's
        parameters (so an NNX parameter tree loads as it is).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import hippox.equinox
      >>> model = hippox.equinox.SaShiMi(4, n_layers=1, pool=(2,), layer_kwargs={"N": 4},
      ...                                key=jax.random.key(0))
      >>> jax.vmap(model)(jnp.ones((3, 8, 4), jnp.float32)).shape
      (3, 8, 4)
    """

    params: dict
    inference: bool
    options: core.SaShiMiOptions = eqx.field(static=True)
    dtype: Any = eqx.field(static=True, default=None)

    def __init__(
        self,
        d_model: int,
        *,
        key,
        n_layers: int = 8,
        pool: Sequence[int] = (4, 4),
        expand: int = 2,
        ff: int = 2,
        layer: str = "s4d",
        layer_kwargs: Mapping[str, Any] | None = None,
        unet: bool = False,
        dropout: float = 0.0,
        inference: bool = False,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
    ):
        _validate.check_key("key", key, "hippox.equinox.SaShiMi")
        self.options = core.check_options(
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
        self.inference = _validate.check_bool("inference", inference)
        pd = _validate.real_dtype(param_dtype, name="param_dtype")
        self.dtype = bb.output_dtype(dtype)
        self.params = bb.init_params(core.param_specs(self.options), key, pd)

    def __call__(
        self,
        u: ArrayLike,
        *,
        initial_carry: core.SaShiMiCarry | None = None,
        return_carry: bool = False,
        key=None,
    ):
        """The backbone over a sequence (or a chunk); see `hippox.nnx.SaShiMi.__call__`.

        Args:
          u: ``(L, d_model)`` real input (leading batch axes accepted).
          initial_carry: a `SaShiMiCarry` at a multiple of ``prod(pool)`` positions.
          return_carry: also return the carry.
          key: jax.random key for dropout (needed unless ``inference`` or no dropout).

        Returns:
          ``y`` or ``(carry, y)``.
        """
        opts = self.options
        training = not self.inference and opts.dropout > 0.0
        if training and key is None:
            raise ValueError(
                "`key` must be a jax.random key for dropout in training mode (or set "
                "inference=True, e.g. with equinox.nn.inference_mode), got None."
            )
        counter = iter(range(1 << 30))

        def drop(x):
            if not training:
                return x
            return bb.dropout(x, opts.dropout, jax.random.fold_in(key, next(counter)))

        return core.call(
            opts,
            self.params,
            u,
            initial_carry=initial_carry,
            return_carry=return_carry,
            drop=drop,
            param_dtype=_dtype_of(self.params),
            dtype=self.dtype,
        )

    def initialize_carry(
        self, batch_shape: Sequence[int] = (), dtype: DTypeLike | None = None
    ) -> core.SaShiMiCarry:
        """Zero step-mode carry (``batch_shape`` ``()`` for one sequence)."""
        return core.builtin_initial_carry(self.options, batch_shape, _dtype_of(self.params), dtype)

    def setup_step(self) -> dict:
        """``{path: step params}`` of every layer block (discretise once)."""
        return core.builtin_setup_step(self.options, self.params)

    def step(self, carry: core.SaShiMiCarry, u_k: ArrayLike, step_params=None):
        """One position: ``u_k`` ``(d_model,)`` -> ``(carry, y_k (d_model,))`` (evaluation)."""
        return core.step_call(
            self.options,
            self.params,
            carry,
            u_k,
            step_params,
            param_dtype=_dtype_of(self.params),
            dtype=self.dtype,
        )
