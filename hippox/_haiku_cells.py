"""Haiku baseline cells (`haiku.RNNCore`): RNN, GRU, LSTM, MGU, MinimalRNN, ExpRNN, Lipschitz
RNN, UnICORNN; the sequence layers `LipschitzRNN` and `UnICORNN`; and the continuous kernel
convolution `CKConv`.

Re-exported by ``hippox.haiku``. Thin shells over the configs of
``hippox._src.layers.cells`` (equations there): ``cell(x_t, state) -> (h_t, state)``,
usable with `haiku.dynamic_unroll`; the input size is read from the input at the first
call; parameter names are those of the Flax versions. The HiPPO variants are
`hippox.haiku.HiPPORNNCell` with `hippox.hippo_cell_options`. `CKConv` is a sequence
layer ``(..., L, H) -> (..., L, H)`` with the parameters of `hippox.nnx.CKConv` (no step
mode). `LipschitzRNN` / `UnICORNN` run their cell over a sequence with the calling
convention of the hippox sequence layers (``seq_lengths``, ``initial_carry``,
``return_carry``, step mode) and the parameters of `hippox.nnx.LipschitzRNN` /
`hippox.nnx.UnICORNN`.

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

import dataclasses

import haiku as hk
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


class _Cell(hk.RNNCore):
    """A baseline cell as a Haiku `RNNCore`: ``(x_t, state) -> (h_t, state)``.

    Args:
      hidden_size: hidden size (``features``).
      name: module name (default: the class name in snake case).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: keyword fields of the cell's config (e.g. ``eps``, ``solver`` of the
        Lipschitz RNN; ``n_layers``, ``dt``, ``alpha`` of UnICORNN).
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
        **options,
    ):
        config = self.config_class(1, hidden_size, **options)  # validated before Haiku's checks
        super().__init__(name=name or self.default_name)
        self.config = config
        self.param_dtype = _validate.real_dtype(param_dtype, name="param_dtype")
        self.dtype = dtype

    def config_for(self, d_in: int):
        """The cell config for inputs with ``d_in`` features."""
        return dataclasses.replace(self.config, d_in=d_in)

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
LipschitzRNNCell = _make("LipschitzRNNCell", _lipschitz.LipschitzRNNConfig, "lipschitz_rnn_cell")
UnICORNNCell = _make("UnICORNNCell", _unicornn.UnICORNNConfig, "unicornn_cell")


class _RecurrentLayer(hk.Module):
    """A recurrent cell over a sequence (Haiku): ``(..., L, in_features) -> (..., L, hidden)``.

    Runs the cell with `jax.lax.scan` under the calling convention of the hippox sequence
    layers and their step API (``initialize_carry``, ``setup_step``, ``step``); the
    parameters have the names and shapes of the NNX, linen and Equinox layers.

    Args:
      in_features: input features ``d_in``.
      hidden_features: hidden size.
      name: module name (default: the class name in snake case).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: keyword fields of the cell's config.
    """

    config_class: type
    default_name: str

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        name: str | None = None,
        param_dtype: DTypeLike = jnp.float32,
        dtype: DTypeLike | None = None,
        **options,
    ):
        config = self.config_class(in_features, hidden_features, **options)
        super().__init__(name=name or self.default_name)
        self.config = config
        self.param_dtype = _validate.real_dtype(param_dtype, name="param_dtype")
        self.dtype = None if dtype is None else jnp.dtype(dtype)

    def cell_params(self) -> dict[str, jax.Array]:
        """The parameters (created at init) as a flat ``{name: array}`` dict."""
        return {
            name: hk.get_parameter(name, shape, self.param_dtype, init=_haiku_init(init))
            for name, (shape, init) in self.config.param_specs().items()
        }

    def __call__(
        self,
        x: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
    ):
        """The cell scanned over ``x`` ``(..., L, in_features)``.

        Args:
          x: ``(..., L, in_features)`` real input.
          seq_lengths: ``(...)`` ints in ``[0, L]`` (None: all valid); padding positions
            leave the carry untouched and output zeros.
          initial_carry: the carry to start from (from `initialize_carry`, `step` or a
            call with ``return_carry=True``), or None (zeros).
          return_carry: also return the carry after each sequence's last valid step.

        Returns:
          ``(..., L, hidden)``, or ``(carry, outputs)``.
        """
        return _lipschitz.call_recurrent_layer(
            self.config,
            self.cell_params(),
            x,
            param_dtype=self.param_dtype,
            dtype=self.dtype,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
        )

    def initialize_carry(self, batch_shape=()):
        """Zero carry with batch shape ``batch_shape``."""
        return self.config.initial_state(batch_shape, self.param_dtype)

    def setup_step(self) -> dict[str, jax.Array]:
        """Step parameters (the weights)."""
        return self.cell_params()

    def step(self, carry, u_k: ArrayLike, step_params=None):
        """One step: ``u_k`` ``(..., in_features)`` -> ``(carry, y_k (..., hidden))``."""
        sp = self.cell_params() if step_params is None else step_params
        return self.config.step(sp, carry, u_k, dtype=self.dtype)


