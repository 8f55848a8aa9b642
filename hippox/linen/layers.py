"""Flax linen wrappers of the hippox SSM layers (thin shells over `hippox._src.ssm`).

Every layer maps ``u`` of shape ``(batch..., L, H)`` (channel-last) to ``y`` of the same
shape. The module fields are those of the matching config (`hippox.S4DConfig`, ...)
plus ``dtype`` and ``param_dtype``; the ``params`` collection holds leaves with the
same names and shapes as the `hippox.nnx` layers. Step (streaming) mode::

    carry = layer.initialize_carry(batch_shape)                      # no params needed
    sp = layer.apply(variables, method="setup_step")                 # discretise once
    carry, y_k = layer.apply(variables, carry, u_k, sp, method="step")

Scanning ``step`` over the sequence gives the same outputs as ``layer.apply(variables, u)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.typing import ArrayLike

from hippox._src import _validate
from hippox._src import ssm as _ssm

__all__ = ["LSSL", "S4", "S4D", "S5"]


class _SSMModule(nn.Module):
    """Shared plumbing: config from the fields, parameters from its specs, step mode."""

    _config_cls: ClassVar[type]

    def _config(self):
        names = [f.name for f in dataclasses.fields(self._config_cls)]
        return self._config_cls(**{n: getattr(self, n) for n in names})

    def __post_init__(self):
        self._config()  # validates the options when the module is constructed
        super().__post_init__()

    def setup(self):
        config = self._config()
        pd = _validate.real_dtype(self.param_dtype, name="param_dtype")
        self._leaves = {
            name: self.param(name, init, shape, pd)
            for name, (shape, init) in config.param_specs().items()
        }

    def ssm_params(self) -> dict[str, jax.Array]:
        """The parameters as a flat ``{name: array}`` dict (the pure core's input)."""
        return dict(self._leaves)

    def _dtype(self):
        return None if self.dtype is None else jnp.dtype(self.dtype)

    def __call__(self, u: ArrayLike) -> jax.Array:
        """``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)`` in ``dtype`` (default: u's dtype)."""
        return self._config().apply(self.ssm_params(), u, dtype=self._dtype())

    def initialize_carry(self, batch_shape: Sequence[int] = ()) -> jax.Array:
        """Zero recurrent state for step mode (callable on an unbound module)."""
        return self._config().initial_state(batch_shape, self.param_dtype)

    def setup_step(self):
        """Discretised step parameters (compute once, pass to `step`)."""
        return self._config().step_params(self.ssm_params())

    def step(self, carry: ArrayLike, u_k: ArrayLike, step_params=None):
        """One step: ``(carry, u_k (..., H))`` -> ``(carry, y_k (..., H))``.

        ``step_params`` from `setup_step` (recomputed when None: convenient, slower).
        """
        sp = self.setup_step() if step_params is None else step_params
        return self._config().step(sp, carry, u_k, dtype=self._dtype())


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

    _config_cls: ClassVar[type] = _ssm.S4DConfig
    H: int
    N: int = 64
    ssm_init: str = "legs"
    disc: str = "zoh"
    conj_sym: bool = True
    n_ssm: int | None = None
    b_init: str | None = None
    lambda_transform: str = "exp"
    real_scale: float = 1.0
    imag_scale: float = 1.0
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    bidirectional: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def kernel(self, L: int):
        """The kernel ``(H, L)`` (a pair ``(K_fwd, K_bwd)`` if bidirectional)."""
        return self._config().kernel(self.ssm_params(), L)

    def setup_step(self, L: int | None = None):
        """`hippox.DiagStepParams` for `step`; ``L`` (the sequence length) only for dss."""
        return self._config().step_params(self.ssm_params(), L=L)


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

    _config_cls: ClassVar[type] = _ssm.S4Config
    H: int
    l_max: int
    N: int = 64
    ssm_init: str = "legs"
    rank: int | None = None
    conj_sym: bool = True
    n_ssm: int | None = None
    b_init: str | None = None
    lambda_transform: str = "exp"
    real_scale: float = 1.0
    imag_scale: float = 1.0
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    bidirectional: bool = False
    step_mode: str = "linear"
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def kernel(self, L: int):
        """The kernel ``(H, L)``, ``L <= l_max`` (a pair if bidirectional)."""
        return self._config().kernel(self.ssm_params(), L)


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

    _config_cls: ClassVar[type] = _ssm.S5Config
    H: int
    N: int = 64
    blocks: int = 1
    conj_sym: bool = True
    disc: str = "zoh"
    c_init: str = "trunc_standard_normal"
    lambda_transform: str = "clip"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    bidirectional: bool = False
    scan: str = "associative"
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def __call__(self, u: ArrayLike, *, step_rescale: float | ArrayLike = 1.0) -> jax.Array:
        """``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``; every ``dt`` times ``step_rescale``."""
        return self._config().apply(
            self.ssm_params(), u, dtype=self._dtype(), step_rescale=step_rescale
        )

    def setup_step(self, step_rescale: float | ArrayLike = 1.0):
        """`hippox.S5StepParams` for `step`."""
        return self._config().step_params(self.ssm_params(), step_rescale=step_rescale)


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

    _config_cls: ClassVar[type] = _ssm.LSSLConfig
    H: int
    N: int = 64
    measure: str = "legs"
    disc: str = "bilinear"
    learn_A: bool = False
    learn_B: bool = False
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def kernel(self, L: int) -> jax.Array:
        """The kernel ``(H, L)``."""
        return self._config().kernel(self.ssm_params(), L)
