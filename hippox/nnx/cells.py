"""Flax NNX baseline recurrent cells: RNN, GRU, LSTM, MGU, MinimalRNN, ExpRNN.

Thin shells over the configs of ``hippox._src.layers.cells`` (equations there): the
parameters are `flax.nnx.Param` attributes with the names and shapes of the linen,
Haiku and Equinox versions, and every cell follows the Flax cell protocol
(``cell(carry, x) -> (carry, y)``, ``initialize_carry(input_shape, rngs)``,
``num_feature_axes``), so it runs under `flax.nnx.RNN`. The HiPPO variants (LegS, LegT,
LagT, LMU, HiPPO-Rand, timestamped) are `hippox.nnx.HiPPORNNCell` with the options of
`hippox.hippo_cell_options`.

Examples:
  >>> import jax.numpy as jnp
  >>> from flax import nnx
  >>> from hippox.nnx.cells import GRUCell
  >>> cell = GRUCell(3, 8, rngs=nnx.Rngs(0))
  >>> nnx.RNN(cell)(jnp.ones((2, 10, 3), jnp.float32)).shape
  (2, 10, 8)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import cells as _cells

__all__ = ["ExpRNNCell", "GRUCell", "LSTMCell", "MGUCell", "MinimalRNNCell", "RNNCell"]


class _Cell(nnx.RNNCellBase):
    """A baseline cell (NNX): ``(carry, x_t) -> (carry, h_t)``.

    Args:
      in_features: input features ``d_in``.
      hidden_features: hidden size.
      dtype: output dtype (None: the input's).
      param_dtype: parameter storage dtype (default float32).
      rngs: `flax.nnx.Rngs` with a ``params`` stream.
    """

    config_class: type

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"`rngs` must be a flax.nnx.Rngs, got {type(rngs).__name__}.")
        self.config = self.config_class(in_features, hidden_features)
        self.dtype = None if dtype is None else jnp.dtype(dtype)
        self.param_dtype = _validate.real_dtype(param_dtype, name="param_dtype")
        for name, (shape, init) in self.config.param_specs().items():
            setattr(self, name, nnx.Param(init(rngs.params(), shape, self.param_dtype)))

    def cell_params(self) -> dict[str, jax.Array]:
        """The parameters as a flat ``{name: array}`` dict (the pure core's input)."""
        return {name: getattr(self, name)[...] for name in self.config.param_shapes()}

    def __call__(self, carry, inputs: ArrayLike):
        """One step: ``inputs`` ``(..., in_features)`` -> ``(carry, h (..., hidden))``."""
        return self.config.step(self.cell_params(), carry, inputs, dtype=self.dtype)

    def initialize_carry(self, input_shape: tuple[int, ...], rngs=None):
        """Zero carry for inputs of shape ``(*batch, in_features)`` (``rngs`` unused)."""
        del rngs
        input_shape = tuple(input_shape)
        if len(input_shape) < 1 or input_shape[-1] != self.config.d_in:
            raise ValueError(f"`input_shape` must be (..., {self.config.d_in}), got {input_shape}.")
        return self.config.initial_state(input_shape[:-1], self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


def _make(name: str, config_class: type, what: str) -> type:
    doc = f"{what} (NNX): ``(carry, x_t) -> (carry, h_t)``; see ``hippox._src.layers.cells``.\n\n"
    doc += _Cell.__doc__.split("\n\n", 1)[1]
    return type(
        name, (_Cell,), {"config_class": config_class, "__doc__": doc, "__module__": __name__}
    )


RNNCell = _make("RNNCell", _cells.RNNConfig, "The vanilla tanh RNN cell")
GRUCell = _make("GRUCell", _cells.GRUConfig, "The GRU cell")
LSTMCell = _make("LSTMCell", _cells.LSTMConfig, "The LSTM cell (carry `LSTMState` (h, c))")
MGUCell = _make("MGUCell", _cells.MGUConfig, "The Minimal Gated Unit")
MinimalRNNCell = _make("MinimalRNNCell", _cells.MinimalRNNConfig, "The MinimalRNN cell")
ExpRNNCell = _make("ExpRNNCell", _cells.ExpRNNConfig, "The ExpRNN cell (orthogonal, modReLU)")
