"""Haiku modules built from hippox initializers and pure functions (``import hippox.haiku``).

hippox initializers follow the `jax.nn.initializers` protocol ``init(key, shape,
dtype)``; Haiku initializers are ``init(shape, dtype)`` and draw keys from the
transform's rng. `to_haiku` is the one-line adapter between the two. The modules here
create their parameters with it and run the same pure code as the Flax layers (the
layer configs: `hippox.S4DConfig`, `hippox.HiPPORNNConfig`, ...), so the same parameter
values give the same outputs in Haiku, Flax and Equinox. Constructors take the sizes
positionally, the config's keyword fields as ``**options``, and ``name``, ``dtype``,
``param_dtype`` as keywords; parameter leaf names are those of the Flax layers.

* `S4D`, `S4`, `S5`, `LSSL`, `HiPPORNN`: sequence layers ``(..., L, H) -> (..., L, H)``
  with the calling convention of every hippox sequence layer::

      y = layer(u)
      carry, y = layer(u, seq_lengths=lengths, initial_carry=carry, return_carry=True)

  and step mode (``initialize_carry``, ``setup_step``, ``step(carry, u_k, sp)``) with the
  same carry (see `hippox.nnx.S4D`). A sequence layer's call runs over the whole
  sequence, so it is an `haiku.Module`; its recurrent view ``layer.core()`` is an
  `haiku.RNNCore` stepping the same parameters (``core(x_t, state) -> (y_t, state)``,
  ``core.initial_state(batch_size)``), and ``hk.dynamic_unroll(layer.core(), u, state)``
  equals ``layer(u)``;
* `HiPPORNNCell`: the HiPPO-RNN cell as an `haiku.RNNCore`
  (``cell(x_t, state) -> (h_t, state)``, usable with `haiku.dynamic_unroll`);
* `SequenceModel`: the hippox backbone (`hippox.nnx.SequenceModel`), its block options
  and LayerNorm / BatchNorm (BatchNorm statistics as Haiku state); its sub-modules are
  named ``encoder``, ``layers_i``, ``mixers_i``, ``norms_i``, ``final_norm``,
  ``decoder`` (the linen names), with the leaves of the Flax model.
* `SaShiMi`: the SaShiMi pooling backbone (`hippox.nnx.SaShiMi`) with its step mode.

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

from hippox._haiku_params import adapt, get_layer_params, get_params
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
    "to_haiku",
    "UnICORNN",
    "UnICORNNCell",
]

SequenceCarry = _bb.SequenceCarry
SaShiMiCarry = _sashimi_core.SaShiMiCarry


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

    return adapt(init)


class _Layer(hk.Module):
    """Shared plumbing of the sequence layers: config, parameters, call and step mode."""

    def __init__(self, config, name, param_dtype, dtype):
        super().__init__(name=name)
        self.config = config
        self.param_dtype = _validate.real_dtype(param_dtype, name="param_dtype")
        self.dtype = _bb.output_dtype(dtype)

    def params(self) -> dict[str, jax.Array]:
        """The parameters (created at init) as a flat ``{name: array}`` dict."""
        return get_layer_params(self, self.config, self.param_dtype)

    def __call__(
        self,
        u: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
        **extra,
    ):
        """``u`` ``(..., L, H)`` -> ``y`` (or ``(carry, y)``); see `hippox.nnx.S4D.__call__`."""
        return _bb.call_layer(
            self.config,
            self.params(),
            u,
            param_dtype=self.param_dtype,
            dtype=self.dtype,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
            **extra,
        )

    def initialize_carry(self, batch_shape: Sequence[int] = ()):
        """Zero carry with batch shape ``batch_shape`` (the step-mode state)."""
        return self.config.initial_state(batch_shape, self.param_dtype)

    def step(self, carry, u_k: ArrayLike, step_params=None):
        """One step: ``u_k`` ``(..., H)`` -> ``(carry, y_k (..., H))``.

        ``step_params`` from `setup_step` (recomputed when None: convenient, slower).
        """
        sp = self.setup_step() if step_params is None else step_params
        return _bb.step_layer(
            self.config, sp, carry, u_k, param_dtype=self.param_dtype, dtype=self.dtype
        )

    def core(self, step_params=None) -> hk.RNNCore:
        """This layer's step mode as an `haiku.RNNCore` (for `haiku.dynamic_unroll`).

        A sequence layer's own call runs over the whole sequence (convolution or scan
        mode); its recurrent view is this core: ``core(x_t, state) -> (y_t, state)``
        and ``core.initial_state(batch_size)``, stepping the layer's parameters (no
        parameters of its own). Unrolled over ``u`` it gives ``layer(u)``::

            core = layer.core()                    # discretises once
            ys, state = hk.dynamic_unroll(core, u_time_major, core.initial_state(B))

        Args:
          step_params: from `setup_step` (None: computed now, once).

        Returns:
          An `haiku.RNNCore` whose state is this layer's carry.
        """
        sp = self.setup_step() if step_params is None else step_params
        return _StepCore(self, sp)


class _StepCore(hk.RNNCore):
    """`_Layer.core`: a layer's step mode as an `haiku.RNNCore`."""

    def __init__(self, layer: _Layer, step_params):
        super().__init__(name=f"{layer.module_name.split('/')[-1]}_core")
        self.layer, self.step_params = layer, step_params

    def __call__(self, inputs: ArrayLike, prev_state):
        """One step: ``inputs`` ``(..., features)`` -> ``(y (..., H), state)``."""
        state, y = self.layer.step(prev_state, inputs, self.step_params)
        return y, state

    def initial_state(self, batch_size: int | None):
        """The layer's zero carry for ``batch_size`` sequences (None: unbatched)."""
        return self.layer.initialize_carry(() if batch_size is None else (batch_size,))


