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
from hippox._src.krylov import kernel_krylov
from hippox._src.layers import base, masking
from hippox._src.step import dense_step, dense_step_params

#: The discretisations LSSL accepts (the dense ones but the generic ``gbt``).
LSSL_METHODS: tuple[str, ...] = tuple(m for m in DENSE_METHODS if m != "gbt")


@dataclasses.dataclass(frozen=True)
class LSSLConfig(base.LayerConfig):
    """LSSL: a dense HiPPO state matrix shared by the channels, with a learnable step each.

    Per channel h: ``dx/dt = A x + B u`` (A, B from `hippox.transition(measure, N)`),
    discretised by ``disc`` with ``dt_h = f(log_dt_h)`` (``f`` the ``dt_transform``,
    ``exp`` by default; times ``step_rescale``) (`hippox.discretize`, dense),
    ``y = C_h x + D_h u`` with a real ``C_h``. The kernel ``K_l = C_h Ab_h^l Bb_h`` is
    built by doubling (``⌈log2 L⌉`` batched matrix products,
    `hippox._src.krylov.kernel_krylov`), not by an ``L``-step scan. The state is real
    ``(..., H, N)``; ``apply`` takes ``seq_lengths``, ``initial_state``,
    ``return_state`` as described in `hippox._src.layers.masking`.

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
      dt_transform: ``exp`` (default), ``softplus``, ``sigmoid`` or ``relu``: ``dt =
        f(log_dt)`` (the leaf keeps its name).
      deterministic: initial ``dt`` log-spaced over the channels (the reference's option).
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
    dt_transform: str = "exp"
    deterministic: bool = False

    def __post_init__(self):
        base.set_field(self, "H", _validate.check_size("H", self.H))
        base.set_field(self, "N", _validate.check_size("N", self.N))
        _validate.check_choice("disc", self.disc, LSSL_METHODS)
        base.set_field(self, "learn_A", _validate.check_bool("learn_A", self.learn_A))
        base.set_field(self, "learn_B", _validate.check_bool("learn_B", self.learn_B))
        matrices.transition_np(self.measure, self.N)  # validates measure and N
        _validate.check_choice("dt_transform", self.dt_transform, base.DT_TRANSFORMS)
        base.set_field(
            self, "deterministic", _validate.check_bool("deterministic", self.deterministic)
        )
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
            "log_dt": base.dt_initializer(
                dt_min=self.dt_min,
                dt_max=self.dt_max,
                transform=self.dt_transform,
                deterministic=self.deterministic,
            ),
            "C": jax.nn.initializers.lecun_normal(in_axis=-1, out_axis=-2),
            "D": inits.d(),
            "A": inits.transition_a(self.measure),
            "B": inits.transition_b(self.measure),
        }

    def _discrete(self, p: dict, rd, step_rescale=1.0):
        A_np, B_np = matrices.transition_np(self.measure, self.N)
        A = p["A"] if self.learn_A else jnp.asarray(A_np, rd)
        B = p["B"] if self.learn_B else jnp.asarray(B_np, rd)
        dt = base.dt_from_param(p["log_dt"], self.dt_transform) * step_rescale
        return discretize(A, B, dt, method=self.disc)  # (H, N, N), (H, N)

    def kernel(
        self, params: base.Params, L: int, *, step_rescale: float | ArrayLike = 1.0
    ) -> jax.Array:
        """The kernel ``(H, L)``; ``step_rescale`` multiplies every step."""
        L = _validate.check_size("L", L)
        p, rd = self.prepared(params)
        return self._kernel(p, rd, L, base.check_step_rescale(step_rescale, rd))

    def _kernel(self, p: dict, rd, L: int, step_rescale=1.0) -> jax.Array:
        Ab, Bb = self._discrete(p, rd, step_rescale)
        return kernel_krylov(Ab, Bb, p["C"], L)

    def apply(
        self,
        params: base.Params,
        u: ArrayLike,
        *,
        dtype: DTypeLike | None = None,
        seq_lengths: ArrayLike | None = None,
        initial_state: ArrayLike | None = None,
        return_state: bool = False,
        step_rescale: float | ArrayLike = 1.0,
    ):
        """The layer in convolution mode: ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``.

        Args:
          params: the parameter dict (`param_shapes`).
          u: ``(..., L, H)`` real input.
          dtype: output dtype (None: the input's).
          seq_lengths: None, or ``(...)`` ints in ``[0, L]`` (padding at and after a
            sequence's length: zero outputs, never influencing valid positions).
          initial_state: None (zeros) or the real ``(..., H, N)`` state to start from.
          return_state: also return the state after each sequence's last valid step.
          step_rescale: multiplies every step ``dt``.

        Returns:
          ``y`` ``(..., L, H)``, or ``(state, y)`` with ``return_state``. Chunks with the
          state passed along give the output of one call (a convolution plus the free
          response of the state through the dense form, no step loop).

        Raises:
          ValueError / TypeError: bad ``u``, ``seq_lengths`` or ``initial_state`` (naming
            the argument).
        """
        u = base.check_sequence_input(u, self.H)
        batch, L = u.shape[:-2], u.shape[-2]
        return_state = _validate.check_bool("return_state", return_state)
        lengths = masking.check_seq_lengths(seq_lengths, batch, L)
        x0 = None if initial_state is None else self.check_state(initial_state, batch)
        p, rd = self.prepared(params, u)
        r = base.check_step_rescale(step_rescale, rd)
        Ab, Bb = self._discrete(p, rd, r)
        ur = masking.zero_padding(u.astype(rd), lengths, axis=-2)
        K = kernel_krylov(Ab, Bb, p["C"], L)
        y = base.convolve(K, ur, p["D"], rd)
        state = None
        if x0 is not None or return_state:
            x0 = None if x0 is None else x0.astype(rd)
            ut = jnp.swapaxes(ur, -1, -2)
            y_free, state = masking.dense_state_pass(
                Ab, Bb, p["C"][None], x0, ut, lengths, need_state=return_state
            )
            if y_free is not None:
                y = y + base.merge_channels(y_free.astype(rd), 1)
        y = masking.zero_padding(y, lengths, axis=-2).astype(base.output_dtype(dtype, u))
        return (state, y) if return_state else y

    def step_params(self, params: base.Params, *, step_rescale: float | ArrayLike = 1.0):
        """Dense step parameters (`hippox.DenseStepParams`); ``step_rescale`` scales dt."""
        p, rd = self.prepared(params)
        Ab, Bb = self._discrete(p, rd, base.check_step_rescale(step_rescale, rd))
        return dense_step_params(Ab, Bb, p["C"], p["D"])

    def initial_state(
        self, batch_shape: Sequence[int] = (), param_dtype: DTypeLike = jnp.float32
    ) -> jax.Array:
        """Zero real state ``(*batch_shape, H, N)``."""
        batch = _validate.check_batch_shape(batch_shape)
        rd = base.state_dtype(param_dtype, complex_state=False)
        return jnp.zeros((*batch, self.H, self.N), rd)

    def state_layout(self) -> tuple[tuple[int, ...], bool, str]:
        """One real array ``(..., H, N)``."""
        return (self.H, self.N), False, f"(..., H, N) with H={self.H}, N={self.N}"

    def step(self, step_params, x: ArrayLike, u: ArrayLike, *, dtype: DTypeLike | None = None):
        """One step: ``x`` ``(..., H, N)``, ``u`` ``(..., H)`` -> ``(x_new, y)``."""
        u = base.check_step_input(u, self.H)
        x, y = dense_step(step_params, x, u)
        return x, y.astype(base.output_dtype(dtype, u))
