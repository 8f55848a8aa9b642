"""Flax linen SaShiMi: the pooling backbone of `hippox.nnx.SaShiMi` as a linen module.

The maths is `hippox._src.layers.sashimi`, shared with the NNX, Haiku and Equinox
versions. The parameters are one entry per innermost dict of the NNX layout, named by
its path: ``down_0_linear`` (``{"kernel", "bias"}``), ``center_0_norm``,
``center_0_layer`` (the layer's leaves), ``center_1_layer_inner``, ``up_0_0_linear``,
..., ``norm`` (`hippox._src.layers.sashimi.group_params` converts an NNX tree).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import backbone as bb
from hippox._src.layers import sashimi as core

__all__ = ["SaShiMi"]


def _group_init(specs: Mapping, param_dtype):
    def init(rng):
        keys = jax.random.split(rng, len(specs))
        return {
            leaf: fn(k, shape, param_dtype)
            for k, (leaf, (shape, fn)) in zip(keys, specs.items(), strict=True)
        }

    return init


class SaShiMi(nn.Module):
    """The SaShiMi pooling backbone (linen): ``(..., L, d_model) -> (..., L, d_model)``.

    Fields are the keyword arguments of `hippox.nnx.SaShiMi` (built-in layers only),
    plus ``deterministic`` (dropout off; may be None, then it must be passed to the
    call, merged with `flax.linen.merge_param`; dropout needs a ``'dropout'`` rng).
    Step mode and chunked calls as in the NNX model::

        carry = model.initialize_carry(batch_shape)               # unbound is fine
        sp = model.apply(variables, method="setup_step")
        carry, y_k = model.apply(variables, carry, u_k, sp, method="step")

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from hippox.linen import SaShiMi
      >>> model = SaShiMi(4, n_layers=1, pool=(2,), layer_kwargs={"N": 4})
      >>> u = jnp.ones((2, 8, 4), jnp.float32)
      >>> variables = model.init(jax.random.key(0), u, deterministic=True)
      >>> model.apply(variables, u, deterministic=True).shape
      (2, 8, 4)
    """

    d_model: int
    n_layers: int = 8
    pool: Sequence[int] = (4, 4)
    expand: int = 2
    ff: int = 2
    layer: str = "s4d"
    layer_kwargs: Any = None
    unet: bool = False
    dropout: float = 0.0
    deterministic: bool | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        self.options  # noqa: B018 - validate the fields eagerly
        _validate.real_dtype(self.param_dtype, name="param_dtype")
        bb.output_dtype(self.dtype)
        super().__post_init__()

    @property
    def options(self) -> core.SaShiMiOptions:
        """The validated options."""
        return core.check_options(
            d_model=self.d_model,
            n_layers=self.n_layers,
            pool=self.pool,
            expand=self.expand,
            ff=self.ff,
            layer=self.layer,
            layer_kwargs=self.layer_kwargs,
            unet=self.unet,
            dropout=self.dropout,
            allow_callable=False,
        )

    def setup(self):
        pd = _validate.real_dtype(self.param_dtype, name="param_dtype")
        specs = core.group_params(core.param_specs(self.options))
        self.grouped = {g: self.param(g, _group_init(s, pd)) for g, s in specs.items()}

    def _nested(self) -> dict:
        return core.ungroup_params(self.grouped, self.options)

    def _pd(self):
        return _validate.real_dtype(self.param_dtype, name="param_dtype")

    def __call__(
        self,
        u: ArrayLike,
        *,
        initial_carry: core.SaShiMiCarry | None = None,
        return_carry: bool = False,
        deterministic: bool | None = None,
    ):
        """The backbone over a sequence (or a chunk); see `hippox.nnx.SaShiMi.__call__`.

        Args:
          u: ``(..., L, d_model)`` real input.
          initial_carry: a `SaShiMiCarry` at a multiple of ``prod(pool)`` positions.
          return_carry: also return the carry.
          deterministic: dropout off (merged with the field).

        Returns:
          ``y`` or ``(carry, y)``.
        """
        opts = self.options
        det = nn.merge_param("deterministic", self.deterministic, deterministic)

        def drop(x):
            if det or opts.dropout == 0.0:
                return x
            return bb.dropout(x, opts.dropout, self.make_rng("dropout"))

        return core.call(
            opts,
            self._nested(),
            u,
            initial_carry=initial_carry,
            return_carry=return_carry,
            drop=drop,
            param_dtype=self._pd(),
            dtype=bb.output_dtype(self.dtype),
        )

    def initialize_carry(
        self, batch_shape: Sequence[int] = (), dtype: DTypeLike | None = None
    ) -> core.SaShiMiCarry:
        """Zero step-mode carry with batch shape ``batch_shape`` (no variables needed)."""
        return core.builtin_initial_carry(self.options, batch_shape, self._pd(), dtype)

    def setup_step(self) -> dict:
        """``{path: step params}`` of every layer block (discretise once)."""
        return core.builtin_setup_step(self.options, self._nested())

    def step(self, carry: core.SaShiMiCarry, u_k: ArrayLike, step_params=None):
        """One position: ``u_k`` ``(..., d_model)`` -> ``(carry, y_k)`` (evaluation)."""
        return core.step_call(
            self.options,
            self._nested(),
            carry,
            u_k,
            step_params,
            param_dtype=self._pd(),
            dtype=bb.output_dtype(self.dtype),
        )
