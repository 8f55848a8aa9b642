"""Initializers of the diagonal / DPLR SSM leaves: Lambda, P, B, C, D and log_dt (S4, S4D, S5).

Every public function here is a *factory*: it takes keyword-only options, validates
them at once, and returns ``init(key, shape, dtype=None) -> jax.Array``, the
signature of `jax.nn.initializers`. The same initializer therefore works in Flax
linen (``self.param("B", init, shape, param_dtype)``), Flax NNX
(``nnx.Param(init(rngs.params(), shape, dtype))``) and Equinox.

``shape`` is the source of truth. The mode count M (and the channel count H where
there is one) is read from it; a shape that cannot fit raises a ValueError naming
the expected shape. ``dtype`` is the real storage dtype (default float32; bfloat16,
float16 and float64 work too). Complex quantities are stored as real leaves, so that
every optax transform is correct on them:

- ``Lambda`` as two leaves, ``Lambda_re`` (through a documented transform, below) and
  ``Lambda_im``, each of shape ``(M,)`` or ``(H, M)``;
- ``P``, ``B``, ``C`` with a trailing axis of 2 holding (real, imaginary) parts.

Half / full layout (as in `hippox.diag_init`): with ``conj_sym=True`` the M = N/2
stored modes are one of each conjugate pair (``Im(Lambda) <= 0``) of a real system of
state size N; with ``conj_sym=False`` all M = N modes are stored, the N/2 half values
followed by their conjugates.

Transforms of ``Lambda_re`` (`hippox._src.parameterization`; the layers apply the
forward map, the initializer stores its inverse, so that the layer sees exactly the
initial spectrum):

============  ==================================  ===============================
transform     stored raw value -> Re(Lambda)       raw value stored for Re(Lambda)
============  ==================================  ===============================
``exp``       ``-exp(raw)``                        ``log(-Re)``
``softplus``  ``-softplus(raw)``                   ``log(expm1(-Re))``
``clip``      ``min(raw, -1e-4)``                  ``Re``
============  ==================================  ===============================

Each keeps ``Re(Lambda) < 0`` for every raw value, so gradient steps can never make
the system unstable. Inits whose real part is above ``-1e-4`` (e.g. the normal part
of ``fout``, whose real part is 0) are stored as ``-1e-4``.

Deterministic initializers accept ``key=None`` (and ignore a key); random ones refuse
``key=None``. Host-side work (eigendecompositions, NPLR factors) is done in float64
NumPy and cached with `functools.lru_cache` on the static arguments, so a Flax
retrace does not redo it. The S5 eigenbasis ``B``/``C`` and the dense LSSL ``A``/``B``
initializers are in `hippox._src.dense_initializers`; all are exported as
``hippox.initializers``.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from hippox._src import _validate, cache, decompositions, diagonal
from hippox._src.init_protocol import (
    Initializer,
    block_state_size,
    broadcast_cast,
    draw_dtype,
    shape_and_dtype,
    split_modes,
)
from hippox._src.parameterization import (
    LAMBDA_RE_TRANSFORMS,
    LambdaReTransform,
    full_layout,
    lambda_re_inverse,
    pair_from_complex,
)

# ------------------------------------------------------------------ host-side, cached
# The names reaching these builders were checked once by the factories
# (`diagonal.check_init`), and N, rank come from a checked ``shape``.


@cache.host_cache
def _lambda_part_host(
    part: str,
    init: str,
    N: int,
    conj_sym: bool,
    scale: float,
    transform: str | None,
    params: tuple,
) -> np.ndarray:
    """Float64 ``(M,)``: the stored ``Lambda_re`` (``part="re"``) or ``Lambda_im`` values."""
    Lam = full_layout(diagonal.spectrum_host(init, N, params), conj_sym, xp=np)
    x = scale * (Lam.real if part == "re" else Lam.imag)
    if part == "re":
        x = lambda_re_inverse(x, transform)
    x = np.asarray(x, np.float64)
    x.setflags(write=False)
    return x


@cache.host_cache
def _p_host(init: str, N: int, rank: int, conj_sym: bool, params: tuple) -> np.ndarray:
    """Float64 ``(rank, M, 2)``: `hippox.nplr`'s P of a canonical measure, as real pairs."""
    P = decompositions.nplr_host(init, N, rank, params)[1]
    out = pair_from_complex(full_layout(P, conj_sym, xp=np))
    out.setflags(write=False)
    return out


