"""Parameter initializers for S4, S4D, S5 and LSSL layers (the jax.nn.initializers protocol).

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

Transforms of ``Lambda_re`` (the layers apply the forward map; the initializer stores
its inverse, so that the layer sees exactly the initial spectrum):

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
retrace does not redo it.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from hippox._src import _validate, decompositions, diagonal, matrices

#: ``init(key, shape, dtype=None) -> jax.Array`` (the jax.nn.initializers protocol).
Initializer = Callable[..., jax.Array]

LambdaReTransform = Literal["exp", "softplus", "clip"]
#: The transforms accepted for ``Lambda_re`` (see the module docstring).
LAMBDA_RE_TRANSFORMS: tuple[str, ...] = ("exp", "softplus", "clip")
#: The largest real part a transform produces: ``Re(Lambda) <= -REAL_MAX`` for ``clip``.
REAL_MAX = 1e-4


# --------------------------------------------------------------------------- helpers


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool, got {value!r}.")
    return bool(value)


def _as_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        out = tuple(shape)
    except TypeError:
        raise TypeError(f"`shape` must be a tuple of ints, got {shape!r}.") from None
    for s in out:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise TypeError(f"`shape` must be a tuple of non-negative ints, got {shape!r}.")
    return tuple(int(s) for s in out)


def _storage_dtype(dtype) -> np.dtype:
    return _validate.real_dtype(dtype)


def _nplr_names() -> tuple[str, ...]:
    aliases = tuple(a for a, m in matrices.ALIASES.items() if m in matrices.NPLR_MEASURES)
    return (*matrices.NPLR_MEASURES, *aliases)


def _lambda_inits() -> tuple[str, ...]:
    return (*diagonal.DIAG_INITS, *(m for m in _nplr_names() if m not in diagonal.DIAG_INITS))


def _modes_from(M: int, conj_sym: bool, blocks: int, *, what: str, shape) -> int:
    """The per-block real state size N_block for M stored modes in `blocks` blocks."""
    if M % blocks:
        raise ValueError(
            f"`shape` must have a mode count divisible by blocks={blocks} for {what}, got {shape}."
        )
    Mb = M // blocks
    N = 2 * Mb if conj_sym else Mb
    if N < 2 or N % 2:
        need = "M >= 1" if conj_sym else "an even M >= 2 (conj_sym=False stores pairs)"
        raise ValueError(f"`shape` must give {need} modes per block for {what}, got {shape}.")
    return N


def _split(shape, *, what: str, trail: tuple[int, ...] = ()) -> tuple:
    """Checks ``shape == (*lead, M, *trail)`` with at most one leading (channel) axis."""
    tail = "".join(f", {t}" for t in trail)
    expected = f"(M{tail},) or (H, M{tail})" if not trail else f"(M{tail}) or (H, M{tail})"
    core = 1 + len(trail)
    if len(shape) not in (core, core + 1) or shape[len(shape) - len(trail) :] != trail:
        raise ValueError(f"`shape` must be {expected} for {what}, got {shape}.")
    return shape[: len(shape) - core], shape[len(shape) - core]


def _to_pair(z: np.ndarray) -> np.ndarray:
    return np.stack([z.real, z.imag], axis=-1)


def _cast(x: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
    return jnp.asarray(np.broadcast_to(x, shape), dtype)


def _complex_to_pair(z: jax.Array, dtype) -> jax.Array:
    return jnp.stack([z.real, z.imag], axis=-1).astype(dtype)


def _inverse_transform(re: np.ndarray, transform: str) -> np.ndarray:
    re = np.minimum(re, -REAL_MAX)
    if transform == "exp":
        return np.log(-re)
    if transform == "softplus":
        x = -re  # > 0; log(expm1(x)) = x + log(-expm1(-x)) without overflow
        return x + np.log(-np.expm1(-x))
    return re


def lambda_re_forward(raw: jax.Array, transform: LambdaReTransform) -> jax.Array:
    """Maps a stored ``Lambda_re`` leaf to ``Re(Lambda) < 0`` (pure jnp, differentiable).

    Args:
      raw: stored parameter, any shape, real.
      transform: ``exp`` (``-exp(raw)``), ``softplus`` (``-softplus(raw)``) or ``clip``
        (``min(raw, -1e-4)``).

    Returns:
      ``Re(Lambda)``, same shape and dtype as ``raw``, strictly negative.

    Examples:
      >>> import jax.numpy as jnp
      >>> from hippox import initializers
      >>> raw = jnp.log(jnp.asarray([0.5, 2.0], jnp.float32))
      >>> initializers.lambda_re_forward(raw, "exp")
      Array([-0.5, -2. ], dtype=float32)
    """
    _validate.check_choice("transform", transform, LAMBDA_RE_TRANSFORMS)
    if transform == "exp":
        return -jnp.exp(raw)
    if transform == "softplus":
        return -jax.nn.softplus(raw)
    return jnp.minimum(raw, -REAL_MAX)


# ---------------------------------------------------------------- host-side, cached


@functools.lru_cache(maxsize=256)
def _spectrum_host(init: str, N: int, conj_sym: bool, params: tuple) -> np.ndarray:
    """Unscaled float64 spectrum (M,) of a deterministic diagonal init or NPLR measure."""
    if init in diagonal.DIAG_INITS:
        Lam = np.asarray(diagonal._spectrum_np(init, N))
    else:
        Lam = np.asarray(
            decompositions.nplr_np(init, N, rank=_natural_rank(init), **dict(params))[0]
        )
    if not conj_sym:
        Lam = np.concatenate([Lam, Lam.conj()])
    Lam.setflags(write=False)
    return Lam


def _natural_rank(measure: str) -> int:
    return 2 if matrices.canonical_measure(measure) == "legt" else 1


@functools.lru_cache(maxsize=256)
def _lambda_part_host(
    part: str,
    init: str,
    N: int,
    conj_sym: bool,
    scale: float,
    transform: str | None,
    params: tuple,
) -> np.ndarray:
    Lam = _spectrum_host(init, N, conj_sym, params)
    x = scale * (Lam.real if part == "re" else Lam.imag)
    if part == "re":
        x = _inverse_transform(x, transform)
    x = np.asarray(x, np.float64)
    x.setflags(write=False)
    return x


@functools.lru_cache(maxsize=256)
def _p_host(init: str, N: int, rank: int, conj_sym: bool, params: tuple) -> np.ndarray:
    P = np.asarray(decompositions.nplr_np(init, N, rank=rank, **dict(params))[1])
    if not conj_sym:
        P = np.concatenate([P, P.conj()], axis=-1)
    out = _to_pair(P)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=256)
def _b_host(init: str, N: int, conj_sym: bool, params: tuple) -> np.ndarray:
    if init in diagonal.B_INITS:
        B = np.asarray(diagonal._b_np(init, N))
    else:
        B = np.asarray(decompositions.nplr_np(init, N, rank=_natural_rank(init), **dict(params))[2])
    if not conj_sym:
        B = np.concatenate([B, B.conj()])
    out = _to_pair(B)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=64)
def _block_v_host(measure: str, N_block: int, J: int, conj_sym: bool, params: tuple):
    """(V, Vinv) of the S5 block-diagonal init, complex128 host arrays (cached)."""
    _, V, Vinv = diagonal._block_np(measure, N_block, J, conj_sym, params)
    return V, Vinv


# ------------------------------------------------------------------------- Lambda


def _check_lambda_options(init, conj_sym, blocks, params):
    init = _validate.check_choice("init", init, _lambda_inits())
    conj_sym = _check_bool("conj_sym", conj_sym)
    blocks = _validate.check_size("blocks", blocks)
    if init in diagonal.DIAG_INITS:
        if params:
            raise TypeError(
                f"diagonal init {init!r} takes no measure parameters, got {tuple(params)}."
            )
        ptuple = ()
    else:
        init = matrices.canonical_measure(init)
        ptuple = matrices.check_measure_params(init, params)
    return init, conj_sym, blocks, ptuple


def _lambda_factory(part, init, conj_sym, blocks, scale, transform, params, name):
    init, conj_sym, blocks, ptuple = _check_lambda_options(init, conj_sym, blocks, params)
    random = init in diagonal._RANDOM_SPECTRA

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape = _as_shape(shape)
        dtype = _storage_dtype(dtype)
        what = f"{name}({init!r}, blocks={blocks}, conj_sym={conj_sym})"
        lead, M = _split(shape, what=what)
        N = _modes_from(M, conj_sym, blocks, what=what, shape=shape)
        if random:
            _validate.require_key("key", key, f"{name}({init!r})")
            # One independent spectrum per channel and block, in float64 when enabled.
            rd = np.float64 if jax.config.jax_enable_x64 else np.float32
            lam = diagonal._lambda(
                init, N, (*lead, blocks), 1.0, 1.0, key, _validate.complex_dtype(rd), rd
            )
            lam = _full_jnp(lam, conj_sym).reshape(*lead, M)
            if part == "im":
                return (scale * lam.imag).astype(dtype)
            re = scale * lam.real
            return _inverse_transform_jnp(re, transform).astype(dtype)
        x = _lambda_part_host(part, init, N, conj_sym, scale, transform, ptuple)
        return _cast(np.tile(x, blocks), shape, dtype)

    return initializer


def _full_jnp(x, conj_sym):
    return x if conj_sym else jnp.concatenate([x, jnp.conj(x)], axis=-1)


def _inverse_transform_jnp(re, transform):
    re = jnp.minimum(re, -REAL_MAX)
    if transform == "exp":
        return jnp.log(-re)
    if transform == "softplus":
        return -re + jnp.log(-jnp.expm1(re))
    return re


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


def lambda_from_params(
    Lambda_re: jax.Array, Lambda_im: jax.Array, *, transform: LambdaReTransform = "exp"
) -> jax.Array:
    """Rebuilds the complex ``Lambda`` from its stored leaves.

    Args:
      Lambda_re: stored real-part leaf, real, any shape.
      Lambda_im: imaginary part, same shape.
      transform: the transform ``Lambda_re`` was stored with.

    Returns:
      ``lambda_re_forward(Lambda_re, transform) + 1j * Lambda_im``, complex (complex64
      for float32/bfloat16 leaves, complex128 for float64).

    Examples:
      >>> import jax.numpy as jnp
      >>> from hippox import initializers
      >>> re = jnp.asarray([-1.0], jnp.float32)
      >>> initializers.lambda_from_params(re, jnp.asarray([2.0], jnp.float32), transform="clip")
      Array([-1.+2.j], dtype=complex64)
    """
    re = lambda_re_forward(jnp.asarray(Lambda_re), transform)
    im = jnp.asarray(Lambda_im)
    rd = jnp.promote_types(jnp.result_type(re, im), jnp.float32)
    return jax.lax.complex(re.astype(rd), im.astype(rd))


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
    init = _validate.check_choice("init", init, (*_nplr_names(), "zeros", "random"))
    conj_sym = _check_bool("conj_sym", conj_sym)
    std = _validate.check_real("std", std, positive=True)
    if init in ("zeros", "random"):
        if params:
            raise TypeError(f"P init {init!r} takes no measure parameters, got {tuple(params)}.")
        ptuple = ()
    else:
        init = matrices.canonical_measure(init)
        ptuple = matrices.check_measure_params(init, params)

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape = _as_shape(shape)
        dtype = _storage_dtype(dtype)
        what = f"p({init!r}, conj_sym={conj_sym})"
        expected = "(rank, M, 2) or (rank, H, M, 2)"
        if len(shape) not in (3, 4) or shape[-1] != 2 or shape[0] < 1:
            raise ValueError(f"`shape` must be {expected} for {what}, got {shape}.")
        rank, M = shape[0], shape[-2]
        N = _modes_from(M, conj_sym, 1, what=what, shape=shape)
        if init == "zeros":
            return jnp.zeros(shape, dtype)
        if init == "random":
            _validate.require_key("key", key, what)
            half = diagonal._complex_normal(key, (*shape[:-2], N // 2), _draw_dtype())
            return _complex_to_pair(std * _full_jnp(half, conj_sym), dtype)
        x = _p_host(init, N, rank, conj_sym, ptuple)  # (rank, M, 2)
        if len(shape) == 4:
            x = x[:, None]
        return _cast(x, shape, dtype)

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
    allowed = (*diagonal.B_INITS, *(m for m in _nplr_names() if m not in diagonal.B_INITS))
    init = _validate.check_choice("init", init, allowed)
    conj_sym = _check_bool("conj_sym", conj_sym)
    if init in diagonal.B_INITS:
        if params:
            raise TypeError(f"B init {init!r} takes no measure parameters, got {tuple(params)}.")
        ptuple = ()
    else:
        init = matrices.canonical_measure(init)
        ptuple = matrices.check_measure_params(init, params)

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape = _as_shape(shape)
        dtype = _storage_dtype(dtype)
        what = f"b({init!r}, conj_sym={conj_sym})"
        lead, M = _split(shape, what=what, trail=(2,))
        N = _modes_from(M, conj_sym, 1, what=what, shape=shape)
        if init in diagonal._RANDOM_B:
            _validate.require_key("key", key, f"b({init!r})")
            half = diagonal._complex_normal(key, (*lead, N // 2), _draw_dtype())
            return _complex_to_pair(_full_jnp(half, conj_sym), dtype)
        return _cast(_b_host(init, N, conj_sym, ptuple), shape, dtype)

    return initializer


def _draw_dtype():
    return np.float64 if jax.config.jax_enable_x64 else np.float32


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
        shape = _as_shape(shape)
        dtype = _storage_dtype(dtype)
        if len(shape) < 1 or shape[-1] != 2:
            raise ValueError(
                f"`shape` must be (..., 2) (real, imaginary parts) for c(), got {shape}."
            )
        _validate.require_key("key", key, "c()")
        z = jax.random.normal(key, shape, _draw_dtype()) * (std / np.sqrt(2.0))
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
        shape = _as_shape(shape)
        dtype = _storage_dtype(dtype)
        if init == "ones":
            return jnp.ones(shape, dtype)
        if init == "zeros":
            return jnp.zeros(shape, dtype)
        _validate.require_key("key", key, "d('normal')")
        return (jax.random.normal(key, shape, _draw_dtype()) * std).astype(dtype)

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
        shape = _as_shape(shape)
        dtype = _storage_dtype(dtype)
        _validate.require_key("key", key, "log_dt()")
        x = jax.random.uniform(key, shape, _draw_dtype(), minval=lo, maxval=hi)
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


# --------------------------------------------------------------------------- S5


S5CInit = Literal["trunc_standard_normal", "lecun_normal", "complex_normal"]


def _s5_layout(M: int, conj_sym: bool, blocks: int, measure: str, what: str, shape):
    N_block = _modes_from(M, conj_sym, blocks, what=what, shape=shape)
    return N_block, _block_v_host(measure, N_block, blocks, conj_sym, ())


def s5_b(*, blocks: int = 1, conj_sym: bool = True, measure: str = "legs") -> Initializer:
    """Initializer of S5's input matrix in the eigenbasis, ``B_tilde = V⁻¹ B``.

    ``B`` is a real ``(N, H)`` matrix with LeCun-normal entries (truncated normal of
    variance ``1/N``, ``jax.nn.initializers.lecun_normal`` with fan-in N); ``V⁻¹``
    (``Vinv``) comes from `hippox.block_diagonal_init` with J = ``blocks`` blocks of
    size ``N/J``. N is the real state size: ``2M`` (conj_sym) or ``M``.

    Args:
      blocks: J, the number of HiPPO-N blocks (M divisible by J).
      conj_sym: half or full layout.
      measure: the NPLR measure of each block (default ``legs``, as in S5).

    Returns:
      ``init(key, shape, dtype=None)`` for ``shape`` ``(M, H, 2)``; needs a key.

    Raises:
      ValueError: bad options (at once); a bad shape or ``key=None`` (when called).

    Examples:
      >>> import jax
      >>> from hippox import initializers
      >>> initializers.s5_b(blocks=2)(jax.random.key(0), (4, 3, 2)).shape
      (4, 3, 2)
    """
    blocks = _validate.check_size("blocks", blocks)
    conj_sym = _check_bool("conj_sym", conj_sym)
    measure = matrices.canonical_measure(_validate.check_choice("measure", measure, _nplr_names()))

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape = _as_shape(shape)
        dtype = _storage_dtype(dtype)
        what = f"s5_b(blocks={blocks}, conj_sym={conj_sym})"
        if len(shape) != 3 or shape[-1] != 2:
            raise ValueError(f"`shape` must be (M, H, 2) for {what}, got {shape}.")
        M, H = shape[0], shape[1]
        N_block, (_, Vinv) = _s5_layout(M, conj_sym, blocks, measure, what, shape)
        _validate.require_key("key", key, what)
        rd = _draw_dtype()
        B = jax.nn.initializers.lecun_normal(in_axis=0, out_axis=1)(key, (N_block * blocks, H), rd)
        Bt = jnp.asarray(Vinv, _validate.complex_dtype(rd)) @ B.astype(_validate.complex_dtype(rd))
        return _complex_to_pair(Bt, dtype)

    return initializer


def s5_c(
    init: S5CInit = "trunc_standard_normal",
    *,
    blocks: int = 1,
    conj_sym: bool = True,
    measure: str = "legs",
) -> Initializer:
    """Initializer of S5's output matrix in the eigenbasis, ``C_tilde = C V``.

    Inits:

    - ``trunc_standard_normal``: ``C`` real ``(H, N)``, i.i.d. truncated standard normal
      (unit variance), then ``C V``;
    - ``lecun_normal``: ``C`` real ``(H, N)`` with variance ``1/N`` (LeCun normal, fan-in
      N), then ``C V``;
    - ``complex_normal``: ``C_tilde`` drawn directly, real and imaginary parts i.i.d.
      ``N(0, 1/2)``.

    Args:
      init: one of the three names above.
      blocks: J, the number of HiPPO-N blocks.
      conj_sym: half or full layout.
      measure: the NPLR measure of each block (default ``legs``).

    Returns:
      ``init(key, shape, dtype=None)`` for ``shape`` ``(H, M, 2)``; needs a key.

    Examples:
      >>> import jax
      >>> from hippox import initializers
      >>> initializers.s5_c(blocks=2)(jax.random.key(0), (3, 4, 2)).shape
      (3, 4, 2)
    """
    init = _validate.check_choice(
        "init", init, ("trunc_standard_normal", "lecun_normal", "complex_normal")
    )
    blocks = _validate.check_size("blocks", blocks)
    conj_sym = _check_bool("conj_sym", conj_sym)
    measure = matrices.canonical_measure(_validate.check_choice("measure", measure, _nplr_names()))

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape = _as_shape(shape)
        dtype = _storage_dtype(dtype)
        what = f"s5_c({init!r}, blocks={blocks}, conj_sym={conj_sym})"
        if len(shape) != 3 or shape[-1] != 2:
            raise ValueError(f"`shape` must be (H, M, 2) for {what}, got {shape}.")
        H, M = shape[0], shape[1]
        N_block, (V, _) = _s5_layout(M, conj_sym, blocks, measure, what, shape)
        _validate.require_key("key", key, what)
        rd = _draw_dtype()
        if init == "complex_normal":
            return (jax.random.normal(key, shape, rd) * np.sqrt(0.5)).astype(dtype)
        N = N_block * blocks
        if init == "lecun_normal":
            C = jax.nn.initializers.lecun_normal(in_axis=1, out_axis=0)(key, (H, N), rd)
        else:
            C = jax.nn.initializers.truncated_normal(stddev=_TRUNC_STD_UNIT)(key, (H, N), rd)
        cd = _validate.complex_dtype(rd)
        return _complex_to_pair(C.astype(cd) @ jnp.asarray(V, cd), dtype)

    return initializer


# std of a normal truncated to [-2, 2] is 0.8796; rescale so the truncated draw has unit variance.
_TRUNC_STD_UNIT = 1.0 / 0.87962566103423978


# ------------------------------------------------------------------------------ LSSL


def transition_a(measure: str = "legs", **params) -> Initializer:
    """Initializer of a dense HiPPO state matrix ``A`` (a learnable LSSL ``A``).

    Args:
      measure: a deterministic measure of `hippox.MEASURES` (``legs``, ``legt``, ...).
      **params: measure parameters.

    Returns:
      ``init(key, shape, dtype=None)`` for ``shape`` ``(N, N)``: `hippox.transition`'s A.

    Examples:
      >>> from hippox import initializers
      >>> import numpy as np
      >>> import hippox
      >>> A = initializers.transition_a("legs")(None, (2, 2))
      >>> A.shape, bool(np.allclose(A, hippox.transition("legs", 2).A))
      ((2, 2), True)
    """
    return _transition_factory("A", measure, params)


def transition_b(measure: str = "legs", **params) -> Initializer:
    """Initializer of a dense HiPPO input vector ``B`` (a learnable LSSL ``B``).

    Args:
      measure: a deterministic measure of `hippox.MEASURES`.
      **params: measure parameters.

    Returns:
      ``init(key, shape, dtype=None)`` for ``shape`` ``(N,)``: `hippox.transition`'s B.

    Examples:
      >>> from hippox import initializers
      >>> initializers.transition_b("legs")(None, (2,))
      Array([1.       , 1.7320508], dtype=float32)
    """
    return _transition_factory("B", measure, params)


def _transition_factory(which: str, measure: str, params: dict) -> Initializer:
    measure = matrices.canonical_measure(measure)
    if measure in matrices.RANDOM_MEASURES:
        raise ValueError(
            f"`measure` must be a deterministic measure for transition_{which.lower()}, "
            f"got {measure!r}."
        )
    ptuple = matrices.check_measure_params(measure, params)

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape = _as_shape(shape)
        dtype = _storage_dtype(dtype)
        ok = (len(shape) == 2 and shape[0] == shape[1]) if which == "A" else len(shape) == 1
        if not ok or shape[0] < 1:
            expected = "(N, N)" if which == "A" else "(N,)"
            raise ValueError(
                f"`shape` must be {expected} for transition_{which.lower()}({measure!r}), "
                f"got {shape}."
            )
        A, B = matrices.transition_np(measure, shape[0], **dict(ptuple))
        return jnp.asarray(A if which == "A" else B, dtype)

    return initializer
