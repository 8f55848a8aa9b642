"""Flax NNX HiPPO-RNN: the cell (`HiPPORNNCell`) and a sequence layer (`HiPPORNN`).

Thin shells over `hippox.HiPPORNNConfig` (equations in `hippox._src.layers.rnn`): parameters
are `flax.nnx.Param` attributes ``W_u``, ``b_u``, ``W_h``, ``b_h`` (and ``W_g``,
``b_g`` when gated), with the names and shapes of the `hippox.linen`, `hippox.haiku`
and `hippox.equinox` versions, so a parameter tree copies across frameworks.

`HiPPORNNCell` follows the Flax cell protocol (``cell(carry, x) -> (carry, y)``,
``initialize_carry(input_shape, rngs)``, ``num_feature_axes``) and runs under
`flax.nnx.RNN`. `HiPPORNN` maps a whole sequence ``(..., L, in_features)`` to
``(..., L, hidden_features)`` and offers the step API of the hippox SSM layers
(``initialize_carry``, ``setup_step``, ``step``), so it can be a `SequenceModel` block.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers.backbone import call_layer, output_dtype, step_layer
from hippox._src.layers.rnn import HiPPORNNConfig, HiPPORNNState

__all__ = ["HiPPORNN", "HiPPORNNCell"]


class _HiPPORNNParams:
    """Constructor and parameter access shared by `HiPPORNNCell` and `HiPPORNN`."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
        **options,
    ):
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"`rngs` must be a flax.nnx.Rngs, got {type(rngs).__name__}.")
        self.config = HiPPORNNConfig(in_features, hidden_features, **options)
        self.dtype = output_dtype(dtype)
        self.param_dtype = _validate.real_dtype(param_dtype, name="param_dtype")
        for name, (shape, init) in self.config.param_specs().items():
            setattr(self, name, nnx.Param(init(rngs.params(), shape, self.param_dtype)))

    def rnn_params(self) -> dict[str, jax.Array]:
        """The parameters as a flat ``{name: array}`` dict (the pure core's input)."""
        return {name: getattr(self, name)[...] for name in self.config.param_shapes()}


class HiPPORNNCell(_HiPPORNNParams, nnx.RNNCellBase):
    """The HiPPO-RNN cell (NNX): ``(carry, x_t) -> (carry, h_t)``.

    Args:
      in_features: input features ``d_in``.
      hidden_features: hidden size.
      **options: the keyword fields of `hippox.HiPPORNNConfig`: ``memory_size`` (number
        F of memory channels), ``N`` (memory order), ``measure`` (``legs``:
        scale-invariant, ``O(N)`` per step; or a time-invariant measure such as
        ``legt``, ``lmu``, ``lagt``, ``glagt``), ``method`` (`hippox.hippo_memory`),
        ``dt`` (step of a time-invariant memory), ``gate``, the wiring flags, ``init``,
        ``schedule``, ``measure_params``.
      dtype: output dtype (None: the input's).
      param_dtype: parameter storage dtype (default float32).
      rngs: `flax.nnx.Rngs` with a ``params`` stream.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from hippox.nnx import HiPPORNNCell
      >>> cell = HiPPORNNCell(3, 8, N=16, rngs=nnx.Rngs(0))
      >>> h = nnx.RNN(cell)(jnp.ones((2, 10, 3), jnp.float32))  # (batch, time, features)
      >>> h.shape
      (2, 10, 8)
      >>> carry = cell.initialize_carry((2, 3))
      >>> carry, h0 = cell(carry, jnp.ones((2, 3), jnp.float32))
      >>> bool(jnp.allclose(h0, h[:, 0], atol=1e-6))
      True
    """

    def __call__(self, carry: HiPPORNNState, inputs: ArrayLike):
        """One step: ``inputs`` ``(..., in_features)`` -> ``(carry, h (..., hidden_features))``."""
        return self.config.step(self.rnn_params(), carry, inputs, dtype=self.dtype)

    def initialize_carry(self, input_shape: tuple[int, ...], rngs=None, carry_init=None):
        """Zero carry for inputs of shape ``(*batch, in_features)``.

        Args:
          input_shape: shape of one step's input; all but the last axis are batch.
          rngs: unused unless ``carry_init`` is given (`flax.nnx.Rngs` or a stream).
          carry_init: optional initializer of the hidden state ``h`` only (the memory
            always starts at zero and the step counter at 0).

        Returns:
          `hippox.HiPPORNNState`.
        """
        input_shape = tuple(input_shape)
        if len(input_shape) < 1 or input_shape[-1] != self.config.d_in:
            raise ValueError(f"`input_shape` must be (..., {self.config.d_in}), got {input_shape}.")
        state = self.config.initial_state(input_shape[:-1], self.param_dtype)
        if carry_init is None:
            return state
        if rngs is None:
            raise ValueError("`rngs` must be given with `carry_init`, got None.")
        key = rngs.carry() if isinstance(rngs, nnx.Rngs) else rngs()
        h = carry_init(key, state.h.shape, state.h.dtype)
        return state._replace(h=jnp.asarray(h, state.h.dtype))

    @property
    def num_feature_axes(self) -> int:
        return 1


class HiPPORNN(_HiPPORNNParams, nnx.Module):
    """The HiPPO-RNN over a sequence (NNX): ``(..., L, in_features) -> (..., L, hidden)``.

    Same arguments and parameters as `HiPPORNNCell`; runs the cell with
    `jax.lax.scan`, with the calling convention of the hippox sequence layers
    (``layer(x, *, seq_lengths=None, initial_carry=None, return_carry=False)``, see
    `hippox.nnx.S4D`). Step mode (for `SequenceModel.step`)::

        carry = layer.initialize_carry(batch_shape)
        carry, y_k = layer.step(carry, u_k)          # u_k (batch..., in_features)

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from hippox.nnx import HiPPORNN
      >>> layer = HiPPORNN(4, 4, N=8, measure="legt", rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((2, 16, 4), jnp.float32)).shape
      (2, 16, 4)
    """

    def __call__(
        self,
        x: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry: HiPPORNNState | None = None,
        return_carry: bool = False,
    ):
        """The cell scanned over a sequence.

        Args:
          x: ``(..., L, in_features)`` real input.
          seq_lengths: ``(...)`` ints in ``[0, L]`` (None: all valid); padding positions
            leave the carry untouched and output zeros.
          initial_carry: `hippox.HiPPORNNState` to start from (from `initialize_carry`,
            `step` or a call with ``return_carry=True``), or None (zeros).
          return_carry: also return the carry after each sequence's last valid step.

        Returns:
          hidden states ``(..., L, hidden_features)``, or ``(carry, hidden states)``.
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

    def initialize_carry(self, batch_shape: Sequence[int] = ()) -> HiPPORNNState:
        """Zero carry with batch shape ``batch_shape``."""
        return self.config.initial_state(batch_shape, self.param_dtype)

    def setup_step(self) -> dict[str, jax.Array]:
        """Step parameters (the weights; nothing to precompute)."""
        return self.rnn_params()

    def step(self, carry: HiPPORNNState, u_k: ArrayLike, step_params=None):
        """One step: ``u_k`` ``(..., in_features)`` -> ``(carry, y_k (..., hidden))``."""
        sp = self.rnn_params() if step_params is None else step_params
        return step_layer(
            self.config, sp, carry, u_k, param_dtype=self.param_dtype, dtype=self.dtype
        )
