"""Specification tests of `hippox.nplr` (normal-plus-low-rank form of the HiPPO operators).

References are recomputed from `transition` / `rank_correction` (themselves checked
against the closed-form formulas in test_matrices.py), with NumPy's general
eigenvalue solver (`np.linalg.eigvals`, a different algorithm from the Hermitian
solver the implementation uses) and closed-form spectra where they exist.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import hippox
from hippox._src import decompositions

FOURIER = ("fout", "fourier_decay", "fourier2", "foud")
NPLR = ("legs", "legsd", "legt", "lagt", "tlagt", *FOURIER)


def _rank(measure):
    return 2 if measure == "legt" else 1


def _get(measure, N, dtype=np.float64, **params):
    """float64/complex128 NumPy copies of (A, P, B) and of nplr's (Lambda, P, B, V)."""
    rank = params.pop("rank", _rank(measure))
    A, B = (np.asarray(x) for x in hippox.transition(measure, N, dtype=np.float64, **params))
    P = np.asarray(hippox.rank_correction(measure, N, rank=rank, dtype=np.float64, **params))
    out = hippox.nplr(measure, N, rank=rank, dtype=dtype, **params)
    return (A, P, B), tuple(np.asarray(x) for x in out)


def _full(Lam, Pt, V):
    """Both conjugate halves: Lambda (N,), P (rank, N), V (N, N)."""
    return (
        np.concatenate([Lam, Lam.conj()]),
        np.concatenate([Pt, Pt.conj()], axis=1),
        np.concatenate([V, V.conj()], axis=1),
    )


def _sorted_spectrum(z):
    z = np.asarray(z)
    return z[np.lexsort((np.round(z.imag, 8), np.round(z.real, 8)))]


@pytest.mark.parametrize("N", (2, 8, 64, 256, pytest.param(1024, marks=pytest.mark.slow)))
@pytest.mark.parametrize("measure", NPLR)
def test_invariant_A_plus_PtP(measure, N):
    """A + PᵀP = 2 Re(V diag(Lambda) V*), to 1e-10 relative in float64."""
    (A, P, _), (Lam, _, _, V) = _get(measure, N)
    AP = A + P.T @ P
    rebuilt = 2 * ((V * Lam) @ V.conj().T).real
    scale = max(np.abs(AP).max(), 1.0)  # fout N=2: the normal part is exactly 0
    assert np.abs(rebuilt - AP).max() <= 1e-10 * scale
    # ... and A itself is reproduced after removing the low-rank term.
    assert np.abs(rebuilt - P.T @ P - A).max() <= 1e-10 * max(np.abs(A).max(), 1.0)


