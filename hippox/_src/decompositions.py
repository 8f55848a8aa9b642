"""Normal-plus-low-rank (NPLR) decomposition of the HiPPO operators.

For an NPLR measure, ``A + PᵀP = -c I + S`` with ``S`` real skew-symmetric. ``S`` is
diagonalised by a unitary matrix; its eigenvalues come in conjugate pairs ``±i w``,
so the real matrix is recovered from half of them::

    A = 2 Re(V diag(Lambda) V*) - PᵀP            (V: N × N/2, Lambda: N/2)

hippox keeps the half with **negative imaginary part**, sorted ascending by
imaginary part (eigenvalue-0 pairs, as in the Fourier measures, come last).

Eigenvector phase (canonical, so results are identical on every platform): each
column ``v`` of ``V`` is rotated so that its input coefficient ``v* B`` is real and
non-negative. A column with ``|v* B| <= 1e-9 ‖B‖`` instead has its largest-magnitude
entry (lowest index among ties) real and positive. A zero-eigenvalue pair spans a
real 2-dimensional null space ``{u1, u2}`` of ``S``; hippox takes ``u1`` along the
projection of ``B`` onto it and ``v = (u1 + i u2) / √2``, so for ``fout`` the pair is
``(e0 + i e1)/√2`` as in the reference S4 code. The phase of ``V`` is a gauge freedom:
the S4 kernel depends only on products such as ``C̃_j B̃_j`` and is unchanged by it,
but clipping ``Im(B̃)`` (`b_clip`, as in the reference S4 init) is not: with the
phase above ``Im(B̃) = 0`` wherever ``v* B != 0``, so ``b_clip`` has an effect only on
the fallback columns.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from hippox._src import _validate, cache, matrices


class NPLR(NamedTuple):
    """A normal-plus-low-rank HiPPO operator, conjugate-symmetric half.

    ``A = 2 Re(V diag(Lambda) V*) - PᵀP`` in the original basis. In the full
    eigenbasis ``V_full = [V, conj(V)]`` (unitary, ``N × N``) the operator is
    ``diag(Lambda_full) - P_fullᵀ conj(P_full)`` with ``Lambda_full = [Lambda,
    conj(Lambda)]`` and ``P_full = [P, conj(P)]``: that is ``Λ - Σ_r p_r p_r*`` for the
    column vectors ``p_r = V_full* P[r]``.

    Attributes:
      Lambda: ``(N/2,)`` complex eigenvalues of the normal part, ``Im <= 0``.
      P: ``(rank, N/2)`` complex low-rank term in the eigenbasis, ``P = (V* Pᵀ)ᵀ``.
      B: ``(N/2,)`` complex input vector in the eigenbasis, ``V* B``.
      V: ``(N, N/2)`` complex eigenvectors (orthonormal columns).
    """

    Lambda: jax.Array
    P: jax.Array
    B: jax.Array
    V: jax.Array


def _phase_fix(V: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Rotates columns of V so ``v* B`` is real >= 0 (fallback: largest entry real > 0)."""
    coef = V.conj().T @ B
    scale = np.linalg.norm(B)
    V = V.copy()
    for j in range(V.shape[1]):
        if abs(coef[j]) > 1e-9 * max(scale, 1e-300):
            V[:, j] *= coef[j] / abs(coef[j])
        else:
            mags = np.abs(V[:, j])
            m = int(np.flatnonzero(mags >= mags.max() * (1 - 1e-8))[0])
            V[:, j] *= np.conj(V[m, j]) / mags[m]
    return V


