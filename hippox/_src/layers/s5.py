"""S5: one MIMO diagonal SSM shared by all H channels, run with a parallel scan."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from hippox import initializers as inits
from hippox._src import _validate
from hippox._src.discretize import discretize_diag
from hippox._src.layers import base, masking
from hippox._src.parameterization import LambdaReTransform, complex_from_pair, lambda_from_params
from hippox._src.recurrence import linear_recurrence


class S5StepParams(NamedTuple):
    """Discretised S5 system for `S5Config.step`.

    Attributes:
      Ab: ``(M,)`` complex diagonal of the discrete state matrix.
      Bb: ``(M, H)`` complex discrete input matrix.
      C: ``(H, M)`` complex output matrix, the conj_sym factor 2 folded in
        (``y = Re(C x) + D u``).
      D: ``(H,)`` real skip term.
    """

    Ab: jax.Array
    Bb: jax.Array
    C: jax.Array
    D: jax.Array


@dataclasses.dataclass(frozen=True)
class S5Config(base.LayerConfig):
    """S5: one MIMO diagonal SSM shared by all H channels, run with a parallel scan.

    ``dx/dt = diag(Lambda) x + B_tilde u`` with a state of M complex modes,
    ``y = 2 Re(C_tilde x) + D u`` (``conj_sym=True``; ``Re`` for ``conj_sym=False``),
    discretised per mode with ``dt = f(log_dt) * step_rescale`` (``f = exp`` by
    default; zoh or bilinear) and
    evaluated with `hippox.linear_recurrence` (``method='associative'`` by default).
    Initialised from a block-diagonal HiPPO-N matrix with J = ``blocks`` blocks
    (`hippox.block_diagonal_init`): ``Lambda`` its eigenvalues, ``B_tilde = V⁻¹ B``,
    ``C_tilde = C V``. ``Lambda_re`` is stored through ``lambda_transform`` as in
    `hippox._src.layers.siso`.

    Parameters (M = N/2 for conj_sym else N; the S5 paper's P is N): ``Lambda_re``
    (M,), ``Lambda_im`` (M,), ``B`` (M, H, 2) = ``V⁻¹B``, ``C`` (H, M, 2) = ``CV``,
    ``C_bwd`` (H, M, 2) if bidirectional, ``D`` (H,), ``log_dt`` (M,).

    ``apply(params, u, *, dtype, seq_lengths, initial_state, return_state,
    step_rescale)``: padded batches and carried states (`hippox._src.layers.masking`);
    the state is the scan's ``x0`` (`hippox.linear_recurrence`).

    S5 has no FFT-free block path (S4D's ``implementation='block'``): a block form of its
    recurrence (a ``T × T`` decay matmul per mode inside blocks) does ``T`` times the
    scan's work and measured 2-7× slower than the sequential scan on a CPU
    (``benchmarks/bench_block_scan.py``, group ``s5_recurrence``).

    Bidirectional: a second scan runs over the reversed sequence with the same
    ``Lambda``, ``B``, ``dt`` and its own ``C_bwd``; its state at position l has seen
    ``u_l … u_{L-1}`` (so ``u_l`` enters both directions, as in S5).

    Attributes:
      H: channels (input and output features).
      N: real state size (``blocks`` blocks of even size N/blocks).
      blocks: J, the number of HiPPO-N blocks.
      conj_sym: keep one of each conjugate pair.
      disc: ``zoh`` or ``bilinear``.
      c_init: `hippox.initializers.s5_c` init.
      lambda_transform: ``clip`` (S5's choice), ``exp`` or ``softplus``.
      dt_min, dt_max: range of the log-uniform initial ``dt`` (per mode).
      dt_transform: ``exp`` (default), ``softplus``, ``sigmoid`` or ``relu``: ``dt =
        f(log_dt)`` (the leaf keeps its name).
      bidirectional: add the backward scan.
      scan: ``associative`` (parallel) or ``sequential`` (`hippox.linear_recurrence`).
    """

    H: int
    N: int = 64
    _: dataclasses.KW_ONLY
    blocks: int = 1
    conj_sym: bool = True
    disc: Literal["zoh", "bilinear"] = "zoh"
    c_init: inits.S5CInit = "trunc_standard_normal"
    lambda_transform: LambdaReTransform = "clip"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_transform: str = "exp"
    bidirectional: bool = False
    scan: Literal["associative", "sequential"] = "associative"

    def __post_init__(self):
        base.set_field(self, "H", _validate.check_size("H", self.H))
        base.set_field(self, "N", _validate.check_size("N", self.N, minimum=2))
        base.set_field(self, "blocks", _validate.check_size("blocks", self.blocks))
        if self.N % self.blocks or (self.N // self.blocks) % 2:
            raise ValueError(
                f"`N` must be a multiple of 2*blocks={2 * self.blocks} (blocks of even size), "
                f"got {self.N}."
            )
        base.set_field(self, "conj_sym", _validate.check_bool("conj_sym", self.conj_sym))
        base.set_field(
            self, "bidirectional", _validate.check_bool("bidirectional", self.bidirectional)
        )
        _validate.check_choice("disc", self.disc, ("zoh", "bilinear"))
        _validate.check_choice("scan", self.scan, ("associative", "sequential"))
        _validate.check_choice("dt_transform", self.dt_transform, base.DT_TRANSFORMS)
        self.param_initializers()  # validates the remaining options eagerly

    @property
    def M(self) -> int:
        """Stored modes: N/2 (conj_sym) or N."""
        return self.N // 2 if self.conj_sym else self.N

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        M, H = self.M, self.H
        shapes = {"Lambda_re": (M,), "Lambda_im": (M,), "B": (M, H, 2), "C": (H, M, 2)}
        if self.bidirectional:
            shapes["C_bwd"] = (H, M, 2)
        shapes.update(D=(H,), log_dt=(M,))
        return shapes

    def param_initializers(self) -> dict[str, base.Initializer]:
        kw = dict(blocks=self.blocks, conj_sym=self.conj_sym)
        return {
            "Lambda_re": inits.lambda_re("legs", transform=self.lambda_transform, **kw),
            "Lambda_im": inits.lambda_im("legs", **kw),
            "B": inits.s5_b(**kw),
            "C": inits.s5_c(self.c_init, **kw),
            "C_bwd": inits.s5_c(self.c_init, **kw),
            "D": inits.d(),
            "log_dt": base.dt_initializer(
                dt_min=self.dt_min, dt_max=self.dt_max, transform=self.dt_transform
            ),
        }

    def _discrete(self, p: dict, step_rescale):
        Lam = lambda_from_params(p["Lambda_re"], p["Lambda_im"], transform=self.lambda_transform)
        dt = base.dt_from_param(p["log_dt"], self.dt_transform)
        dt = dt * base.check_step_rescale(step_rescale, p["log_dt"].dtype)
        # One step per mode: Lambda (M, 1) with a (M, 1, H) input matrix and dt (M,).
        B = complex_from_pair(p["B"])[:, None, :]
        Ab, Bb = discretize_diag(Lam[:, None], B, dt, method=self.disc)
        return Ab[:, 0], Bb[:, 0, :]

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
        """The layer with a parallel scan: ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``.

        Args:
          params: the parameter dict (`param_shapes`).
          u: ``(..., L, H)`` real input.
          dtype: output dtype (None: the input's).
          seq_lengths: None, or ``(...)`` ints in ``[0, L]``: positions at or after a
            sequence's length are padding (zero input and output; the backward scan of a
            bidirectional layer starts at each sequence's end).
          initial_state: None (zeros) or the ``(..., M)`` complex state to start from
            (`hippox.linear_recurrence`'s ``x0``).
          return_state: also return the state after each sequence's last valid step.
          step_rescale: multiplies every ``dt`` (e.g. for a different sampling rate).

        Returns:
          ``y`` ``(..., L, H)``, or ``(state, y)`` with ``return_state`` (``state``
          ``(..., M)``, continuing in `step`).

        Raises:
          ValueError / TypeError: bad ``u``, ``seq_lengths`` or ``initial_state`` (naming
            the argument); a state with ``bidirectional=True``.
        """
        u = base.check_sequence_input(u, self.H)
        batch, L = u.shape[:-2], u.shape[-2]
        return_state = _validate.check_bool("return_state", return_state)
        masking.refuse_bidirectional_state(self.bidirectional, initial_state, return_state)
        lengths = masking.check_seq_lengths(seq_lengths, batch, L)
        x0 = None if initial_state is None else self.check_state(initial_state, batch)
        p, rd = self.prepared(params, u)
        Ab, Bb = self._discrete(p, step_rescale)
        ur = masking.zero_padding(u.astype(rd), lengths, axis=-2)
        Bu = jnp.einsum("mh,...lh->...lm", Bb, ur.astype(Bb.dtype))
        scan = dict(diagonal=True, method=self.scan)
        fac = 2.0 if self.conj_sym else 1.0
        if x0 is not None:
            x0 = x0.astype(Bb.dtype)
        xs = linear_recurrence(Ab, Bu, x0=x0, **scan)
        y = fac * jnp.einsum("hm,...lm->...lh", complex_from_pair(p["C"]), xs).real
        if self.bidirectional:
            xb = jnp.flip(linear_recurrence(Ab, jnp.flip(Bu, -2), **scan), -2)
            y = y + fac * jnp.einsum("hm,...lm->...lh", complex_from_pair(p["C_bwd"]), xb).real
        y = y + p["D"] * ur
        y = masking.zero_padding(y, lengths, axis=-2).astype(base.output_dtype(dtype, u))
        if not return_state:
            return y
        return masking.last_valid(xs, lengths, x0), y

    def step_params(
        self, params: base.Params, *, step_rescale: float | ArrayLike = 1.0
    ) -> S5StepParams:
        """Discretised `S5StepParams` for `step`."""
        base.refuse_bidirectional_step(self.bidirectional)
        p, _ = self.prepared(params)
        Ab, Bb = self._discrete(p, step_rescale)
        fac = 2.0 if self.conj_sym else 1.0
        return S5StepParams(Ab, Bb, fac * complex_from_pair(p["C"]), p["D"])

    def initial_state(
        self, batch_shape: Sequence[int] = (), param_dtype: DTypeLike = jnp.float32
    ) -> jax.Array:
        """Zero state ``(*batch_shape, M)`` (shared by the channels), complex."""
        batch = _validate.check_batch_shape(batch_shape)
        return jnp.zeros((*batch, self.M), base.state_dtype(param_dtype))

    def state_layout(self) -> tuple[tuple[int, ...], bool, str]:
        """One complex array ``(..., M)`` shared by the channels."""
        return (self.M,), True, f"(..., M) with M={self.M}"

    def step(
        self,
        step_params: S5StepParams,
        x: ArrayLike,
        u: ArrayLike,
        *,
        dtype: DTypeLike | None = None,
    ):
        """One step: ``x`` ``(..., M)``, ``u`` ``(..., H)`` -> ``(x_new, y)`` ``(..., H)``.

        ``x' = Ab x + Bb u``, ``y = Re(C x') + D u`` (the MIMO recurrence the scan runs).
        """
        if not isinstance(step_params, S5StepParams):
            raise TypeError(
                f"`step_params` must be S5StepParams, got {type(step_params).__name__}."
            )
        u = base.check_step_input(u, self.H)
        x = _validate.as_array("x", x)
        if x.ndim < 1 or x.shape[-1] != self.M:
            raise ValueError(f"`x` must have shape (..., M) with M={self.M}, got {x.shape}.")
        Ab, Bb, C, D = step_params
        x = Ab * x.astype(Ab.dtype) + jnp.einsum("mh,...h->...m", Bb, u.astype(Bb.dtype))
        y = jnp.einsum("hm,...m->...h", C, x).real + D * u.astype(D.dtype)
        return x, y.astype(base.output_dtype(dtype, u))
