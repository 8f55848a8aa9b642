"""Equinox modules built from hippox initializers and pure functions (``import hippox.equinox``).

hippox initializers already have the ``init(key, shape, dtype)`` signature Equinox
modules use in their constructors, so no adapter is needed. The modules store their
parameters in a ``params`` dict (the names and shapes of the Flax and Haiku versions)
and a static config, and run the same pure code (the layer configs: `hippox.S4DConfig`,
`hippox.HiPPORNNConfig`, ...). Constructors take the sizes positionally, the config's
keyword fields as ``**options``, and ``key``, ``dtype``, ``param_dtype`` as keywords.

**Equinox's convention: one unbatched example.** Every module is written for a single
sequence ``u`` of shape ``(L, H)``; batch with `jax.vmap` (extra leading axes are also
accepted, since the pure core broadcasts, but `jax.vmap` is the idiom)::

    y = layer(u)                                                        # u (L, H)
    carry, y = layer(u, seq_lengths=n, initial_carry=carry, return_carry=True)  # n ()
    ys = jax.vmap(lambda u, n: layer(u, seq_lengths=n))(us, ns)         # us (B, L, H)

``seq_lengths`` has the batch shape of ``u`` (a scalar for one sequence), the carry is
the step-mode state (``initialize_carry()``, then ``step(carry, u_k)``), exactly as in
`hippox.nnx.S4D`. The modules:

* `S4D`, `S4`, `S5`, `LSSL`, `HiPPORNN`: sequence layers ``(L, H) -> (L, H)``;
* `HiPPORNNCell`: ``cell(x_t, state) -> state`` (the Equinox cell convention, as
  `equinox.nn.GRUCell`); the output ``h_t`` is ``state.h``;
* `SequenceModel`: the hippox backbone and its block options (BatchNorm statistics in an
  `equinox.nn.State`: build it with `equinox.nn.make_with_state`); its ``params`` is the
  nested dict ``flax.nnx.to_pure_dict`` makes of the `hippox.nnx.SequenceModel`
  parameters, so an NNX parameter tree loads as it is. Dropout follows Equinox:
  active unless ``inference=True`` (`equinox.nn.inference_mode`), with a ``key``.
* `SaShiMi`: the SaShiMi pooling backbone (`hippox.nnx.SaShiMi`) with its step mode;
  ``params`` as `SequenceModel`'s (the NNX tree loads as it is).

To load parameters from elsewhere (e.g. a Flax layer)::

    model = eqx.tree_at(lambda m: m.params, model, new_params)

Examples:
  >>> import jax, jax.numpy as jnp
  >>> import hippox.equinox
  >>> layer = hippox.equinox.S4D(4, 8, key=jax.random.key(0))
  >>> layer(jnp.ones((16, 4), jnp.float32)).shape
  (16, 4)
  >>> jax.vmap(layer)(jnp.ones((2, 16, 4), jnp.float32)).shape
  (2, 16, 4)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import backbone as _bb
from hippox._src.layers import sashimi as _sashimi_core
from hippox._src.layers.lssl import LSSLConfig
from hippox._src.layers.rnn import HiPPORNNConfig, HiPPORNNState
from hippox._src.layers.s4 import S4Config
from hippox._src.layers.s4d import S4DConfig
from hippox._src.layers.s5 import S5Config

__all__ = [
    "CKBlock",
    "CKConv",
    "ExpRNNCell",
    "GRUCell",
    "HiPPORNN",
    "HiPPORNNCell",
    "LipschitzRNN",
    "LipschitzRNNCell",
    "LSSL",
    "LSTMCell",
    "MGUCell",
    "MinimalRNNCell",
    "RNNCell",
    "S4",
    "S4D",
    "S5",
    "SaShiMi",
    "SaShiMiCarry",
    "SequenceCarry",
    "SequenceModel",
    "UnICORNN",
    "UnICORNNCell",
]

SequenceCarry = _bb.SequenceCarry
SaShiMiCarry = _sashimi_core.SaShiMiCarry


def _param_dtype(params: Mapping) -> jnp.dtype:
    return jnp.result_type(*jax.tree.leaves(params))


class _Layer(eqx.Module):
    """Shared plumbing: a static config, a ``params`` dict, the call and step mode."""

    params: dict[str, jax.Array]
    config: Any = eqx.field(static=True)
    dtype: Any = eqx.field(static=True, default=None)

    def __call__(
        self,
        u: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
        key=None,
        **extra,
    ):
        """``u`` ``(L, H)`` -> ``y`` (or ``(carry, y)``); see `hippox.nnx.S4D.__call__`.

        ``key`` is unused (accepted for `equinox.nn.Sequential`).
        """
        del key
        return _bb.call_layer(
            self.config,
            self.params,
            u,
            param_dtype=_param_dtype(self.params),
            dtype=self.dtype,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
            **extra,
        )

    def initialize_carry(self, batch_shape: Sequence[int] = ()):
        """Zero step-mode carry (``batch_shape`` ``()`` for one sequence)."""
        return self.config.initial_state(batch_shape, _param_dtype(self.params))

    def setup_step(self, **kwargs):
        """Discretised step parameters (compute once, pass to `step`)."""
        return self.config.step_params(self.params, **kwargs)

    def step(self, carry, u_k: ArrayLike, step_params=None):
        """One step: ``u_k`` ``(H,)`` -> ``(carry, y_k (H,))`` (``step_params``: `setup_step`)."""
        sp = self.setup_step() if step_params is None else step_params
        return _bb.step_layer(
            self.config, sp, carry, u_k, param_dtype=_param_dtype(self.params), dtype=self.dtype
        )


class _SSM(_Layer):
    def __call__(
        self,
        u: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
        step_rescale: float | ArrayLike = 1.0,
        key=None,
    ):
        """``u`` ``(L, H)`` -> ``y`` (or ``(carry, y)``); see `hippox.nnx.S4D.__call__`."""
        return super().__call__(
            u,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
            key=key,
            step_rescale=step_rescale,
        )

    def setup_step(self, step_rescale: float | ArrayLike = 1.0, **kwargs):
        """Discretised step parameters (S4D with ``disc='dss'`` also takes ``L``)."""
        return self.config.step_params(self.params, step_rescale=step_rescale, **kwargs)

    def kernel(self, L: int):
        """The convolution kernel ``(H, L)`` (not S5, which runs a scan)."""
        return self.config.kernel(self.params, L)


def _init(self, config, key, param_dtype, dtype) -> None:
    _validate.check_key("key", key, f"hippox.equinox.{type(self).__name__}")
    self.config = config
    self.params = config.init_params(key, param_dtype=param_dtype)
    self.dtype = _bb.output_dtype(dtype)


class S4D(_SSM):
    """The S4D layer (`hippox.S4DConfig`): ``u`` ``(L, H)`` -> ``y`` ``(L, H)``.

    Args:
      H: channels.
      N: state size of the real system (even).
      key: jax.random key (split once per parameter).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: the keyword fields of `hippox.S4DConfig`.

    Attributes:
      params: ``{name: array}``, the leaves of `hippox.S4DConfig.param_shapes`.
      config: the static `hippox.S4DConfig`.
    """

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
        _init(self, S4DConfig(H, N, **options), key, param_dtype, dtype)


class S4(_SSM):
    """The S4 layer (`hippox.S4Config`): ``u`` ``(L, H)`` -> ``y`` ``(L, H)``.

    Args:
      H: channels.
      l_max: the length the stored ``C`` (S4's ``C_tilde``) refers to.
      N: state size of the real system (even).
      key: jax.random key.
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: the keyword fields of `hippox.S4Config`.
    """

    def __init__(
        self,
        H: int,
        l_max: int,
        N: int = 64,
        *,
        key,
        param_dtype: DTypeLike = jnp.float32,
        dtype: DTypeLike | None = None,
        **options,
    ):
        _init(self, S4Config(H, l_max, N, **options), key, param_dtype, dtype)


class S5(_SSM):
    """The S5 layer (`hippox.S5Config`): ``u`` ``(L, H)`` -> ``y`` ``(L, H)``.

    Args:
      H: channels.
      N: real state size, a multiple of ``2 * blocks``.
      key: jax.random key.
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: the keyword fields of `hippox.S5Config`.
    """

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
        _init(self, S5Config(H, N, **options), key, param_dtype, dtype)


class LSSL(_SSM):
    """The LSSL layer (`hippox.LSSLConfig`): ``u`` ``(L, H)`` -> ``y`` ``(L, H)``.

    Args:
      H: channels.
      N: state size.
      key: jax.random key.
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: the keyword fields of `hippox.LSSLConfig`.
    """

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
        _init(self, LSSLConfig(H, N, **options), key, param_dtype, dtype)


class HiPPORNN(_Layer):
    """The HiPPO-RNN over a sequence: ``(L, in_features) -> (L, hidden_features)``.

    The calling convention and step mode of the other layers; the carry is a
    `hippox.HiPPORNNState`.

    Args:
      in_features: input features.
      hidden_features: hidden size.
      key: jax.random key.
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: the keyword fields of `hippox.HiPPORNNConfig`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import hippox.equinox
      >>> rnn = hippox.equinox.HiPPORNN(3, 5, N=4, key=jax.random.key(0))
      >>> carry, h = rnn(jnp.ones((7, 3), jnp.float32), seq_lengths=4, return_carry=True)
      >>> h.shape, int(carry.t)
      ((7, 5), 4)
    """

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
        config = HiPPORNNConfig(in_features, hidden_features, **options)
        _init(self, config, key, param_dtype, dtype)

    def setup_step(self) -> dict[str, jax.Array]:
        """Step parameters (the weights; nothing to precompute)."""
        return self.params


class HiPPORNNCell(eqx.Module):
    """The HiPPO-RNN cell as an Equinox module: ``cell(x_t, state) -> state``.

    Args:
      input_size: input features ``d_in``.
      hidden_size: hidden size.
      key: jax.random key.
      param_dtype: parameter storage dtype (default float32).
      **options: the keyword fields of `hippox.HiPPORNNConfig` (``memory_size``,
        ``N``, ``measure``, ``method``, ``dt``, ``gate``, the wiring flags, ``init``,
        ``schedule``, ``measure_params``).

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
        _validate.check_key("key", key, "hippox.equinox.HiPPORNNCell")
        self.config = HiPPORNNConfig(input_size, hidden_size, **options)
        self.params = self.config.init_params(key, param_dtype=param_dtype)

    def __call__(self, input: ArrayLike, state: HiPPORNNState) -> HiPPORNNState:
        """One step: ``input`` ``(..., input_size)`` -> the new state (``h_t = state.h``)."""
        return self.config.step(self.params, state, input)[0]

    def initial_state(self, batch_shape: Sequence[int] = ()) -> HiPPORNNState:
        """Zero state with batch shape ``batch_shape``."""
        return self.config.initial_state(batch_shape, _param_dtype(self.params))


# The baseline cells, CKConv and the backbone `SequenceModel` (last: the backbone's module
# imports this one's layers).
from hippox._equinox_cells import CKBlock as CKBlock  # noqa: E402
from hippox._equinox_cells import CKConv as CKConv  # noqa: E402
from hippox._equinox_cells import ExpRNNCell as ExpRNNCell  # noqa: E402
from hippox._equinox_cells import GRUCell as GRUCell  # noqa: E402
from hippox._equinox_cells import LipschitzRNN as LipschitzRNN  # noqa: E402
from hippox._equinox_cells import LipschitzRNNCell as LipschitzRNNCell  # noqa: E402
from hippox._equinox_cells import LSTMCell as LSTMCell  # noqa: E402
from hippox._equinox_cells import MGUCell as MGUCell  # noqa: E402
from hippox._equinox_cells import MinimalRNNCell as MinimalRNNCell  # noqa: E402
from hippox._equinox_cells import RNNCell as RNNCell  # noqa: E402
from hippox._equinox_cells import UnICORNN as UnICORNN  # noqa: E402
from hippox._equinox_cells import UnICORNNCell as UnICORNNCell  # noqa: E402
from hippox._equinox_sashimi import SaShiMi as SaShiMi  # noqa: E402
from hippox._equinox_sequence import SequenceModel as SequenceModel  # noqa: E402
