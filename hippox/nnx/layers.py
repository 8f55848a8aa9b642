"""Flax NNX wrappers of the hippox SSM layers (thin shells over `hippox._src.layers`).

Every layer maps ``u`` of shape ``(batch..., L, H)`` (channel-last) to ``y`` of the same
shape. Constructor: the sizes positionally (``S4D(H, N)``, ``S4(H, l_max, N)``), then
keyword options, which are exactly the fields of the matching config
(`hippox.S4DConfig`, ...; validated once, kept as ``layer.config``), plus ``dtype``,
``param_dtype`` and ``rngs``. Parameters are `flax.nnx.Param` attributes whose names and
shapes are those of the config, and of the `hippox.linen`, `hippox.haiku` and
`hippox.equinox` layers, so a parameter tree can be copied from one framework to the
other.

Calling convention (that of `flax.nnx.RNN`)::

    y = layer(u)                                                   # u (batch..., L, H)
    carry, y = layer(u, seq_lengths=lengths, initial_carry=carry, return_carry=True)

``seq_lengths`` ``(batch...)`` ints in ``[0, L]`` mark the positions at or after each
sequence's length as padding (zero outputs, no influence on valid positions; the
returned carry is the state after the last valid step). ``initial_carry`` is the
step-mode state, so chunks with the carry passed along equal one call, and a prompt
prefilled by a call continues in step mode::

    carry = layer.initialize_carry(batch_shape)       # zeros
    sp = layer.setup_step()                           # discretise once
    carry, y_k = layer.step(carry, u_k, sp)           # u_k (batch..., H)

Scanning ``step`` over the sequence gives the same outputs as ``layer(u)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers.backbone import call_layer, output_dtype, step_layer
from hippox._src.layers.lssl import LSSLConfig
from hippox._src.layers.s4 import S4Config
from hippox._src.layers.s4d import S4DConfig
from hippox._src.layers.s5 import S5Config

__all__ = ["LSSL", "S4", "S4D", "S5"]


def _draw_params(config, rngs: nnx.Rngs, param_dtype) -> dict[str, jax.Array]:
    """Every leaf of ``config`` in one compiled program, with the keys ``rngs.params()``
    would give one leaf at a time (the stream's ``fold_in(key, count)``, spec order).

    Eagerly, the keys are derived inside the draw (`LayerConfig.init_from_counter`) and
    the stream's counter is advanced on the host, so a first build compiles no eager key
    operation. Under a Flax transform, or for a stream without the ``key``/``count``
    layout, the keys are drawn one by one and stacked (`LayerConfig.init_from_keys`).
    """
    n = len(config.param_shapes())
    stream = rngs.params
    key, count = getattr(stream, "key", None), getattr(stream, "count", None)
    if key is not None and count is not None:
        key, start = key[...], count[...]
        if not isinstance(start, jax.core.Tracer) and not isinstance(key, jax.core.Tracer):
            values = config.init_from_counter(key, start, param_dtype=param_dtype)
            count[...] = jnp.asarray(np.asarray(start) + n, start.dtype)
            return values
    keys = jnp.stack([rngs.params() for _ in range(n)])
    return config.init_from_keys(keys, param_dtype=param_dtype)


class _SSMModule(nnx.Module):
    """Shared plumbing: parameters from the config's specs, call, kernel and step mode."""

    config: Any

    def _build(self, config, rngs: nnx.Rngs, dtype, param_dtype) -> None:
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"`rngs` must be a flax.nnx.Rngs, got {type(rngs).__name__}.")
        self.config = config
        self.dtype = output_dtype(dtype)
        self.param_dtype = _validate.real_dtype(param_dtype, name="param_dtype")
        for name, value in _draw_params(config, rngs, self.param_dtype).items():
            setattr(self, name, nnx.Param(value))

    def ssm_params(self) -> dict[str, jax.Array]:
        """The parameters as a flat ``{name: array}`` dict (the pure core's input)."""
        return {name: getattr(self, name)[...] for name in self.config.param_shapes()}

    def __call__(
        self,
        u: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
        step_rescale: float | ArrayLike = 1.0,
    ):
        """The layer over a sequence (convolution or scan mode, no step loop).

        Args:
          u: ``(..., L, H)`` real input.
          seq_lengths: ``(...)`` ints in ``[0, L]`` (None: all ``L`` valid); positions at
            or after a sequence's length are padding: zero outputs, no influence.
          initial_carry: the state to start from (the structure of `initialize_carry`,
            e.g. from `step` or a previous call with ``return_carry=True``), or None.
          return_carry: also return the state after each sequence's last valid step.
          step_rescale: multiplies every ``dt`` (another sampling rate).

        Returns:
          ``y`` ``(..., L, H)`` in ``dtype`` (default: ``u``'s), or ``(carry, y)``.
        """
        return call_layer(
            self.config,
            self.ssm_params(),
            u,
            param_dtype=self.param_dtype,
            dtype=self.dtype,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
            step_rescale=step_rescale,
        )

    def initialize_carry(self, batch_shape: Sequence[int] = ()) -> jax.Array:
        """Zero recurrent state for step mode, with batch shape ``batch_shape``."""
        return self.config.initial_state(batch_shape, self.param_dtype)

    def setup_step(self, step_rescale: float | ArrayLike = 1.0):
        """Discretised step parameters (compute once, pass to `step`)."""
        return self.config.step_params(self.ssm_params(), step_rescale=step_rescale)

    def step(self, carry: ArrayLike, u_k: ArrayLike, step_params=None):
        """One step: ``(carry, u_k (..., H))`` -> ``(carry, y_k (..., H))``.

        ``step_params`` from `setup_step` (recomputed when None: convenient, slower).
        """
        sp = self.setup_step() if step_params is None else step_params
        return step_layer(
            self.config, sp, carry, u_k, param_dtype=self.param_dtype, dtype=self.dtype
        )


