"""Equinox baseline cells: RNN, GRU, LSTM, MGU, MinimalRNN, ExpRNN, Lipschitz RNN, UnICORNN;
the sequence layers `LipschitzRNN` and `UnICORNN`; and the continuous kernel convolution
`CKConv`.

Re-exported by ``hippox.equinox``. Thin shells over the configs of
``hippox._src.layers.cells`` (equations there), in the Equinox cell convention
``cell(x_t, state) -> state`` (one unbatched example; batch with `jax.vmap`); the
output ``h_t`` is ``state.h``. Parameters live in ``params`` (the names and shapes of
the Flax and Haiku versions), the config is static. The HiPPO variants are
`hippox.equinox.HiPPORNNCell` with `hippox.hippo_cell_options`. `CKConv` maps
``(..., L, H) -> (..., L, H)`` with the parameters of `hippox.nnx.CKConv` (no step mode).
`LipschitzRNN` / `UnICORNN` run their cell over a sequence with the calling convention of
the hippox sequence layers (``seq_lengths``, ``initial_carry``, ``return_carry``, step
mode) and the parameters of `hippox.nnx.LipschitzRNN` / `hippox.nnx.UnICORNN`.

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

from hippox._src import _validate
from hippox._src.layers import cells as _cells
from hippox._src.layers import ckconv as _ckconv
from hippox._src.layers import lipschitz as _lipschitz
from hippox._src.layers import unicornn as _unicornn

__all__ = [
    "CKBlock",
    "CKConv",
    "ExpRNNCell",
    "GRUCell",
    "LSTMCell",
    "LipschitzRNN",
    "LipschitzRNNCell",
    "MGUCell",
    "MinimalRNNCell",
    "RNNCell",
    "UnICORNN",
    "UnICORNNCell",
]


class _Cell(eqx.Module):
    """A baseline cell as an Equinox module: ``cell(x_t, state) -> state``.

    Args:
      input_size: input features ``d_in``.
      hidden_size: hidden size.
      key: jax.random key.
      param_dtype: parameter storage dtype (default float32).
      **options: keyword fields of the cell's config (e.g. ``eps``, ``solver`` of the
        Lipschitz RNN; ``n_layers``, ``dt``, ``alpha`` of UnICORNN).
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
        **options,
    ):
        self.config = self.config_class(input_size, hidden_size, **options)
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
LipschitzRNNCell = _make("LipschitzRNNCell", _lipschitz.LipschitzRNNConfig)
UnICORNNCell = _make("UnICORNNCell", _unicornn.UnICORNNConfig)


class _RecurrentLayer(eqx.Module):
    """A recurrent cell over a sequence (Equinox): ``(..., L, in_features) -> (..., L, hidden)``.

    Runs the cell with `jax.lax.scan` under the calling convention of the hippox sequence
    layers and their step API (``initialize_carry``, ``setup_step``, ``step``). Parameters
    live in ``params`` (the names and shapes of the NNX, linen and Haiku layers), the
    config is static. Leading batch axes are allowed (no `jax.vmap` needed).

    Args:
      in_features: input features ``d_in``.
      hidden_features: hidden size.
      key: jax.random key.
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: keyword fields of the cell's config.
    """

    params: dict[str, jax.Array]
    config: Any = eqx.field(static=True)
    dtype: Any = eqx.field(static=True, default=None)

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        key,
        param_dtype: DTypeLike = jnp.float32,
        dtype: DTypeLike | None = None,
        **options,
    ):
        self.config = self.config_class(in_features, hidden_features, **options)
        self.params = self.config.init_params(key, param_dtype=param_dtype)
        self.dtype = None if dtype is None else jnp.dtype(dtype)

    def _param_dtype(self):
        return jnp.result_type(*self.params.values())

    def __call__(
        self,
        x: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
        key=None,
    ):
        """The cell scanned over ``x`` ``(..., L, in_features)``.

        Args:
          x: ``(..., L, in_features)`` real input.
          seq_lengths: ``(...)`` ints in ``[0, L]`` (None: all valid); padding positions
            leave the carry untouched and output zeros.
          initial_carry: the carry to start from (from `initialize_carry`, `step` or a
            call with ``return_carry=True``), or None (zeros).
          return_carry: also return the carry after each sequence's last valid step.
          key: unused (accepted for `equinox.nn.Sequential`).

        Returns:
          ``(..., L, hidden)``, or ``(carry, outputs)``.
        """
        del key
        return _lipschitz.call_recurrent_layer(
            self.config,
            self.params,
            x,
            param_dtype=self._param_dtype(),
            dtype=self.dtype,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
        )

    def initialize_carry(self, batch_shape: Sequence[int] = ()):
        """Zero carry with batch shape ``batch_shape``."""
        return self.config.initial_state(batch_shape, self._param_dtype())

    def setup_step(self) -> dict[str, jax.Array]:
        """Step parameters (the weights)."""
        return self.params

    def step(self, carry, u_k: ArrayLike, step_params=None):
        """One step: ``u_k`` ``(..., in_features)`` -> ``(carry, y_k (..., hidden))``."""
        sp = self.params if step_params is None else step_params
        return self.config.step(sp, carry, u_k, dtype=self.dtype)