@cache.host_cache
def _b_host(init: str, N: int, conj_sym: bool, params: tuple) -> np.ndarray:
    """Float64 ``(M, 2)``: a deterministic B init or a measure's ``V* B``, as real pairs."""
    out = pair_from_complex(full_layout(diagonal.b_host(init, N, params), conj_sym, xp=np))
    out.setflags(write=False)
    return out


# ------------------------------------------------------------------------- Lambda


def _lambda_factory(part, init, conj_sym, blocks, scale, transform, params, name):
    init, _, ptuple = diagonal.check_init(
        "init", init, diagonal.DIAG_INITS, params, what="diagonal init", measures_first=False
    )
    conj_sym = _validate.check_bool("conj_sym", conj_sym)
    blocks = _validate.check_size("blocks", blocks)
    random = init in diagonal.RANDOM_SPECTRA

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape, dtype = shape_and_dtype(shape, dtype)
        what = f"{name}({init!r}, blocks={blocks}, conj_sym={conj_sym})"
        lead, M = split_modes(shape, what=what)
        N = block_state_size(M, conj_sym, blocks, what=what, shape=shape)
        if random:
            _validate.check_key("key", key, f"{name}({init!r})")
            # One independent spectrum per channel and block, in float64 when enabled.
            rd = draw_dtype()
            cd = _validate.complex_dtype(rd)
            lam = diagonal.half_spectrum(init, N, (*lead, blocks), 1.0, 1.0, key, cd, rd)
            lam = full_layout(lam, conj_sym).reshape(*lead, M)
            if part == "im":
                return (scale * lam.imag).astype(dtype)
            return lambda_re_inverse(scale * lam.real, transform, xp=jnp).astype(dtype)
        x = _lambda_part_host(part, init, N, conj_sym, scale, transform, ptuple)
        return broadcast_cast(np.tile(x, blocks), shape, dtype)

    return initializer


def lambda_re(
    init: str = "legs",
    *,
    transform: LambdaReTransform = "exp",
    conj_sym: bool = True,
    real_scale: float = 1.0,
    blocks: int = 1,
    **params,
) -> Initializer:
    """Initializer of the stored real part ``Lambda_re`` of a diagonal or DPLR spectrum.

    The result ``raw`` satisfies ``lambda_re_forward(raw, transform) ==
    real_scale * Re(Lambda)`` (up to the ``-1e-4`` floor), where ``Lambda`` is
    `hippox.diag_init` (``legs``, ``lin``, ``inv``, ``inv2``, ``quad``, ``real``,
    ``rand``) or the `hippox.nplr` spectrum of an NPLR measure (``fout``, ``legt``,
    ``lagt``, ...) with state size N derived from ``shape``.

    Args:
      init: a name of `hippox.DIAG_INITS` or of `hippox.NPLR_MEASURES` (``legs`` is
        the same spectrum either way).
      transform: ``exp``, ``softplus`` or ``clip`` (module docstring).
      conj_sym: half (``N = 2M``) or full (``N = M``) layout.
      real_scale: ``> 0``, multiplies ``Re(Lambda)``.
      blocks: J >= 1: the spectrum of one block of size ``N/J`` repeated J times (the
        S5 block-diagonal layout, as in `hippox.block_diagonal_init`); M must be
        divisible by J.
      **params: measure parameters (e.g. ``theta`` for ``legt``).

    Returns:
      ``init(key, shape, dtype=None)`` for ``shape`` ``(M,)`` or ``(H, M)``: the same
      values for every channel (deterministic inits) or independent draws per channel
      (``rand``, which needs a key).

    Raises:
      ValueError: unknown ``init``/``transform``, bad ``real_scale``/``blocks`` (at
        once); a shape that does not fit, or ``key=None`` for ``rand`` (when called).

    Examples:
      >>> import numpy as np
      >>> from hippox import initializers
      >>> init = initializers.lambda_re("lin", transform="clip")
      >>> init(None, (2, 3))
      Array([[-0.5, -0.5, -0.5],
             [-0.5, -0.5, -0.5]], dtype=float32)
      >>> raw = initializers.lambda_re("legs")(None, (4,))
      >>> np.round(np.asarray(initializers.lambda_re_forward(raw, "exp")), 4)
      array([-0.5, -0.5, -0.5, -0.5], dtype=float32)
    """
    _validate.check_choice("transform", transform, LAMBDA_RE_TRANSFORMS)
    real_scale = _validate.check_real("real_scale", real_scale, positive=True)
    return _lambda_factory("re", init, conj_sym, blocks, real_scale, transform, params, "lambda_re")