def _null_pairs(Z_complex: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Complex vectors (u1 + i u2)/√2 spanning the real null space of a real skew matrix.

    ``Z_complex`` (N, nnull) are orthonormal complex null vectors (from the eigensolver);
    the null space of a real matrix is spanned by their real and imaginary parts.
    """
    nnull = Z_complex.shape[1]
    parts = np.concatenate([Z_complex.real, Z_complex.imag], axis=1)
    u, _, _ = np.linalg.svd(parts, full_matrices=False)
    Z = u[:, :nnull]  # real orthonormal basis of the null space, (N, nnull)
    # Start the basis along B's projection so that v* B is real and non-negative.
    seed = Z.T @ B
    Q, _ = np.linalg.qr(np.concatenate([seed[:, None], np.eye(nnull)], axis=1))
    Q = Q[:, :nnull]
    if np.linalg.norm(seed) > 0 and Q[:, 0] @ seed < 0:
        Q[:, 0] *= -1
    U = Z @ Q
    for j in range(1, nnull):  # sign of the partner vectors: largest entry positive
        m = int(np.argmax(np.abs(U[:, j])))
        U[:, j] *= np.sign(U[m, j])
    return (U[:, 0::2] + 1j * U[:, 1::2]) / np.sqrt(2.0)


@cache.host_cache
def nplr_host(measure: str, N: int, rank: int, params: tuple):
    """Float64/complex128 NumPy ``(Lambda, P, B, V)`` of `nplr` (cached, read-only).

    The internal core behind `nplr_np` and `nplr`: ``measure`` is a canonical NPLR
    measure (`matrices.canonical_nplr_measure`), ``N`` an even checked size, ``rank``
    a checked size and ``params`` the tuple of `matrices.check_measure_params`. The
    measure's builder checks the parameter values; ``rank`` below the measure's
    natural rank raises.
    """
    _validate.check_state_size("N", N)
    A, B = matrices.transition_host(measure, N, params)
    P = matrices.rank_correction_host(measure, N, rank, params)
    AP = A + P.T @ P
    c = float(np.mean(np.diag(AP)))
    S = AP - c * np.eye(N)
    S = 0.5 * (S - S.T)  # exactly skew; the symmetric residue is rounding error
    w, U = np.linalg.eigh(-1j * S)  # eigenvalues of S are i*w, w ascending
    tol = 1e-9 * max(1.0, float(np.abs(w).max()))
    neg = w < -tol
    nnull = int(np.sum(np.abs(w) <= tol))
    V = _phase_fix(U[:, neg], B)
    Lam = c + 1j * w[neg]
    if nnull:
        V = np.concatenate([V, _null_pairs(U[:, np.abs(w) <= tol], B)], axis=1)
        Lam = np.concatenate([Lam, np.full(nnull // 2, c + 0j)])
    if V.shape[1] != N // 2:  # pragma: no cover - guards the pairing logic
        raise RuntimeError(f"NPLR pairing failed for {measure!r}, N={N}: {V.shape[1]} modes.")
    Pt = P @ V.conj()
    Bt = V.conj().T @ B
    out = (Lam, Pt, Bt, V)
    for x in out:
        x.setflags(write=False)
    return out


def nplr_np(measure: str, N: int, *, rank: int = 1, **params):
    """Float64/complex128 NumPy `(Lambda, P, B, V)` of `nplr` (cached, read-only)."""
    measure = matrices.canonical_nplr_measure(measure)
    N = _validate.check_state_size("N", N, minimum=2)
    if N % 2:
        raise ValueError(
            f"`N` must be even for the NPLR form (its eigenvalues come in conjugate pairs "
            f"and half are kept), got {N}."
        )
    rank = _validate.check_size("rank", rank)
    params = matrices.check_measure_params(measure, params)
    return nplr_host(measure, N, rank, params)


def nplr(
    measure: str,
    N: int,
    *,
    rank: int = 1,
    b_clip: float | None = None,
    dtype: DTypeLike | None = None,
    **params,
) -> NPLR:
    """Normal-plus-low-rank form of a HiPPO operator (the S4 parameterisation).

    Computed in float64 on the host, cached, and cast to the complex dtype matching
    ``dtype`` (complex64 for float32, complex128 for float64).

    Cost: the first call for a given ``(measure, N)`` runs a dense ``N × N``
    eigendecomposition on the host, ``O(N³)``: milliseconds at ``N = 64``, about a second
    at ``N = 1024`` and several seconds (up to about a minute, depending on the measure
    and the machine) at ``N = 2048``. Later calls hit the host cache (bounded in bytes,
    ``hippox/_src/cache.py``; one ``N = 2048`` entry holds ~70 MB). ``N`` above
    ``hippox._src._validate.MAX_DENSE_N`` is refused.

    Args:
      measure: one of `hippox.NPLR_MEASURES` (``legs``, ``legt``, ``lagt``, ``fout``,
        ...) or an alias.
      N: even state size, at most ``MAX_DENSE_N`` (16384).
      rank: rank of the correction (``legt`` needs >= 2).
      b_clip: if given, clip ``Im(B)`` to ``[-b_clip, b_clip]`` (the reference S4 init
        uses 2.0). See the module docstring: with hippox's canonical phase ``Im(B)``
        is already zero for every column with a non-zero input coefficient.
      dtype: real dtype whose complex counterpart the result uses (default float32).
      **params: measure parameters, as for `transition`.

    Returns:
      `NPLR(Lambda, P, B, V)` with shapes ``(N/2,)``, ``(rank, N/2)``, ``(N/2,)``,
      ``(N, N/2)``, satisfying ``A + PᵀP = 2 Re(V diag(Lambda) V*)`` and
      ``P_eig = (V* Pᵀ)ᵀ``, ``B_eig = V* B``.

    Examples:
      >>> import hippox
      >>> Lambda, P, B, V = hippox.nplr("legs", 4)
      >>> Lambda.real
      Array([-0.5, -0.5], dtype=float32)
      >>> P.shape, B.shape, V.shape
      ((1, 2), (2,), (4, 2))
    """
    cdtype = _validate.complex_dtype(_validate.real_dtype(dtype))
    if b_clip is not None:
        b_clip = _validate.check_real("b_clip", b_clip, positive=True)
    Lam, Pt, Bt, V = nplr_np(measure, N, rank=rank, **params)
    if b_clip is not None:
        Bt = Bt.real + 1j * np.clip(Bt.imag, -b_clip, b_clip)
    return NPLR(*(jnp.asarray(x, cdtype) for x in (Lam, Pt, Bt, V)))
