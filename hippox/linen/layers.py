"""Flax linen wrappers of the hippox SSM layers (thin shells over `hippox._src.layers`).

Every layer maps ``u`` of shape ``(batch..., L, H)`` (channel-last) to ``y`` of the same
shape, with the calling convention of the hippox sequence layers
(``layer.apply(variables, u, seq_lengths=..., initial_carry=..., return_carry=True)``, as
`flax.linen.RNN`; see `hippox.nnx.S4D`). The module fields are exactly the fields of the
matching config (`hippox.S4DConfig`, ...: the sizes first, then the keyword options; they
are generated from the config, so they cannot drift apart) plus ``dtype`` and
``param_dtype``. The config is validated once, when the module is constructed, and kept
as ``layer.config``. The ``params`` collection holds leaves with the same names and shapes
as the `hippox.nnx`, `hippox.haiku` and `hippox.equinox` layers. Step (streaming)
mode::

    carry = layer.initialize_carry(batch_shape)                      # no params needed
    sp = layer.apply(variables, method="setup_step")                 # discretise once
    carry, y_k = layer.apply(variables, carry, u_k, sp, method="step")

Scanning ``step`` over the sequence gives the same outputs as ``layer.apply(variables, u)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.typing import ArrayLike

from hippox._src import _validate
from hippox._src.layers.backbone import call_layer, output_dtype, step_layer
from hippox._src.layers.lssl import LSSLConfig
from hippox._src.layers.s4 import S4Config
from hippox._src.layers.s4d import S4DConfig
from hippox._src.layers.s5 import S5Config
from hippox.linen._config import ConfigModule

__all__ = ["LSSL", "S4", "S4D", "S5"]


class _SSMModule(ConfigModule):
    """Shared plumbing: parameters from the config's specs, call and step mode."""

    def setup(self):
        pd = _validate.real_dtype(self.param_dtype, name="param_dtype")
        specs = self.config.param_specs()
        drawn = {}
        if self.is_initializing() and not any(self.has_variable("params", n) for n in specs):
            # One key per leaf, in spec order (the keys ``self.param`` would draw one by
            # one), and every leaf drawn in one compiled program
            # (`LayerConfig.init_from_keys`) instead of one eager program per leaf.
            keys = jnp.stack([self.make_rng("params") for _ in specs])
            drawn = self.config.init_from_keys(keys, param_dtype=pd)
        self._leaves = {
            name: self.param(name, (lambda *_, v=drawn[name]: v) if drawn else init, shape, pd)
            for name, (shape, init) in specs.items()
        }

    def ssm_params(self) -> dict[str, jax.Array]:
        """The parameters as a flat ``{name: array}`` dict (the pure core's input)."""
        return dict(self._leaves)

    def _dtype(self):
        return output_dtype(self.dtype)

    def __call__(
        self,
        u: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
        step_rescale: float | ArrayLike = 1.0,
    ):
        """The layer over a sequence: ``u`` ``(..., L, H)`` -> ``y`` (or ``(carry, y)``).

        The arguments are those of `hippox.nnx.S4D.__call__` (``seq_lengths``,
        ``initial_carry``, ``return_carry``, ``step_rescale``).
        """
        return call_layer(
            self.config,
            self.ssm_params(),
            u,
            param_dtype=self.param_dtype,
            dtype=self._dtype(),
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
            step_rescale=step_rescale,
        )

    @nn.nowrap
    def initialize_carry(self, batch_shape: Sequence[int] = ()) -> jax.Array:
        """Zero recurrent state for step mode (callable on an unbound module)."""
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
            self.config, sp, carry, u_k, param_dtype=self.param_dtype, dtype=self._dtype()
        )


class S4D(_SSMModule):
    """S4D layer (linen): diagonal SSM per channel, Vandermonde kernel + FFT convolution.

    Fields are those of `hippox.S4DConfig` (model, parameter names, options) plus
    ``dtype`` (activation/output dtype, None: the input's) and ``param_dtype``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hippox.linen import S4D
      >>> layer = S4D(H=4, N=8, ssm_init="inv")
      >>> u = jnp.ones((2, 16, 4), jnp.float32)
      >>> variables = layer.init(jax.random.key(0), u)
      >>> sorted(variables["params"])
      ['B', 'C', 'D', 'Lambda_im', 'Lambda_re', 'log_dt']
      >>> layer.apply(variables, u).shape
      (2, 16, 4)
    """

    config_class: ClassVar[type] = S4DConfig

    def kernel(self, L: int):
        """The kernel ``(H, L)`` (a pair ``(K_fwd, K_bwd)`` if bidirectional)."""
        return self.config.kernel(self.ssm_params(), L)

    def setup_step(self, L: int | None = None, step_rescale: float | ArrayLike = 1.0):
        """`hippox.DiagStepParams` for `step`; ``L`` (the sequence length) only for dss."""
        return self.config.step_params(self.ssm_params(), L=L, step_rescale=step_rescale)


class S4(_SSMModule):
    """S4 layer (linen): DPLR SSM per channel, Cauchy kernel + FFT convolution.

    Fields are those of `hippox.S4Config` (``C`` holds ``C_tilde`` for ``l_max``) plus
    ``dtype`` and ``param_dtype``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hippox.linen import S4
      >>> layer = S4(H=3, l_max=32, N=8)
      >>> u = jnp.ones((32, 3), jnp.float32)
      >>> variables = layer.init(jax.random.key(0), u)
      >>> variables["params"]["P"].shape
      (1, 3, 4, 2)
    """

    config_class: ClassVar[type] = S4Config

    def kernel(self, L: int):
        """The kernel ``(H, L)`` (a pair if bidirectional)."""
        return self.config.kernel(self.ssm_params(), L)


class S5(_SSMModule):
    """S5 layer (linen): one MIMO diagonal SSM shared by the channels, parallel scan.

    Fields are those of `hippox.S5Config` plus ``dtype`` and ``param_dtype``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hippox.linen import S5
      >>> layer = S5(H=3, N=8, blocks=2)
      >>> u = jnp.ones((2, 10, 3), jnp.float32)
      >>> variables = layer.init(jax.random.key(0), u)
      >>> variables["params"]["B"].shape, variables["params"]["C"].shape
      ((4, 3, 2), (3, 4, 2))
    """

    config_class: ClassVar[type] = S5Config


class LSSL(_SSMModule):
    """LSSL layer (linen): dense HiPPO state matrix, learnable step per channel.

    Fields are those of `hippox.LSSLConfig` plus ``dtype`` and ``param_dtype``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hippox.linen import LSSL
      >>> layer = LSSL(H=2, N=4, learn_A=True)
      >>> variables = layer.init(jax.random.key(0), jnp.ones((5, 2), jnp.float32))
      >>> variables["params"]["A"].shape
      (4, 4)
    """

    config_class: ClassVar[type] = LSSLConfig

    def kernel(self, L: int) -> jax.Array:
        """The kernel ``(H, L)``."""
        return self.config.kernel(self.ssm_params(), L)
