"""`Hippo`: the original hippox (v0.0.4) dataclass API, kept working and fixed.

The original package exposed ``hippox.main.Hippo``: a dataclass that, when called,
returned the HiPPO matrices of a measure (optionally diagonalised) and handed out
parameter initializers for Haiku and Flax. This module keeps that API —
``Hippo(state_size=N, measure=...)`` (old keyword ``basis_measure=``), the options
``conj_sym``, ``dplr``, ``diagonalize``, ``block_diagonal``, ``n_blocks``, the
`HippoParams` fields ``state_matrix``, ``eigenvector_pair``, ``input_matrix``,
``low_rank_term``, and the initializer methods — on top of `hippox.transition` and
`hippox.nplr`, and fixes the old bugs:

* `Hippo` is a frozen dataclass: calling it twice gives equal results and never
  changes the object (the old ``block_diagonal`` call overwrote ``state_size``).
  Nothing has to be called first: the initializers compute (and cache) what they need.
* ``input_matrix`` is always the input vector in the basis of ``state_matrix``
  (``V⁻¹ B`` when diagonalised), never None.
* Every initializer respects ``shape`` and ``dtype`` and works both as a Haiku
  initializer ``init(shape, dtype)`` and as a Flax/JAX initializer
  ``init(key, shape, dtype)``.
* ``legt``, ``lmu`` and ``glagt`` work (see below), as do every deterministic measure
  of `hippox.MEASURES` and the old names ``fourier_double``, ``linear``, ``inverse``.

Diagonalisation (``diagonalize=True``, the default). The state matrix becomes the
eigenvalues ``Lambda`` of the *normal part* of the NPLR form, so that ::

    A = V (diag(Lambda) - P̃ᵀ conj(P̃)) V⁻¹          (conj_sym=False, V: N × N)
    A = 2 Re(V diag(Lambda) V⁻¹) - P_rᵀ P_r        (conj_sym=True, unitary V only)

with ``P̃ = low_rank_term`` (the low-rank term in the eigenbasis) and
``(V, V⁻¹) = eigenvector_pair``. For the NPLR measures (`hippox.NPLR_MEASURES`) ``V``
is unitary (``V⁻¹ = V*``) and the values are those of `hippox.nplr`. ``lmu`` and
``glagt`` have no symmetric low-rank correction, but each is a diagonal similarity
transform of an NPLR operator: ``A_lmu(θ) = S A_legt(θ) S⁻¹`` with
``S = diag((-1)^n sqrt(2n+1))`` and ``A_glagt(α, β) = E A_tlagt(β) E⁻¹`` with
``E = diag(sqrt(n! / Γ(n+α+1)))``. Their eigen-parameterisation is that of the
twin operator (same ``Lambda`` and ``P̃``) with ``V = S V_twin``,
``V⁻¹ = V_twin* S⁻¹`` (condition number of ``V``: ``cond(S) = sqrt(2N-1)`` for
``lmu``; ``max ℓ / min ℓ`` for ``glagt``, 1 at its default ``alpha=0``). No dense
eigendecomposition of a non-normal matrix is ever taken (those are defective or
badly conditioned for the HiPPO operators).

Layout: with ``conj_sym=True`` one eigenvalue of each conjugate pair (``Im <= 0``) is
kept (``M = N/2`` values); with ``conj_sym=False`` all ``M = N`` are kept, the N/2
kept values first, then their conjugates in the same order (as in
`hippox.diag_init`). With ``block_diagonal=True`` the state is ``n_blocks`` copies of
a HiPPO of size ``N / n_blocks`` (the S5 initialisation): ``Lambda`` is tiled, ``V``,
``V⁻¹`` and the low-rank term are block diagonal, each block in the layout above.

``linear`` and ``inverse`` (old names of the S4D-Lin and S4D-Inv spectra) have no
dense matrix: ``state_matrix`` is ``-1/2 - iπn`` resp. ``-1/2 - i(N/π)(N/(2n+1) - 1)``
(``n < N/2``), ``input_matrix`` is ones, ``eigenvector_pair`` and ``low_rank_term``
are None.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from scipy import linalg as sla
from scipy import special

from hippox._src import _validate, cache, decompositions, diagonal, matrices
from hippox._src.parameterization import conj_closed, full_layout, pair_from_complex

_OLD_NAMES = {"fourier_double": "fourier2"}
#: The old names of two S4D spectra (no dense matrix) -> their `hippox.diag_init` names.
_DIAGONAL_ONLY = {"linear": "lin", "inverse": "inv"}
_TWINS = ("lmu", "glagt")  # diagonal similarity transforms of an NPLR operator

#: Measure names `Hippo` accepts.
HIPPO_MEASURES: tuple[str, ...] = (
    *(m for m in matrices.MEASURES if m not in ("random", "diagonal")),
    *_OLD_NAMES,
    *_DIAGONAL_ONLY,
)


class EigenvectorPair(NamedTuple):
    """Eigenvectors of the normal part and their inverse (a tuple, as in the old API).

    Attributes:
      V: ``(N, M)`` complex eigenvectors (columns).
      V_inv: ``(M, N)`` complex; ``V_inv @ V = I``. Equals ``V*`` for the NPLR
        measures.
    """

    V: jax.Array
    V_inv: jax.Array


class HippoParams(NamedTuple):
    """What calling a `Hippo` returns (field order of the original package).

    Attributes:
      state_matrix: ``(M,)`` complex eigenvalues when diagonalised, else the real
        ``(N, N)`` transition matrix A.
      eigenvector_pair: `EigenvectorPair` ``(V, V⁻¹)`` when diagonalised, else None.
      input_matrix: ``(M,)`` complex ``V⁻¹ B`` when diagonalised, else the real
        ``(N,)`` B. Never None.
      low_rank_term: ``(rank, M)`` complex ``P̃`` in the eigenbasis when diagonalised,
        the real ``(rank, N)`` P of `hippox.rank_correction` otherwise; None where the
        measure has none (``linear``, ``inverse``; ``lmu``/``glagt`` undiagonalised).
    """

    state_matrix: jax.Array
    eigenvector_pair: EigenvectorPair | None = None
    input_matrix: jax.Array | None = None
    low_rank_term: jax.Array | None = None


# ------------------------------------------------------------------- host computation


def _full_layout(Lam, V, Vinv, P):
    """Half (Im <= 0) -> full layout: the half first, then the conjugates."""
    Lam = conj_closed(Lam, xp=np)
    V = conj_closed(V, axis=1, xp=np)
    Vinv = conj_closed(Vinv, axis=0, xp=np)
    P = conj_closed(P, axis=1, xp=np)
    return Lam, V, Vinv, P


def _diagonal_only(measure: str, N: int, conj_sym: bool) -> dict:
    Lam = full_layout(diagonal.spectrum_host(_DIAGONAL_ONLY[measure], N), conj_sym, xp=np)
    return {"state": Lam, "pair": None, "input": np.ones(Lam.shape, complex), "low_rank": None}


def _eigen(measure: str, N: int):
    """(Lambda, P̃, V, V⁻¹) half-layout eigen-parameterisation of a measure."""
    if measure in matrices.NPLR_MEASURES:
        Lam, Pt, _, V = decompositions.nplr_host(measure, N, matrices.natural_rank(measure), ())
        return Lam, Pt, V, V.conj().T
    n = np.arange(N, dtype=np.float64)
    if measure == "lmu":
        Lam, Pt, _, V0 = decompositions.nplr_host("legt", N, 2, (("theta", 1.0),))
        s = (-1.0) ** n * np.sqrt(2 * n + 1)
    else:  # glagt, at the default parameters of hippox.transition
        alpha, beta = 0.0, 0.01
        Lam, Pt, _, V0 = decompositions.nplr_host("tlagt", N, 1, (("beta", beta),))
        s = np.exp(-0.5 * (special.gammaln(n + alpha + 1.0) - special.gammaln(n + 1.0)))
    return Lam, Pt, s[:, None] * V0, V0.conj().T / s[None, :]


@cache.host_cache
def _host(measure: str, N: int, conj_sym: bool, diagonalize: bool) -> dict:
    """Float64/complex128 NumPy parameters of one (non-block) Hippo."""
    if measure in _DIAGONAL_ONLY:
        return _diagonal_only(measure, N, conj_sym)
    A, B = matrices.transition_host(measure, N, ())
    if not diagonalize:
        P = None
        if measure in matrices.NPLR_MEASURES:
            P = matrices.rank_correction_host(measure, N, matrices.natural_rank(measure), ())
        return {"state": A, "pair": None, "input": B, "low_rank": P}
    Lam, Pt, V, Vinv = _eigen(measure, N)
    if not conj_sym:
        Lam, V, Vinv, Pt = _full_layout(Lam, V, Vinv, Pt)
    return {"state": Lam, "pair": (V, Vinv), "input": Vinv @ B, "low_rank": Pt}


def _blocks(base: dict, J: int) -> dict:
    """J copies of a Hippo on the diagonal (S5 layout)."""
    out = {"state": base["state"], "input": np.tile(base["input"], J)}
    if base["state"].ndim == 2:  # undiagonalised: dense block-diagonal A
        out["state"] = sla.block_diag(*[base["state"]] * J)
    else:
        out["state"] = np.tile(base["state"], J)
    out["pair"] = None
    if base["pair"] is not None:
        out["pair"] = tuple(sla.block_diag(*[x] * J) for x in base["pair"])
    out["low_rank"] = None
    if base["low_rank"] is not None:
        out["low_rank"] = sla.block_diag(*[base["low_rank"]] * J)
    return out


# ------------------------------------------------------------------------ initializers


def _is_shape(x) -> bool:
    return isinstance(x, (tuple, list)) and all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in x
    )


class _Initializer:
    """A deterministic initializer returning a fixed array, shaped to ``shape``.

    Call forms (told apart by the first positional argument):

    * Haiku: ``init(shape, dtype)`` — the first argument is a tuple/list of ints.
    * Flax / `jax.nn.initializers`: ``init(key, shape, dtype=None)`` — the first
      argument is anything else (a PRNG key, or None); the key is not used.

    ``shape`` must be the array's natural shape, optionally with leading channel axes
    (the value is then repeated along them) — or, where allowed, with a trailing axis
    of 1 (a column, as in the original README's ``[state_size, 1]`` input matrix).
    """

    def __init__(self, value: np.ndarray, what: str, column_ok: bool, default_dtype):
        self._value = value
        self._what = what
        self._column_ok = column_ok
        self._default = default_dtype

    def __repr__(self) -> str:
        return f"<hippox initializer {self._what}, shape {self._value.shape}>"

    def __call__(self, *args, **kwargs) -> jax.Array:
        args = list(args)
        if args and _is_shape(args[0]):
            kwargs.pop("key", None)
        else:
            key = args.pop(0) if args else kwargs.pop("key", None)
            del key  # deterministic: the key (or None) is accepted and not used
        if "shape" in kwargs:
            if args:
                raise TypeError(f"{self._what} got `shape` both positionally and by keyword.")
            args.append(kwargs.pop("shape"))
        if not args:
            raise TypeError(f"{self._what} needs a `shape`, e.g. init(key, {self._value.shape}).")
        shape = args.pop(0)
        dtype = args.pop(0) if args else kwargs.pop("dtype", None)
        if args or kwargs:
            raise TypeError(
                f"{self._what} takes (shape, dtype) or (key, shape, dtype), got extra "
                f"arguments {tuple(args) + tuple(kwargs)}."
            )
        return self._build(shape, dtype)

    def _build(self, shape, dtype) -> jax.Array:
        if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
            shape = (shape,)
        if not _is_shape(shape):
            raise TypeError(f"`shape` must be a tuple of ints, got {shape!r}.")
        shape = tuple(int(d) for d in shape)
        nat = self._value.shape
        k = len(nat)
        value = self._value
        if shape[len(shape) - k :] == nat and len(shape) >= k:
            pass
        elif self._column_ok and len(shape) >= k + 1 and shape[len(shape) - k - 1 :] == nat + (1,):
            value = value[..., None]
        else:
            col = f" or {nat + (1,)}" if self._column_ok else ""
            raise ValueError(
                f"`shape` must be {nat}{col} (optionally with leading channel axes) for "
                f"{self._what}, got {shape}."
            )
        dtype = self._dtype(dtype)
        if np.iscomplexobj(value) and not jnp.issubdtype(dtype, jnp.complexfloating):
            value = value.real  # checked by _dtype: the imaginary part is zero
        return jnp.asarray(np.broadcast_to(value, shape), dtype)

    def _dtype(self, dtype) -> np.dtype:
        is_complex = np.iscomplexobj(self._value)
        if dtype is None:
            return _validate.complex_dtype(self._default) if is_complex else self._default
        try:
            dt = np.dtype(dtype)
        except TypeError as err:
            raise TypeError(f"`dtype` must be a floating or complex dtype, got {dtype!r}.") from err
        if jnp.issubdtype(dt, jnp.complexfloating):
            if dt == np.complex128 and not jax.config.jax_enable_x64:
                raise ValueError(
                    "`dtype` complex128 needs `jax.config.update('jax_enable_x64', True)`; "
                    "got complex128 with x64 disabled."
                )
            return dt
        dt = _validate.real_dtype(dt)
        if is_complex:
            imag = np.abs(self._value.imag).max(initial=0.0)
            if imag > 1e-12 * max(np.abs(self._value).max(initial=0.0), 1e-300):
                raise ValueError(
                    f"`dtype` must be complex for {self._what}, whose values are complex "
                    f"(max |Im| = {imag:.3g}), got {dt}. Pass a complex dtype, or initialise "
                    "the real and imaginary parts separately."
                )
        return dt


# ------------------------------------------------------------------------------ Hippo


@dataclasses.dataclass(frozen=True)
class Hippo:
    """HiPPO matrices and initializers for one measure (the original hippox API).

    Immutable: calling it or its initializer methods never changes it, and every call
    returns equal values. Nothing needs to be called first.

    Args:
      state_size: N, the state size (even when diagonalised, for ``conj_sym``, and for
        the Fourier measures; a multiple of ``n_blocks`` with ``block_diagonal``).
      measure: one of `hippox.HIPPO_MEASURES` (default ``legs``). The measures use the
        default parameters of `hippox.transition` (e.g. ``legt`` window 2).
      conj_sym: keep one eigenvalue of each conjugate pair (M = N/2) instead of all
        (M = N). Only used when diagonalised.
      dplr: the old flag that kept ``input_matrix`` and ``low_rank_term``. They are now
        always returned; ``dplr=True`` only checks that the result is diagonalised and
        has a low-rank term (the DPLR form ``diag(Lambda) - P̃ᵀ conj(P̃)``).
      diagonalize: return the eigen-parameterisation (see the module docstring)
        instead of the dense ``(A, B)``.
      block_diagonal: ``n_blocks`` copies of a HiPPO of size ``N / n_blocks`` on the
        diagonal (the S5 initialisation).
      n_blocks: number of blocks, required with (and only with) ``block_diagonal``.
      dtype: real dtype of real arrays (default float32); complex arrays use the
        matching complex dtype (complex64 / complex128).
      basis_measure: the old name of ``measure`` (give one of the two).

    Raises:
      ValueError: unknown measure, bad sizes, inconsistent options.
      TypeError: wrongly typed options.

    Examples:
      >>> import hippox
      >>> hippo = hippox.Hippo(state_size=4, measure="legs")
      >>> params = hippo()
      >>> params.state_matrix.shape, params.input_matrix.shape
      ((4,), (4,))
      >>> init = hippo.lambda_initializer("real")
      >>> init(None, (4,)).tolist()  # Flax form; Haiku calls init((4,), dtype)
      [-0.5, -0.5, -0.5, -0.5]
      >>> hippox.Hippo(4, "legt", diagonalize=False)().state_matrix.shape
      (4, 4)
    """

    state_size: int
    measure: str | None = None
    conj_sym: bool = False
    dplr: bool = False
    diagonalize: bool = True
    block_diagonal: bool = False
    n_blocks: int | None = None
    dtype: Any = None
    basis_measure: str | None = None

    def __post_init__(self):
        measure, old = self.measure, self.basis_measure
        if measure is not None and old is not None and measure != old:
            raise ValueError(
                f"`measure` and `basis_measure` (its old name) must agree if both are given, "
                f"got {measure!r} and {old!r}."
            )
        measure = measure if measure is not None else old if old is not None else "legs"
        _validate.check_choice("measure", measure, HIPPO_MEASURES)
        object.__setattr__(self, "measure", measure)
        object.__setattr__(self, "basis_measure", measure)
        N = _validate.check_size("state_size", self.state_size)
        object.__setattr__(self, "state_size", N)
        for name in ("conj_sym", "dplr", "diagonalize", "block_diagonal"):
            object.__setattr__(self, name, _validate.check_bool(name, getattr(self, name)))
        object.__setattr__(self, "dtype", _validate.real_dtype(self.dtype))
        if self.block_diagonal:
            if self.n_blocks is None:
                raise ValueError("`n_blocks` must be given (an int >= 1) with block_diagonal=True.")
            J = _validate.check_size("n_blocks", self.n_blocks)
            object.__setattr__(self, "n_blocks", J)
            if N % J:
                raise ValueError(f"`state_size` must be a multiple of n_blocks={J}, got {N}.")
        elif self.n_blocks is not None:
            raise ValueError(
                f"`n_blocks` is only used with block_diagonal=True, got n_blocks={self.n_blocks!r}."
            )
        canonical = self._canonical
        Nb = self.block_size
        if canonical in _DIAGONAL_ONLY:
            if not self.diagonalize:
                raise ValueError(
                    f"`diagonalize` must be True for measure {measure!r} (a diagonal spectrum "
                    "with no dense matrix), got False."
                )
            if Nb % 2:
                raise ValueError(f"`state_size` must be even for measure {measure!r}, got {N}.")
        if self.diagonalize and Nb % 2:
            raise ValueError(
                f"`state_size` must be even when diagonalize=True (eigenvalues come in "
                f"conjugate pairs), got {Nb if not self.block_diagonal else f'block size {Nb}'}."
            )
        if self.dplr and (not self.diagonalize or canonical in _DIAGONAL_ONLY):
            raise ValueError(
                "`dplr` must be False unless the result is diagonalised and has a low-rank term "
                f"(diagonalize=True and a measure other than 'linear'/'inverse'), got dplr=True "
                f"with diagonalize={self.diagonalize}, measure={measure!r}."
            )
        if canonical not in _DIAGONAL_ONLY:
            matrices.transition_np(canonical, Nb)  # validates N for the measure (even Fourier)

    # ---------------------------------------------------------------- helpers
    @property
    def _canonical(self) -> str:
        """The measure's canonical name (``measure`` was validated by ``__post_init__``)."""
        name = _OLD_NAMES.get(self.measure, self.measure)
        return matrices.ALIASES.get(name, name)

    @property
    def block_size(self) -> int:
        """State size of one block (``state_size`` without ``block_diagonal``)."""
        return self.state_size // self.n_blocks if self.block_diagonal else self.state_size

    @property
    def _effective_conj_sym(self) -> bool:
        return self.conj_sym and self.diagonalize

    def _host(self) -> dict:
        base = _host(self._canonical, self.block_size, self._effective_conj_sym, self.diagonalize)
        return _blocks(base, self.n_blocks) if self.block_diagonal else base

    def _cast(self, x):
        if x is None:
            return None
        dt = _validate.complex_dtype(self.dtype) if np.iscomplexobj(x) else self.dtype
        return jnp.asarray(x, dt)

    def _init(self, value, what: str, column_ok: bool = False) -> _Initializer:
        return _Initializer(np.asarray(value), f"Hippo.{what} of {self!r}", column_ok, self.dtype)

    # ------------------------------------------------------------------- API
    def __call__(self) -> HippoParams:
        """The matrices, as `HippoParams` (see its fields; shapes with M and N as above)."""
        h = self._host()
        pair = None
        if h["pair"] is not None:
            pair = EigenvectorPair(*(self._cast(x) for x in h["pair"]))
        return HippoParams(
            state_matrix=self._cast(h["state"]),
            eigenvector_pair=pair,
            input_matrix=self._cast(h["input"]),
            low_rank_term=self._cast(h["low_rank"]),
        )

    def lambda_initializer(self, return_array: Literal["real", "imaginary", "full"] = "full"):
        """Initializer of the state matrix (or its real / imaginary part).

        Args:
          return_array: ``real``, ``imaginary`` (real dtype) or ``full`` (complex when
            diagonalised; the real ``(N, N)`` A when not).

        Returns:
          An initializer callable as ``init(shape, dtype)`` (Haiku) or
          ``init(key, shape, dtype=None)`` (Flax/JAX); ``shape`` must be ``(M,)``
          (``(N, N)`` undiagonalised), optionally with leading channel axes.

        Raises:
          ValueError: unknown ``return_array``; at call time, a wrong ``shape`` or a
            real ``dtype`` for complex values.
        """
        _validate.check_choice("return_array", return_array, ("real", "imaginary", "full"))
        state = self._host()["state"]
        part = {"real": state.real, "imaginary": state.imag, "full": state}[return_array]
        return self._init(part, f"lambda_initializer({return_array!r})")

    def b_initializer(self):
        """Initializer of ``input_matrix`` (``V⁻¹ B``, or B undiagonalised).

        Accepted shapes: ``(M,)`` or the column ``(M, 1)``, optionally with leading
        channel axes. A real ``dtype`` is accepted when the values are real (e.g. for
        ``legs``, where hippox's eigenvector phase makes ``V* B`` real); complex values
        need a complex dtype.
        """
        return self._init(self._host()["input"], "b_initializer()", column_ok=True)

    def low_rank_initializer(self):
        """Initializer of ``low_rank_term`` (shape ``(rank, M)``, leading axes allowed).

        Raises:
          ValueError: the measure has no low-rank term in this configuration.
        """
        P = self._host()["low_rank"]
        if P is None:
            raise ValueError(
                f"measure {self.measure!r} has no low-rank term with diagonalize="
                f"{self.diagonalize}; low_rank_initializer needs an NPLR measure or "
                "diagonalize=True for 'lmu'/'glagt'."
            )
        return self._init(P, "low_rank_initializer()")

    def _pair(self):
        pair = self._host()["pair"]
        if pair is None:
            raise ValueError(
                f"`{self!r}` has no eigenvectors (it needs diagonalize=True and a measure with "
                "a dense matrix, not 'linear'/'inverse')."
            )
        return pair

    def to_eigenbasis(self, x: ArrayLike) -> jax.Array:
        """Maps state vectors from the original basis into the eigenbasis: ``V⁻¹ x``.

        Args:
          x: ``(..., N)`` real or complex vectors (e.g. B, or one B per channel).

        Returns:
          ``(..., M)`` complex.
        """
        V, Vinv = self._pair()
        x = jnp.asarray(x)
        N = V.shape[0]
        if x.ndim < 1 or x.shape[-1] != N:
            raise ValueError(f"`x` must have shape (..., {N}), got {x.shape}.")
        return jnp.einsum("mn,...n->...m", self._cast(Vinv), x)

    def from_eigenbasis(self, z: ArrayLike) -> jax.Array:
        """Maps eigenbasis states back: ``V z`` (``2 Re(V z)`` with ``conj_sym``).

        Real states ``x`` round-trip: ``from_eigenbasis(to_eigenbasis(x)) == x``.

        Args:
          z: ``(..., M)`` complex.

        Returns:
          ``(..., N)``: real with ``conj_sym`` (the conjugate half is implied), else the
          complex ``V z`` (real up to rounding for conjugate-closed ``z``).
        """
        V, _ = self._pair()
        z = jnp.asarray(z)
        M = V.shape[1]
        if z.ndim < 1 or z.shape[-1] != M:
            raise ValueError(f"`z` must have shape (..., {M}), got {z.shape}.")
        x = jnp.einsum("nm,...m->...n", self._cast(V), z)
        return 2.0 * x.real if self._effective_conj_sym else x

    def eigenvector_transform(
        self, input: ArrayLike, inverse: bool = True, concatenate: bool = False
    ):
        """An initializer returning an array moved into the eigenbasis (old API).

        * ``inverse=True`` (input side): ``input`` ``(..., N)`` holds state-space
          vectors such as B (one per channel); the result is ``V⁻¹ input``, ``(..., M)``
          — the S5 ``B̃ = V⁻¹ B``.
        * ``inverse=False`` (output side): ``input`` ``(..., N)`` holds row vectors
          such as C; the result is ``input @ V``, ``(..., M)``, so that ``C x = C̃ z``
          for ``z = V⁻¹ x`` (``C x = 2 Re(C̃ z)`` with ``conj_sym`` and real C) — the S5
          ``C̃ = C V``.

        With ``concatenate=True`` the complex result is stored as real numbers with a
        trailing axis of 2 (real, imaginary): ``(..., M, 2)``.

        Args:
          input: ``(..., N)`` real or complex array.
          inverse: which side, as above.
          concatenate: split into real and imaginary parts.

        Returns:
          An initializer (Haiku or Flax call form) whose ``shape`` must be the
          transformed shape, optionally with more leading axes.
        """
        V, Vinv = self._pair()
        x = np.asarray(input)
        N = V.shape[0]
        if x.ndim < 1 or x.shape[-1] != N:
            raise ValueError(f"`input` must have shape (..., {N}), got {x.shape}.")
        inverse = _validate.check_bool("inverse", inverse)
        concatenate = _validate.check_bool("concatenate", concatenate)
        out = np.einsum("mn,...n->...m", Vinv, x) if inverse else x @ V
        if concatenate:
            out = pair_from_complex(out)
        return self._init(out, f"eigenvector_transform(inverse={inverse})")
