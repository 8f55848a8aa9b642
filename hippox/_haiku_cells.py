"""Haiku baseline recurrent cells (`haiku.RNNCore`): RNN, GRU, LSTM, MGU, MinimalRNN, ExpRNN.

Re-exported by ``hippox.haiku``. Thin shells over the configs of
``hippox._src.layers.cells`` (equations there): ``cell(x_t, state) -> (h_t, state)``,
usable with `haiku.dynamic_unroll`; the input size is read from the input at the first
call; parameter names are those of the Flax versions. The HiPPO variants are
`hippox.haiku.HiPPORNNCell` with `hippox.hippo_cell_options`.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> import haiku as hk
  >>> from hippox._haiku_cells import LSTMCell
  >>> def run(x):  # x (L, batch, d_in): dynamic_unroll is time-major
  ...     cell = LSTMCell(8)
  ...     return hk.dynamic_unroll(cell, x, cell.initial_state(x.shape[1]))[0]
  >>> f = hk.transform(run)
  >>> x = jnp.ones((10, 2, 3), jnp.float32)
  >>> f.apply(f.init(jax.random.key(0), x), None, x).shape
  (10, 2, 8)
"""

from __future__ import annotations

import haiku as hk
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import cells as _cells

__all__ = ["ExpRNNCell", "GRUCell", "LSTMCell", "MGUCell", "MinimalRNNCell", "RNNCell"]


class _Cell(hk.RNNCore):
    """A baseline cell as a Haiku `RNNCore`: ``(x_t, state) -> (h_t, state)``.

    Args:
      hidden_size: hidden size (``features``).
      name: module name (default: the class name in snake case).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
    """

    config_class: type
    default_name: str

    def __init__(
        self,
        hidden_size: int,
        *,
        name: str | None = None,
        param_dtype: DTypeLike = jnp.float32,
        dtype: DTypeLike | None = None,
    ):
        config = self.config_class(1, hidden_size)  # validated before Haiku's own checks
        super().__init__(name=name or self.default_name)
        self.config = config
        self.param_dtype = _validate.real_dtype(param_dtype, name="param_dtype")
        self.dtype = dtype

    def config_for(self, d_in: int):
        """The cell config for inputs with ``d_in`` features."""
        return self.config_class(d_in, self.config.features)

    def __call__(self, inputs: ArrayLike, prev_state):
        """One step: ``inputs`` ``(..., d_in)`` -> ``(h (..., hidden_size), state)``."""
        cfg = self.config_for(jnp.shape(inputs)[-1])
        params = {}
        for name, (shape, init) in cfg.param_specs().items():
            params[name] = hk.get_parameter(name, shape, self.param_dtype, init=_haiku_init(init))
        state, h = cfg.step(params, prev_state, inputs, dtype=self.dtype)
        return h, state

    def initial_state(self, batch_size: int | None):
        """Zero state for ``batch_size`` sequences (None: unbatched)."""
        batch = () if batch_size is None else (batch_size,)
        return self.config.initial_state(batch, self.param_dtype)


def _haiku_init(init):
    def wrapped(shape, dtype):
        return init(hk.next_rng_key(), shape, dtype)

    return wrapped


def _make(name: str, config_class: type, snake: str) -> type:
    doc = f"The {name[:-4]} cell as a Haiku `RNNCore` (``hippox._src.layers.cells``).\n\n"
    doc += _Cell.__doc__.split("\n\n", 1)[1]
    ns = {"config_class": config_class, "default_name": snake, "__doc__": doc}
    return type(name, (_Cell,), {**ns, "__module__": __name__})


RNNCell = _make("RNNCell", _cells.RNNConfig, "rnn_cell")
GRUCell = _make("GRUCell", _cells.GRUConfig, "gru_cell")
LSTMCell = _make("LSTMCell", _cells.LSTMConfig, "lstm_cell")
MGUCell = _make("MGUCell", _cells.MGUConfig, "mgu_cell")
MinimalRNNCell = _make("MinimalRNNCell", _cells.MinimalRNNConfig, "minimal_rnn_cell")
ExpRNNCell = _make("ExpRNNCell", _cells.ExpRNNConfig, "exp_rnn_cell")