class S4D(_SSMModule):
    """S4D layer: diagonal SSM per channel, Vandermonde kernel + FFT convolution.

    See `hippox.S4DConfig` for the model, the parameter names/shapes and the options;
    the module docstring of `hippox._src.ssm` for the parameterisation
    (``Re(Lambda) < 0`` by ``lambda_transform``, ``dt = exp(log_dt)``) and dtypes.

    Args:
      H: channels.
      N: state size of the real system (even).
      **options: the keyword fields of `hippox.S4DConfig` (``ssm_init``, ``disc``,
        ``conj_sym``, ``n_ssm``, ``b_init``, ``lambda_transform``, ``real_scale``,
        ``imag_scale``, ``dt_min``, ``dt_max``, ``bidirectional``).
      dtype: activation/output dtype (None: the input's). Internals run in float32
        (float64 for float64 inputs or parameters).
      param_dtype: storage dtype of the parameters (default float32).
      rngs: `flax.nnx.Rngs` with a ``params`` stream.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from hippox.nnx import S4D
      >>> layer = S4D(4, 8, ssm_init="lin", rngs=nnx.Rngs(0))
      >>> y = layer(jnp.ones((2, 16, 4), jnp.float32))
      >>> y.shape, y.dtype
      ((2, 16, 4), dtype('float32'))
      >>> carry = layer.initialize_carry((2,))
      >>> carry, y0 = layer.step(carry, jnp.ones((2, 4), jnp.float32))
      >>> bool(jnp.allclose(y0, y[:, 0], atol=1e-5))
      True
    """

    def __init__(
        self,
        H: int,
        N: int = 64,
        *,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
        **options,
    ):
        self._build(S4DConfig(H, N, **options), rngs, dtype, param_dtype)

    def kernel(self, L: int):
        """The kernel ``(H, L)`` (a pair ``(K_fwd, K_bwd)`` if bidirectional)."""
        return self.config.kernel(self.ssm_params(), L)

    def setup_step(self, L: int | None = None, step_rescale: float | ArrayLike = 1.0):
        """`hippox.DiagStepParams` for `step`; ``L`` (the sequence length) only for dss."""
        return self.config.step_params(self.ssm_params(), L=L, step_rescale=step_rescale)


