"""Diagonal (S4D), diagonal-plus-low-rank (S4) and block-diagonal (S5) initialisations.

Convention: ``dx/dt = A x + B u``; every spectrum built here has ``Re(Lambda) < 0``
(except where a HiPPO measure itself has ``Re = 0``, e.g. the normal part of ``fout``).

Half / full layout (used by every function in this module). A real system of even
state size N has eigenvalues in conjugate pairs. With ``conj_sym=True`` hippox stores
one of each pair, ``M = N/2`` values with ``Im <= 0``; the real output is
``y = 2 Re(C x)``. With ``conj_sym=False`` it stores all ``M = N`` values in the
order **the N/2 half values first, then their complex conjugates in the same
order**: ``Lambda_full = concat(Lambda_half, conj(Lambda_half))``. B, P and the
eigenvector columns V follow the same layout.

Diagonal spectra (``diag_init``), ``n = 0 … N/2 - 1``, before scaling:

=========  ===========================================================================
``legs``   S4D-LegS: the NPLR spectrum of LegS (``hippox.nplr("legs", N).Lambda``),
           ``Re = -1/2``, in nplr's order (ascending imaginary part)
``lin``    S4D-Lin: ``-1/2 - i π n``
``inv``    S4D-Inv: ``-1/2 - i (N/π) (N/(2n+1) - 1)``
``inv2``   ``-1/2 - i (N/π) (N/(n+1) - 1)``
``quad``   ``-1/2 - i (2n+1)² / π``
``real``   ``-(n + 1)`` (imaginary part 0)
``rand``   ``-1/2 - i π (N/2) u_n``, ``u_n ~ Uniform[0, 1)`` i.i.d. (needs ``key``): a
           random spectrum over the same frequency band as ``lin``
=========  ===========================================================================

``real_scale`` multiplies the real part and ``imag_scale`` the imaginary part.

DPLR operator (``dplr``, the S4 parameterisation), per channel h::

    A_h = diag(Lambda[h]) - P[:, h]ᵀ conj(P[:, h])      (M × M, complex)

For an NPLR measure with ``conj_sym=False`` this is exactly ``V* A V`` for the real
HiPPO matrix A and the unitary ``V`` (the ``hippox.nplr`` result extended by its
conjugate half). With ``conj_sym=True`` the stored half stands for that same
full, conjugate-closed system (``Lambda``, ``P``, ``B`` each followed by their
conjugates). Note that the low-rank term couples the two halves: the half-size
matrix ``diag(Lambda) - Pᵀ conj(P)`` on its own (with output ``2 Re``) is *not*
similar to A when ``P != 0``; a kernel must sum the low-rank (Woodbury) terms over
both halves. In the original basis::

    A = 2 Re(V diag(Lambda) V*) - P_rᵀ P_r,   P_r = 2 Re(P Vᵀ)   (conj_sym=True)

S5 block-diagonal layout (``block_diagonal_init``): J copies of the normal part
``A + PᵀP`` of a HiPPO measure (HiPPO-N) on the diagonal, diagonalised block by
block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from hippox._src import _validate, cache, decompositions, matrices
from hippox._src.parameterization import conj_closed, full_layout

DiagInit = Literal["legs", "lin", "inv", "inv2", "quad", "real", "rand"]
BInit = Literal["constant", "legs", "random", "alternating"]
PInit = Literal["zeros", "random"]


# --------------------------------------------------------------------------- helpers


def _check_even_N(N, *, name: str = "N") -> int:
    N = _validate.check_state_size(name, N, minimum=2)
    if N % 2:
        raise ValueError(
            f"`{name}` must be even (eigenvalues come in conjugate pairs and the layout "
            f"stores N/2 of them, plus their conjugates when conj_sym=False), got {N}."
        )
    return N


def _dtypes(dtype) -> tuple[np.dtype, np.dtype]:
    """(complex dtype of the result, real dtype used for random draws)."""
    rdtype = _validate.compute_dtype(_validate.real_dtype(dtype))
    return _validate.complex_dtype(rdtype), rdtype


def complex_normal(key, shape, rdtype) -> jax.Array:
    """Standard complex normal, ``E|z|² = 1``, in the complex dtype matching `rdtype`."""
    re, im = jax.random.normal(key, (2, *shape), rdtype) * np.asarray(np.sqrt(0.5), rdtype)
    return jax.lax.complex(re, im)


def _readonly(*xs):
    for x in xs:
        x.setflags(write=False)
    return xs if len(xs) > 1 else xs[0]


def check_init(
    arg: str, init, inits: tuple[str, ...], params: dict, *, what: str, measures_first: bool
) -> tuple[str, bool, tuple]:
    """Validates a name that is one of ``inits`` or an NPLR measure (`matrices.NPLR_NAMES`).

    The one check of such a name at a public boundary (`dplr`, the ``hippox.initializers``
    factories); the host builders below take its result as is.

    Args:
      arg: the argument's name, for the error message.
      init: the name given.
      inits: the non-measure names accepted (e.g. `DIAG_INITS`).
      params: the measure parameters given with it.
      what: how a non-measure name is called in the error (``"diagonal init"``).
      measures_first: whether a name in both sets (``legs``) means the measure; the
        measures are then also listed first in the error.

    Returns:
      ``(name, is_measure, params)``: the name (a measure canonicalised), whether it is a
      measure, and the checked parameter tuple (``()`` for a non-measure name).

    Raises:
      ValueError: an unknown name. TypeError: parameters given to a non-measure name,
        or a parameter the measure does not take.
    """
    if measures_first:
        others = tuple(i for i in inits if i not in matrices.NPLR_NAMES)
        allowed = (*matrices.NPLR_NAMES, *others)
    else:
        others = inits
        allowed = (*inits, *(m for m in matrices.NPLR_NAMES if m not in inits))
    init = _validate.check_choice(arg, init, allowed)
    if init in others:
        if params:
            raise TypeError(f"{what} {init!r} takes no measure parameters, got {tuple(params)}.")
        return init, False, ()
    measure = matrices.ALIASES.get(init, init)
    return measure, True, matrices.check_measure_params(measure, params)


# ------------------------------------------------------------------ Lambda: registry
# Deterministic builders map N -> complex128 NumPy (N/2,) (unscaled). Random builders
# map (key, N, shape, rdtype) -> (real part, imaginary part) jnp arrays of `shape`.


def _legs_spectrum(N: int) -> np.ndarray:
    return decompositions.nplr_host("legs", N, 1, ())[0]


def _half_n(N: int) -> np.ndarray:
    return np.arange(N // 2, dtype=np.float64)


def _lin_spectrum(N: int) -> np.ndarray:
    return -0.5 - 1j * np.pi * _half_n(N)


def _inv_spectrum(N: int) -> np.ndarray:
    return -0.5 - 1j * (N / np.pi) * (N / (2.0 * _half_n(N) + 1.0) - 1.0)


def _inv2_spectrum(N: int) -> np.ndarray:
    return -0.5 - 1j * (N / np.pi) * (N / (_half_n(N) + 1.0) - 1.0)


def _quad_spectrum(N: int) -> np.ndarray:
    return -0.5 - 1j * (2.0 * _half_n(N) + 1.0) ** 2 / np.pi


def _real_spectrum(N: int) -> np.ndarray:
    return -(_half_n(N) + 1.0) + 0j


def _rand_spectrum(key, N: int, shape: tuple, rdtype):
    u = jax.random.uniform(key, shape, rdtype)
    return jnp.full(shape, -0.5, rdtype), -np.asarray(np.pi * N / 2, rdtype) * u


_SPECTRA: dict[str, Callable[[int], np.ndarray]] = {
    "legs": _legs_spectrum,
    "lin": _lin_spectrum,
    "inv": _inv_spectrum,
    "inv2": _inv2_spectrum,
    "quad": _quad_spectrum,
    "real": _real_spectrum,
}
#: The random diagonal inits (they need a key): name -> ``(key, N, shape, rdtype) ->
#: (real part, imaginary part)``.
RANDOM_SPECTRA: dict[str, Callable] = {"rand": _rand_spectrum}

#: Names accepted by `diag_init` (and by `dplr` as diagonal inits).
DIAG_INITS: tuple[str, ...] = (*_SPECTRA, *RANDOM_SPECTRA)


@cache.host_cache
def _spectrum_np(init: str, N: int) -> np.ndarray:
    return _readonly(np.asarray(_SPECTRA[init](N), np.complex128))


def spectrum_host(init: str, N: int, params: tuple = ()) -> np.ndarray:
    """Unscaled complex128 half spectrum ``(N/2,)`` (cached, read-only).

    ``init`` is a deterministic diagonal init or a canonical NPLR measure (its
    `hippox.nplr` spectrum at the natural rank) as returned by `check_init`; ``N`` is an
    even checked size and ``params`` the measure's checked parameter tuple.
    """
    if init in _SPECTRA:
        return _spectrum_np(init, N)
    return decompositions.nplr_host(init, N, matrices.natural_rank(init), params)[0]


def _scaled(Lam, real_scale: float, imag_scale: float):
    return real_scale * Lam.real + 1j * (imag_scale * Lam.imag)


def half_spectrum(init, N, shape, real_scale, imag_scale, key, cdtype, rdtype) -> jax.Array:
    """The scaled half spectrum of a diagonal init, broadcast (or drawn) to ``shape + (N/2,)``.

    ``init`` is one of `DIAG_INITS` (checked); a random init (`RANDOM_SPECTRA`) draws from
    ``key`` in ``rdtype``; the result has the complex dtype ``cdtype``.
    """
    full_shape = (*shape, N // 2)
    if init in RANDOM_SPECTRA:
        re, im = RANDOM_SPECTRA[init](key, N, full_shape, rdtype)
        return jax.lax.complex(real_scale * re, imag_scale * im).astype(cdtype)
    Lam = _scaled(_spectrum_np(init, N), real_scale, imag_scale)
    return jnp.broadcast_to(jnp.asarray(Lam, cdtype), full_shape)


def diag_init(
    init: DiagInit,
    N: int,
    *,
    conj_sym: bool = True,
    real_scale: float = 1.0,
    imag_scale: float = 1.0,
    key=None,
    dtype: DTypeLike | None = None,
) -> jax.Array:
    """Diagonal state matrix ``Lambda`` of an S4D-style diagonal SSM.

    Args:
      init: one of `hippox.DIAG_INITS`: ``legs``, ``lin``, ``inv``, ``inv2``,
        ``quad``, ``real`` (deterministic) or ``rand`` (random, needs ``key``). See the
        module docstring for the formulas.
      N: even state size of the real system.
      conj_sym: if True return the ``N/2`` values with ``Im <= 0`` (one of each
        conjugate pair); if False return all ``N``: those values followed by their
        conjugates.
      real_scale: ``> 0``, multiplies the real part (so it stays negative).
      imag_scale: ``>= 0``, multiplies the imaginary part.
      key: jax.random key; required by ``rand``, accepted and ignored by the
        deterministic inits.
      dtype: real dtype whose complex counterpart the result uses (default float32
        -> complex64; float64 -> complex128; bfloat16/float16 -> complex64).

    Returns:
      ``Lambda`` of shape ``(N/2,)`` (conj_sym) or ``(N,)``, complex.

    Raises:
      ValueError: unknown ``init`` (the error lists the allowed names), odd or small
        ``N``, ``real_scale <= 0``, ``imag_scale < 0``, or ``key=None`` for ``rand``.
      TypeError: non-integer ``N``, non-bool ``conj_sym``, non-real scales.

    Examples:
      >>> import numpy as np
      >>> import hippox
      >>> Lambda = hippox.diag_init("lin", 6)
      >>> Lambda.shape, Lambda.dtype
      ((3,), dtype('complex64'))
      >>> np.round(np.asarray(Lambda) / np.pi, 4).imag
      array([ 0., -1., -2.], dtype=float32)
      >>> hippox.diag_init("real", 4, conj_sym=False)
      Array([-1.+0.j, -2.+0.j, -1.-0.j, -2.-0.j], dtype=complex64)
    """
    cdtype, rdtype = _dtypes(dtype)
    init = _validate.check_choice("init", init, DIAG_INITS)
    N = _check_even_N(N)
    conj_sym = _validate.check_bool("conj_sym", conj_sym)
    real_scale = _validate.check_real("real_scale", real_scale, positive=True)
    imag_scale = _validate.check_real("imag_scale", imag_scale, low=0.0)
    if init in RANDOM_SPECTRA:
        _validate.check_key("key", key, f"diag_init({init!r})")
    Lam = half_spectrum(init, N, (), real_scale, imag_scale, key, cdtype, rdtype)
    return full_layout(Lam, conj_sym)


# ----------------------------------------------------------------------- B: registry


def _b_constant(N: int) -> np.ndarray:
    return np.ones(N // 2, np.complex128)


def _b_legs(N: int) -> np.ndarray:
    return decompositions.nplr_host("legs", N, 1, ())[2]


def _b_alternating(N: int) -> np.ndarray:
    return (-1.0) ** _half_n(N) + 0j


_B_BUILDERS: dict[str, Callable[[int], np.ndarray]] = {
    "constant": _b_constant,
    "legs": _b_legs,
    "alternating": _b_alternating,
}
#: The random B inits (standard complex normal; they need a key).
RANDOM_B_INITS: tuple[str, ...] = ("random",)

#: Names accepted by `diag_b_init` (and by `dplr`'s ``b_init``).
B_INITS: tuple[str, ...] = (*_B_BUILDERS, *RANDOM_B_INITS)


@cache.host_cache
def _b_np(init: str, N: int) -> np.ndarray:
    return _readonly(np.asarray(_B_BUILDERS[init](N), np.complex128))


def b_host(init: str, N: int, params: tuple = ()) -> np.ndarray:
    """Complex128 half input vector ``(N/2,)`` (cached, read-only).

    ``init`` is a deterministic B init or a canonical NPLR measure (its `hippox.nplr`
    ``B`` at the natural rank) as returned by `check_init`; ``N`` is an even checked
    size and ``params`` the measure's checked parameter tuple.
    """
    if init in _B_BUILDERS:
        return _b_np(init, N)
    return decompositions.nplr_host(init, N, matrices.natural_rank(init), params)[2]


def _b(init, N, shape, key, cdtype, rdtype) -> jax.Array:
    full_shape = (*shape, N // 2)
    if init in RANDOM_B_INITS:
        return complex_normal(key, full_shape, rdtype).astype(cdtype)
    return jnp.broadcast_to(jnp.asarray(_b_np(init, N), cdtype), full_shape)


def diag_b_init(
    init: BInit,
    N: int,
    *,
    conj_sym: bool = True,
    key=None,
    dtype: DTypeLike | None = None,
) -> jax.Array:
    """Input vector ``B`` of a diagonal SSM, in the same half/full layout as ``Lambda``.

    Inits (``n = 0 … N/2 - 1`` for the half):

    - ``constant``: ``B_n = 1``;
    - ``legs``: LegS's input vector in its eigenbasis, ``hippox.nplr("legs", N).B``
      (``V* B``; real and non-negative with nplr's canonical eigenvector phase);
    - ``alternating``: ``B_n = (-1)^n`` (``1, -1, 1, …``);
    - ``random``: standard complex normal, ``(z1 + i z2)/√2`` with ``z1, z2 ~ N(0, 1)``
      (``E|B_n|² = 1``); needs ``key``.

    With ``conj_sym=False`` the N/2 values are followed by their conjugates (for the
    real inits, a second copy).

    Args:
      init: one of `hippox.B_INITS`.
      N: even state size of the real system.
      conj_sym: half (``N/2`` values) or full (``N`` values) layout.
      key: jax.random key; required by ``random``, ignored by the others.
      dtype: real dtype whose complex counterpart the result uses (default float32).

    Returns:
      ``B`` of shape ``(N/2,)`` (conj_sym) or ``(N,)``, complex.

    Raises:
      ValueError: unknown ``init``, odd ``N``, or ``key=None`` for ``random``.
      TypeError: non-integer ``N`` or non-bool ``conj_sym``.

    Examples:
      >>> import hippox
      >>> hippox.diag_b_init("alternating", 6)
      Array([ 1.+0.j, -1.+0.j,  1.+0.j], dtype=complex64)
      >>> hippox.diag_b_init("constant", 4, conj_sym=False).shape
      (4,)
    """
    cdtype, rdtype = _dtypes(dtype)
    init = _validate.check_choice("init", init, B_INITS)
    N = _check_even_N(N)
    conj_sym = _validate.check_bool("conj_sym", conj_sym)
    if init in RANDOM_B_INITS:
        _validate.check_key("key", key, f"diag_b_init({init!r})")
    return full_layout(_b(init, N, (), key, cdtype, rdtype), conj_sym)


# ------------------------------------------------------------------------------ DPLR


class DPLR(NamedTuple):
    """A diagonal-plus-low-rank SSM state matrix per channel (the S4 parameterisation).

    ``A_h = diag(Lambda[h]) - P[:, h]ᵀ conj(P[:, h])`` on the M-dimensional complex
    state (see the module docstring for the half/full layout).

    Attributes:
      Lambda: ``(H, M)`` complex diagonal.
      P: ``(rank, H, M)`` complex low-rank term.
      B: ``(H, M)`` complex input vector (in the eigenbasis for NPLR measures).
      V: ``(H, N, M)`` complex eigenvectors: column m of ``V[h]`` is the state-space
        direction of mode m (orthonormal columns for NPLR measures; the first M
        identity columns for diagonal inits, which have no original real basis).
    """

    Lambda: jax.Array
    P: jax.Array
    B: jax.Array
    V: jax.Array


def dplr(
    init: str,
    N: int,
    *,
    rank: int = 1,
    H: int = 1,
    conj_sym: bool = True,
    real_scale: float = 1.0,
    imag_scale: float = 1.0,
    b_init: BInit | None = None,
    p_init: PInit | None = None,
    key=None,
    dtype: DTypeLike | None = None,
    **params,
) -> DPLR:
    """Diagonal-plus-low-rank initialisation of H channels (S4; S4D when ``P = 0``).

    Two families of ``init``:

    - an NPLR measure (`hippox.NPLR_MEASURES`: ``legs``, ``legt``, ``lagt``,
      ``fout``, …): the `hippox.nplr` result (``Lambda``, ``P = (V* P_rᵀ)ᵀ``,
      ``B = V* B_r``, ``V``), identical copies for every channel. With
      ``conj_sym=False`` each is extended by its conjugate half (``V`` becomes the
      full unitary ``[V, conj(V)]``), so ``diag(Lambda) - Pᵀ conj(P) = V* A V``.
      ``real_scale``/``imag_scale`` rescale ``Lambda`` only (the default 1 keeps the
      exact HiPPO operator). ``legs`` means the full S4-LegS operator here; for
      S4D-LegS pass ``p_init="zeros"``.
    - a diagonal init (`hippox.DIAG_INITS` other than ``legs``: ``lin``, ``inv``, …):
      ``Lambda`` from `diag_init`, ``B`` from `diag_b_init` (default ``constant``),
      ``P`` zeros (default) or random, ``V`` the first M identity columns.

    Deterministic parts are exact copies across channels; random parts (``rand``
    Lambda, ``random`` B or P) are drawn independently for every channel. ``key`` is
    split into three fixed streams (Lambda, B, P), so e.g. the B draw for a key does
    not depend on whether P is random. Any P keeps A stable: the Hermitian part of
    ``-Pᵀ conj(P)`` is negative semi-definite.

    Args:
      init: an NPLR measure name or a diagonal init name.
      N: even state size of the real system.
      rank: rows of P (``legt`` needs >= 2); extra rows of a measure's P are zero.
      H: number of channels.
      conj_sym: half layout (``M = N/2``) or full (``M = N``).
      real_scale: ``> 0``, multiplies ``Re(Lambda)``.
      imag_scale: ``>= 0``, multiplies ``Im(Lambda)``.
      b_init: None (the measure's own ``V* B`` for NPLR measures, ``constant`` for
        diagonal inits) or one of `hippox.B_INITS`.
      p_init: None (the measure's P for NPLR measures, zeros for diagonal inits),
        ``"zeros"``, or ``"random"`` (standard complex normal entries, needs ``key``).
      key: jax.random key; needed when any part is random, ignored otherwise.
      dtype: real dtype whose complex counterpart the result uses (default float32).
      **params: measure parameters for NPLR measures (e.g. ``theta`` for ``legt``).

    Returns:
      `DPLR(Lambda, P, B, V)` with shapes ``(H, M)``, ``(rank, H, M)``, ``(H, M)``,
      ``(H, N, M)``, complex.

    Raises:
      ValueError: unknown ``init``/``b_init``/``p_init``, odd ``N``, bad scales or
        sizes, or a missing key for a random part.
      TypeError: non-integer sizes, non-bool ``conj_sym``, or parameters given to a
        diagonal init.

    Examples:
      >>> import hippox
      >>> Lambda, P, B, V = hippox.dplr("legs", 8, H=3)
      >>> Lambda.shape, P.shape, B.shape, V.shape
      ((3, 4), (1, 3, 4), (3, 4), (3, 8, 4))
      >>> d = hippox.dplr("lin", 8, H=2, rank=2, conj_sym=False)
      >>> d.Lambda.shape, bool((d.P == 0).all())
      ((2, 8), True)
    """
    cdtype, rdtype = _dtypes(dtype)
    init, is_measure, params = check_init(
        "init", init, DIAG_INITS, params, what="diagonal init", measures_first=True
    )
    N = _check_even_N(N)
    rank = _validate.check_size("rank", rank)
    H = _validate.check_size("H", H)
    conj_sym = _validate.check_bool("conj_sym", conj_sym)
    real_scale = _validate.check_real("real_scale", real_scale, positive=True)
    imag_scale = _validate.check_real("imag_scale", imag_scale, low=0.0)
    if b_init is not None:
        b_init = _validate.check_choice("b_init", b_init, B_INITS)
    if p_init is not None:
        p_init = _validate.check_choice("p_init", p_init, ("zeros", "random"))
    random_parts = [
        what
        for what, is_random in (
            (f"init={init!r}", init in RANDOM_SPECTRA),
            (f"b_init={b_init!r}", b_init in RANDOM_B_INITS),
            (f"p_init={p_init!r}", p_init == "random"),
        )
        if is_random
    ]
    if random_parts:
        _validate.check_key("key", key, "dplr with " + ", ".join(random_parts))
        k_lam, k_b, k_p = jax.random.split(key, 3)
    else:
        k_lam = k_b = k_p = None
    M = N // 2

    if is_measure:
        Lam_np, P_np, B_np, V_np = decompositions.nplr_host(init, N, rank, params)
        Lam = jnp.broadcast_to(jnp.asarray(_scaled(Lam_np, real_scale, imag_scale), cdtype), (H, M))
        V = jnp.broadcast_to(jnp.asarray(V_np, cdtype), (H, N, M))
        P = jnp.broadcast_to(jnp.asarray(P_np, cdtype)[:, None, :], (rank, H, M))
        B = jnp.broadcast_to(jnp.asarray(B_np, cdtype), (H, M))
    else:
        Lam = half_spectrum(init, N, (H,), real_scale, imag_scale, k_lam, cdtype, rdtype)
        V = None  # identity columns, built for the final layout below
        P = jnp.zeros((rank, H, M), cdtype)
        B = None
    if b_init is not None or B is None:
        B = _b(b_init or "constant", N, (H,), k_b, cdtype, rdtype)
    if p_init == "zeros":
        P = jnp.zeros((rank, H, M), cdtype)
    elif p_init == "random":
        P = complex_normal(k_p, (rank, H, M), rdtype).astype(cdtype)
    if V is None:  # diagonal init: the first M identity columns of the final layout
        M_out = M if conj_sym else N
        V = jnp.broadcast_to(jnp.eye(N, M_out, dtype=cdtype), (H, N, M_out))
    else:
        V = full_layout(V, conj_sym)
    Lam, P, B = (full_layout(x, conj_sym) for x in (Lam, P, B))
    return DPLR(Lambda=Lam, P=P, B=B, V=V)


# ------------------------------------------------------------------ S5 block diagonal


class BlockDiagonal(NamedTuple):
    """Eigendecomposition of a block-diagonal HiPPO-N matrix (the S5 initialisation).

    ``A_N = V diag(Lambda) Vinv`` (conj_sym=False) or ``2 Re(V diag(Lambda) Vinv)``
    (conj_sym=True), with ``A_N`` the real ``(J·N_block, J·N_block)`` matrix of
    `block_diagonal_normal`.

    Attributes:
      Lambda: ``(J·M,)`` complex eigenvalues, block by block (M = N_block/2 or
        N_block).
      V: ``(J·N_block, J·M)`` complex eigenvectors, orthonormal columns, block
        diagonal.
      Vinv: ``(J·M, J·N_block)``, the conjugate transpose ``V*`` (a left inverse:
        ``Vinv @ V = I``).
    """

    Lambda: jax.Array
    V: jax.Array
    Vinv: jax.Array


def _check_block(measure, N_block, J, params: dict):
    """The one check of `block_diagonal_init`'s arguments: (measure, N_block, J, params)."""
    measure = matrices.canonical_nplr_measure(measure)
    N_block = _check_even_N(N_block, name="N_block")
    J = _validate.check_size("J", J)
    return measure, N_block, J, matrices.check_measure_params(measure, params)


@cache.host_cache
def block_diagonal_host(measure: str, N_block: int, J: int, conj_sym: bool, params: tuple):
    """Complex128 ``(Lambda, V, Vinv)`` of `block_diagonal_init` (cached, read-only).

    ``measure`` is a canonical NPLR measure, ``N_block`` an even checked size, ``J`` a
    checked size and ``params`` the measure's checked parameter tuple.
    """
    rank = matrices.natural_rank(measure)
    Lam, _, _, V = decompositions.nplr_host(measure, N_block, rank, params)
    if not conj_sym:
        Lam = conj_closed(Lam, xp=np)
        V = conj_closed(V, axis=1, xp=np)
    Vbd = np.kron(np.eye(J), V)
    return _readonly(np.tile(Lam, J), Vbd, Vbd.conj().T)


def block_diagonal_init(
    N_block: int,
    J: int,
    *,
    measure: str = "legs",
    conj_sym: bool = True,
    dtype: DTypeLike | None = None,
    **params,
) -> BlockDiagonal:
    """S5 initialisation: J copies of a HiPPO-N block on the diagonal, diagonalised.

    Each block is the normal part ``A + PᵀP`` of ``measure`` (HiPPO-N; for ``legs``
    its eigenvalues have ``Re = -1/2``), diagonalised by `hippox.nplr`'s eigenvectors.
    The blocks are uncoupled, so ``V`` is block diagonal with J copies of the
    ``(N_block, M)`` block and ``Lambda`` is the block spectrum repeated J times.

    Args:
      N_block: even size of one block.
      J: number of blocks.
      measure: an NPLR measure (default ``legs``).
      conj_sym: keep one of each conjugate pair per block (``M = N_block/2``) or all
        (``M = N_block``, per block the half followed by its conjugates).
      dtype: real dtype whose complex counterpart the result uses (default float32).
      **params: measure parameters (e.g. ``theta`` for ``legt``).

    Returns:
      `BlockDiagonal(Lambda, V, Vinv)` with shapes ``(J·M,)``, ``(J·N_block, J·M)``,
      ``(J·M, J·N_block)``.

    Raises:
      ValueError: measure without an NPLR form, odd ``N_block``, ``J < 1``.
      TypeError: non-integer sizes or non-bool ``conj_sym``.

    Examples:
      >>> import numpy as np
      >>> import hippox
      >>> Lambda, V, Vinv = hippox.block_diagonal_init(4, 3)
      >>> Lambda.shape, V.shape, Vinv.shape
      ((6,), (12, 6), (6, 12))
      >>> np.allclose(Vinv @ V, np.eye(6), atol=1e-5)
      True
    """
    cdtype, _ = _dtypes(dtype)
    conj_sym = _validate.check_bool("conj_sym", conj_sym)
    measure, N_block, J, params = _check_block(measure, N_block, J, params)
    Lam, V, Vinv = block_diagonal_host(measure, N_block, J, conj_sym, params)
    return BlockDiagonal(*(jnp.asarray(x, cdtype) for x in (Lam, V, Vinv)))


@cache.host_cache
def _block_normal_np(measure: str, N_block: int, J: int, params: tuple) -> np.ndarray:
    A, _ = matrices.transition_host(measure, N_block, params)
    P = matrices.rank_correction_host(measure, N_block, matrices.natural_rank(measure), params)
    return _readonly(np.kron(np.eye(J), A + P.T @ P))


def block_diagonal_normal(
    N_block: int,
    J: int,
    *,
    measure: str = "legs",
    dtype: DTypeLike | None = None,
    **params,
) -> jax.Array:
    """The real block-diagonal HiPPO-N matrix that `block_diagonal_init` diagonalises.

    Args:
      N_block: even size of one block.
      J: number of blocks.
      measure: an NPLR measure (default ``legs``).
      dtype: real floating dtype (default float32).
      **params: measure parameters.

    Returns:
      ``(J·N_block, J·N_block)`` real matrix with J copies of ``A + PᵀP`` on the
      diagonal.

    Raises:
      ValueError: as for `block_diagonal_init`.

    Examples:
      >>> import numpy as np
      >>> import hippox
      >>> A_N = hippox.block_diagonal_normal(2, 2)
      >>> A_N.shape
      (4, 4)
      >>> np.round(np.asarray(A_N[:2, :2]), 4)
      array([[-0.5  ,  0.866],
             [-0.866, -0.5  ]], dtype=float32)
    """
    dtype = _validate.real_dtype(dtype)
    measure, N_block, J, params = _check_block(measure, N_block, J, params)
    return jnp.asarray(_block_normal_np(measure, N_block, J, params), dtype)