class _SSM(_Layer):
    def ssm_params(self) -> dict[str, jax.Array]:
        """The parameters as a flat ``{name: array}`` dict (alias of `params`)."""
        return self.params()

    def __call__(
        self,
        u: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
        step_rescale: float | ArrayLike = 1.0,
    ):
        """``u`` ``(..., L, H)`` -> ``y`` (or ``(carry, y)``); see `hippox.nnx.S4D.__call__`."""
        return super().__call__(
            u,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
            step_rescale=step_rescale,
        )

    def setup_step(self, step_rescale: float | ArrayLike = 1.0):
        """Discretised step parameters (compute once, pass to `step`)."""
        return self.config.step_params(self.params(), step_rescale=step_rescale)

    def kernel(self, L: int):
        """The convolution kernel ``(H, L)`` (not S5, which runs a scan)."""
        return self.config.kernel(self.params(), L)


class S4D(_SSM):
    """The S4D layer (`hippox.S4DConfig`): ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``.

    Args:
      H: channels.
      N: state size of the real system (even).
      name: module name (default ``'s4d'``).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: the keyword fields of `hippox.S4DConfig`.
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
        super().__init__(config, name, param_dtype, dtype)

    def setup_step(self, L: int | None = None, step_rescale: float | ArrayLike = 1.0):
        """`hippox.DiagStepParams` for `step`; ``L`` (the sequence length) only for dss."""
        return self.config.step_params(self.params(), L=L, step_rescale=step_rescale)


class S4(_SSM):
    """The S4 layer (`hippox.S4Config`): ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``.

    Args:
      H: channels.
      l_max: the length the stored ``C`` (S4's ``C_tilde``) refers to.
      N: state size of the real system (even).
      name: module name (default ``'s4'``).
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
        name: str | None = "s4",
        param_dtype: DTypeLike = jnp.float32,
        dtype: DTypeLike | None = None,
        **options,
    ):
        super().__init__(S4Config(H, l_max, N, **options), name, param_dtype, dtype)


class S5(_SSM):
    """The S5 layer (`hippox.S5Config`): ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``.

    Args:
      H: channels.
      N: real state size, a multiple of ``2 * blocks``.
      name: module name (default ``'s5'``).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: the keyword fields of `hippox.S5Config`.
    """

    def __init__(
        self,
        H: int,
        N: int = 64,
        *,
        name: str | None = "s5",
        param_dtype: DTypeLike = jnp.float32,
        dtype: DTypeLike | None = None,
        **options,
    ):
        super().__init__(S5Config(H, N, **options), name, param_dtype, dtype)


class LSSL(_SSM):
    """The LSSL layer (`hippox.LSSLConfig`): ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``.

    Args:
      H: channels.
      N: state size.
      name: module name (default ``'lssl'``).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: the keyword fields of `hippox.LSSLConfig`.
    """

    def __init__(
        self,
        H: int,
        N: int = 64,
        *,
        name: str | None = "lssl",
        param_dtype: DTypeLike = jnp.float32,
        dtype: DTypeLike | None = None,
        **options,
    ):
        super().__init__(LSSLConfig(H, N, **options), name, param_dtype, dtype)


