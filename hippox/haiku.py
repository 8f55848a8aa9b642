"""Haiku modules built from hippox initializers and pure functions (``import hippox.haiku``).

hippox initializers follow the `jax.nn.initializers` protocol ``init(key, shape,
dtype)``; Haiku initializers are ``init(shape, dtype)`` and draw keys from the
transform's rng. `to_haiku` is the one-line adapter between the two. The modules here
create their parameters with it and run the same pure code as the Flax layers
(`hippox.S4DConfig.apply`, `hippox.HiPPORNNConfig.step`), so the same parameter values
give the same outputs in Haiku, Flax and Equinox:

* `S4D`: the S4D layer, parameters ``Lambda_re``, ``Lambda_im``, ``B``, ``C``, ``D``,
  ``log_dt`` (`hippox.S4DConfig`), ``(..., L, H) -> (..., L, H)``;
* `HiPPORNNCell`: the HiPPO-RNN cell as an `haiku.RNNCore`
  (``cell(x_t, state) -> (h_t, state)``, usable with `haiku.dynamic_unroll`),
  parameters ``W_u``, ``b_u``, ``W_h``, ``b_h`` (``W_g``, ``b_g`` when gated).

Examples:
  >>> import jax, jax.numpy as jnp
  >>> import haiku as hk
  >>> import hippox.haiku
  >>> model = hk.transform(lambda u: hippox.haiku.S4D(4, 8)(u))
  >>> u = jnp.ones((2, 16, 4), jnp.float32)
  >>> params = model.init(jax.random.key(0), u)
  >>> sorted(params["s4d"])
  ['B', 'C', 'D', 'Lambda_im', 'Lambda_re', 'log_dt']
  >>> model.apply(params, None, u).shape
  (2, 16, 4)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers.rnn import HiPPORNNConfig, HiPPORNNState
from hippox._src.layers.s4d import S4DConfig

__all__ = ["HiPPORNNCell", "S4D", "to_haiku"]


def to_haiku(init: Callable) -> Callable:
    """Adapts an initializer ``init(key, shape, dtype)`` to Haiku's ``init(shape, dtype)``.

    The key comes from `haiku.maybe_next_rng_key`: inside ``transform(...).init(rng,
    ...)`` each parameter gets the next key of ``rng``. Without an rng
    (``init(None, ...)``) the key is None: deterministic hippox initializers (HiPPO
    spectra, ``B``, ``D('ones')``) accept ``key=None`` and still work, random ones
    (``C``, ``log_dt``, ...) refuse it with a ValueError that says so, instead of
    Haiku's generic missing-rng error.

    Args:
      init: any ``init(key, shape, dtype=None)`` (`hippox.initializers`,
        `jax.nn.initializers`).

    Returns:
      ``haiku_init(shape, dtype)`` for `haiku.get_parameter`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import haiku as hk
      >>> from hippox import initializers
      >>> from hippox.haiku import to_haiku
      >>> def f():
      ...     return hk.get_parameter("Lambda_im", (3,), jnp.float32,
      ...                             init=to_haiku(initializers.lambda_im("lin")))
      >>> hk.transform(f).init(None)["~"]["Lambda_im"].shape  # no rng needed
      (3,)
    """
    if not callable(init):
        raise TypeError(f"`init` must be callable as init(key, shape, dtype), got {init!r}.")

    def haiku_init(shape: Sequence[int], dtype: DTypeLike) -> jax.Array:
        return init(hk.maybe_next_rng_key(), tuple(shape), dtype)

    return haiku_init


class S4D(hk.Module):
    """The S4D layer as a Haiku module: ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``.

    Args:
      H: channels.
      N: state size of the real system (even).
      name: module name (default ``'s4d'``).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: the keyword fields of `hippox.S4DConfig` (``ssm_init``, ``disc``,
        ``conj_sym``, ``n_ssm``, ``b_init``, ``lambda_transform``, ``real_scale``,
        ``imag_scale``, ``dt_min``, ``dt_max``, ``bidirectional``).
    """

    def __init__(
        self,
        H: int,
        N: int = 64,
        *,
        name: str | None = "s4d",
        param_dtype: DTypeLike = jnp.float32,
        dtype: DTypeLike | None = None,
        **options,
    ):
        config = S4DConfig(H, N, **options)  # validates before Haiku's own checks
        super().__init__(name=name)
        self.config = config
        self.param_dtype = _validate.real_dtype(param_dtype, name="param_dtype")
        self.dtype = dtype

    def ssm_params(self) -> dict[str, jax.Array]:
        """The parameters (created at init) as a flat ``{name: array}`` dict."""
        return {
            name: hk.get_parameter(name, shape, self.param_dtype, init=to_haiku(init))
            for name, (shape, init) in self.config.param_specs().items()
        }

    def __call__(self, u: ArrayLike) -> jax.Array:
        """``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)`` (convolution mode)."""
        return self.config.apply(self.ssm_params(), u, dtype=self.dtype)

    def initialize_carry(self, batch_shape: Sequence[int] = ()) -> jax.Array:
        """Zero step-mode state ``(*batch_shape, H, M)`` (complex)."""
        return self.config.initial_state(batch_shape, self.param_dtype)

    def step(self, carry: ArrayLike, u_k: ArrayLike):
        """One recurrent step: ``u_k`` ``(..., H)`` -> ``(carry, y_k (..., H))``."""
        sp = self.config.step_params(self.ssm_params())
        return self.config.step(sp, carry, u_k, dtype=self.dtype)


class HiPPORNNCell(hk.RNNCore):
    """The HiPPO-RNN cell as a Haiku `RNNCore`: ``(x_t, state) -> (h_t, state)``.

    The input size is read from the input at the first call (as `haiku.Linear`).

    Args:
      hidden_size: hidden size (``features``).
      name: module name (default ``'hippo_rnn_cell'``).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: the keyword fields of `hippox.HiPPORNNConfig` (``memory_size``,
        ``N``, ``measure``, ``method``, ``dt``, ``gated``, ``measure_params``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import haiku as hk
      >>> import hippox.haiku
      >>> def run(x):  # x (L, batch, d_in): dynamic_unroll is time-major
      ...     cell = hippox.haiku.HiPPORNNCell(8, N=16)
      ...     return hk.dynamic_unroll(cell, x, cell.initial_state(x.shape[1]))[0]
      >>> f = hk.transform(run)
      >>> x = jnp.ones((10, 2, 3), jnp.float32)
      >>> params = f.init(jax.random.key(0), x)
      >>> f.apply(params, None, x).shape
      (10, 2, 8)
    """

    def __init__(
        self,
        hidden_size: int,
        *,
        name: str | None = "hippo_rnn_cell",
        param_dtype: DTypeLike = jnp.float32,
        dtype: DTypeLike | None = None,
        **options,
    ):
        # validated with a placeholder d_in before Haiku's own checks; the call reads it
        config = HiPPORNNConfig(1, hidden_size, **options)
        super().__init__(name=name)
        self.config = config
        self.param_dtype = _validate.real_dtype(param_dtype, name="param_dtype")
        self.dtype = dtype

    def config_for(self, d_in: int) -> HiPPORNNConfig:
        """The `hippox.HiPPORNNConfig` for inputs with ``d_in`` features."""
        return dataclasses.replace(self.config, d_in=d_in)

    def __call__(self, inputs: ArrayLike, prev_state: HiPPORNNState):
        """One step: ``inputs`` ``(..., d_in)`` -> ``(h (..., hidden_size), state)``."""
        cfg = self.config_for(jnp.shape(inputs)[-1])
        params = {
            name: hk.get_parameter(name, shape, self.param_dtype, init=to_haiku(init))
            for name, (shape, init) in cfg.param_specs().items()
        }
        state, h = cfg.step(params, prev_state, inputs, dtype=self.dtype)
        return h, state

    def initial_state(self, batch_size: int | None) -> HiPPORNNState:
        """Zero state for ``batch_size`` sequences (None: unbatched)."""
        batch = () if batch_size is None else (batch_size,)
        return self.config_for(1).initial_state(batch, self.param_dtype)
