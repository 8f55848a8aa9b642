"""S4D: a diagonal SSM per channel with a Vandermonde kernel (`hippox.kernel_diag`)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax.numpy as jnp
from jax.typing import ArrayLike

from hippox._src import _validate
from hippox._src.block_scan import (
    DIAG_IMPLEMENTATIONS,
    block_length,
    diag_block_forward,
    diag_implementation,
)
from hippox._src.discretize import discretize_diag
from hippox._src.kernels import kernel_diag
from hippox._src.layers import base, masking
from hippox._src.layers.siso import SPECTRUM_INITS, SISOConfig
from hippox._src.parameterization import complex_from_pair
from hippox._src.step import diag_step, diag_step_params


@dataclasses.dataclass(frozen=True)
class S4DConfig(SISOConfig):
    """S4D: a diagonal SSM per channel with a Vandermonde kernel (`hippox.kernel_diag`).

    Per channel ``h``: ``dx/dt = diag(Lambda_h) x + B_h u``, ``y = 2 Re(C_h x) + D_h u``
    (``conj_sym=True``; ``Re`` without the 2 for ``conj_sym=False``), discretised with
    ``dt_h = f(log_dt_h) * step_rescale`` (``f`` the ``dt_transform``, ``exp`` by
    default) by ``disc``. The parameterisation, the options (per-state steps, output
    channels, bandlimit) and dtypes are described in `hippox._src.layers.siso`.

    ``apply(params, u, *, dtype, seq_lengths, initial_state, return_state,
    step_rescale)``: padded batches and carried states (`hippox._src.layers.masking`).
    Two evaluations give the same values (to rounding), chosen by ``implementation``:

    - ``'fft'``: the zero-state output is the FFT convolution with the layer's kernel; a
      carried state adds its free response ``Re(C Ab^{l+1} x0)`` and the final state is
      a Vandermonde contraction (no step loop).
    - ``'block'``: the FFT-free block form (`hippox.block_scan_diag`): small causal
      matmuls inside blocks of ``T = min(L, 64)`` positions and an ``L/T``-step state
      recurrence across them, with no kernel of length L and no ``(H, M, L)`` matrix of
      powers for the state.
    - ``'auto'`` (default): `hippox.diag_implementation`'s rule (on CPU and GPU:
      ``'block'`` when a state is carried in or returned and ``L >= 128``, where it is
      several times faster; ``'fft'`` otherwise); always ``'fft'`` with ``disc='dss'``.

    Both paths support every option (padding, carried states, bidirectional, output
    channels, ``step_rescale``, per-state steps, bandlimit, float32/float64, jit, vmap,
    grad) and the same non-finite policy (`hippox.causal_conv`: outputs from a
    channel's first non-finite sample on are NaN, earlier ones unaffected), except
    ``disc='dss'``, which runs only on the FFT path: its modes may have ``Re(Lambda) >
    0``, whose powers ``Ab^l`` grow without bound in the block recurrence (the kernel
    evaluates them reversed, stably), and its ``B`` depends on the call's length.
    With ``disc='dss'`` ``B`` is normalised by the call's length, so ``seq_lengths`` and
    ``initial_state`` are refused (a ``return_state`` continues in
    ``step_params(L=<that length>)``).

    Parameters (name: shape; G = ``n_ssm``, M = N/2 for conj_sym else N, c =
    ``channels``): ``Lambda_re`` (G, M), ``Lambda_im`` (G, M), ``B`` (G, M, 2), ``C``
    (H, M, 2) (``(c, H, M, 2)`` for c > 1), ``C_bwd`` likewise if bidirectional, ``D``
    (H,) (``(c, H)``), ``log_dt`` (H,) (``(H, M)`` with ``dt_tie=False``). Channel h
    uses the copy ``h // (H / G)`` of ``Lambda`` and ``B`` (contiguous groups).

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
      dt_transform: ``exp``, ``softplus``, ``sigmoid`` or ``relu`` (``dt = f(log_dt)``).
      dt_tie: one step per channel (True) or per state (False, ``log_dt`` ``(H, M)``).
      deterministic: log-spaced initial ``dt`` over the channels (needs ``dt_tie``).
      bandlimit: None, or zero ``C`` for modes of frequency ``dt |Im Lambda| / 2π >=
        bandlimit / 2``.
      channels: output rows per channel; the output has ``channels * H`` features.
      bidirectional: add an anti-causal kernel with its own ``C_bwd``
        (`hippox.bidirectional_conv`); no carried state then.
      implementation: how `apply` evaluates the layer: ``'auto'`` (default), ``'fft'`` or
        ``'block'`` (above; `hippox.diag_implementation`). Same values either way. ``'block'``
        with ``disc='dss'`` is refused.
    """

    H: int
    N: int = 64
    _: dataclasses.KW_ONLY
    disc: Literal["zoh", "bilinear", "dss"] = "zoh"
    implementation: Literal["auto", "fft", "block"] = "auto"

    def __post_init__(self):
        self._check_shared()
        _validate.check_choice("ssm_init", self.ssm_init, SPECTRUM_INITS)
        _validate.check_choice("disc", self.disc, ("zoh", "bilinear", "dss"))
        _validate.check_choice("implementation", self.implementation, DIAG_IMPLEMENTATIONS)
        if self.implementation == "block" and self.disc == "dss":
            raise ValueError(
                "`implementation` must be 'auto' or 'fft' with disc='dss' (its modes may have "
                "Re(Lambda) > 0, whose powers grow without bound in the block recurrence, "
                "and its B depends on the call's length), got 'block'."
            )
        if self.b_init is None:
            base.set_field(self, "b_init", "legs" if self.ssm_init == "legs" else "constant")
        self.param_initializers()  # validates the remaining options eagerly

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return self._shapes()

    def param_initializers(self) -> dict[str, base.Initializer]:
        return self._initializers()

    def _check_apply_options(self, seq_lengths, initial_state, return_state) -> None:
        if self.disc == "dss" and (seq_lengths is not None or initial_state is not None):
            raise ValueError(
                "`seq_lengths` and `initial_state` must be None with disc='dss', got "
                f"{'seq_lengths' if seq_lengths is not None else 'initial_state'} set. DSS "
                "normalises B by the call's length L (B (exp(dt Lambda) - 1) / (Lambda "
                "(exp(dt Lambda L) - 1))), so padding changes the output at every valid position "
                "and a continued chunk is a different system. Call each sequence at its own "
                "length (group a batch by length), or use disc='zoh' or 'bilinear', whose "
                "padding and carries are exact."
            )

    def _system(self, p: dict, step_rescale=1.0):
        """``(Lambda, B, dt)`` to discretise: ``(H, M)``, ``(H, M)``, ``(H,)`` (rescaled).

        Per-state steps are folded into ``Lambda`` and ``B`` with unit step (module
        docstring of `hippox._src.layers.siso`).
        """
        H = self.H
        Lam = base.expand_groups(self._lambda(p), H)
        B = base.expand_groups(complex_from_pair(p["B"]), H)
        dt = self._dt(p)
        if dt.ndim == 2:
            Lam, B = dt * Lam, dt * B
            dt = jnp.ones((H,), dt.dtype)
        return Lam, B, dt * step_rescale

    def _rows(self, p: dict, name: str):
        """``(channels, H, M)`` (or ``(H, M)`` for one channel) output rows of leaf ``name``."""
        Lam = base.expand_groups(self._lambda(p), self.H)
        C = self._c_rows(p, name, Lam, self._dt(p))
        return C[0] if self.channels == 1 else C

    def _kernel(self, p: dict, L: int, step_rescale=1.0):
        Lam, B, dt = self._system(p, step_rescale)
        kw = dict(method=self.disc, conj_sym=self.conj_sym)
        K = kernel_diag(Lam, B, self._rows(p, "C"), dt, L, **kw)
        if self.bidirectional:
            return K, kernel_diag(Lam, B, self._rows(p, "C_bwd"), dt, L, **kw)
        return K

    def _use_block(self, L: int, state: bool) -> bool:
        if self.disc == "dss":
            return False
        impl = diag_implementation(L, self.M, state=state, implementation=self.implementation)
        return impl == "block"

    def _block_apply(self, p: dict, u, x0, lengths, step_rescale, need_state):
        """The layer by the block form: ``u`` ``(..., H, L)`` -> ``(y (..., L, c H), x)``."""
        Lam, B, dt = self._system(p, step_rescale)
        Ab, Bb = discretize_diag(Lam, B, dt, method=self.disc)
        Lam_stored = base.expand_groups(self._lambda(p), self.H)  # the bandlimit's frequencies
        dt_stored = self._dt(p)
        fac = 2.0 if self.conj_sym else 1.0
        C = self._c_rows(p, "C", Lam_stored, dt_stored).astype(Ab.dtype) * fac
        L = u.shape[-1]
        T = block_length(L)
        y, x = diag_block_forward(Ab, Bb, C, self._d(p), u, x0, lengths, T=T, need_state=need_state)
        if self.bidirectional:
            # y_l += Σ_{j>l} K_bwd[j-l-1] u_j: the causal form on the reversed input, shifted.
            Cb = self._c_rows(p, "C_bwd", Lam_stored, dt_stored).astype(Ab.dtype) * fac
            z, _ = diag_block_forward(
                Ab, Bb, Cb, None, u[..., ::-1], None, None, T=T, need_state=False
            )
            z = jnp.concatenate([jnp.zeros_like(z[..., :1]), z[..., :-1]], axis=-1)
            y = y + z[..., ::-1]
        return base.merge_channels(y, self.channels), x

    def _state_pass(self, p: dict, u, x0, lengths, step_rescale, need_state):
        """Free response and final state through the diagonal form (no step loop)."""
        Lam, B, dt = self._system(p, step_rescale)
        L = u.shape[-1] if self.disc == "dss" else None
        Ab, Bb = discretize_diag(Lam, B, dt, method=self.disc, L=L)
        Lam_stored = base.expand_groups(self._lambda(p), self.H)  # the bandlimit's frequencies
        C = self._c_rows(p, "C", Lam_stored, self._dt(p)) * (2.0 if self.conj_sym else 1.0)
        return masking.diag_state_pass(Ab, Bb, C, x0, u, lengths, need_state=need_state)

    def step_params(
        self,
        params: base.Params,
        *,
        L: int | None = None,
        step_rescale: float | ArrayLike = 1.0,
    ):
        """Discretised step parameters (`hippox.DiagStepParams`; `ChannelsStepParams` with
        several output channels). ``L`` only for ``dss`` (the normalisation's length);
        ``step_rescale`` multiplies every step."""
        base.refuse_bidirectional_step(self.bidirectional)
        if self.disc == "dss" and L is None:
            raise ValueError(
                "`L` must be given for step mode with disc='dss' (its normalisation depends on "
                "the kernel length), got None."
            )
        p, rd = self.prepared(params)
        Lam, B, dt = self._system(p, self._rescale(step_rescale, rd))
        C = self._rows(p, "C")
        D = p["D"]
        sp = diag_step_params(
            Lam,
            B,
            C if self.channels == 1 else C[0],
            dt,
            D if self.channels == 1 else D[0],
            method=self.disc,
            conj_sym=self.conj_sym,
            L=L if self.disc == "dss" else None,
        )
        return sp if self.channels == 1 else self._wrap_channels(sp, C, D)

    def _step_function(self):
        return diag_step