@pytest.mark.parametrize("N", (2, 8, 64))
@pytest.mark.parametrize("measure", NPLR)
def test_nplr_structure(measure, N):
    (A, P, B), (Lam, Pt, Bt, V) = _get(measure, N)
    rank = _rank(measure)
    assert Lam.shape == (N // 2,) and Pt.shape == (rank, N // 2)
    assert Bt.shape == (N // 2,) and V.shape == (N, N // 2)
    for x in (Lam, Pt, Bt, V):
        assert x.dtype == np.complex128
        assert np.all(np.isfinite(x))
    # V has orthonormal columns; with the conjugate half it is a unitary N x N matrix.
    np.testing.assert_allclose(V.conj().T @ V, np.eye(N // 2), atol=1e-12)
    Vf = _full(Lam, Pt, V)[2]
    np.testing.assert_allclose(Vf.conj().T @ Vf, np.eye(N), atol=1e-12)
    # P and B are the original ones expressed in the eigenbasis.
    np.testing.assert_allclose(Pt, (V.conj().T @ P.T).T, atol=1e-12)
    np.testing.assert_allclose(Bt, V.conj().T @ B, atol=1e-12)
    # Conjugate half with Im <= 0, sorted ascending by imaginary part.
    assert np.all(Lam.imag <= 1e-12)
    assert np.all(np.diff(Lam.imag) >= -1e-12)
    # Re(Lambda) is the shift of the normal part: the mean of diag(A + PᵀP).
    np.testing.assert_allclose(Lam.real, np.mean(np.diag(A + P.T @ P)), atol=1e-12)


@pytest.mark.parametrize("N", (2, 8, 64))
@pytest.mark.parametrize("measure", NPLR)
def test_spectrum_of_normal_part(measure, N):
    """Lambda ∪ conj(Lambda) are all the eigenvalues of the normal part A + PᵀP."""
    (A, P, _), (Lam, _, _, _) = _get(measure, N)
    eig = np.linalg.eigvals(A + P.T @ P)
    got = _sorted_spectrum(np.concatenate([Lam, Lam.conj()]))
    np.testing.assert_allclose(got, _sorted_spectrum(eig), atol=1e-9 * max(1.0, np.abs(eig).max()))


@pytest.mark.parametrize("N", (2, 8, 32))
@pytest.mark.parametrize("measure", NPLR)
def test_full_dplr_form_is_similar_to_A(measure, N):
    """V_full (diag(Λ_full) - P̃ᵀ conj(P̃)) V_full* = A, with both conjugate halves."""
    (A, P, _), (Lam, Pt, _, V) = _get(measure, N)
    Lf, Pf, Vf = _full(Lam, Pt, V)
    M = np.diag(Lf) - Pf.T @ Pf.conj()
    np.testing.assert_allclose(Vf @ M @ Vf.conj().T, A, atol=1e-11 * max(1.0, np.abs(A).max()))
    if N <= 8:
        # Same spectrum, compared through the power sums tr(M^k) = Σ λ^k, k = 1..N (Newton's
        # identities); this stays well conditioned where eigvals would not (lagt's A is a
        # single defective Jordan block).
        norm = np.linalg.norm(A, 2)
        Mk, Ak = np.eye(N), np.eye(N)
        for k in range(1, N + 1):
            Mk, Ak = Mk @ M, Ak @ A
            assert abs(np.trace(Mk) - np.trace(Ak)) <= 1e-11 * N * max(norm, 1.0) ** k


@pytest.mark.parametrize("N", (2, 4, 8))
def test_legs_dplr_eigenvalues_are_minus_one_to_minus_N(N):
    _, (Lam, Pt, _, V) = _get("legs", N)
    Lf, Pf, _ = _full(Lam, Pt, V)
    eig = np.linalg.eigvals(np.diag(Lf) - Pf.T @ Pf.conj())
    np.testing.assert_allclose(np.sort(eig.real), -np.arange(N, 0, -1.0), atol=1e-8)
    np.testing.assert_allclose(eig.imag, 0.0, atol=1e-8)


@pytest.mark.parametrize("N", (2, 6, 64))
@pytest.mark.parametrize(
    "measure,shift,freq",
    [
        ("fout", 0.0, math.pi),
        ("fourier_decay", 0.0, math.pi),
        ("fourier2", 0.0, 2 * math.pi),
        ("foud", -0.5, 2 * math.pi),
    ],
)
def test_fourier_spectra_closed_form(measure, shift, freq, N):
    """Normal part shift*I + (rotation blocks): Lambda = shift - i*freq*k, k = N/2-1 ... 0."""
    _, (Lam, _, _, _) = _get(measure, N)
    k = np.arange(N // 2 - 1, -1, -1.0)
    np.testing.assert_allclose(Lam, shift - 1j * freq * k, atol=1e-10)


@pytest.mark.parametrize("N", (2, 4, 10))
def test_fout_zero_eigenvalue_pair(N):
    (A, P, B), (Lam, Pt, Bt, V) = _get("fout", N)
    for x in (Lam, Pt, Bt, V):
        assert np.all(np.isfinite(x))
    assert Lam[-1] == pytest.approx(0.0, abs=1e-12)
    # The null space of the rotation is span(e0, e1); B lies along e0.
    np.testing.assert_allclose(
        V[:, -1], (np.eye(N)[0] + 1j * np.eye(N)[1]) / math.sqrt(2), atol=1e-12
    )
    np.testing.assert_allclose(Bt[-1], 1 / math.sqrt(2), atol=1e-12)


@pytest.mark.parametrize("N", (2, 8, 64))
@pytest.mark.parametrize("measure", NPLR)
def test_canonical_phase_makes_B_real_nonnegative(measure, N):
    _, (_, _, Bt, _) = _get(measure, N)
    np.testing.assert_allclose(Bt.imag, 0.0, atol=1e-12)
    assert np.all(Bt.real >= 0)


@pytest.mark.parametrize("measure", ("legs", "legt", "fout"))
def test_repeated_calls_identical(measure):
    first = [np.asarray(x) for x in hippox.nplr(measure, 16, rank=_rank(measure), dtype=np.float64)]
    decompositions.nplr_host.cache_clear()  # force a recomputation
    second = [
        np.asarray(x) for x in hippox.nplr(measure, 16, rank=_rank(measure), dtype=np.float64)
    ]
    for x, y in zip(first, second, strict=True):
        np.testing.assert_array_equal(x, y)


def test_legs_Lambda_real_part_and_P_proportional_to_B():
    """LegS: P = B/√2 in the original basis, so P̃ = B̃/√2 in the eigenbasis; Re Λ = -1/2."""
    _, (Lam, Pt, Bt, _) = _get("legs", 16)
    np.testing.assert_allclose(Lam.real, -0.5, atol=1e-12)
    np.testing.assert_allclose(Pt[0], Bt / math.sqrt(2), atol=1e-12)


@pytest.mark.parametrize("theta", (0.5, 1.0))
def test_legt_theta_scales_spectrum(theta):
    """A and PᵀP both scale as 2/theta, so Lambda, P̃ B̃-products follow."""
    _, (Lam, Pt, Bt, _) = _get("legt", 8, theta=theta)
    _, (Lam2, Pt2, Bt2, _) = _get("legt", 8)
    np.testing.assert_allclose(Lam, 2 / theta * Lam2, atol=1e-11)
    np.testing.assert_allclose(Bt, 2 / theta * Bt2, atol=1e-11)
    np.testing.assert_allclose(np.abs(Pt), math.sqrt(2 / theta) * np.abs(Pt2), atol=1e-11)


def test_extra_rank_rows_are_zero():
    _, (_, Pt, _, _) = _get("legs", 8, rank=3)
    _, (_, Pt1, _, _) = _get("legs", 8)
    assert Pt.shape == (3, 4)
    np.testing.assert_allclose(Pt[0], Pt1[0], atol=1e-14)
    np.testing.assert_array_equal(Pt[1:], 0)


@pytest.mark.parametrize("alias,name", [("fourier", "fout"), ("fourier_diag", "foud")])
def test_aliases(alias, name):
    for x, y in zip(hippox.nplr(alias, 8), hippox.nplr(name, 8), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    "dtype,cdtype",
    [
        (None, np.complex64),
        (np.float32, np.complex64),
        ("float32", np.complex64),
        (np.float64, np.complex128),
    ],
)
def test_dtypes(dtype, cdtype):
    out = hippox.nplr("legs", 8, dtype=dtype)
    assert isinstance(out, hippox.NPLR)
    ref = hippox.nplr("legs", 8, dtype=np.float64)
    for x, r in zip(out, ref, strict=True):
        assert x.dtype == cdtype
        np.testing.assert_allclose(x, r, rtol=1e-6, atol=1e-6)


def test_complex128_needs_x64():
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match="`dtype`"):
            hippox.nplr("legs", 8, dtype=np.float64)
        assert hippox.nplr("legs", 8).Lambda.dtype == np.complex64


# --------------------------------------------------------------------------------- b_clip


def test_b_clip_clips_imaginary_part_of_B(monkeypatch):
    """b_clip clips Im(B̃) only, leaving Re(B̃) and the other fields untouched."""
    Lam, Pt, Bt, V = decompositions.nplr_np("legs", 8)
    fake_B = Bt.real + 1j * np.array([-3.0, -0.5, 1.0, 2.5])
    monkeypatch.setattr(decompositions, "nplr_np", lambda *a, **k: (Lam, Pt, fake_B, V))
    out = hippox.nplr("legs", 8, b_clip=1.0, dtype=np.float64)
    np.testing.assert_array_equal(np.asarray(out.B).real, Bt.real)
    np.testing.assert_array_equal(np.asarray(out.B).imag, [-1.0, -0.5, 1.0, 1.0])
    np.testing.assert_array_equal(out.Lambda, Lam)
    np.testing.assert_array_equal(out.P, Pt)
    np.testing.assert_array_equal(out.V, V)
    unclipped = hippox.nplr("legs", 8, dtype=np.float64)
    np.testing.assert_array_equal(unclipped.B, fake_B)


@pytest.mark.parametrize("measure", NPLR)
def test_b_clip_is_a_no_op_with_canonical_phase(measure):
    clipped = hippox.nplr(measure, 16, rank=_rank(measure), b_clip=2.0, dtype=np.float64)
    plain = hippox.nplr(measure, 16, rank=_rank(measure), dtype=np.float64)
    np.testing.assert_allclose(clipped.B, plain.B, atol=1e-12)


@pytest.mark.parametrize(
    "b_clip,exc",
    [(0.0, ValueError), (-1.0, ValueError), ("2", TypeError), (float("nan"), ValueError)],
)
def test_bad_b_clip(b_clip, exc):
    with pytest.raises(exc, match="`b_clip`"):
        hippox.nplr("legs", 8, b_clip=b_clip)


# --------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("N", (1, 3, 7, 65))
@pytest.mark.parametrize("measure", ("legs", "lagt"))
def test_odd_N_refused(measure, N):
    with pytest.raises(ValueError, match="`N`"):
        hippox.nplr(measure, N)


@pytest.mark.parametrize(
    "N,exc", [(0, ValueError), (-2, ValueError), (4.0, TypeError), (True, TypeError)]
)
def test_bad_N(N, exc):
    with pytest.raises(exc, match="`N`"):
        hippox.nplr("legs", N)


@pytest.mark.parametrize("measure", ("lmu", "glagt", "random", "diagonal", "legx"))
def test_non_nplr_measure_refused(measure):
    with pytest.raises(ValueError, match="`measure`"):
        hippox.nplr(measure, 8)


def test_legt_needs_rank_two():
    with pytest.raises(ValueError, match="`rank`"):
        hippox.nplr("legt", 8)


def test_bad_parameters():
    with pytest.raises(ValueError, match="`theta`"):
        hippox.nplr("legt", 8, rank=2, theta=0.0)
    with pytest.raises(TypeError, match="theta"):
        hippox.nplr("legs", 8, theta=1.0)
    with pytest.raises(ValueError, match="`dtype`"):
        hippox.nplr("legs", 8, dtype=np.int32)


def test_host_cache_is_bounded_in_bytes(monkeypatch):
    """The shared host cache evicts least-recently-used results to stay within its budget."""
    from hippox._src import cache

    cache.clear()
    monkeypatch.setattr(cache, "BUDGET_BYTES", 3 * 8000)
    calls = []

    @cache.host_cache
    def build(n):
        calls.append(n)
        return np.zeros(1000) + n, (np.ones(0),)  # 8000 bytes

    for n in range(5):
        build(n)
    assert build.cache_info().nbytes <= cache.BUDGET_BYTES
    assert build.cache_info().currsize == 3
    build(4), build(2)  # hits (recent entries kept)
    assert calls == [0, 1, 2, 3, 4]
    build(0)  # evicted earlier: recomputed, evicts the least recently used (3)
    assert calls[-1] == 0
    build(3)
    assert calls[-1] == 3
    big = cache.host_cache(lambda n: np.zeros(10**4))  # larger than the budget: not cached
    big(1), big(1)
    assert big.cache_info().currsize == 0 and big.cache_info().misses == 2
    # nplr's host core is charged its bytes against the same budget
    monkeypatch.setattr(cache, "BUDGET_BYTES", 256 * 2**20)
    decompositions.nplr_host.cache_clear()
    decompositions.nplr_host("legs", 16, 1, ())
    info = decompositions.nplr_host.cache_info()
    assert info.currsize == 1 and info.nbytes == sum(
        x.nbytes for x in decompositions.nplr_host("legs", 16, 1, ())
    )
    cache.clear()