def lambda_im(
    init: str = "legs",
    *,
    conj_sym: bool = True,
    imag_scale: float = 1.0,
    blocks: int = 1,
    **params,
) -> Initializer:
    """Initializer of ``Lambda_im = imag_scale * Im(Lambda)`` (stored as is).

    ``Lambda`` is the spectrum named by ``init`` exactly as in `lambda_re` (same
    options, same layout): ``Im(Lambda) <= 0`` in the half layout.

    Args:
      init: a name of `hippox.DIAG_INITS` or `hippox.NPLR_MEASURES`.
      conj_sym: half (``N = 2M``) or full (``N = M``) layout.
      imag_scale: ``>= 0``, multiplies ``Im(Lambda)``.
      blocks: J >= 1 blocks of size ``N/J`` (S5 layout).
      **params: measure parameters.

    Returns:
      ``init(key, shape, dtype=None)`` for ``shape`` ``(M,)`` or ``(H, M)``.

    Raises:
      ValueError: as for `lambda_re`.

    Examples:
      >>> import numpy as np
      >>> from hippox import initializers
      >>> x = initializers.lambda_im("lin")(None, (3,))
      >>> np.round(np.asarray(x) / np.pi, 4)
      array([ 0., -1., -2.], dtype=float32)
    """
    imag_scale = _validate.check_real("imag_scale", imag_scale, low=0.0)
    return _lambda_factory("im", init, conj_sym, blocks, imag_scale, None, params, "lambda_im")


# ---------------------------------------------------------------------------- P, B


