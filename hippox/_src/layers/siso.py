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
- ``log_dt``: the step, ``dt = f(log_dt) > 0`` with ``f`` the config's ``dt_transform``
  (``exp`` by default; the leaf keeps its name under every transform). Shape ``(H,)``
  (one step per channel, ``dt_tie=True``) or ``(H, M)`` (one per state, ``dt_tie=False``).
- ``D``: real skip term ``(H,)`` (``(channels, H)`` with several output channels).

Per-state steps (``dt_tie=False``, the reference's option): mode ``m`` of channel ``h``
uses ``dt_hm``. The system is rescaled to unit step, ``Lambda' = dt ⊙ Lambda``,
``B' = dt ⊙ B`` (S4D) or ``Lambda' = dt ⊙ Lambda``, ``P' = √dt ⊙ P``, ``B' = √dt ⊙ B``,
``C' = √dt ⊙ C`` (S4, ``A' = Δ^{1/2} A Δ^{1/2}`` with ``Δ = diag(dt)``: the same
Cauchy sums as the reference's DPLR kernel with a ``(H, N/2)`` step), and discretised
with ``dt' = step_rescale``. With equal ``dt_hm`` it is the tied system.

Output channels (``channels > 1``, the reference's ``channels``): ``C`` (and
``C_bwd``) get a leading ``channels`` axis, ``(channels, H, M, 2)``, ``D`` is
``(channels, H)``, and the layer maps ``(..., L, H)`` to ``(..., L, channels * H)``
with feature ``c * H + h`` from output row ``c`` of channel ``h`` (the reference's
``(c h)`` order). The state is unchanged (the rows share it).

Bandlimit (``bandlimit=b``, the reference's option from S4ND): modes whose frequency
``dt |Im Lambda| / 2π`` (with the stored step, not rescaled) is ``>= b / 2`` get
``C = 0`` (for S4: ``C̃ = 0``, as the reference masks its stored ``C̃``); in the
kernel and in step mode alike.

Calling convention (every method of the layer): ``apply(params, u, *, dtype,
seq_lengths, initial_state, return_state, step_rescale)``, module docstring of
`hippox._src.layers.masking`; ``step_rescale`` multiplies every step (a model trained
at one sampling rate run at another).

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
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from hippox import initializers as inits
from hippox._src import _validate, diagonal, matrices
from hippox._src.layers import base, masking
from hippox._src.parameterization import LambdaReTransform, complex_from_pair, lambda_from_params


class ChannelsStepParams(NamedTuple):
    """Step parameters of a layer with several output channels (``channels > 1``).

    Attributes:
      ssm: the single-channel step parameters (the state update; its own ``C`` unused).
      C: ``(channels, H, M)`` complex output rows, output factor folded in.
      D: ``(channels, H)`` real skip terms.
    """

    ssm: NamedTuple
    C: jax.Array
    D: jax.Array


#: Every ``ssm_init`` of S4D and S4: the diagonal inits, then the NPLR measures (aliases
#: included; S4D uses their normal part, S4 their normal part and low-rank term).
SPECTRUM_INITS: tuple[str, ...] = (
    *diagonal.DIAG_INITS,
    *(m for m in matrices.NPLR_NAMES if m not in diagonal.DIAG_INITS),
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SISOConfig(base.LayerConfig):
    """The options and methods S4D and S4 share (see the module docstring).

    Subclasses declare the sizes ``H`` and ``N`` (and S4's ``l_max``) as positional
    fields, and define ``_kernel(p, L, step_rescale)``, ``_state_pass``, ``step_params``
    and ``_step_function``.

    Attributes:
      ssm_init: the initial spectrum (the subclass lists the names it accepts).
      conj_sym: store one of each conjugate pair (output ``2 Re``).
      n_ssm: number of independent copies of ``Lambda`` and ``B`` (None: H).
      b_init: `hippox.initializers.b` name (None: the subclass's default).
      lambda_transform: ``exp``, ``softplus`` or ``clip``.
      real_scale, imag_scale: scales of the initial spectrum.
      dt_min, dt_max: range of the log-uniform initial ``dt``.
      dt_transform: ``exp`` (default), ``softplus``, ``sigmoid`` or ``relu``: ``dt =
        f(log_dt)`` (`hippox._src.layers.base.dt_from_param`).
      dt_tie: one step per channel (``log_dt`` ``(H,)``) or, False, one per state
        (``(H, M)``; module docstring).
      deterministic: initial ``dt`` log-spaced over the channels from ``dt_min`` to
        ``dt_max`` instead of random (the reference's ``deterministic`` for ``dt``;
        needs ``dt_tie``). The other leaves keep their initializers.
      bandlimit: None (off) or a positive cut-off (module docstring).
      channels: output rows per channel (module docstring), default 1.
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
    dt_transform: str = "exp"
    dt_tie: bool = True
    deterministic: bool = False
    bandlimit: float | None = None
    channels: int = 1
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
        _validate.check_choice("dt_transform", self.dt_transform, base.DT_TRANSFORMS)
        base.set_field(self, "dt_tie", _validate.check_bool("dt_tie", self.dt_tie))
        base.set_field(
            self, "deterministic", _validate.check_bool("deterministic", self.deterministic)
        )
        if self.deterministic and not self.dt_tie:
            raise ValueError(
                "`deterministic` must be False with dt_tie=False (the deterministic step is "
                "one per channel, as in the reference), got True."
            )
        if self.bandlimit is not None:
            base.set_field(
                self, "bandlimit", _validate.check_real("bandlimit", self.bandlimit, positive=True)
            )
        base.set_field(self, "channels", _validate.check_size("channels", self.channels))

    @property
    def M(self) -> int:
        """Stored modes per channel: N/2 (conj_sym) or N."""
        return self.N // 2 if self.conj_sym else self.N

    @property
    def features_out(self) -> int:
        """Output features: ``channels * H``."""
        return self.channels * self.H

    def _shapes(self, **extra: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """``Lambda_re``, ``Lambda_im``, the subclass's ``extra``, ``B``, ``C``, … in order."""
        G, M, H = self.n_ssm, self.M, self.H
        rows = () if self.channels == 1 else (self.channels,)
        shapes = {"Lambda_re": (G, M), "Lambda_im": (G, M), **extra}
        shapes.update(B=(G, M, 2), C=(*rows, H, M, 2))
        if self.bidirectional:
            shapes["C_bwd"] = (*rows, H, M, 2)
        shapes.update(D=(*rows, H), log_dt=(H,) if self.dt_tie else (H, M))
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
            "log_dt": base.dt_initializer(
                dt_min=self.dt_min,
                dt_max=self.dt_max,
                transform=self.dt_transform,
                deterministic=self.deterministic,
            ),
        }

    def _lambda(self, p: dict) -> jax.Array:
        """The complex ``Lambda`` ``(G, M)`` from its stored leaves."""
        return lambda_from_params(p["Lambda_re"], p["Lambda_im"], transform=self.lambda_transform)

    def _dt(self, p: dict) -> jax.Array:
        """The stored step ``(H,)`` or ``(H, M)`` (not rescaled)."""
        return base.dt_from_param(p["log_dt"], self.dt_transform)

    def _c_rows(self, p: dict, name: str, Lam: jax.Array, dt: jax.Array) -> jax.Array:
        """``(channels, H, M)`` complex output rows of leaf ``name``, bandlimit applied.

        ``Lam`` ``(H, M)`` and ``dt`` (the stored step) give the modes' frequencies.
        """
        C = complex_from_pair(p[name])
        if self.channels == 1:
            C = C[None]
        if self.bandlimit is not None:
            step = dt[:, None] if dt.ndim == 1 else dt
            freqs = step * jnp.abs(Lam.imag) / (2 * jnp.pi)
            C = jnp.where(freqs < self.bandlimit / 2, C, jnp.zeros((), C.dtype))
        return C

    def _d(self, p: dict) -> jax.Array:
        """``(channels, H)`` skip terms."""
        return p["D"][None] if self.channels == 1 else p["D"]

    def _kernel(self, p: dict, L: int, step_rescale):  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_pass(self, p: dict, u, x0, lengths, step_rescale, need_state):  # pragma: no cover
        raise NotImplementedError

    def kernel(self, params: base.Params, L: int, *, step_rescale: float | ArrayLike = 1.0):
        """The convolution kernel ``(H, L)`` (a pair ``(K_fwd, K_bwd)`` if bidirectional).

        ``(channels, H, L)`` with several output channels; ``step_rescale`` multiplies
        every step.
        """
        L = _validate.check_size("L", L)
        p, rd = self.prepared(params)
        return self._kernel(p, L, self._rescale(step_rescale, rd))

    @staticmethod
    def _rescale(step_rescale, rd):
        """A Python float stays static (1.0 keeps the fast paths); arrays are checked."""
        if isinstance(step_rescale, (int, float)) and not isinstance(step_rescale, bool):
            return _validate.check_real("step_rescale", step_rescale, positive=True)
        return base.check_step_rescale(step_rescale, rd)

    def _check_apply_options(self, seq_lengths, initial_state, return_state) -> None:
        """Hook for options a subclass refuses (S4D with disc='dss')."""

    def _use_block(self, L: int, state: bool) -> bool:
        """Whether `apply` runs the FFT-free block form (S4D's ``implementation``); False here."""
        return False

    def _block_apply(self, p, u, x0, lengths, step_rescale, need_state):  # pragma: no cover
        """``(y (..., L, channels * H), state)`` by the block form (S4D only)."""
        raise NotImplementedError

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
          u: ``(..., L, H)`` real input (``...`` the batch shape).
          dtype: output dtype (None: the input's).
          seq_lengths: None, or ``(...)`` ints in ``[0, L]``: positions at or after a
            sequence's length are padding (zero outputs, never influencing valid
            positions; `hippox._src.layers.masking`).
          initial_state: None (zeros) or the step-mode state ``(..., H, M)`` complex to
            start from (e.g. from a previous call with ``return_state`` or from `step`).
          return_state: also return the state after each sequence's last valid step.
          step_rescale: multiplies every step ``dt`` (a positive number or array).

        Returns:
          ``y`` ``(..., L, channels * H)`` in ``dtype``, or ``(state, y)`` with
          ``return_state`` (``state`` ``(..., H, M)`` complex, continuing in `step`).
          Splitting a sequence into chunks and passing the state along gives the output
          of one call (no step loop: a convolution plus the free response of the state).

        Raises:
          ValueError / TypeError: bad ``u``, ``seq_lengths`` or ``initial_state`` (naming
            the argument); a state with ``bidirectional=True``.
        """
        u = base.check_sequence_input(u, self.H)
        batch, L = u.shape[:-2], u.shape[-2]
        return_state = _validate.check_bool("return_state", return_state)
        masking.refuse_bidirectional_state(self.bidirectional, initial_state, return_state)
        lengths = masking.check_seq_lengths(seq_lengths, batch, L)
        self._check_apply_options(seq_lengths, initial_state, return_state)
        x0 = None if initial_state is None else self.check_state(initial_state, batch)
        p, rd = self.prepared(params, u)
        r = self._rescale(step_rescale, rd)
        ur = masking.zero_padding(u.astype(rd), lengths, axis=-2)
        if self._use_block(L, x0 is not None or return_state):
            x0 = None if x0 is None else x0.astype(_validate.complex_dtype(rd))
            y, state = self._block_apply(p, jnp.swapaxes(ur, -1, -2), x0, lengths, r, return_state)
            y = masking.zero_padding(y, lengths, axis=-2).astype(base.output_dtype(dtype, u))
            return (state, y) if return_state else y
        y = base.convolve(self._kernel(p, L, r), ur, p["D"], rd)
        state = None
        if x0 is not None or return_state:
            x0 = None if x0 is None else x0.astype(_validate.complex_dtype(rd))
            ut = jnp.swapaxes(ur, -1, -2)
            y_free, state = self._state_pass(p, ut, x0, lengths, r, return_state)
            if y_free is not None:
                y = y + base.merge_channels(y_free.astype(rd), self.channels)
        y = masking.zero_padding(y, lengths, axis=-2).astype(base.output_dtype(dtype, u))
        return (state, y) if return_state else y

    def _step_function(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _wrap_channels(self, ssm, C: jax.Array, D: jax.Array):
        """Step parameters for several output channels (`ChannelsStepParams`)."""
        fac = 2.0 if self.conj_sym else 1.0
        return ChannelsStepParams(ssm, fac * C.astype(ssm.Bb.dtype), D.astype(ssm.D.dtype))

    def step(self, step_params, x: ArrayLike, u: ArrayLike, *, dtype: DTypeLike | None = None):
        """One step: ``x`` ``(..., H, M)``, ``u`` ``(..., H)`` -> ``(x_new, y)``.

        ``y`` is ``(..., H)`` (``(..., channels * H)`` with several output channels).
        """
        u = base.check_step_input(u, self.H)
        if isinstance(step_params, ChannelsStepParams):
            x, _ = self._step_function()(step_params.ssm, x, u)
            C, D = step_params.C, step_params.D
            y = jnp.einsum("chm,...hm->...ch", C, x).real + D * u[..., None, :].astype(D.dtype)
            y = y.reshape(*y.shape[:-2], -1)
        else:
            x, y = self._step_function()(step_params, x, u)
        return x, y.astype(base.output_dtype(dtype, u))

    def initial_state(
        self, batch_shape: Sequence[int] = (), param_dtype: DTypeLike = jnp.float32
    ) -> jax.Array:
        """Zero state ``(*batch_shape, H, M)``, complex64 (complex128 for float64 params)."""
        batch = _validate.check_batch_shape(batch_shape)
        return jnp.zeros((*batch, self.H, self.M), base.state_dtype(param_dtype))

    def state_layout(self) -> tuple[tuple[int, ...], bool, str]:
        """One complex array ``(..., H, M)``."""
        return (self.H, self.M), True, f"(..., H, M) with H={self.H}, M={self.M}"