def _make_layer(name: str, config_class: type, what: str) -> type:
    doc = f"{what} over a sequence (Equinox); see the cell's config.\n\n"
    doc += _RecurrentLayer.__doc__.split("\n\n", 1)[1]
    ns = {"config_class": config_class, "__doc__": doc, "__module__": __name__}
    return type(name, (_RecurrentLayer,), ns)


LipschitzRNN = _make_layer("LipschitzRNN", _lipschitz.LipschitzRNNConfig, "The Lipschitz RNN")
UnICORNN = _make_layer("UnICORNN", _unicornn.UnICORNNConfig, "The stacked UnICORNN")


class _ConvLayer(eqx.Module):
    """Shared plumbing of `CKConv` and `CKBlock` (Equinox)."""

    params: dict[str, jax.Array]
    config: Any = eqx.field(static=True)

    def __init__(self, H: int, *, key, param_dtype: DTypeLike = jnp.float32, **options):
        self.config = self.config_class(H, **options)
        self.params = self.config.init_params(key, param_dtype=param_dtype)

    def __call__(
        self,
        u: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
        step_rescale=1.0,
        key=None,
        inference: bool = False,
    ):
        """``u`` ``(..., L, H)`` -> ``(..., L, H)``; arguments of `hippox.nnx.CKConv`.

        Dropout acts when a ``key`` is given and ``inference`` is False (the
        `equinox.nn.Dropout` convention; no key: no dropout).
        """
        _ckconv.check_no_carry(initial_carry, return_carry)
        if _validate.check_bool("inference", inference):
            key = None
        return self.config.apply(
            self.params, u, seq_lengths=seq_lengths, step_rescale=step_rescale, dropout_key=key
        )


class CKConv(_ConvLayer):
    """The continuous kernel convolution (Equinox): ``(..., L, H) -> (..., L, H)``.

    `hippox._src.layers.ckconv.CKConvConfig` (equations there); no step mode.
    Parameters live in ``params`` (the names of the other frameworks), the config is
    static. Kernel dropout acts when a ``key`` is passed.

    Args:
      H: channels.
      key: jax.random key.
      param_dtype: parameter storage dtype (default float32).
      **options: ``hidden``, ``activation``, ``omega_0``, ``norm``, ``bias``, ``l_max``,
        ``weight_dropout``, ``smoothing_sigma``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from hippox._equinox_cells import CKConv
      >>> layer = CKConv(4, hidden=16, l_max=32, key=jax.random.key(0))
      >>> layer(jnp.ones((32, 4), jnp.float32)).shape
      (32, 4)
    """

    config_class = _ckconv.CKConvConfig


class CKBlock(_ConvLayer):
    """The reference's CKConv residual block (Equinox): ``(..., L, H) -> (..., L, H)``.

    `hippox._src.layers.ckconv.CKBlockConfig` (equations there); no step mode.
    Parameters live in ``params`` (the names of the other frameworks), the config is
    static. Dropout and kernel dropout act when a ``key`` is passed.

    Args:
      H: channels.
      key: jax.random key.
      param_dtype: parameter storage dtype (default float32).
      **options: ``dropout`` and the CKConv options of `CKBlockConfig`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from hippox._equinox_cells import CKBlock
      >>> block = CKBlock(4, hidden=8, l_max=16, key=jax.random.key(0))
      >>> block(jnp.ones((16, 4), jnp.float32), key=jax.random.key(1)).shape
      (16, 4)
    """

    config_class = _ckconv.CKBlockConfig
