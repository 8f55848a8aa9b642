"""Flax linen baseline cells and layers: RNN, GRU, LSTM, MGU, MinimalRNN, ExpRNN, Lipschitz
RNN, UnICORNN (cells), and the sequence layers `LipschitzRNN`, `UnICORNN`, `CKConv`,
`CKBlock`.

Thin shells over the configs of ``hippox._src.layers.cells`` (equations there). Each
cell follows the linen cell protocol (``cell(carry, x) -> (carry, y)``,
``initialize_carry(rng, input_shape)``, ``num_feature_axes``; the input size is read
from the input, as for `flax.linen.SimpleCell`) and runs under `flax.linen.RNN`; the
``params`` collection holds the leaves of the NNX, Haiku and Equinox versions. The
HiPPO variants are `hippox.linen.HiPPORNNCell` with `hippox.hippo_cell_options`.
The sequence layers `LipschitzRNN`, `UnICORNN`, `CKConv` and `CKBlock` (no step mode)
have the parameters and the calling convention of the `hippox.nnx` versions.

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
from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.typing import ArrayLike

from hippox._src import _validate
from hippox._src.layers import cells as _cells
from hippox._src.layers import ckconv as _ckconv
from hippox._src.layers import lipschitz as _lipschitz
from hippox._src.layers import unicornn as _unicornn
from hippox.linen._config import ConfigModule

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


class LipschitzRNNCell(_Cell, omit=("d_in",), rename={"init": "weight_init"}):
    """The Lipschitz RNN cell (linen); see ``hippox._src.layers.lipschitz``.

    The config's ``init`` is the field ``weight_init`` (``init`` is linen's method).
    """

    config_class: ClassVar[type] = _lipschitz.LipschitzRNNConfig


class UnICORNNCell(_Cell, omit=("d_in",)):
    """The stacked UnICORNN cell (linen; carry ``(y, z)``); see ``hippox._src.layers.unicornn``."""

    config_class: ClassVar[type] = _unicornn.UnICORNNConfig


class _RecurrentLayer(ConfigModule):
    """A cell over a sequence (linen): ``(..., L, in_features) -> (..., L, features)``.

    Parameters (flat, the names of the cell) are created in ``setup``, so the step API
    works without a first call (as `hippox.linen.HiPPORNN`). The call arguments are
    those of `hippox.nnx.LipschitzRNN.__call__`.
    """

    def setup(self):
        pd = _validate.real_dtype(self.param_dtype, name="param_dtype")
        self._leaves = {
            name: self.param(name, init, shape, pd)
            for name, (shape, init) in self.config.param_specs().items()
        }

    def cell_params(self) -> dict[str, jax.Array]:
        """The parameters as a flat ``{name: array}`` dict."""
        return dict(self._leaves)

    def __call__(
        self,
        x: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
    ):
        """``x`` ``(..., L, in_features)`` -> ``(..., L, features)`` (or ``(carry, y)``)."""
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

    @nn.nowrap
    def initialize_carry(self, batch_shape: Sequence[int] = ()):
        """Zero carry with batch shape ``batch_shape`` (callable on an unbound module)."""
        return self.config.initial_state(batch_shape, self.param_dtype)

    def setup_step(self) -> dict[str, jax.Array]:
        """Step parameters (the weights)."""
        return self.cell_params()

    def step(self, carry, u_k: ArrayLike, step_params=None):
        """One step: ``u_k`` ``(..., in_features)`` -> ``(carry, y_k (..., features))``."""
        sp = self.cell_params() if step_params is None else step_params
        return self.config.step(sp, carry, u_k, dtype=self.dtype)


class LipschitzRNN(_RecurrentLayer, rename={"d_in": "in_features", "init": "weight_init"}):
    """The Lipschitz RNN over a sequence (linen); fields those of
    `hippox._src.layers.lipschitz.LipschitzRNNConfig` (``d_in`` named ``in_features``),
    plus ``dtype``, ``param_dtype``.

    The config's ``init`` is the field ``weight_init`` (``init`` is linen's method).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from hippox.linen.cells import LipschitzRNN
      >>> layer = LipschitzRNN(in_features=3, features=8)
      >>> x = jnp.ones((2, 16, 3), jnp.float32)
      >>> layer.apply(layer.init(jax.random.key(0), x), x).shape
      (2, 16, 8)
    """

    config_class: ClassVar[type] = _lipschitz.LipschitzRNNConfig


class UnICORNN(_RecurrentLayer, rename={"d_in": "in_features"}):
    """The stacked UnICORNN over a sequence (linen); fields those of
    `hippox._src.layers.unicornn.UnICORNNConfig` (``d_in`` named ``in_features``), plus
    ``dtype``, ``param_dtype``."""

    config_class: ClassVar[type] = _unicornn.UnICORNNConfig


class _ConvLayer(ConfigModule):
    """Shared plumbing of `CKConv` and `CKBlock` (linen)."""

    def setup(self):
        pd = _validate.real_dtype(self.param_dtype, name="param_dtype")
        self._leaves = {
            name: self.param(name, init, shape, pd)
            for name, (shape, init) in self.config.param_specs().items()
        }

    def conv_params(self) -> dict[str, jax.Array]:
        """The parameters as a flat ``{name: array}`` dict."""
        return dict(self._leaves)

    def __call__(
        self,
        u: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
        step_rescale=1.0,
        deterministic: bool = True,
        dropout_key=None,
    ):
        """``u`` ``(..., L, H)`` -> ``(..., L, H)``.

        ``deterministic=False`` turns dropout on, with ``dropout_key`` or a key from the
        ``'dropout'`` rng collection (``apply(..., rngs={'dropout': key})``).
        """
        _ckconv.check_no_carry(initial_carry, return_carry)
        key = None
        rates = (getattr(self.config, "dropout", 0.0), self.config.weight_dropout)
        if not _validate.check_bool("deterministic", deterministic) and max(rates) > 0:
            key = self.make_rng("dropout") if dropout_key is None else dropout_key
        return self.config.apply(
            self.conv_params(),
            u,
            dtype=self.dtype,
            seq_lengths=seq_lengths,
            step_rescale=step_rescale,
            dropout_key=key,
        )


class CKConv(_ConvLayer):
    """The continuous kernel convolution (linen): ``(..., L, H) -> (..., L, H)``.

    Fields: those of `hippox._src.layers.ckconv.CKConvConfig` (``H``, ``hidden``,
    ``activation``, ``omega_0``, ``norm``, ``bias``, ``l_max``, ``weight_dropout``,
    ``smoothing_sigma``),
    ``dtype``, ``param_dtype``; the call arguments are those of
    `hippox.nnx.CKConv.__call__` (no step mode, no carry), with ``deterministic``
    defaulting to True (no dropout).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from hippox.linen.cells import CKConv
      >>> layer = CKConv(H=4, hidden=16, l_max=32)
      >>> u = jnp.ones((2, 32, 4), jnp.float32)
      >>> layer.apply(layer.init(jax.random.key(0), u), u).shape
      (2, 32, 4)
    """

    config_class: ClassVar[type] = _ckconv.CKConvConfig


class CKBlock(_ConvLayer):
    """The reference's CKConv residual block (linen): ``(..., L, H) -> (..., L, H)``.

    Fields: those of `hippox._src.layers.ckconv.CKBlockConfig` (``H``, ``dropout`` and
    the CKConv options), ``dtype``, ``param_dtype``; the call arguments are those of
    `hippox.nnx.CKBlock.__call__`, with ``deterministic`` defaulting to True (no
    dropout; pass False and a ``'dropout'`` rng to train with it).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from hippox.linen.cells import CKBlock
      >>> block = CKBlock(H=4, hidden=8, l_max=16)
      >>> u = jnp.ones((2, 16, 4), jnp.float32)
      >>> v = block.init(jax.random.key(0), u)
      >>> block.apply(v, u, deterministic=False, rngs={"dropout": jax.random.key(1)}).shape
      (2, 16, 4)
    """

    config_class: ClassVar[type] = _ckconv.CKBlockConfig