def _make_layer(name: str, config_class: type, snake: str, what: str) -> type:
    doc = f"{what} over a sequence (Haiku); see the cell's config.\n\n"
    doc += _RecurrentLayer.__doc__.split("\n\n", 1)[1]
    ns = {"config_class": config_class, "default_name": snake, "__doc__": doc}
    return type(name, (_RecurrentLayer,), {**ns, "__module__": __name__})


LipschitzRNN = _make_layer(
    "LipschitzRNN", _lipschitz.LipschitzRNNConfig, "lipschitz_rnn", "The Lipschitz RNN"
)
UnICORNN = _make_layer("UnICORNN", _unicornn.UnICORNNConfig, "unicornn", "The stacked UnICORNN")


class _ConvLayer(hk.Module):
    """Shared plumbing of `CKConv` and `CKBlock` (Haiku)."""

    config_class: type
    default_name: str

    def __init__(
        self,
        H: int,
        *,
        name: str | None = None,
        param_dtype: DTypeLike = jnp.float32,
        dtype: DTypeLike | None = None,
        **options,
    ):
        config = self.config_class(H, **options)
        super().__init__(name=name or self.default_name)
        self.config = config
        self.param_dtype = _validate.real_dtype(param_dtype, name="param_dtype")
        self.dtype = None if dtype is None else jnp.dtype(dtype)

    def conv_params(self) -> dict[str, jax.Array]:
        """The parameters (created at init) as a flat ``{name: array}`` dict."""
        return {
            name: hk.get_parameter(name, shape, self.param_dtype, init=_haiku_init(init))
            for name, (shape, init) in self.config.param_specs().items()
        }

    def __call__(
        self,
        u: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
        step_rescale=1.0,
        is_training: bool = False,
    ):
        """``u`` ``(..., L, H)`` -> ``(..., L, H)``; arguments of `hippox.nnx.CKConv`.

        ``is_training=True`` turns dropout on (keys from `haiku.next_rng_key`).
        """
        _ckconv.check_no_carry(initial_carry, return_carry)
        key = None
        rates = (getattr(self.config, "dropout", 0.0), self.config.weight_dropout)
        if _validate.check_bool("is_training", is_training) and max(rates) > 0:
            key = hk.next_rng_key()
        return self.config.apply(
            self.conv_params(),
            u,
            dtype=self.dtype,
            seq_lengths=seq_lengths,
            step_rescale=step_rescale,
            dropout_key=key,
        )


class CKConv(_ConvLayer):
    """The continuous kernel convolution (Haiku): ``(..., L, H) -> (..., L, H)``.

    `hippox._src.layers.ckconv.CKConvConfig` (equations there); no step mode. Kernel
    dropout acts with ``is_training=True``.

    Args:
      H: channels.
      name: module name (default ``'ckconv'``).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: ``hidden``, ``activation``, ``omega_0``, ``norm``, ``bias``, ``l_max``,
        ``weight_dropout``, ``smoothing_sigma``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import haiku as hk
      >>> from hippox._haiku_cells import CKConv
      >>> f = hk.transform(lambda u: CKConv(4, hidden=16, l_max=32)(u))
      >>> u = jnp.ones((2, 32, 4), jnp.float32)
      >>> f.apply(f.init(jax.random.key(0), u), None, u).shape
      (2, 32, 4)
    """

    config_class = _ckconv.CKConvConfig
    default_name = "ckconv"


class CKBlock(_ConvLayer):
    """The reference's CKConv residual block (Haiku): ``(..., L, H) -> (..., L, H)``.

    `hippox._src.layers.ckconv.CKBlockConfig` (equations there); no step mode. Dropout
    and kernel dropout act with ``is_training=True``.

    Args:
      H: channels.
      name: module name (default ``'ck_block'``).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: ``dropout`` and the CKConv options of `CKBlockConfig`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import haiku as hk
      >>> from hippox._haiku_cells import CKBlock
      >>> f = hk.transform(lambda u: CKBlock(4, hidden=8, l_max=16)(u, is_training=True))
      >>> u = jnp.ones((2, 16, 4), jnp.float32)
      >>> f.apply(f.init(jax.random.key(0), u), jax.random.key(1), u).shape
      (2, 16, 4)
    """

    config_class = _ckconv.CKBlockConfig
    default_name = "ck_block"