class HiPPORNN(_Layer):
    """The HiPPO-RNN over a sequence: ``(..., L, in_features) -> (..., L, hidden_features)``.

    The calling convention and step mode are those of the other layers; the carry is a
    `hippox.HiPPORNNState`. (For `haiku.dynamic_unroll`, use `HiPPORNNCell`.)

    Args:
      in_features: input features.
      hidden_features: hidden size.
      name: module name (default ``'hippo_rnn'``).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: the keyword fields of `hippox.HiPPORNNConfig`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import haiku as hk
      >>> import hippox.haiku
      >>> f = hk.transform(lambda x: hippox.haiku.HiPPORNN(3, 5, N=4)(x, return_carry=True))
      >>> x = jnp.ones((2, 7, 3), jnp.float32)
      >>> carry, h = f.apply(f.init(jax.random.key(0), x), None, x)
      >>> h.shape, carry.t.tolist()
      ((2, 7, 5), [7, 7])
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        name: str | None = "hippo_rnn",
        param_dtype: DTypeLike = jnp.float32,
        dtype: DTypeLike | None = None,
        **options,
    ):
        config = HiPPORNNConfig(in_features, hidden_features, **options)
        super().__init__(config, name, param_dtype, dtype)

    def rnn_params(self) -> dict[str, jax.Array]:
        """The parameters as a flat ``{name: array}`` dict (alias of `params`)."""
        return self.params()

    def setup_step(self) -> dict[str, jax.Array]:
        """Step parameters (the weights; nothing to precompute)."""
        return self.params()

    def step(self, carry: HiPPORNNState, u_k: ArrayLike, step_params=None):
        """One step: ``u_k`` ``(..., in_features)`` -> ``(carry, h (..., hidden))``."""
        sp = self.params() if step_params is None else step_params
        return _bb.step_layer(
            self.config, sp, carry, u_k, param_dtype=self.param_dtype, dtype=self.dtype
        )


class HiPPORNNCell(hk.RNNCore):
    """The HiPPO-RNN cell as a Haiku `RNNCore`: ``(x_t, state) -> (h_t, state)``.

    The input size is read from the input at the first call (as `haiku.Linear`).

    Args:
      hidden_size: hidden size (``features``).
      name: module name (default ``'hippo_rnn_cell'``).
      param_dtype: parameter storage dtype (default float32).
      dtype: output dtype (None: the input's).
      **options: the keyword fields of `hippox.HiPPORNNConfig` (``memory_size``,
        ``N``, ``measure``, ``method``, ``dt``, ``gate``, the wiring flags, ``init``,
        ``schedule``, ``measure_params``).

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
        params = get_params(cfg.param_specs(), self.param_dtype)
        state, h = cfg.step(params, prev_state, inputs, dtype=self.dtype)
        return h, state

    def initial_state(self, batch_size: int | None) -> HiPPORNNState:
        """Zero state for ``batch_size`` sequences (None: unbatched)."""
        batch = () if batch_size is None else (batch_size,)
        return self.config_for(1).initial_state(batch, self.param_dtype)


# The baseline cells, CKConv and the backbone `SequenceModel` (last: the backbone's module
# imports this one's layers).
from hippox._haiku_cells import CKBlock as CKBlock  # noqa: E402
from hippox._haiku_cells import CKConv as CKConv  # noqa: E402
from hippox._haiku_cells import ExpRNNCell as ExpRNNCell  # noqa: E402
from hippox._haiku_cells import GRUCell as GRUCell  # noqa: E402
from hippox._haiku_cells import LipschitzRNN as LipschitzRNN  # noqa: E402
from hippox._haiku_cells import LipschitzRNNCell as LipschitzRNNCell  # noqa: E402
from hippox._haiku_cells import LSTMCell as LSTMCell  # noqa: E402
from hippox._haiku_cells import MGUCell as MGUCell  # noqa: E402
from hippox._haiku_cells import MinimalRNNCell as MinimalRNNCell  # noqa: E402
from hippox._haiku_cells import RNNCell as RNNCell  # noqa: E402
from hippox._haiku_cells import UnICORNN as UnICORNN  # noqa: E402
from hippox._haiku_cells import UnICORNNCell as UnICORNNCell  # noqa: E402
from hippox._haiku_sashimi import SaShiMi as SaShiMi  # noqa: E402
from hippox._haiku_sequence import SequenceModel as SequenceModel  # noqa: E402