def p(init: str = "legs", *, conj_sym: bool = True, std: float = 1.0, **params) -> Initializer:
    """Initializer of the low-rank term ``P`` of a DPLR state matrix, stored as (re, im) pairs.

    Inits:

    - an NPLR measure (`hippox.NPLR_MEASURES`): ``hippox.nplr(init, N, rank=rank).P``
      (``(V* P_rᵀ)ᵀ`` in the eigenbasis), rows beyond the measure's natural rank zero;
      with ``conj_sym=False`` followed by its conjugate (so that
      ``diag(Lambda) - Pᵀ conj(P) = V* A V``, as `hippox.dplr`). Copies per channel.
    - ``zeros``: ``P = 0`` (a purely diagonal system, as `hippox.dplr` for diagonal
      inits).
    - ``random``: i.i.d. complex normal with ``E|P|² = std²`` (needs a key).

    Args:
      init: an NPLR measure, ``zeros`` or ``random``.
      conj_sym: half (``N = 2M``) or full (``N = M``) layout.
      std: ``> 0``, scale of the ``random`` init.
      **params: measure parameters.

    Returns:
      ``init(key, shape, dtype=None)`` for ``shape`` ``(rank, M, 2)`` or
      ``(rank, H, M, 2)`` (rank read from ``shape[0]``).

    Raises:
      ValueError: unknown ``init`` (at once); a shape that does not fit, a rank below
        the measure's natural rank, or ``key=None`` for ``random`` (when called).

    Examples:
      >>> from hippox import initializers
      >>> initializers.p("legs")(None, (1, 3, 4, 2)).shape
      (1, 3, 4, 2)
    """
    init, is_measure, ptuple = diagonal.check_init(
        "init", init, ("zeros", "random"), params, what="P init", measures_first=True
    )
    conj_sym = _validate.check_bool("conj_sym", conj_sym)
    std = _validate.check_real("std", std, positive=True)

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape, dtype = shape_and_dtype(shape, dtype)
        what = f"p({init!r}, conj_sym={conj_sym})"
        expected = "(rank, M, 2) or (rank, H, M, 2)"
        if len(shape) not in (3, 4) or shape[-1] != 2 or shape[0] < 1:
            raise ValueError(f"`shape` must be {expected} for {what}, got {shape}.")
        rank, M = shape[0], shape[-2]
        N = block_state_size(M, conj_sym, 1, what=what, shape=shape)
        if init == "zeros":
            return jnp.zeros(shape, dtype)
        if init == "random":
            _validate.check_key("key", key, what)
            half = diagonal.complex_normal(key, (*shape[:-2], N // 2), draw_dtype())
            return pair_from_complex(std * full_layout(half, conj_sym), xp=jnp).astype(dtype)
        x = _p_host(init, N, rank, conj_sym, ptuple)  # (rank, M, 2)
        if len(shape) == 4:
            x = x[:, None]
        return broadcast_cast(x, shape, dtype)

    return initializer


def b(init: str = "legs", *, conj_sym: bool = True, **params) -> Initializer:
    """Initializer of a diagonal/DPLR input vector ``B``, stored as (re, im) pairs.

    Inits: those of `hippox.diag_b_init` (``constant``: ones; ``legs``: LegS's ``V* B``;
    ``alternating``: ``(-1)^n``; ``random``: standard complex normal, needs a key, drawn
    independently per channel) and every NPLR measure name (``fout``, ``legt``, ...):
    ``hippox.nplr(init, N).B``.

    Args:
      init: a name of `hippox.B_INITS` or `hippox.NPLR_MEASURES`.
      conj_sym: half (``N = 2M``) or full (``N = M``) layout.
      **params: measure parameters (NPLR measures only).

    Returns:
      ``init(key, shape, dtype=None)`` for ``shape`` ``(M, 2)`` or ``(H, M, 2)``.

    Raises:
      ValueError: unknown ``init`` (at once); a shape that does not fit or
        ``key=None`` for ``random`` (when called).

    Examples:
      >>> from hippox import initializers
      >>> initializers.b("constant")(None, (2, 2))
      Array([[1., 0.],
             [1., 0.]], dtype=float32)
    """
    init, _, ptuple = diagonal.check_init(
        "init", init, diagonal.B_INITS, params, what="B init", measures_first=False
    )
    conj_sym = _validate.check_bool("conj_sym", conj_sym)

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape, dtype = shape_and_dtype(shape, dtype)
        what = f"b({init!r}, conj_sym={conj_sym})"
        lead, M = split_modes(shape, what=what, trail=(2,))
        N = block_state_size(M, conj_sym, 1, what=what, shape=shape)
        if init in diagonal.RANDOM_B_INITS:
            _validate.check_key("key", key, f"b({init!r})")
            half = diagonal.complex_normal(key, (*lead, N // 2), draw_dtype())
            return pair_from_complex(full_layout(half, conj_sym), xp=jnp).astype(dtype)
        return broadcast_cast(_b_host(init, N, conj_sym, ptuple), shape, dtype)

    return initializer


# ------------------------------------------------------------------------- C, D, dt


def c(*, std: float = 1.0) -> Initializer:
    """Initializer of a random complex output vector ``C``, stored as (re, im) pairs.

    Entries are i.i.d. complex normal with ``E|C|² = std²`` (real and imaginary parts
    each ``N(0, std²/2)``). Used for S4D's ``C`` and for S4's ``C`` (stored as
    ``C_tilde``, see `hippox.nnx.S4`).

    Args:
      std: ``> 0`` standard deviation of the modulus.

    Returns:
      ``init(key, shape, dtype=None)`` for any ``shape`` ending in 2 (e.g. ``(H, M, 2)``).

    Raises:
      ValueError: ``std <= 0`` (at once); ``key=None`` or a shape not ending in 2.

    Examples:
      >>> import jax
      >>> from hippox import initializers
      >>> initializers.c()(jax.random.key(0), (3, 4, 2)).shape
      (3, 4, 2)
    """
    std = _validate.check_real("std", std, positive=True)

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape, dtype = shape_and_dtype(shape, dtype)
        if len(shape) < 1 or shape[-1] != 2:
            raise ValueError(
                f"`shape` must be (..., 2) (real, imaginary parts) for c(), got {shape}."
            )
        _validate.check_key("key", key, "c()")
        z = jax.random.normal(key, shape, draw_dtype()) * (std / np.sqrt(2.0))
        return z.astype(dtype)

    return initializer


def d(init: Literal["normal", "ones", "zeros"] = "normal", *, std: float = 1.0) -> Initializer:
    """Initializer of the skip (feed-through) term ``D``.

    Args:
      init: ``normal`` (i.i.d. ``N(0, std²)``, needs a key; the S4 default), ``ones`` or
        ``zeros``.
      std: ``> 0``, standard deviation for ``normal``.

    Returns:
      ``init(key, shape, dtype=None)`` for any ``shape`` (usually ``(H,)``).

    Examples:
      >>> from hippox import initializers
      >>> initializers.d("ones")(None, (3,))
      Array([1., 1., 1.], dtype=float32)
    """
    init = _validate.check_choice("init", init, ("normal", "ones", "zeros"))
    std = _validate.check_real("std", std, positive=True)

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape, dtype = shape_and_dtype(shape, dtype)
        if init == "ones":
            return jnp.ones(shape, dtype)
        if init == "zeros":
            return jnp.zeros(shape, dtype)
        _validate.check_key("key", key, "d('normal')")
        return (jax.random.normal(key, shape, draw_dtype()) * std).astype(dtype)

    return initializer


def log_dt(*, dt_min: float = 1e-3, dt_max: float = 1e-1) -> Initializer:
    """Initializer of ``log_dt``: ``log(dt)`` uniform on ``[log dt_min, log dt_max]``.

    The layers use ``dt = exp(log_dt)``, positive for every value.

    Args:
      dt_min: ``> 0`` smallest step.
      dt_max: ``>= dt_min`` largest step.

    Returns:
      ``init(key, shape, dtype=None)`` for any ``shape`` (``(H,)`` for S4/S4D/LSSL,
      ``(M,)`` for S5); needs a key.

    Raises:
      ValueError: ``dt_min <= 0`` or ``dt_max < dt_min`` (at once); ``key=None``.

    Examples:
      >>> import jax
      >>> import numpy as np
      >>> from hippox import initializers
      >>> x = initializers.log_dt()(jax.random.key(0), (5,))
      >>> bool(np.all((np.log(1e-3) <= x) & (x <= np.log(1e-1))))
      True
    """
    dt_min = _validate.check_real("dt_min", dt_min, positive=True)
    dt_max = _validate.check_real("dt_max", dt_max, positive=True)
    if dt_max < dt_min:
        raise ValueError(f"`dt_max` must be >= dt_min={dt_min}, got {dt_max}.")
    lo, hi = np.log(dt_min), np.log(dt_max)

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape, dtype = shape_and_dtype(shape, dtype)
        _validate.check_key("key", key, "log_dt()")
        x = jax.random.uniform(key, shape, draw_dtype(), minval=lo, maxval=hi)
        return jnp.clip(x.astype(dtype), *_inward(lo, hi, dtype))

    return initializer


def _inward(lo: float, hi: float, dtype) -> tuple[jax.Array, jax.Array]:
    """``lo``, ``hi`` rounded inwards to `dtype` (so a clipped value lies in [lo, hi])."""
    with jax.ensure_compile_time_eval():  # concrete even when the init is traced
        lo_c, hi_c = jnp.asarray(lo, dtype), jnp.asarray(hi, dtype)
        if float(lo_c) < lo:
            lo_c = jnp.nextafter(lo_c, jnp.asarray(np.inf, dtype))
        if float(hi_c) > hi:
            hi_c = jnp.nextafter(hi_c, jnp.asarray(-np.inf, dtype))
    return lo_c, hi_c
