"""S4: a diagonal-plus-low-rank SSM per channel with the Cauchy kernel (`hippox.kernel_dplr`)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax.numpy as jnp
from jax.typing import ArrayLike

from hippox import initializers as inits
from hippox._src import _validate, matrices
from hippox._src.dplr import dplr_c_from_tilde, dplr_c_tilde, kernel_dplr
from hippox._src.dplr_state import dplr_free_response
from hippox._src.krylov import power_apply
from hippox._src.layers import base, masking
from hippox._src.layers.siso import SPECTRUM_INITS, SISOConfig
from hippox._src.parameterization import complex_from_pair, conj_closed
from hippox._src.step import (
    dplr_step_dense,
    dplr_step_dense_params,
    dplr_step_linear,
    dplr_step_linear_params,
)

#: Every ``ssm_init`` of S4 (and S4D): the diagonal inits, then the NPLR measures.
S4_INITS: tuple[str, ...] = SPECTRUM_INITS


@dataclasses.dataclass(frozen=True)
class S4Config(SISOConfig):
    """S4: a diagonal-plus-low-rank SSM per channel with the Cauchy kernel (`hippox.kernel_dplr`).

    Per channel: ``A = diag(Lambda) - Pᵀ conj(P)`` on the conjugate-closed mode set
    (`hippox.kernel_dplr`): with ``conj_sym=True`` the stored M = N/2 modes are one half
    and the system is ``[Lambda, conj(Lambda)]``, ``[P, conj(P)]``, ... (the low-rank
    term couples the halves, as in S4; for an NPLR init this is exactly the real HiPPO
    operator), output ``2 Re(C x)`` of the half state. Bilinear discretisation with
    ``dt = f(log_dt) * step_rescale`` (``f = exp`` by default), ``y = K * u + D u``.
    The parameterisation and dtypes are described in `hippox._src.layers.siso`.

    The parameter ``C`` holds S4's ``C_tilde = C (I - Ab^l_max)`` for the fixed length
    ``l_max`` and the stored step: for ``L <= l_max`` (and ``step_rescale=1``) the
    kernel is the length-``l_max`` generating function evaluated at the roots of unity,
    truncated to ``L`` (exact). Any other length or step goes through the plain ``C``
    (`hippox.dplr_c_from_tilde`, then `hippox.dplr_c_tilde` for ``(dt * step_rescale,
    L)``; O(M³ log L) per channel and call): inputs of any length work without
    touching ``l_max``. The step mode converts with `hippox.dplr_c_from_tilde` too
    (once per `step_params`).

    ``apply(params, u, *, dtype, seq_lengths, initial_state, return_state,
    step_rescale)``: padded batches and carried states (`hippox._src.layers.masking`).
    The zero-state output is the Cauchy-kernel convolution; a carried state's free
    response and the final state go through the dense closed ``2M``-state form
    (``_apply_with_state``: `hippox.dplr_step_dense_params` and the maths of
    `hippox.forward_chunk_dense`, no step loop). The options (per-state steps, output
    channels, bandlimit on ``C_tilde``, ``dt_transform``) are described in
    `hippox._src.layers.siso`. To start from a plain ``C``, store
    ``hippox.dplr_c_tilde(C, Lambda, P, dt, l_max)``. The random initial ``C`` is
    drawn directly as ``C_tilde`` (complex normal; ``C -> C_tilde`` is a bijection).
    Precision: ``I - Ab^l_max`` is close to singular along slow modes, but
    `hippox.dplr_c_from_tilde` never forms it (a resolvent sum at the roots of unity), so
    in float32, with or without ``jax_enable_x64``, the step mode and the convolution
    both stay within 1e-4 of float64 for every ``ssm_init`` at ``l_max = 4096`` over the
    default ``dt`` range (measured with x64 off: ``fout`` step 2.5e-5, was 2.3e-3).

    Parameters (G = ``n_ssm``, M = N/2 or N, r = ``rank``, c = ``channels``):
    ``Lambda_re`` (G, M), ``Lambda_im`` (G, M), ``P`` (r, G, M, 2), ``B`` (G, M, 2),
    ``C`` (H, M, 2) (``(c, H, M, 2)`` for c > 1), ``C_bwd`` likewise if bidirectional,
    ``D`` (H,) (``(c, H)``), ``log_dt`` (H,) (``(H, M)`` with ``dt_tie=False``). Channel
    h uses copy ``h // (H / G)`` of ``Lambda``, ``P``, ``B``.

    Attributes:
      H: channels.
      l_max: the length ``C_tilde`` refers to (inputs may have any length).
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
      dt_transform: ``exp``, ``softplus``, ``sigmoid`` or ``relu`` (``dt = f(log_dt)``).
      dt_tie: one step per channel (True) or per state (False, ``log_dt`` ``(H, M)``).
      deterministic: log-spaced initial ``dt`` over the channels (needs ``dt_tie``).
      bandlimit: None, or zero ``C_tilde`` for modes of frequency ``dt |Im Lambda| / 2π
        >= bandlimit / 2``.
      channels: output rows per channel; the output has ``channels * H`` features.
      bidirectional: add an anti-causal kernel (its own ``C_bwd``); no carried state.
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
        """``(Lambda, P, B, scale, dt)``: the system whose stored ``C̃`` refers to step ``dt``.

        Tied step: the layer's ``Lambda``, ``P``, ``B`` and ``dt`` ``(H,)`` (``scale`` None).
        Per-state step: ``Lambda' = dt ⊙ Lambda``, ``P' = √dt ⊙ P``, ``B' = √dt ⊙ B`` with
        unit step, and ``scale = √dt`` for the output rows (module docstring of
        `hippox._src.layers.siso`).
        """
        H = self.H
        Lam = base.expand_groups(self._lambda(p), H)
        P = base.expand_groups(complex_from_pair(p["P"]), H, axis=1)
        B = base.expand_groups(complex_from_pair(p["B"]), H)
        dt = self._dt(p)
        if dt.ndim == 1:
            return Lam, P, B, None, dt
        root = jnp.sqrt(dt)
        return dt * Lam, root * P, root * B, root, jnp.ones((H,), dt.dtype)

    def _c_tilde(self, p: dict, name: str, scale):
        """``(channels, H, M)`` C̃ rows of leaf ``name`` (bandlimit applied, per-state scaled)."""
        Lam_stored = base.expand_groups(self._lambda(p), self.H)
        C = self._c_rows(p, name, Lam_stored, self._dt(p))
        return C if scale is None else scale * C

    def _plain_c(self, p: dict, name: str):
        """The system, its step and plain ``C`` ``(channels, H, M)`` of leaf ``name``."""
        Lam, P, B, scale, dt = self._system(p)
        Ct = self._c_tilde(p, name, scale)
        C = dplr_c_from_tilde(Ct, Lam, P, dt, self.l_max, conj_sym=self.conj_sym)
        return Lam, P, B, dt, C

    def _kernel(self, p: dict, L: int, step_rescale=1.0):
        static_one = isinstance(step_rescale, float) and step_rescale == 1.0
        names = ("C", "C_bwd") if self.bidirectional else ("C",)
        kw = dict(conj_sym=self.conj_sym)
        out = []
        for name in names:
            if static_one and L <= self.l_max:
                # C̃ refers to (dt, l_max): the length-l_max kernel, truncated (exact).
                Lam, P, B, scale, dt = self._system(p)
                Ct = self._c_tilde(p, name, scale)
                K = kernel_dplr(Lam, P, B, Ct, dt, self.l_max, **kw)[..., :L]
            else:
                # Another length or step: plain C, then C̃ for (dt * step_rescale, L).
                Lam, P, B, dt, C = self._plain_c(p, name)
                dt_r = dt * step_rescale
                Ct = dplr_c_tilde(C, Lam, P, dt_r, L, **kw)
                K = kernel_dplr(Lam, P, B, Ct, dt_r, L, **kw)
            out.append(K[0] if self.channels == 1 else K)
        return tuple(out) if self.bidirectional else out[0]

    def _state_pass(self, p: dict, u, x0, lengths, step_rescale, need_state):
        return self._apply_with_state(p, u, x0, lengths, step_rescale, need_state)

    def _apply_with_state(self, p: dict, u, x0, lengths, step_rescale, need_state):
        """Free response of ``x0`` (DPLR form) and final state (dense 2M form).

        The free response ``C Ab^{l+1} x0`` is the kernel of the same DPLR system with
        the input vector ``B' = (I + dt/2 A) x0 / dt`` (`hippox._src.dplr_state`): Cauchy
        sums and the Woodbury identity, ``O(M L)`` per channel and sequence, no
        ``M × M`` matrix. The final state ``Ab^L x0 + Σ_l Ab^{L-1-l} Bb u_l`` uses the
        dense bilinear system closed to its ``2M`` modes for ``conj_sym``
        (``[x, conj(x)]``): the Krylov sequence ``Ab^l Bb`` by doubling and ``Ab^n x0``
        by repeated squaring (`hippox._src.layers.masking.dense_state_pass`), as the
        reference's ``forward_state`` does.

        Args:
          p: prepared parameters.
          u: ``(..., H, L)`` real input, padding zeroed.
          x0: ``(..., H, M)`` complex state, or None.
          lengths: ``(...)`` valid lengths, or None.
          step_rescale: multiplies the step.
          need_state: compute the final state.

        Returns:
          ``(y_free, x)``: ``(..., channels, H, L)`` real free response (None without
          ``x0``) and the ``(..., H, M)`` final state (None unless ``need_state``).
        """
        Lam, P, B, dt, C = self._plain_c(p, "C")
        dt_r = dt * step_rescale
        L = u.shape[-1]
        y_free = None
        if x0 is not None:
            rows = [
                dplr_free_response(Lam, P, C[c], dt_r, x0, L, conj_sym=self.conj_sym)
                for c in range(self.channels)
            ]
            y_free = jnp.stack(rows, axis=-3)
        if not need_state:
            return y_free, None
        sp = dplr_step_dense_params(Lam, P, B, C[0], dt_r, conj_sym=self.conj_sym)
        M = self.M
        if self.conj_sym:
            Ab = jnp.concatenate(
                [
                    jnp.concatenate([sp.Ab, sp.Abc], -1),
                    jnp.concatenate([jnp.conj(sp.Abc), jnp.conj(sp.Ab)], -1),
                ],
                -2,
            )
            Bb = conj_closed(sp.Bb)
            x0 = None if x0 is None else conj_closed(x0)
        else:
            Ab, Bb = sp.Ab, sp.Bb
        rows = jnp.zeros((1, *Bb.shape), Ab.dtype)  # output rows unused: no free response
        _, x = masking.dense_state_pass(Ab, Bb, rows, None, u, lengths, need_state=True)
        if x0 is not None:
            n = L if lengths is None else lengths
            x = x + power_apply(Ab, x0, n, diagonal=False, max_n=L)
        return y_free, x[..., :M]

    def step_params(self, params: base.Params, *, step_rescale: float | ArrayLike = 1.0):
        """Step parameters: plain ``C`` from ``C_tilde``, then the bilinear DPLR step setup.

        ``step_rescale`` multiplies the step (the conversion uses the stored one).
        `ChannelsStepParams` with several output channels.
        """
        base.refuse_bidirectional_step(self.bidirectional)
        p, rd = self.prepared(params)
        r = self._rescale(step_rescale, rd)
        Lam, P, B, dt, C = self._plain_c(p, "C")
        setup = dplr_step_linear_params if self.step_mode == "linear" else dplr_step_dense_params
        D = p["D"] if self.channels == 1 else p["D"][0]
        sp = setup(Lam, P, B, C[0], dt * r, D, conj_sym=self.conj_sym)
        return sp if self.channels == 1 else self._wrap_channels(sp, C, p["D"])

    def _step_function(self):
        return dplr_step_linear if self.step_mode == "linear" else dplr_step_dense
