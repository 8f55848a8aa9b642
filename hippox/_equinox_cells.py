"""Equinox baseline recurrent cells: RNN, GRU, LSTM, MGU, MinimalRNN, ExpRNN.

Re-exported by ``hippox.equinox``. Thin shells over the configs of
``hippox._src.layers.cells`` (equations there), in the Equinox cell convention
``cell(x_t, state) -> state`` (one unbatched example; batch with `jax.vmap`); the
output ``h_t`` is ``state.h``. Parameters live in ``params`` (the names and shapes of
the Flax and Haiku versions), the config is static. The HiPPO variants are
`hippox.equinox.HiPPORNNCell` with `hippox.hippo_cell_options`.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from hippox._equinox_cells import GRUCell
  >>> cell = GRUCell(3, 8, key=jax.random.key(0))
  >>> final, states = jax.lax.scan(lambda s, x: (cell(x, s),) * 2, cell.initial_state(),
  ...                              jnp.ones((10, 3), jnp.float32))
  >>> states.h.shape
  (10, 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from hippox._src.layers import cells as _cells

__all__ = ["ExpRNNCell", "GRUCell", "LSTMCell", "MGUCell", "MinimalRNNCell", "RNNCell"]


class _Cell(eqx.Module):
    """A baseline cell as an Equinox module: ``cell(x_t, state) -> state``.

    Args:
      input_size: input features ``d_in``.
      hidden_size: hidden size.
      key: jax.random key.
      param_dtype: parameter storage dtype (default float32).
    """

    params: dict[str, jax.Array]
    config: Any = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        key,
        param_dtype: DTypeLike = jnp.float32,
    ):
        self.config = self.config_class(input_size, hidden_size)
        self.params = self.config.init_params(key, param_dtype=param_dtype)

    def __call__(self, input: ArrayLike, state):
        """One step: ``input`` ``(..., input_size)`` -> the new state (``h_t = state.h``)."""
        return self.config.step(self.params, state, input)[0]

    def initial_state(self, batch_shape: Sequence[int] = ()):
        """Zero state with batch shape ``batch_shape``."""
        dtype = jnp.result_type(*self.params.values())
        return self.config.initial_state(batch_shape, dtype)


def _make(name: str, config_class: type) -> type:
    doc = f"The {name[:-4]} cell as an Equinox module (``hippox._src.layers.cells``).\n\n"
    doc += _Cell.__doc__.split("\n\n", 1)[1]
    return type(
        name, (_Cell,), {"config_class": config_class, "__doc__": doc, "__module__": __name__}
    )


RNNCell = _make("RNNCell", _cells.RNNConfig)
GRUCell = _make("GRUCell", _cells.GRUConfig)
LSTMCell = _make("LSTMCell", _cells.LSTMConfig)
MGUCell = _make("MGUCell", _cells.MGUConfig)
MinimalRNNCell = _make("MinimalRNNCell", _cells.MinimalRNNConfig)
ExpRNNCell = _make("ExpRNNCell", _cells.ExpRNNConfig)
