"""S4D: a diagonal SSM per channel with a Vandermonde kernel (`hippox.kernel_diag`)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax.numpy as jnp

from hippox._src import _validate
from hippox._src.kernels import kernel_diag
from hippox._src.layers import base
from hippox._src.layers.siso import SISOConfig
from hippox._src.parameterization import complex_from_pair
from hippox._src.step import diag_step, diag_step_params


@dataclasses.dataclass(frozen=True)
class S4DConfig(SISOConfig):
    """S4D: a diagonal SSM per channel with a Vandermonde kernel (`hippox.kernel_diag`).

    Per channel ``h``: ``dx/dt = diag(Lambda_h) x + B_h u``, ``y = 2 Re(C_h x) + D_h u``
    (``conj_sym=True``; ``Re`` without the 2 for ``conj_sym=False``), discretised with
    ``dt_h = exp(log_dt_h)`` by ``disc``. The parameterisation and dtypes are described
    in `hippox._src.layers.siso`.

    Parameters (name: shape; G = ``n_ssm``, M = N/2 for conj_sym else N):
    ``Lambda_re`` (G, M), ``Lambda_im`` (G, M), ``B`` (G, M, 2), ``C`` (H, M, 2),
    ``C_bwd`` (H, M, 2) if bidirectional, ``D`` (H,), ``log_dt`` (H,). Channel h uses
    the copy ``h // (H / G)`` of ``Lambda`` and ``B`` (contiguous groups).

    Attributes:
      H: channels.
      N: state size of the real system (even).
      ssm_init: spectrum, a name of `hippox.DIAG_INITS` (``legs``, ``lin``, ``inv``,
        ``inv2``, ``quad``, ``real``, ``rand``) or an NPLR measure (its normal part).
      disc: ``zoh``, ``bilinear`` or ``dss`` (`hippox.discretize_diag`).
      conj_sym: store one of each conjugate pair (output ``2 Re``).
      n_ssm: number of independent copies of ``Lambda`` and ``B`` (None: H).
      b_init: `hippox.initializers.b` name (None: ``legs`` for ``ssm_init='legs'``, else
        ``constant``).
      lambda_transform: ``exp``, ``softplus`` or ``clip``.
      real_scale, imag_scale: scales of the initial spectrum.
      dt_min, dt_max: range of the log-uniform initial ``dt``.
      bidirectional: add an anti-causal kernel with its own ``C_bwd``
        (`hippox.bidirectional_conv`).
    """

    H: int
    N: int = 64
    _: dataclasses.KW_ONLY
    disc: Literal["zoh", "bilinear", "dss"] = "zoh"

    def __post_init__(self):
        self._check_shared()
        _validate.check_choice("disc", self.disc, ("zoh", "bilinear", "dss"))
        if self.b_init is None:
            base.set_field(self, "b_init", "legs" if self.ssm_init == "legs" else "constant")
        self.param_initializers()  # validates the remaining options eagerly

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return self._shapes()

    def param_initializers(self) -> dict[str, base.Initializer]:
        return self._initializers()

    def _system(self, p: dict):
        H = self.H
        Lam = base.expand_groups(self._lambda(p), H)
        B = base.expand_groups(complex_from_pair(p["B"]), H)
        return Lam, B, jnp.exp(p["log_dt"])

    def _kernel(self, p: dict, L: int):
        Lam, B, dt = self._system(p)
        kw = dict(method=self.disc, conj_sym=self.conj_sym)
        K = kernel_diag(Lam, B, complex_from_pair(p["C"]), dt, L, **kw)
        if self.bidirectional:
            return K, kernel_diag(Lam, B, complex_from_pair(p["C_bwd"]), dt, L, **kw)
        return K

    def step_params(self, params: base.Params, *, L: int | None = None):
        """Discretised step parameters (`hippox.DiagStepParams`); ``L`` only for ``dss``."""
        base.refuse_bidirectional_step(self.bidirectional)
        if self.disc == "dss" and L is None:
            raise ValueError(
                "`L` must be given for step mode with disc='dss' (its normalisation depends on "
                "the kernel length), got None."
            )
        p, _ = self.prepared(params)
        Lam, B, dt = self._system(p)
        return diag_step_params(
            Lam,
            B,
            complex_from_pair(p["C"]),
            dt,
            p["D"],
            method=self.disc,
            conj_sym=self.conj_sym,
            L=L if self.disc == "dss" else None,
        )

    def _step_function(self):
        return diag_step
