"""Equinox modules built from hippox initializers and pure functions (``import hippox.equinox``).

hippox initializers already have the ``init(key, shape, dtype)`` signature Equinox
modules use in their constructors, so no adapter is needed. The modules store their
parameters in a flat ``params`` dict (the names and shapes of the Flax and Haiku
versions) and a static config, and run the same pure code
(`hippox.S4DConfig.apply`, `hippox.HiPPORNNConfig.step`):

* `S4D`: ``(..., L, H) -> (..., L, H)``;
* `HiPPORNNCell`: ``cell(x_t, state) -> state`` (the Equinox cell convention, as
  `equinox.nn.GRUCell`); the output ``h_t`` is ``state.h``.

To load parameters from elsewhere (e.g. a Flax layer)::

    model = eqx.tree_at(lambda m: m.params, model, new_params)

Examples:
  >>> import jax, jax.numpy as jnp
  >>> import hippox.equinox
  >>> layer = hippox.equinox.S4D(4, 8, key=jax.random.key(0))
  >>> layer(jnp.ones((2, 16, 4), jnp.float32)).shape
  (2, 16, 4)
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from hippox._src.layers.rnn import HiPPORNNConfig, HiPPORNNState
from hippox._src.layers.s4d import S4DConfig

__all__ = ["HiPPORNNCell", "S4D"]


class S4D(eqx.Module):
    """The S4D layer as an Equinox module: ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``.

    Args:
      H: channels.
      N: state size of the real system (even).
      key: jax.random key (split once per parameter).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: the keyword fields of `hippox.S4DConfig` (``ssm_init``, ``disc``,
        ``conj_sym``, ``n_ssm``, ``b_init``, ``lambda_transform``, ``real_scale``,
        ``imag_scale``, ``dt_min``, ``dt_max``, ``bidirectional``).

    Attributes:
      params: ``{name: array}``, the leaves of `hippox.S4DConfig.param_shapes`.
      config: the static `hippox.S4DConfig`.
    """

    params: dict[str, jax.Array]
    config: S4DConfig = eqx.field(static=True)
    dtype: object = eqx.field(static=True, default=None)

    def __init__(
        self,
        H: int,
        N: int = 64,
        *,
        key,
        param_dtype: DTypeLike = jnp.float32,
        dtype: DTypeLike | None = None,
        **options,
    ):
        self.config = S4DConfig(H, N, **options)
        self.params = self.config.init_params(key, param_dtype=param_dtype)
        self.dtype = None if dtype is None else jnp.dtype(dtype)

    def __call__(self, u: ArrayLike) -> jax.Array:
        """``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)`` (convolution mode)."""
        return self.config.apply(self.params, u, dtype=self.dtype)

    def initialize_carry(self, batch_shape: Sequence[int] = ()) -> jax.Array:
        """Zero step-mode state ``(*batch_shape, H, M)`` (complex)."""
        pd = jnp.result_type(*self.params.values())
        return self.config.initial_state(batch_shape, pd)

    def step(self, carry: ArrayLike, u_k: ArrayLike):
        """One recurrent step: ``u_k`` ``(..., H)`` -> ``(carry, y_k (..., H))``."""
        sp = self.config.step_params(self.params)
        return self.config.step(sp, carry, u_k, dtype=self.dtype)


class HiPPORNNCell(eqx.Module):
    """The HiPPO-RNN cell as an Equinox module: ``cell(x_t, state) -> state``.

    Args:
      input_size: input features ``d_in``.
      hidden_size: hidden size.
      key: jax.random key.
      param_dtype: parameter storage dtype (default float32).
      **options: the keyword fields of `hippox.HiPPORNNConfig` (``memory_size``,
        ``N``, ``measure``, ``method``, ``dt``, ``gated``, ``measure_params``).

    Attributes:
      params: ``{name: array}`` (``W_u``, ``b_u``, ``W_h``, ``b_h``, and ``W_g``, ``b_g``
        when gated).
      config: the static `hippox.HiPPORNNConfig`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import hippox.equinox
      >>> cell = hippox.equinox.HiPPORNNCell(3, 8, N=16, key=jax.random.key(0))
      >>> x = jnp.ones((10, 3), jnp.float32)
      >>> final, states = jax.lax.scan(lambda s, x_t: (cell(x_t, s),) * 2,
      ...                              cell.initial_state(), x)
      >>> states.h.shape, int(final.t)
      ((10, 8), 10)
    """

    params: dict[str, jax.Array]
    config: HiPPORNNConfig = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        key,
        param_dtype: DTypeLike = jnp.float32,
        **options,
    ):
        self.config = HiPPORNNConfig(input_size, hidden_size, **options)
        self.params = self.config.init_params(key, param_dtype=param_dtype)

    def __call__(self, input: ArrayLike, state: HiPPORNNState) -> HiPPORNNState:
        """One step: ``input`` ``(..., input_size)`` -> the new state (``h_t = state.h``)."""
        return self.config.step(self.params, state, input)[0]

    def initial_state(self, batch_shape: Sequence[int] = ()) -> HiPPORNNState:
        """Zero state with batch shape ``batch_shape``."""
        pd = jnp.result_type(*self.params.values())
        return self.config.initial_state(batch_shape, pd)
