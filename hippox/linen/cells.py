"""Flax linen baseline recurrent cells: RNN, GRU, LSTM, MGU, MinimalRNN, ExpRNN.

Thin shells over the configs of ``hippox._src.layers.cells`` (equations there). Each
cell follows the linen cell protocol (``cell(carry, x) -> (carry, y)``,
``initialize_carry(rng, input_shape)``, ``num_feature_axes``; the input size is read
from the input, as for `flax.linen.SimpleCell`) and runs under `flax.linen.RNN`; the
``params`` collection holds the leaves of the NNX, Haiku and Equinox versions. The
HiPPO variants are `hippox.linen.HiPPORNNCell` with `hippox.hippo_cell_options`.

Attributes (every cell):
  features: hidden size.
  dtype: output dtype (None: the input's).
  param_dtype: parameter storage dtype (default float32).

Examples:
  >>> import jax, jax.numpy as jnp
  >>> import flax.linen as nn
  >>> from hippox.linen.cells import MGUCell
  >>> rnn = nn.RNN(MGUCell(features=8))
  >>> x = jnp.ones((2, 10, 3), jnp.float32)
  >>> variables = rnn.init(jax.random.key(0), x)
  >>> sorted(variables["params"]["cell"])
  ['W_f', 'W_hh', 'W_hx', 'b_f', 'b_hh', 'b_hx']
  >>> rnn.apply(variables, x).shape
  (2, 10, 8)
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp
from flax import linen as nn
from jax.typing import ArrayLike

from hippox._src import _validate
from hippox._src.layers import cells as _cells
from hippox.linen._config import ConfigModule

__all__ = ["ExpRNNCell", "GRUCell", "LSTMCell", "MGUCell", "MinimalRNNCell", "RNNCell"]


class _Cell(ConfigModule, nn.RNNCellBase):
    """The shared linen cell methods (each cell sets ``config_class``)."""

    def config_placeholders(self) -> dict:
        """``d_in`` is read from the input at the call; validate with a placeholder."""
        return {"d_in": 1}

    @nn.nowrap
    def config_for(self, d_in: int):
        """The cell config for inputs with ``d_in`` features."""
        return dataclasses.replace(self.config, d_in=d_in)

    @nn.compact
    def __call__(self, carry, inputs: ArrayLike):
        """One step: ``inputs`` ``(..., d_in)`` -> ``(carry, h (..., features))``."""
        cfg = self.config_for(jnp.shape(inputs)[-1])
        pd = _validate.real_dtype(self.param_dtype, name="param_dtype")
        params = {
            name: self.param(name, init, shape, pd)
            for name, (shape, init) in cfg.param_specs().items()
        }
        return cfg.step(params, carry, inputs, dtype=self.dtype)

    @nn.nowrap
    def initialize_carry(self, rng, input_shape: tuple[int, ...]):
        """Zero carry for inputs of shape ``(*batch, d_in)`` (``rng`` unused)."""
        del rng
        input_shape = tuple(input_shape)
        if len(input_shape) < 1:
            raise ValueError(f"`input_shape` must be (..., d_in), got {input_shape}.")
        cfg = self.config_for(input_shape[-1])
        return cfg.initial_state(input_shape[:-1], self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


class RNNCell(_Cell, omit=("d_in",)):
    """The vanilla tanh RNN cell (linen); equations in ``hippox._src.layers.cells``."""

    config_class: ClassVar[type] = _cells.RNNConfig


class GRUCell(_Cell, omit=("d_in",)):
    """The GRU cell (linen); equations in ``hippox._src.layers.cells``."""

    config_class: ClassVar[type] = _cells.GRUConfig


class LSTMCell(_Cell, omit=("d_in",)):
    """The LSTM cell (linen; carry ``LSTMState(h, c)``); see ``hippox._src.layers.cells``."""

    config_class: ClassVar[type] = _cells.LSTMConfig


class MGUCell(_Cell, omit=("d_in",)):
    """The Minimal Gated Unit (linen); equations in ``hippox._src.layers.cells``."""

    config_class: ClassVar[type] = _cells.MGUConfig


class MinimalRNNCell(_Cell, omit=("d_in",)):
    """The MinimalRNN cell (linen); equations in ``hippox._src.layers.cells``."""

    config_class: ClassVar[type] = _cells.MinimalRNNConfig


class ExpRNNCell(_Cell, omit=("d_in",)):
    """The ExpRNN cell (linen); equations in ``hippox._src.layers.cells``."""

    config_class: ClassVar[type] = _cells.ExpRNNConfig
