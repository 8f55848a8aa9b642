"""Flax linen HiPPO-RNN: the cell (`HiPPORNNCell`) and a sequence layer (`HiPPORNN`).

Thin shells over `hippox.HiPPORNNConfig` (equations in `hippox._src.layers.rnn`). The
``params`` collection holds ``W_u``, ``b_u``, ``W_h``, ``b_h`` (and ``W_g``, ``b_g``
when gated) with the names and shapes of the `hippox.nnx`, `hippox.haiku` and
`hippox.equinox` versions.

`HiPPORNNCell` follows the linen cell protocol (``cell(carry, x) -> (carry, y)``,
``initialize_carry(rng, input_shape)``, ``num_feature_axes``; the input size is read
from the input, as for `flax.linen.SimpleCell`) and runs under `flax.linen.RNN`.
`HiPPORNN` maps a whole sequence and offers the step API of the hippox SSM layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.typing import ArrayLike

from hippox._src import _validate
from hippox._src.layers.backbone import call_layer, step_layer
from hippox._src.layers.rnn import HiPPORNNConfig, HiPPORNNState
from hippox.linen._config import ConfigModule

__all__ = ["HiPPORNN", "HiPPORNNCell"]


class HiPPORNNCell(ConfigModule, nn.RNNCellBase, omit=("d_in",), rename={"init": "weight_init"}):
    """The HiPPO-RNN cell (linen): ``(carry, x_t) -> (carry, h_t)``.

    Attributes:
      features: hidden size.
      memory_size, N, measure, method, dt, gate, ...: the keyword fields of
        `hippox.HiPPORNNConfig`, except its ``init`` (which would shadow
        `flax.linen.Module.init`), here named ``weight_init``.
      dtype: output dtype (None: the input's).
      param_dtype: parameter storage dtype (default float32).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import flax.linen as nn
      >>> from hippox.linen import HiPPORNNCell
      >>> rnn = nn.RNN(HiPPORNNCell(features=8, N=16))
      >>> x = jnp.ones((2, 10, 3), jnp.float32)
      >>> variables = rnn.init(jax.random.key(0), x)
      >>> sorted(variables["params"]["cell"])
      ['W_g', 'W_h', 'W_u', 'b_g', 'b_h', 'b_u']
      >>> rnn.apply(variables, x).shape
      (2, 10, 8)
    """

    config_class: ClassVar[type] = HiPPORNNConfig

    @nn.nowrap
    def config_placeholders(self) -> dict:
        """``d_in`` is read from the input at the call; validate with a placeholder."""
        return {"d_in": 1}

    @nn.nowrap
    def config_for(self, d_in: int) -> HiPPORNNConfig:
        """The `hippox.HiPPORNNConfig` for inputs with ``d_in`` features."""
        return dataclasses.replace(self.config, d_in=d_in)

    @nn.compact
    def __call__(self, carry: HiPPORNNState, inputs: ArrayLike):
        """One step: ``inputs`` ``(..., d_in)`` -> ``(carry, h (..., features))``."""
        cfg = self.config_for(jnp.shape(inputs)[-1])
        pd = _validate.real_dtype(self.param_dtype, name="param_dtype")
        params = {
            name: self.param(name, init, shape, pd)
            for name, (shape, init) in cfg.param_specs().items()
        }
        return cfg.step(params, carry, inputs, dtype=self.dtype)

    @nn.nowrap
    def initialize_carry(self, rng, input_shape: tuple[int, ...]) -> HiPPORNNState:
        """Zero carry for inputs of shape ``(*batch, d_in)`` (``rng`` is unused).

        Returns:
          `hippox.HiPPORNNState` with ``h`` ``(*batch, features)``, ``c``
          ``(*batch, memory_size, N)``, ``t`` ``(*batch)``.
        """
        del rng
        input_shape = tuple(input_shape)
        if len(input_shape) < 1:
            raise ValueError(f"`input_shape` must be (..., d_in), got {input_shape}.")
        return self.config_for(input_shape[-1]).initial_state(input_shape[:-1], self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


class HiPPORNN(ConfigModule, rename={"d_in": "in_features", "init": "weight_init"}):
    """The HiPPO-RNN over a sequence (linen): ``(..., L, in_features) -> (..., L, features)``.

    Parameters (flat, same names as `HiPPORNNCell`) are created in ``setup``, so the
    step API works without a first call::

        carry = layer.initialize_carry(batch_shape)                 # unbound is fine
        sp = layer.apply(variables, method="setup_step")
        carry, y_k = layer.apply(variables, carry, u_k, sp, method="step")

    Attributes:
      in_features: input features.
      features: hidden size.
      memory_size, N, measure, method, dt, gate, ...: the keyword fields of
        `hippox.HiPPORNNConfig`, except its ``init`` (which would shadow
        `flax.linen.Module.init`), here named ``weight_init``.
      dtype: output dtype (None: the input's).
      param_dtype: parameter storage dtype (default float32).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from hippox.linen import HiPPORNN
      >>> layer = HiPPORNN(in_features=4, features=4, N=8)
      >>> x = jnp.ones((2, 16, 4), jnp.float32)
      >>> variables = layer.init(jax.random.key(0), x)
      >>> layer.apply(variables, x).shape
      (2, 16, 4)
    """

    config_class: ClassVar[type] = HiPPORNNConfig

    def setup(self):
        pd = _validate.real_dtype(self.param_dtype, name="param_dtype")
        self._leaves = {
            name: self.param(name, init, shape, pd)
            for name, (shape, init) in self.config.param_specs().items()
        }

    def rnn_params(self) -> dict[str, jax.Array]:
        """The parameters as a flat ``{name: array}`` dict."""
        return dict(self._leaves)

    def __call__(
        self,
        x: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry: HiPPORNNState | None = None,
        return_carry: bool = False,
    ):
        """``x`` ``(..., L, in_features)`` -> hidden states ``(..., L, features)``.

        The arguments are those of `hippox.nnx.HiPPORNN.__call__`; with
        ``return_carry=True`` the result is ``(carry, hidden states)``.
        """
        return call_layer(
            self.config,
            self.rnn_params(),
            x,
            param_dtype=self.param_dtype,
            dtype=self.dtype,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
        )

    @nn.nowrap
    def initialize_carry(self, batch_shape: Sequence[int] = ()) -> HiPPORNNState:
        """Zero carry with batch shape ``batch_shape`` (callable on an unbound module)."""
        return self.config.initial_state(batch_shape, self.param_dtype)

    def setup_step(self) -> dict[str, jax.Array]:
        """Step parameters (the weights; nothing to precompute)."""
        return self.rnn_params()

    def step(self, carry: HiPPORNNState, u_k: ArrayLike, step_params=None):
        """One step: ``u_k`` ``(..., in_features)`` -> ``(carry, y_k (..., features))``."""
        sp = self.rnn_params() if step_params is None else step_params
        return step_layer(
            self.config, sp, carry, u_k, param_dtype=self.param_dtype, dtype=self.dtype
        )