class S4(_SSMModule):
    """S4 layer: diagonal-plus-low-rank SSM per channel, Cauchy kernel + FFT convolution.

    The parameter ``C`` is S4's ``C_tilde`` for the length ``l_max`` (inputs may have
    any length); see `hippox.S4Config` for the model, parameter names and options.
    Step mode converts ``C_tilde`` to ``C`` once in `setup_step`.

    Args:
      H: channels.
      l_max: the reference length ``C_tilde`` refers to (inputs may be longer).
      N: state size of the real system (even).
      **options: the keyword fields of `hippox.S4Config` (``ssm_init``, ``rank``,
        ``conj_sym``, ``n_ssm``, ``b_init``, ``lambda_transform``, ``real_scale``,
        ``imag_scale``, ``dt_min``, ``dt_max``, ``bidirectional``, ``step_mode``).
      dtype: activation/output dtype (None: the input's).
      param_dtype: storage dtype of the parameters (default float32).
      rngs: `flax.nnx.Rngs`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from hippox.nnx import S4
      >>> layer = S4(3, 32, 8, rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((2, 32, 3), jnp.float32)).shape
      (2, 32, 3)
      >>> sorted(nnx.state(layer, nnx.Param).keys())
      ['B', 'C', 'D', 'Lambda_im', 'Lambda_re', 'P', 'log_dt']
    """

    def __init__(
        self,
        H: int,
        l_max: int,
        N: int = 64,
        *,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
        **options,
    ):
        self._build(S4Config(H, l_max, N, **options), rngs, dtype, param_dtype)

    def kernel(self, L: int):
        """The kernel ``(H, L)`` (a pair if bidirectional)."""
        return self.config.kernel(self.ssm_params(), L)


class S5(_SSMModule):
    """S5 layer: one MIMO diagonal SSM shared by the H channels, parallel scan.

    See `hippox.S5Config` for the model, parameter names (``B`` = V⁻¹B, ``C`` = CV) and
    options.

    Args:
      H: channels (input and output features).
      N: real state size (the S5 paper's P), a multiple of ``2 * blocks``.
      **options: the keyword fields of `hippox.S5Config` (``blocks``, ``conj_sym``,
        ``disc``, ``c_init``, ``lambda_transform``, ``dt_min``, ``dt_max``,
        ``bidirectional``, ``scan``).
      dtype: activation/output dtype (None: the input's).
      param_dtype: storage dtype of the parameters (default float32).
      rngs: `flax.nnx.Rngs`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from hippox.nnx import S5
      >>> layer = S5(3, 8, blocks=2, rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((2, 10, 3), jnp.float32)).shape
      (2, 10, 3)
      >>> layer.initialize_carry((2,)).shape
      (2, 4)
    """

    def __init__(
        self,
        H: int,
        N: int = 64,
        *,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
        **options,
    ):
        self._build(S5Config(H, N, **options), rngs, dtype, param_dtype)


class LSSL(_SSMModule):
    """LSSL layer: dense HiPPO state matrix, learnable step per channel, convolution mode.

    See `hippox.LSSLConfig` for the model, parameter names and options.

    Args:
      H: channels.
      N: state size.
      **options: the keyword fields of `hippox.LSSLConfig` (``measure``, ``disc``,
        ``learn_A``, ``learn_B``, ``dt_min``, ``dt_max``).
      dtype: activation/output dtype (None: the input's).
      param_dtype: storage dtype of the parameters (default float32).
      rngs: `flax.nnx.Rngs`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from hippox.nnx import LSSL
      >>> layer = LSSL(2, 4, measure="legt", rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((5, 2), jnp.float32)).shape
      (5, 2)
    """

    def __init__(
        self,
        H: int,
        N: int = 64,
        *,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
        **options,
    ):
        self._build(LSSLConfig(H, N, **options), rngs, dtype, param_dtype)

    def kernel(self, L: int) -> jax.Array:
        """The kernel ``(H, L)``."""
        return self.config.kernel(self.ssm_params(), L)
