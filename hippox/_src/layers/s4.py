"""S4: a diagonal-plus-low-rank SSM per channel with the Cauchy kernel (`hippox.kernel_dplr`)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax.numpy as jnp

from hippox import initializers as inits
from hippox._src import _validate, diagonal, matrices
from hippox._src.dplr import dplr_c_from_tilde, kernel_dplr
from hippox._src.layers import base
from hippox._src.layers.siso import SISOConfig
from hippox._src.parameterization import complex_from_pair
from hippox._src.step import (
    dplr_step_dense,
    dplr_step_dense_params,
    dplr_step_linear,
    dplr_step_linear_params,
)

#: Every ``ssm_init`` of S4: the diagonal inits, then the NPLR measures (with aliases).
S4_INITS: tuple[str, ...] = (
    *diagonal.DIAG_INITS,
    *(m for m in matrices.NPLR_NAMES if m not in diagonal.DIAG_INITS),
)


@dataclasses.dataclass(frozen=True)
class S4Config(SISOConfig):
    """S4: a diagonal-plus-low-rank SSM per channel with the Cauchy kernel (`hippox.kernel_dplr`).

    Per channel: ``A = diag(Lambda) - Pᵀ conj(P)`` on the conjugate-closed mode set
    (`hippox.kernel_dplr`): with ``conj_sym=True`` the stored M = N/2 modes are one half
    and the system is ``[Lambda, conj(Lambda)]``, ``[P, conj(P)]``, ... (the low-rank
    term couples the halves, as in S4; for an NPLR init this is exactly the real HiPPO
    operator), output ``2 Re(C x)`` of the half state. Bilinear discretisation with
    ``dt = exp(log_dt)``, ``y = K * u + D u``. The parameterisation and dtypes are
    described in `hippox._src.layers.siso`.

    The parameter ``C`` holds S4's ``C_tilde = C (I - Ab^l_max)`` for the fixed length
    ``l_max``: the kernel is the length-``l_max`` generating function evaluated at the
    roots of unity, truncated to the input length ``L <= l_max`` (exact). The step
    mode converts it back with `hippox.dplr_c_from_tilde` (O(M³ log l_max) per channel,
    once per `step_params`). To start from a plain ``C``, store
    ``hippox.dplr_c_tilde(C, Lambda, P, dt, l_max)``. The random initial ``C`` is
    drawn directly as ``C_tilde`` (complex normal; ``C -> C_tilde`` is a bijection).
    Precision note: when ``l_max * dt * |A|`` is small, ``I - Ab^l_max`` is close to
    singular and the step mode's ``C`` loses digits in float32 (the convolution mode is
    unaffected); with ``l_max * dt = O(1)`` or more, the usual S4 regime, step and
    convolution agree to float32 precision.

    Parameters (G = ``n_ssm``, M = N/2 or N, r = ``rank``): ``Lambda_re`` (G, M),
    ``Lambda_im`` (G, M), ``P`` (r, G, M, 2), ``B`` (G, M, 2), ``C`` (H, M, 2),
    ``C_bwd`` (H, M, 2) if bidirectional, ``D`` (H,), ``log_dt`` (H,). Channel h uses
    copy ``h // (H / G)`` of ``Lambda``, ``P``, ``B``.

    Attributes:
      H: channels.
      l_max: the length ``C_tilde`` refers to; inputs may have any ``L <= l_max``.
      N: state size of the real system (even).
      ssm_init: an NPLR measure (``legs``, ``legt``, ``lagt``, ``fout``, ...: its
        `hippox.nplr` Lambda, P and B) or a diagonal init (``lin``, ``inv``, ...: P = 0).
      rank: rows of P (None: 2 for ``legt``, else 1).
      conj_sym: store one half (M = N/2) of the conjugate-closed system, or all N modes.
      n_ssm: independent copies of Lambda, P, B (None: H).
      b_init: None (the measure's ``V* B``, or ``constant`` for diagonal inits) or a
        `hippox.initializers.b` name.
      lambda_transform: ``exp``, ``softplus`` or ``clip``.
      real_scale, imag_scale: scales of the initial Lambda.
      dt_min, dt_max: range of the log-uniform initial ``dt``.
      bidirectional: add an anti-causal kernel (its own ``C_bwd``).
      step_mode: ``linear`` (O(M·rank) Woodbury step, `hippox.dplr_step_linear`) or
        ``dense`` (O(M²), `hippox.dplr_step_dense`).
    """

    H: int
    l_max: int
    N: int = 64
    _: dataclasses.KW_ONLY
    rank: int | None = None
    step_mode: Literal["linear", "dense"] = "linear"

    def __post_init__(self):
        self._check_shared()
        base.set_field(self, "l_max", _validate.check_size("l_max", self.l_max))
        _validate.check_choice("step_mode", self.step_mode, ("linear", "dense"))
        _validate.check_choice("ssm_init", self.ssm_init, S4_INITS)
        measure = self._measure
        natural = matrices.natural_rank(measure) if measure else 1
        rank = natural if self.rank is None else _validate.check_size("rank", self.rank)
        if rank < natural:
            raise ValueError(
                f"`rank` must be >= {natural} for ssm_init={self.ssm_init!r}, got {rank}."
            )
        base.set_field(self, "rank", rank)
        if self.b_init is None:
            base.set_field(self, "b_init", measure or "constant")
        self.param_initializers()  # validates the remaining options eagerly

    @property
    def _measure(self) -> str | None:
        """The NPLR measure behind ``ssm_init`` (None for a purely diagonal init)."""
        if self.ssm_init in matrices.NPLR_NAMES:
            return matrices.canonical_measure(self.ssm_init)
        return None

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return self._shapes(P=(self.rank, self.n_ssm, self.M, 2))

    def param_initializers(self) -> dict[str, base.Initializer]:
        return {
            **self._initializers(),
            "P": inits.p(self._measure or "zeros", conj_sym=self.conj_sym),
        }

    def _system(self, p: dict):
        H = self.H
        Lam = base.expand_groups(self._lambda(p), H)
        P = base.expand_groups(complex_from_pair(p["P"]), H, axis=1)
        B = base.expand_groups(complex_from_pair(p["B"]), H)
        return Lam, P, B, jnp.exp(p["log_dt"])

    def _kernel(self, p: dict, L: int):
        if L > self.l_max:
            raise ValueError(
                f"the input length L must be <= l_max={self.l_max} (C is stored as C_tilde "
                f"for length l_max), got L={L}."
            )
        Lam, P, B, dt = self._system(p)
        kw = dict(conj_sym=self.conj_sym)
        K = kernel_dplr(Lam, P, B, complex_from_pair(p["C"]), dt, self.l_max, **kw)[..., :L]
        if not self.bidirectional:
            return K
        Kb = kernel_dplr(Lam, P, B, complex_from_pair(p["C_bwd"]), dt, self.l_max, **kw)
        return K, Kb[..., :L]

    def step_params(self, params: base.Params):
        """Step parameters: plain ``C`` from ``C_tilde``, then the bilinear DPLR step setup."""
        base.refuse_bidirectional_step(self.bidirectional)
        p, _ = self.prepared(params)
        Lam, P, B, dt = self._system(p)
        C_tilde = complex_from_pair(p["C"])
        C = dplr_c_from_tilde(C_tilde, Lam, P, dt, self.l_max, conj_sym=self.conj_sym)
        setup = dplr_step_linear_params if self.step_mode == "linear" else dplr_step_dense_params
        return setup(Lam, P, B, C, dt, p["D"], conj_sym=self.conj_sym)

    def _step_function(self):
        return dplr_step_linear if self.step_mode == "linear" else dplr_step_dense
