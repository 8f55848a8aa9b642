"""LSSL: a dense HiPPO state matrix shared by the channels, with a learnable step each."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from hippox import initializers as inits
from hippox._src import _validate, matrices
from hippox._src.discretize import DENSE_METHODS, discretize
from hippox._src.kernels import kernel_naive
from hippox._src.layers import base
from hippox._src.step import dense_step, dense_step_params

#: The discretisations LSSL accepts (the dense ones but the generic ``gbt``).
LSSL_METHODS: tuple[str, ...] = tuple(m for m in DENSE_METHODS if m != "gbt")


@dataclasses.dataclass(frozen=True)
class LSSLConfig(base.LayerConfig):
    """LSSL: a dense HiPPO state matrix shared by the channels, with a learnable step each.

    Per channel h: ``dx/dt = A x + B u`` (A, B from `hippox.transition(measure, N)`),
    discretised by ``disc`` with ``dt_h = exp(log_dt_h)`` (`hippox.discretize`, dense),
    ``y = C_h x + D_h u`` with a real ``C_h``. The kernel ``K_l = C_h Ab_h^l Bb_h`` is
    computed by `hippox.kernel_naive` (``O(H L N²)``; fine for moderate N and L).

    Parameters: ``log_dt`` (H,), ``C`` (H, N) real (LeCun normal), ``D`` (H,), and
    ``A`` (N, N) / ``B`` (N,) when ``learn_A`` / ``learn_B`` (otherwise the fixed HiPPO
    matrices are constants). A learned ``A`` is unconstrained: nothing keeps it stable.

    Attributes:
      H: channels.
      N: state size.
      measure: a deterministic measure of `hippox.MEASURES`.
      disc: a dense method of `hippox.discretize` (``bilinear``, ``zoh``,
        ``forward_euler``, ``backward_euler``).
      learn_A, learn_B: make A / B trainable parameters.
      dt_min, dt_max: range of the log-uniform initial ``dt``.
    """

    H: int
    N: int = 64
    _: dataclasses.KW_ONLY
    measure: str = "legs"
    disc: Literal["bilinear", "zoh", "forward_euler", "backward_euler"] = "bilinear"
    learn_A: bool = False
    learn_B: bool = False
    dt_min: float = 1e-3
    dt_max: float = 1e-1

    def __post_init__(self):
        base.set_field(self, "H", _validate.check_size("H", self.H))
        base.set_field(self, "N", _validate.check_size("N", self.N))
        _validate.check_choice("disc", self.disc, LSSL_METHODS)
        base.set_field(self, "learn_A", _validate.check_bool("learn_A", self.learn_A))
        base.set_field(self, "learn_B", _validate.check_bool("learn_B", self.learn_B))
        matrices.transition_np(self.measure, self.N)  # validates measure and N
        self.param_initializers()

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        H, N = self.H, self.N
        shapes = {"log_dt": (H,), "C": (H, N), "D": (H,)}
        if self.learn_A:
            shapes["A"] = (N, N)
        if self.learn_B:
            shapes["B"] = (N,)
        return shapes

    def param_initializers(self) -> dict[str, base.Initializer]:
        return {
            "log_dt": inits.log_dt(dt_min=self.dt_min, dt_max=self.dt_max),
            "C": jax.nn.initializers.lecun_normal(in_axis=-1, out_axis=-2),
            "D": inits.d(),
            "A": inits.transition_a(self.measure),
            "B": inits.transition_b(self.measure),
        }

    def _discrete(self, p: dict, rd):
        A_np, B_np = matrices.transition_np(self.measure, self.N)
        A = p["A"] if self.learn_A else jnp.asarray(A_np, rd)
        B = p["B"] if self.learn_B else jnp.asarray(B_np, rd)
        return discretize(A, B, jnp.exp(p["log_dt"]), method=self.disc)  # (H, N, N), (H, N)

    def kernel(self, params: base.Params, L: int) -> jax.Array:
        """The kernel ``(H, L)``."""
        L = _validate.check_size("L", L)
        p, rd = self.prepared(params)
        return self._kernel(p, rd, L)

    def _kernel(self, p: dict, rd, L: int) -> jax.Array:
        Ab, Bb = self._discrete(p, rd)
        return kernel_naive(Ab, Bb, p["C"], L, diagonal=False)

    def apply(
        self, params: base.Params, u: ArrayLike, *, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """The layer in convolution mode: ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``."""
        u = base.check_sequence_input(u, self.H)
        p, rd = self.prepared(params, u)
        y = base.convolve(self._kernel(p, rd, u.shape[-2]), u, p["D"], rd)
        return y.astype(base.output_dtype(dtype, u))

    def step_params(self, params: base.Params):
        """Dense step parameters (`hippox.DenseStepParams`)."""
        p, rd = self.prepared(params)
        Ab, Bb = self._discrete(p, rd)
        return dense_step_params(Ab, Bb, p["C"], p["D"])

    def initial_state(
        self, batch_shape: Sequence[int] = (), param_dtype: DTypeLike = jnp.float32
    ) -> jax.Array:
        """Zero real state ``(*batch_shape, H, N)``."""
        batch = _validate.check_batch_shape(batch_shape)
        rd = base.state_dtype(param_dtype, complex_state=False)
        return jnp.zeros((*batch, self.H, self.N), rd)

    def step(self, step_params, x: ArrayLike, u: ArrayLike, *, dtype: DTypeLike | None = None):
        """One step: ``x`` ``(..., H, N)``, ``u`` ``(..., H)`` -> ``(x_new, y)``."""
        u = base.check_step_input(u, self.H)
        x, y = dense_step(step_params, x, u)
        return x, y.astype(base.output_dtype(dtype, u))
