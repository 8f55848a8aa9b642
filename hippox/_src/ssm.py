"""Pure math of the SSM layers S4D, S4, S5 and LSSL, shared by `hippox.nnx` and `hippox.linen`.

Each layer is described by a frozen, hashable config dataclass (`S4DConfig`,
`S4Config`, `S5Config`, `LSSLConfig`) whose methods are pure functions of a flat
dict of parameters (``{"Lambda_re": ..., "B": ..., ...}``):

- ``param_shapes()`` / ``param_initializers()``: the parameter names, shapes and
  initializers (`hippox.initializers` factories), which both framework wrappers use
  to create their parameters, so linen and NNX trees have the same leaf names;
- ``apply(params, u, *, dtype=None)``: the layer on ``u`` of shape ``(..., L, H)``
  (channel-last, the Flax convention) -> ``y`` of the same shape: convolution mode
  (S4D, S4, LSSL) or a parallel scan (S5);
- ``kernel(params, L)``: the convolution kernel(s) ``(H, L)`` (S4D, S4, LSSL);
- ``step_params(params, ...)``, ``initial_state(batch_shape, param_dtype)``,
  ``step(step_params, x, u_k, *, dtype=None) -> (x, y_k)``: step (streaming) mode,
  equal to ``apply`` when scanned over the sequence.

Parameterisation (every leaf is real, so every optax transform is correct):

- ``Lambda_re``, ``Lambda_im``: the diagonal of A, ``Lambda = f(Lambda_re) + i Lambda_im``
  with ``f`` the config's ``lambda_transform`` (``exp``: ``-exp``, ``softplus``:
  ``-softplus``, ``clip``: ``min(., -1e-4)``; `hippox.initializers.lambda_re_forward`),
  so ``Re(Lambda) < 0`` for every parameter value and training cannot make the
  system unstable.
- ``P``, ``B``, ``C`` (and ``C_bwd``): complex, stored with a trailing axis of 2
  (real, imaginary). LSSL's ``C`` (and ``A``, ``B``) are real.
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
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate, diagonal, matrices
from hippox._src import initializers as inits
from hippox._src.conv import bidirectional_conv, causal_conv
from hippox._src.discretize import DENSE_METHODS, discretize, discretize_diag
from hippox._src.kernels import dplr_c_from_tilde, kernel_diag, kernel_dplr, kernel_naive
from hippox._src.recurrence import linear_recurrence
from hippox._src.step import (
    dense_step,
    dense_step_params,
    diag_step,
    diag_step_params,
    dplr_step_dense,
    dplr_step_dense_params,
    dplr_step_linear,
    dplr_step_linear_params,
)

Params = Mapping[str, Any]

from hippox._src.optim import SSM_PARAM_NAMES, optax_labels  # noqa: F401  (moved)

# --------------------------------------------------------------------------- helpers


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool, got {value!r}.")
    return bool(value)


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


def _check_groups(H: int, n_ssm) -> int:
    if n_ssm is None:
        return H
    n_ssm = _validate.check_size("n_ssm", n_ssm)
    if H % n_ssm:
        raise ValueError(f"`n_ssm` must divide H={H}, got {n_ssm}.")
    return n_ssm


def _check_input(u: ArrayLike, H: int) -> jax.Array:
    u = jnp.asarray(u)
    if not jnp.issubdtype(u.dtype, jnp.floating):
        raise TypeError(f"`u` must be a real floating array, got dtype {u.dtype}.")
    if u.ndim < 2 or u.shape[-1] != H or u.shape[-2] < 1:
        raise ValueError(
            f"`u` must have shape (..., L, H) with L >= 1 and H={H} channels, got {u.shape}."
        )
    return u


def _check_step_input(u: ArrayLike, H: int) -> jax.Array:
    u = jnp.asarray(u)
    if not jnp.issubdtype(u.dtype, jnp.floating):
        raise TypeError(f"`u` must be a real floating array, got dtype {u.dtype}.")
    if u.ndim < 1 or u.shape[-1] != H:
        raise ValueError(f"`u` must have shape (..., H) with H={H} channels, got {u.shape}.")
    return u


def _compute_dtype(params: Params, u: jax.Array | None = None) -> np.dtype:
    """float32 unless a parameter or the input is float64 (half precisions -> float32)."""
    dtypes = [jnp.asarray(v).dtype for v in params.values()]
    if u is not None:
        dtypes.append(u.dtype)
    return np.dtype(jnp.promote_types(jnp.result_type(*dtypes), jnp.float32))


def _cast(params: Params, rd) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v).astype(rd) for k, v in params.items()}


def _pair(x: jax.Array) -> jax.Array:
    return jax.lax.complex(x[..., 0], x[..., 1])


def _expand(x: jax.Array, H: int, axis: int = 0) -> jax.Array:
    """Repeats the n_ssm groups of axis `axis` to H channels (channel h uses copy h // (H/G))."""
    G = x.shape[axis]
    return x if G == H else jnp.repeat(x, H // G, axis=axis)


def _out_dtype(dtype, u: jax.Array):
    return u.dtype if dtype is None else jnp.dtype(dtype)


def _state_dtype(param_dtype, *, complex_state: bool = True) -> np.dtype:
    rd = np.dtype(
        jnp.promote_types(_validate.real_dtype(param_dtype, name="param_dtype"), jnp.float32)
    )
    return _validate.complex_dtype(rd) if complex_state else rd


def _batch_shape(batch_shape) -> tuple[int, ...]:
    if isinstance(batch_shape, numbers.Integral):
        batch_shape = (batch_shape,)
    return tuple(_validate.check_size("batch_shape entry", n, minimum=0) for n in batch_shape)


class _Base:
    """Parameter bookkeeping shared by the configs."""

    H: int

    def param_shapes(self) -> dict[str, tuple[int, ...]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def param_initializers(self) -> dict[str, inits.Initializer]:  # pragma: no cover
        raise NotImplementedError

    def param_specs(self) -> dict[str, tuple[tuple[int, ...], inits.Initializer]]:
        """``{name: (shape, initializer)}`` for every parameter, in a fixed order."""
        inits_ = self.param_initializers()
        return {name: (shape, inits_[name]) for name, shape in self.param_shapes().items()}

    def init_params(self, key, *, param_dtype: DTypeLike = jnp.float32) -> dict[str, jax.Array]:
        """Initial parameters as a flat dict (framework-free use; one key per leaf).

        Args:
          key: jax.random key, split once per parameter in `param_shapes` order.
          param_dtype: real storage dtype.

        Returns:
          ``{name: array}`` with the shapes of `param_shapes`.
        """
        _validate.require_key("key", key, "init_params")
        specs = self.param_specs()
        keys = jax.random.split(key, len(specs))
        return {
            n: init(k, shape, param_dtype)
            for k, (n, (shape, init)) in zip(keys, specs.items(), strict=True)
        }

    def check_params(self, params: Params) -> None:
        """Raises a ValueError naming the leaf when ``params`` lacks a leaf or has a wrong shape."""
        if not isinstance(params, Mapping):
            raise TypeError(
                f"`params` must be a mapping of name -> array, got {type(params).__name__}."
            )
        for name, shape in self.param_shapes().items():
            if name not in params:
                raise ValueError(
                    f"`params` must contain the leaves {tuple(self.param_shapes())}, "
                    f"missing {name!r}."
                )
            got = tuple(jnp.shape(params[name]))
            if got != shape:
                raise ValueError(f"`params[{name!r}]` must have shape {shape}, got {got}.")

    def _prepared(self, params: Params, u: jax.Array | None = None):
        self.check_params(params)
        params = {n: params[n] for n in self.param_shapes()}
        rd = _compute_dtype(params, u)
        return _cast(params, rd), rd

    def _lambda(self, p: dict) -> jax.Array:
        return inits.lambda_from_params(
            p["Lambda_re"], p["Lambda_im"], transform=self.lambda_transform
        )

    def _conv(self, K, u: jax.Array, D: jax.Array, rd) -> jax.Array:
        ut = jnp.swapaxes(u, -1, -2).astype(rd)  # (..., H, L)
        if isinstance(K, tuple):
            y = bidirectional_conv(ut, K[0], K[1], D=D)
        else:
            y = causal_conv(ut, K, D=D)
        return jnp.swapaxes(y, -1, -2)

    def _no_bidirectional_step(self) -> None:
        if getattr(self, "bidirectional", False):
            raise ValueError(
                "`bidirectional` must be False for step mode (a bidirectional layer sees the "
                "future and has no recurrent form), got True."
            )


# ------------------------------------------------------------------------------- S4D


@dataclasses.dataclass(frozen=True)
class S4DConfig(_Base):
    """S4D: a diagonal SSM per channel with a Vandermonde kernel (`hippox.kernel_diag`).

    Per channel ``h``: ``dx/dt = diag(Lambda_h) x + B_h u``, ``y = 2 Re(C_h x) + D_h u``
    (``conj_sym=True``; ``Re`` without the 2 for ``conj_sym=False``), discretised with
    ``dt_h = exp(log_dt_h)`` by ``disc``.

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
      lambda_transform: ``exp``, ``softplus`` or ``clip`` (module docstring).
      real_scale, imag_scale: scales of the initial spectrum.
      dt_min, dt_max: range of the log-uniform initial ``dt``.
      bidirectional: add an anti-causal kernel with its own ``C_bwd``
        (`hippox.bidirectional_conv`).
    """

    H: int
    N: int = 64
    ssm_init: str = "legs"
    disc: Literal["zoh", "bilinear", "dss"] = "zoh"
    conj_sym: bool = True
    n_ssm: int | None = None
    b_init: str | None = None
    lambda_transform: inits.LambdaReTransform = "exp"
    real_scale: float = 1.0
    imag_scale: float = 1.0
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    bidirectional: bool = False

    def __post_init__(self):
        H = _validate.check_size("H", self.H)
        _set(self, "H", H)
        _set(self, "N", _validate.check_size("N", self.N, minimum=2, even=True))
        _set(self, "n_ssm", _check_groups(H, self.n_ssm))
        _set(self, "conj_sym", _check_bool("conj_sym", self.conj_sym))
        _set(self, "bidirectional", _check_bool("bidirectional", self.bidirectional))
        _validate.check_choice("disc", self.disc, ("zoh", "bilinear", "dss"))
        if self.b_init is None:
            _set(self, "b_init", "legs" if self.ssm_init == "legs" else "constant")
        self.param_initializers()  # validates the remaining options eagerly

    @property
    def M(self) -> int:
        """Stored modes per channel: N/2 (conj_sym) or N."""
        return self.N // 2 if self.conj_sym else self.N

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        G, M, H = self.n_ssm, self.M, self.H
        shapes = {"Lambda_re": (G, M), "Lambda_im": (G, M), "B": (G, M, 2), "C": (H, M, 2)}
        if self.bidirectional:
            shapes["C_bwd"] = (H, M, 2)
        shapes.update(D=(H,), log_dt=(H,))
        return shapes

    def param_initializers(self) -> dict[str, inits.Initializer]:
        out = {
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
        return out

    def _system(self, p: dict):
        H = self.H
        return (_expand(self._lambda(p), H), _expand(_pair(p["B"]), H), jnp.exp(p["log_dt"]))

    def kernel(self, params: Params, L: int):
        """The convolution kernel ``(H, L)`` (a pair ``(K_fwd, K_bwd)`` if bidirectional)."""
        L = _validate.check_size("L", L)
        p, _ = self._prepared(params)
        return self._kernel(p, L)

    def _kernel(self, p: dict, L: int):
        Lam, B, dt = self._system(p)
        kw = dict(method=self.disc, conj_sym=self.conj_sym)
        K = kernel_diag(Lam, B, _pair(p["C"]), dt, L, **kw)
        if self.bidirectional:
            return K, kernel_diag(Lam, B, _pair(p["C_bwd"]), dt, L, **kw)
        return K

    def apply(self, params: Params, u: ArrayLike, *, dtype: DTypeLike | None = None) -> jax.Array:
        """The layer in convolution mode: ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``."""
        u = _check_input(u, self.H)
        p, rd = self._prepared(params, u)
        y = self._conv(self._kernel(p, u.shape[-2]), u, p["D"], rd)
        return y.astype(_out_dtype(dtype, u))

    def step_params(self, params: Params, *, L: int | None = None):
        """Discretised step parameters (`hippox.DiagStepParams`); ``L`` only for ``dss``."""
        self._no_bidirectional_step()
        if self.disc == "dss" and L is None:
            raise ValueError(
                "`L` must be given for step mode with disc='dss' (its normalisation depends on "
                "the kernel length), got None."
            )
        p, _ = self._prepared(params)
        Lam, B, dt = self._system(p)
        return diag_step_params(
            Lam,
            B,
            _pair(p["C"]),
            dt,
            p["D"],
            method=self.disc,
            conj_sym=self.conj_sym,
            L=L if self.disc == "dss" else None,
        )

    def initial_state(self, batch_shape: Sequence[int] = (), param_dtype=jnp.float32) -> jax.Array:
        """Zero state ``(*batch_shape, H, M)``, complex64 (complex128 for float64 params)."""
        return jnp.zeros((*_batch_shape(batch_shape), self.H, self.M), _state_dtype(param_dtype))

    def step(self, step_params, x: ArrayLike, u: ArrayLike, *, dtype: DTypeLike | None = None):
        """One step: ``x`` ``(..., H, M)``, ``u`` ``(..., H)`` -> ``(x_new, y)``."""
        u = _check_step_input(u, self.H)
        x, y = diag_step(step_params, x, u)
        return x, y.astype(_out_dtype(dtype, u))


# -------------------------------------------------------------------------------- S4


@dataclasses.dataclass(frozen=True)
class S4Config(_Base):
    """S4: a diagonal-plus-low-rank SSM per channel with the Cauchy kernel (`hippox.kernel_dplr`).

    Per channel: ``A = diag(Lambda) - Pᵀ conj(P)`` on the conjugate-closed mode set
    (`hippox.kernel_dplr`): with ``conj_sym=True`` the stored M = N/2 modes are one half
    and the system is ``[Lambda, conj(Lambda)]``, ``[P, conj(P)]``, ... (the low-rank
    term couples the halves, as in S4; for an NPLR init this is exactly the real HiPPO
    operator), output ``2 Re(C x)`` of the half state. Bilinear discretisation with
    ``dt = exp(log_dt)``, ``y = K * u + D u``.

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
    ssm_init: str = "legs"
    rank: int | None = None
    conj_sym: bool = True
    n_ssm: int | None = None
    b_init: str | None = None
    lambda_transform: inits.LambdaReTransform = "exp"
    real_scale: float = 1.0
    imag_scale: float = 1.0
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    bidirectional: bool = False
    step_mode: Literal["linear", "dense"] = "linear"

    def __post_init__(self):
        H = _validate.check_size("H", self.H)
        _set(self, "H", H)
        _set(self, "l_max", _validate.check_size("l_max", self.l_max))
        _set(self, "N", _validate.check_size("N", self.N, minimum=2, even=True))
        _set(self, "n_ssm", _check_groups(H, self.n_ssm))
        _set(self, "conj_sym", _check_bool("conj_sym", self.conj_sym))
        _set(self, "bidirectional", _check_bool("bidirectional", self.bidirectional))
        _validate.check_choice("step_mode", self.step_mode, ("linear", "dense"))
        allowed = (
            *diagonal.DIAG_INITS,
            *(m for m in matrices.NPLR_NAMES if m not in diagonal.DIAG_INITS),
        )
        _validate.check_choice("ssm_init", self.ssm_init, allowed)
        measure = self._measure
        natural = matrices.natural_rank(measure) if measure else 1
        rank = natural if self.rank is None else _validate.check_size("rank", self.rank)
        if rank < natural:
            raise ValueError(
                f"`rank` must be >= {natural} for ssm_init={self.ssm_init!r}, got {rank}."
            )
        _set(self, "rank", rank)
        if self.b_init is None:
            _set(self, "b_init", measure or "constant")
        self.param_initializers()

    @property
    def _measure(self) -> str | None:
        """The NPLR measure behind ``ssm_init`` (None for a purely diagonal init)."""
        names = matrices.NPLR_NAMES
        return matrices.canonical_measure(self.ssm_init) if self.ssm_init in names else None

    @property
    def M(self) -> int:
        """Stored modes per channel: N/2 (conj_sym) or N."""
        return self.N // 2 if self.conj_sym else self.N

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        G, M, H = self.n_ssm, self.M, self.H
        shapes = {
            "Lambda_re": (G, M),
            "Lambda_im": (G, M),
            "P": (self.rank, G, M, 2),
            "B": (G, M, 2),
            "C": (H, M, 2),
        }
        if self.bidirectional:
            shapes["C_bwd"] = (H, M, 2)
        shapes.update(D=(H,), log_dt=(H,))
        return shapes

    def param_initializers(self) -> dict[str, inits.Initializer]:
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
            "P": inits.p(self._measure or "zeros", conj_sym=self.conj_sym),
            "B": inits.b(self.b_init, conj_sym=self.conj_sym),
            "C": inits.c(),
            "C_bwd": inits.c(),
            "D": inits.d(),
            "log_dt": inits.log_dt(dt_min=self.dt_min, dt_max=self.dt_max),
        }

    def _system(self, p: dict):
        H = self.H
        Lam = _expand(self._lambda(p), H)
        P = _expand(_pair(p["P"]), H, axis=1)
        B = _expand(_pair(p["B"]), H)
        return Lam, P, B, jnp.exp(p["log_dt"])

    def kernel(self, params: Params, L: int):
        """The kernel ``(H, L)`` for ``L <= l_max`` (a pair if bidirectional)."""
        L = _validate.check_size("L", L)
        p, _ = self._prepared(params)
        return self._kernel(p, L)

    def _kernel(self, p: dict, L: int):
        if L > self.l_max:
            raise ValueError(
                f"the input length L must be <= l_max={self.l_max} (C is stored as C_tilde "
                f"for length l_max), got L={L}."
            )
        Lam, P, B, dt = self._system(p)
        K = kernel_dplr(Lam, P, B, _pair(p["C"]), dt, self.l_max, conj_sym=self.conj_sym)
        if not self.bidirectional:
            return K[..., :L]
        Kb = kernel_dplr(Lam, P, B, _pair(p["C_bwd"]), dt, self.l_max, conj_sym=self.conj_sym)
        return K[..., :L], Kb[..., :L]

    def apply(self, params: Params, u: ArrayLike, *, dtype: DTypeLike | None = None) -> jax.Array:
        """The layer in convolution mode: ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``."""
        u = _check_input(u, self.H)
        p, rd = self._prepared(params, u)
        y = self._conv(self._kernel(p, u.shape[-2]), u, p["D"], rd)
        return y.astype(_out_dtype(dtype, u))

    def step_params(self, params: Params):
        """Step parameters: plain ``C`` from ``C_tilde``, then the bilinear DPLR step setup."""
        self._no_bidirectional_step()
        p, _ = self._prepared(params)
        Lam, P, B, dt = self._system(p)
        C = dplr_c_from_tilde(_pair(p["C"]), Lam, P, dt, self.l_max, conj_sym=self.conj_sym)
        setup = dplr_step_linear_params if self.step_mode == "linear" else dplr_step_dense_params
        return setup(Lam, P, B, C, dt, p["D"], conj_sym=self.conj_sym)

    def initial_state(self, batch_shape: Sequence[int] = (), param_dtype=jnp.float32) -> jax.Array:
        """Zero state ``(*batch_shape, H, M)``, complex64 (complex128 for float64 params)."""
        return jnp.zeros((*_batch_shape(batch_shape), self.H, self.M), _state_dtype(param_dtype))

    def step(self, step_params, x: ArrayLike, u: ArrayLike, *, dtype: DTypeLike | None = None):
        """One step: ``x`` ``(..., H, M)``, ``u`` ``(..., H)`` -> ``(x_new, y)``."""
        u = _check_step_input(u, self.H)
        fn = dplr_step_linear if self.step_mode == "linear" else dplr_step_dense
        x, y = fn(step_params, x, u)
        return x, y.astype(_out_dtype(dtype, u))


# -------------------------------------------------------------------------------- S5


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
class S5Config(_Base):
    """S5: one MIMO diagonal SSM shared by all H channels, run with a parallel scan.

    ``dx/dt = diag(Lambda) x + B_tilde u`` with a state of M complex modes,
    ``y = 2 Re(C_tilde x) + D u`` (``conj_sym=True``; ``Re`` for ``conj_sym=False``),
    discretised per mode with ``dt = exp(log_dt) * step_rescale`` (zoh or bilinear) and
    evaluated with `hippox.linear_recurrence` (``method='associative'`` by default).
    Initialised from a block-diagonal HiPPO-N matrix with J = ``blocks`` blocks
    (`hippox.block_diagonal_init`): ``Lambda`` its eigenvalues, ``B_tilde = V⁻¹ B``,
    ``C_tilde = C V``.

    Parameters (M = N/2 for conj_sym else N; the S5 paper's P is N): ``Lambda_re``
    (M,), ``Lambda_im`` (M,), ``B`` (M, H, 2) = ``V⁻¹B``, ``C`` (H, M, 2) = ``CV``,
    ``C_bwd`` (H, M, 2) if bidirectional, ``D`` (H,), ``log_dt`` (M,).

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
      bidirectional: add the backward scan.
      scan: ``associative`` (parallel) or ``sequential`` (`hippox.linear_recurrence`).
    """

    H: int
    N: int = 64
    blocks: int = 1
    conj_sym: bool = True
    disc: Literal["zoh", "bilinear"] = "zoh"
    c_init: inits.S5CInit = "trunc_standard_normal"
    lambda_transform: inits.LambdaReTransform = "clip"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    bidirectional: bool = False
    scan: Literal["associative", "sequential"] = "associative"

    def __post_init__(self):
        _set(self, "H", _validate.check_size("H", self.H))
        _set(self, "N", _validate.check_size("N", self.N, minimum=2))
        _set(self, "blocks", _validate.check_size("blocks", self.blocks))
        if self.N % self.blocks or (self.N // self.blocks) % 2:
            raise ValueError(
                f"`N` must be a multiple of 2*blocks={2 * self.blocks} (blocks of even size), "
                f"got {self.N}."
            )
        _set(self, "conj_sym", _check_bool("conj_sym", self.conj_sym))
        _set(self, "bidirectional", _check_bool("bidirectional", self.bidirectional))
        _validate.check_choice("disc", self.disc, ("zoh", "bilinear"))
        _validate.check_choice("scan", self.scan, ("associative", "sequential"))
        self.param_initializers()

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

    def param_initializers(self) -> dict[str, inits.Initializer]:
        kw = dict(blocks=self.blocks, conj_sym=self.conj_sym)
        return {
            "Lambda_re": inits.lambda_re("legs", transform=self.lambda_transform, **kw),
            "Lambda_im": inits.lambda_im("legs", **kw),
            "B": inits.s5_b(**kw),
            "C": inits.s5_c(self.c_init, **kw),
            "C_bwd": inits.s5_c(self.c_init, **kw),
            "D": inits.d(),
            "log_dt": inits.log_dt(dt_min=self.dt_min, dt_max=self.dt_max),
        }

    def _discrete(self, p: dict, step_rescale):
        Lam = self._lambda(p)
        dt = jnp.exp(p["log_dt"]) * _check_rescale(step_rescale, p["log_dt"].dtype)
        # One step per mode: Lambda (M, 1) with a (M, 1, H) input matrix and dt (M,).
        Ab, Bb = discretize_diag(Lam[:, None], _pair(p["B"])[:, None, :], dt, method=self.disc)
        return Ab[:, 0], Bb[:, 0, :]

    def apply(
        self,
        params: Params,
        u: ArrayLike,
        *,
        dtype: DTypeLike | None = None,
        step_rescale: float | ArrayLike = 1.0,
    ) -> jax.Array:
        """The layer with a parallel scan: ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``.

        ``step_rescale`` multiplies every ``dt`` (e.g. for a different sampling rate).
        """
        u = _check_input(u, self.H)
        p, rd = self._prepared(params, u)
        Ab, Bb = self._discrete(p, step_rescale)
        ur = u.astype(rd)
        Bu = jnp.einsum("mh,...lh->...lm", Bb, ur.astype(Bb.dtype))
        scan = dict(diagonal=True, method=self.scan)
        fac = 2.0 if self.conj_sym else 1.0
        xs = linear_recurrence(Ab, Bu, **scan)
        y = fac * jnp.einsum("hm,...lm->...lh", _pair(p["C"]), xs).real
        if self.bidirectional:
            xb = jnp.flip(linear_recurrence(Ab, jnp.flip(Bu, -2), **scan), -2)
            y = y + fac * jnp.einsum("hm,...lm->...lh", _pair(p["C_bwd"]), xb).real
        y = y + p["D"] * ur
        return y.astype(_out_dtype(dtype, u))

    def step_params(self, params: Params, *, step_rescale: float | ArrayLike = 1.0) -> S5StepParams:
        """Discretised `S5StepParams` for `step`."""
        self._no_bidirectional_step()
        p, _ = self._prepared(params)
        Ab, Bb = self._discrete(p, step_rescale)
        fac = 2.0 if self.conj_sym else 1.0
        return S5StepParams(Ab, Bb, fac * _pair(p["C"]), p["D"])

    def initial_state(self, batch_shape: Sequence[int] = (), param_dtype=jnp.float32) -> jax.Array:
        """Zero state ``(*batch_shape, M)`` (shared by the channels), complex."""
        return jnp.zeros((*_batch_shape(batch_shape), self.M), _state_dtype(param_dtype))

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
        u = _check_step_input(u, self.H)
        x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.M:
            raise ValueError(f"`x` must have shape (..., M) with M={self.M}, got {x.shape}.")
        Ab, Bb, C, D = step_params
        x = Ab * x.astype(Ab.dtype) + jnp.einsum("mh,...h->...m", Bb, u.astype(Bb.dtype))
        y = jnp.einsum("hm,...m->...h", C, x).real + D * u.astype(D.dtype)
        return x, y.astype(_out_dtype(dtype, u))


def _check_rescale(step_rescale, dtype):
    if isinstance(step_rescale, numbers.Real) and not isinstance(step_rescale, bool):
        _validate.check_real("step_rescale", step_rescale, positive=True)
    return jnp.asarray(step_rescale).astype(dtype)


# ------------------------------------------------------------------------------ LSSL


@dataclasses.dataclass(frozen=True)
class LSSLConfig(_Base):
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
    measure: str = "legs"
    disc: Literal["bilinear", "zoh", "forward_euler", "backward_euler"] = "bilinear"
    learn_A: bool = False
    learn_B: bool = False
    dt_min: float = 1e-3
    dt_max: float = 1e-1

    def __post_init__(self):
        _set(self, "H", _validate.check_size("H", self.H))
        _set(self, "N", _validate.check_size("N", self.N))
        _validate.check_choice("disc", self.disc, tuple(m for m in DENSE_METHODS if m != "gbt"))
        _set(self, "learn_A", _check_bool("learn_A", self.learn_A))
        _set(self, "learn_B", _check_bool("learn_B", self.learn_B))
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

    def param_initializers(self) -> dict[str, inits.Initializer]:
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

    def kernel(self, params: Params, L: int) -> jax.Array:
        """The kernel ``(H, L)``."""
        L = _validate.check_size("L", L)
        p, rd = self._prepared(params)
        return self._kernel(p, rd, L)

    def _kernel(self, p: dict, rd, L: int) -> jax.Array:
        Ab, Bb = self._discrete(p, rd)
        return kernel_naive(Ab, Bb, p["C"], L, diagonal=False)

    def apply(self, params: Params, u: ArrayLike, *, dtype: DTypeLike | None = None) -> jax.Array:
        """The layer in convolution mode: ``u`` ``(..., L, H)`` -> ``y`` ``(..., L, H)``."""
        u = _check_input(u, self.H)
        p, rd = self._prepared(params, u)
        y = self._conv(self._kernel(p, rd, u.shape[-2]), u, p["D"], rd)
        return y.astype(_out_dtype(dtype, u))

    def step_params(self, params: Params):
        """Dense step parameters (`hippox.DenseStepParams`)."""
        p, rd = self._prepared(params)
        Ab, Bb = self._discrete(p, rd)
        return dense_step_params(Ab, Bb, p["C"], p["D"])

    def initial_state(self, batch_shape: Sequence[int] = (), param_dtype=jnp.float32) -> jax.Array:
        """Zero real state ``(*batch_shape, H, N)``."""
        rd = _state_dtype(param_dtype, complex_state=False)
        return jnp.zeros((*_batch_shape(batch_shape), self.H, self.N), rd)

    def step(self, step_params, x: ArrayLike, u: ArrayLike, *, dtype: DTypeLike | None = None):
        """One step: ``x`` ``(..., H, N)``, ``u`` ``(..., H)`` -> ``(x_new, y)``."""
        u = _check_step_input(u, self.H)
        x, y = dense_step(step_params, x, u)
        return x, y.astype(_out_dtype(dtype, u))
