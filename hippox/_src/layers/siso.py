"""What S4D and S4 share: one SSM per channel, a diagonal spectrum, complex B and C.

Both layers run ``H`` independent single-input single-output SSMs (``n_ssm`` copies of
``Lambda`` and ``B``, one ``C``, ``D`` and ``dt`` per channel) in convolution mode,
``y = K * u + D u``, and step mode. They differ only in the state matrix (S4D:
diagonal; S4: diagonal plus low rank) and hence in the kernel and the step.

Parameterisation (every leaf is real, so every optax transform is correct; see
`hippox._src.parameterization`):

- ``Lambda_re``, ``Lambda_im``: the diagonal of A, ``Lambda = f(Lambda_re) + i Lambda_im``
  with ``f`` the config's ``lambda_transform`` (``exp``: ``-exp``, ``softplus``:
  ``-softplus``, ``clip``: ``min(., -1e-4)``), so ``Re(Lambda) < 0`` for every
  parameter value and training cannot make the system unstable.
- ``B``, ``C`` (and ``C_bwd``): complex, stored with a trailing axis of 2 (real,
  imaginary).
- ``log_dt``: ``dt = exp(log_dt) > 0``.
- ``D``: real skip term ``(H,)``.

Dtypes: ``dtype`` is the activation (output) dtype (default: the input's);
parameters are stored in the wrappers' ``param_dtype``. Kernels, scans and steps run
in ``promote(param dtype, input dtype, float32)``: bfloat16/float16 activations and
parameters are cast explicitly to float32/complex64 (JAX has no half-precision
complex type) and the output is cast back to the activation dtype. float64 is used
only when the inputs or parameters are float64.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from hippox import initializers as inits
from hippox._src import _validate
from hippox._src.layers import base
from hippox._src.parameterization import LambdaReTransform, lambda_from_params


@dataclasses.dataclass(frozen=True, kw_only=True)
class SISOConfig(base.LayerConfig):
    """The options and methods S4D and S4 share (see the module docstring).

    Subclasses declare the sizes ``H`` and ``N`` (and S4's ``l_max``) as positional
    fields, and define ``_kernel(p, L)`` and the step-mode methods.

    Attributes:
      ssm_init: the initial spectrum (the subclass lists the names it accepts).
      conj_sym: store one of each conjugate pair (output ``2 Re``).
      n_ssm: number of independent copies of ``Lambda`` and ``B`` (None: H).
      b_init: `hippox.initializers.b` name (None: the subclass's default).
      lambda_transform: ``exp``, ``softplus`` or ``clip``.
      real_scale, imag_scale: scales of the initial spectrum.
      dt_min, dt_max: range of the log-uniform initial ``dt``.
      bidirectional: add an anti-causal kernel with its own ``C_bwd``
        (`hippox.bidirectional_conv`).
    """

    if TYPE_CHECKING:  # declared, positionally, by each subclass
        H: int
        N: int

    ssm_init: str = "legs"
    conj_sym: bool = True
    n_ssm: int | None = None
    b_init: str | None = None
    lambda_transform: LambdaReTransform = "exp"
    real_scale: float = 1.0
    imag_scale: float = 1.0
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    bidirectional: bool = False

    def _check_shared(self) -> None:
        """Validates and normalises the shared fields (called by ``__post_init__``)."""
        H = _validate.check_size("H", self.H)
        base.set_field(self, "H", H)
        base.set_field(self, "N", _validate.check_size("N", self.N, minimum=2, even=True))
        base.set_field(self, "n_ssm", base.check_groups(H, self.n_ssm))
        base.set_field(self, "conj_sym", _validate.check_bool("conj_sym", self.conj_sym))
        base.set_field(
            self, "bidirectional", _validate.check_bool("bidirectional", self.bidirectional)
        )

    @property
    def M(self) -> int:
        """Stored modes per channel: N/2 (conj_sym) or N."""
        return self.N // 2 if self.conj_sym else self.N

    def _shapes(self, **extra: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """``Lambda_re``, ``Lambda_im``, the subclass's ``extra``, ``B``, ``C``, … in order."""
        G, M, H = self.n_ssm, self.M, self.H
        shapes = {"Lambda_re": (G, M), "Lambda_im": (G, M), **extra}
        shapes.update(B=(G, M, 2), C=(H, M, 2))
        if self.bidirectional:
            shapes["C_bwd"] = (H, M, 2)
        shapes.update(D=(H,), log_dt=(H,))
        return shapes

    def _initializers(self) -> dict[str, base.Initializer]:
        """Initializers of the shared leaves (every name of `_shapes` but ``extra``)."""
        return {
            "Lambda_re": inits.lambda_re(
                self.ssm_init,
                transform=self.lambda_transform,
                conj_sym=self.conj_sym,
                real_scale=self.real_scale,
            ),
            "Lambda_im": inits.lambda_im(
                self.ssm_init, conj_sym=self.conj_sym, imag_scale=self.imag_scale
            ),
            "B": inits.b(self.b_init, conj_sym=self.conj_sym),
            "C": inits.c(),
            "C_bwd": inits.c(),
            "D": inits.d(),
            "log_dt": inits.log_dt(dt_min=self.dt_min, dt_max=self.dt_max),
        }

    def _lambda(self, p: dict) -> jax.Array:
        """The complex ``Lambda`` ``(G, M)`` from its stored leaves."""
        return lambda_from_params(p["Lambda_re"], p["Lambda_im"], transform=self.lambda_transform)

    def _kernel(self, p: dict, L: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def kernel(self, params: base.Params, L: int):
        """The convolution kernel ``(H, L)`` (a pair ``(K_fwd, K_bwd)`` if bidirectional)."""
        L = _validate.check_size("L", L)
        p, _ = self.prepared(params)
        return self._kernel(p, L)

    def apply(
        self, params: base.Params, u: ArrayLike, *, dtype: DTypeLike | None = None
    ) -> jax.Array:
        """The layer in convolution mode: ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``."""
        u = base.check_sequence_input(u, self.H)
        p, rd = self.prepared(params, u)
        y = base.convolve(self._kernel(p, u.shape[-2]), u, p["D"], rd)
        return y.astype(base.output_dtype(dtype, u))

    def _step_function(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, step_params, x: ArrayLike, u: ArrayLike, *, dtype: DTypeLike | None = None):
        """One step: ``x`` ``(..., H, M)``, ``u`` ``(..., H)`` -> ``(x_new, y)``."""
        u = base.check_step_input(u, self.H)
        x, y = self._step_function()(step_params, x, u)
        return x, y.astype(base.output_dtype(dtype, u))

    def initial_state(
        self, batch_shape: Sequence[int] = (), param_dtype: DTypeLike = jnp.float32
    ) -> jax.Array:
        """Zero state ``(*batch_shape, H, M)``, complex64 (complex128 for float64 params)."""
        batch = _validate.check_batch_shape(batch_shape)
        return jnp.zeros((*batch, self.H, self.M), base.state_dtype(param_dtype))
