"""Tests of hippox/_src/diagonal.py: S4D spectra, B inits, DPLR and S5 block-diagonal inits.

References are independent: closed-form spectra recomputed here from the formulas, the
LegS matrices written out here from their definition, eigen-decompositions from
np.linalg, block-diagonal matrices from scipy.linalg.block_diag.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import hippox

F64 = dict(dtype=jnp.float64)
DETERMINISTIC = ("legs", "lin", "inv", "inv2", "quad", "real")


# ----------------------------------------------------------------- independent refs


def legs_ref(N):
    """LegS (A, B, P) written out from the definition (not from hippox)."""
    n = np.arange(N)
    q = np.sqrt(2.0 * n + 1.0)
    A = np.where(n[:, None] > n[None, :], -np.outer(q, q), 0.0) - np.diag(n + 1.0)
    P = np.sqrt(n + 0.5)[None, :]
    return A, q, P


def closed_form(init, N):
    """Half spectra from the formulas in the brief, n = 0 … N/2-1."""
    n = np.arange(N // 2, dtype=np.float64)
    im = {
        "lin": -np.pi * n,
        "inv": -(N / np.pi) * (N / (2 * n + 1) - 1),
        "inv2": -(N / np.pi) * (N / (n + 1) - 1),
        "quad": -((2 * n + 1) ** 2) / np.pi,
        "real": np.zeros_like(n),
    }[init]
    re = -(n + 1) if init == "real" else -0.5 * np.ones_like(n)
    return re + 1j * im


def legs_half_spectrum_ref(N):
    """Eigenvalues with Im < 0 of the LegS normal part A + PᵀP, ascending imaginary part."""
    A, _, P = legs_ref(N)
    w = np.linalg.eigvals(A + P.T @ P)
    w = w[w.imag < 0]
    return w[np.argsort(w.imag)]


def assert_close(x, y, rtol=1e-12, atol=0.0):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def full_unitary(V):
    """[V, conj(V)] for a (N, N/2) half eigenvector matrix."""
    V = np.asarray(V)
    return np.concatenate([V, V.conj()], axis=1)


# ------------------------------------------------------------------------ diag_init


@pytest.mark.parametrize("init", ["lin", "inv", "inv2", "quad", "real"])
@pytest.mark.parametrize("N", [2, 6, 64])
def test_closed_form_spectra(init, N, rng):
    rs, ims = rng.uniform(0.1, 3.0, size=2)
    got = hippox.diag_init(init, N, real_scale=rs, imag_scale=ims, **F64)
    ref = closed_form(init, N)
    assert got.shape == (N // 2,) and got.dtype == jnp.complex128
    assert_close(got.real, rs * ref.real, rtol=1e-14)
    assert_close(got.imag, ims * ref.imag, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("N", [2, 8, 32, 64])
def test_legs_is_legs_normal_spectrum(N):
    got = np.asarray(hippox.diag_init("legs", N, **F64))
    ref = legs_half_spectrum_ref(N)
    assert np.all(np.diff(got.imag) > 0)  # documented order: ascending imaginary part
    assert_close(got.real, -0.5 * np.ones(N // 2), rtol=1e-12)
    assert_close(got, ref, rtol=0, atol=1e-10 * np.abs(ref).max())


@pytest.mark.parametrize("init", hippox.DIAG_INITS)
def test_scales_act_on_the_right_parts(init, rng):
    N = 16
    rs, ims = rng.uniform(0.2, 5.0, size=2)
    key = jax.random.key(int(rng.integers(2**31)))
    base = np.asarray(hippox.diag_init(init, N, key=key, **F64))
    got = np.asarray(hippox.diag_init(init, N, real_scale=rs, imag_scale=ims, key=key, **F64))
    assert_close(got.real, rs * base.real, rtol=1e-14)
    assert_close(got.imag, ims * base.imag, rtol=1e-14)
    # imag_scale = 0 leaves a purely real, still stable spectrum
    zero = np.asarray(hippox.diag_init(init, N, imag_scale=0.0, key=key, **F64))
    assert np.all(zero.imag == 0) and np.all(zero.real < 0)


@pytest.mark.parametrize("init", hippox.DIAG_INITS)
@pytest.mark.parametrize("N", [2, 10])
def test_full_layout_is_conjugate_closed(init, N):
    key = jax.random.key(3)
    half = np.asarray(hippox.diag_init(init, N, key=key, **F64))
    full = np.asarray(hippox.diag_init(init, N, conj_sym=False, key=key, **F64))
    assert half.shape == (N // 2,) and full.shape == (N,)
    assert np.all(half.imag <= 0)
    assert np.array_equal(full[: N // 2], half)
    assert np.array_equal(full[N // 2 :], half.conj())
    assert np.array_equal(np.sort_complex(full), np.sort_complex(full.conj()))
    assert np.all(full.real < 0)


@pytest.mark.parametrize(
    "dtype, expected",
    [
        (None, jnp.complex64),
        (jnp.float32, jnp.complex64),
        (jnp.float64, jnp.complex128),
        (jnp.bfloat16, jnp.complex64),
        (jnp.float16, jnp.complex64),
    ],
)
def test_dtypes(dtype, expected):
    key = jax.random.key(0)
    assert hippox.diag_init("lin", 8, dtype=dtype).dtype == expected
    assert hippox.diag_init("rand", 8, key=key, dtype=dtype).dtype == expected
    assert hippox.diag_b_init("legs", 8, dtype=dtype).dtype == expected
    assert hippox.diag_b_init("random", 8, key=key, dtype=dtype).dtype == expected
    for x in hippox.dplr("legs", 8, H=2, dtype=dtype):
        assert x.dtype == expected
    for x in hippox.dplr("rand", 8, H=2, b_init="random", p_init="random", key=key, dtype=dtype):
        assert x.dtype == expected
    for x in hippox.block_diagonal_init(4, 2, dtype=dtype):
        assert x.dtype == expected


@pytest.mark.parametrize("init", DETERMINISTIC)
def test_float32_matches_float64(init):
    lo = np.asarray(hippox.diag_init(init, 32))
    hi = np.asarray(hippox.diag_init(init, 32, **F64))
    assert_close(lo, hi, rtol=1e-6, atol=1e-6)


def test_deterministic_inits_ignore_key():
    for init in DETERMINISTIC:
        a = hippox.diag_init(init, 8)
        b = hippox.diag_init(init, 8, key=jax.random.key(5))
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_rand_spectrum():
    N = 4096
    k1, k2 = jax.random.key(0), jax.random.key(1)
    a = np.asarray(hippox.diag_init("rand", N, key=k1, **F64))
    b = np.asarray(hippox.diag_init("rand", N, key=k1, **F64))
    c = np.asarray(hippox.diag_init("rand", N, key=k2, **F64))
    assert np.array_equal(a, b)
    assert not np.any(a == c)
    assert np.all(a.real == -0.5)
    u = -a.imag / (np.pi * N / 2)  # documented: Uniform[0, 1)
    assert np.all((u >= 0) & (u < 1))
    assert abs(u.mean() - 0.5) < 0.04 and abs(u.var() - 1 / 12) < 0.01


def test_rand_under_jit_and_vmap():
    keys = jax.random.split(jax.random.key(7), 4)
    f = functools.partial(hippox.diag_init, "rand", 8, conj_sym=False, **F64)
    eager = np.stack([np.asarray(f(key=k)) for k in keys])
    assert_close(jax.jit(lambda k: f(key=k))(keys[0]), eager[0], rtol=1e-15)
    assert_close(jax.vmap(lambda k: f(key=k))(keys), eager, rtol=1e-15)


# --------------------------------------------------------------------------- b_init


@pytest.mark.parametrize("N", [2, 8, 30])
def test_b_closed_forms(N):
    M = N // 2
    n = np.arange(M)
    assert_close(hippox.diag_b_init("constant", N, **F64), np.ones(M))
    assert_close(hippox.diag_b_init("alternating", N, **F64), (-1.0) ** n)
    full = np.asarray(hippox.diag_b_init("alternating", N, conj_sym=False, **F64))
    assert_close(full, np.concatenate([(-1.0) ** n, (-1.0) ** n]))


@pytest.mark.parametrize("N", [2, 8, 32])
def test_b_legs_is_projection_of_legs_b(N):
    """|v* B| for the unit eigenvectors v of the LegS normal part (Im λ < 0), real >= 0."""
    A, B, P = legs_ref(N)
    S = A + P.T @ P + 0.5 * np.eye(N)  # skew
    w, U = np.linalg.eigh(-1j * S)  # S U = i w U
    neg = w < 0
    ref = np.abs(U[:, neg].conj().T @ B)[np.argsort(w[neg])]
    got = np.asarray(hippox.diag_b_init("legs", N, **F64))
    assert_close(got.imag, np.zeros(N // 2), atol=1e-10)
    assert_close(got.real, ref, rtol=1e-9)
    # conjugate layout, and its combination with V gives B back: B = 2 Re(V B̃)
    d = hippox.dplr("legs", N, **F64)
    assert_close(2 * (np.asarray(d.V[0]) @ got).real, B, rtol=0, atol=1e-10 * np.abs(B).max())


def test_b_random():
    k1, k2 = jax.random.key(0), jax.random.key(1)
    a = np.asarray(hippox.diag_b_init("random", 8192, key=k1, **F64))
    assert np.array_equal(a, np.asarray(hippox.diag_b_init("random", 8192, key=k1, **F64)))
    assert not np.any(a == np.asarray(hippox.diag_b_init("random", 8192, key=k2, **F64)))
    assert abs(np.mean(np.abs(a) ** 2) - 1) < 0.1  # E|B|² = 1
    assert abs(np.mean(a.real**2) - 0.5) < 0.06 and abs(np.mean(a.imag**2) - 0.5) < 0.06
    full = np.asarray(hippox.diag_b_init("random", 8, conj_sym=False, key=k1))
    assert np.array_equal(full[4:], full[:4].conj())


# ----------------------------------------------------------------------------- dplr


MEASURE_CASES = [
    ("legs", 1, {}),
    ("legt", 2, {}),
    ("legt", 2, {"theta": 1.0}),
    ("lagt", 1, {}),
    ("fout", 1, {}),
    ("legsd", 1, {}),
]


@pytest.mark.parametrize("measure, rank, params", MEASURE_CASES)
@pytest.mark.parametrize("N", [4, 8, 16])
def test_dplr_measure_full_is_unitary_similarity(measure, rank, params, N):
    """conj_sym=False: diag(Λ) - Pᵀ conj(P) = V* A V, B = V* B_r, P = P_r conj(V)."""
    H = 3
    A, B = (np.asarray(x) for x in hippox.transition(measure, N, **F64, **params))
    if measure == "legs":
        A_ref, B_ref, _ = legs_ref(N)
        assert_close(A, A_ref) and assert_close(B, B_ref)
    d = hippox.dplr(measure, N, rank=rank, H=H, conj_sym=False, **F64, **params)
    assert d.Lambda.shape == (H, N) and d.P.shape == (rank, H, N)
    assert d.B.shape == (H, N) and d.V.shape == (H, N, N)
    for x in (d.Lambda, d.B, d.V):  # tiled: exact copies
        assert all(np.array_equal(np.asarray(x[h]), np.asarray(x[0])) for h in range(H))
    assert all(np.array_equal(np.asarray(d.P[:, h]), np.asarray(d.P[:, 0])) for h in range(H))
    Lam, P, Bt, V = (
        np.asarray(d.Lambda[0]),
        np.asarray(d.P[:, 0]),
        np.asarray(d.B[0]),
        np.asarray(d.V[0]),
    )
    scale = np.abs(A).max()
    assert_close(V.conj().T @ V, np.eye(N), rtol=0, atol=1e-12)
    A_eig = np.diag(Lam) - P.T @ P.conj()
    assert_close(V.conj().T @ A @ V, A_eig, rtol=0, atol=1e-10 * scale)
    assert_close(V.conj().T @ B, Bt, rtol=0, atol=1e-10 * np.abs(B).max())
    # the real low-rank term, mapped back to the original basis, makes A + P_rᵀP_r normal
    P_r = P @ V.T
    assert_close(P_r.imag, 0 * P_r.real, atol=1e-12 * scale)
    AN = A + P_r.real.T @ P_r.real
    assert_close(AN @ AN.T, AN.T @ AN, rtol=0, atol=1e-9 * scale**2)
    assert_close(np.diag(AN), np.full(N, np.mean(np.diag(AN))), rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize("measure, rank, params", MEASURE_CASES)
@pytest.mark.parametrize("N", [4, 16])
def test_dplr_measure_half_reconstructs_A(measure, rank, params, N):
    """conj_sym=True: A = 2Re(V diag(Λ) V*) - P_rᵀP_r with P_r = 2Re(P Vᵀ); half = head of full."""
    A = np.asarray(hippox.transition(measure, N, **F64, **params).A)
    half = hippox.dplr(measure, N, rank=rank, H=2, **F64, **params)
    full = hippox.dplr(measure, N, rank=rank, H=2, conj_sym=False, **F64, **params)
    M = N // 2
    assert half.Lambda.shape == (2, M) and half.V.shape == (2, N, M)
    assert np.array_equal(np.asarray(full.Lambda[..., :M]), np.asarray(half.Lambda))
    assert np.array_equal(np.asarray(full.Lambda[..., M:]), np.asarray(half.Lambda).conj())
    assert np.array_equal(np.asarray(full.P[..., M:]), np.asarray(half.P).conj())
    assert np.array_equal(np.asarray(full.B[..., M:]), np.asarray(half.B).conj())
    assert np.array_equal(np.asarray(full.V[..., M:]), np.asarray(half.V).conj())
    Lam, P, V = np.asarray(half.Lambda[1]), np.asarray(half.P[:, 1]), np.asarray(half.V[1])
    P_r = 2 * (P @ V.T).real
    A_rec = 2 * (V @ np.diag(Lam) @ V.conj().T).real - P_r.T @ P_r
    assert_close(A_rec, A, rtol=0, atol=1e-10 * np.abs(A).max())


@pytest.mark.parametrize("N", [4, 8, 12])
def test_dplr_legs_eigenvalues(N):
    """The conjugate-closed DPLR operator has LegS's spectrum -1 … -N.

    LegS's eigenvalues are ill-conditioned (A is far from normal), so the tolerance is
    1e-6: loose for float64 but far below the spacing 1 of the integer eigenvalues.
    """
    d = hippox.dplr("legs", N, **F64)
    Lam, P = np.asarray(d.Lambda[0]), np.asarray(d.P[:, 0])
    Lf = np.concatenate([Lam, Lam.conj()])
    Pf = np.concatenate([P, P.conj()], axis=1)
    ev = np.linalg.eigvals(np.diag(Lf) - Pf.T @ Pf.conj())
    assert_close(np.sort(ev.real), -np.arange(N, 0, -1.0), rtol=0, atol=1e-6)
    assert_close(ev.imag, np.zeros(N), rtol=0, atol=1e-6)
    # the same from the direct eigenvalues of the (independent) LegS matrix
    assert_close(np.sort(np.linalg.eigvals(legs_ref(N)[0]).real), -np.arange(N, 0, -1.0))


def test_dplr_scales_only_lambda(rng):
    rs, ims = rng.uniform(0.2, 3.0, size=2)
    base = hippox.dplr("legs", 8, H=2, **F64)
    d = hippox.dplr("legs", 8, H=2, real_scale=rs, imag_scale=ims, **F64)
    assert_close(d.Lambda.real, rs * base.Lambda.real, rtol=1e-14)
    assert_close(d.Lambda.imag, ims * base.Lambda.imag, rtol=1e-14)
    for a, b in ((d.P, base.P), (d.B, base.B), (d.V, base.V)):
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("init", ["lin", "inv", "inv2", "quad", "real"])
@pytest.mark.parametrize("conj_sym", [True, False])
def test_dplr_diagonal_inits(init, conj_sym):
    N, H, rank = 10, 3, 2
    M = N // 2 if conj_sym else N
    d = hippox.dplr(init, N, H=H, rank=rank, conj_sym=conj_sym, **F64)
    Lam = np.asarray(hippox.diag_init(init, N, conj_sym=conj_sym, **F64))
    assert np.array_equal(np.asarray(d.Lambda), np.broadcast_to(Lam, (H, M)))
    assert d.P.shape == (rank, H, M) and not np.any(np.asarray(d.P))
    assert np.array_equal(np.asarray(d.B), np.ones((H, M)))
    assert np.array_equal(np.asarray(d.V), np.broadcast_to(np.eye(N, M), (H, N, M)))


def test_dplr_legs_without_p_is_s4d_legs():
    d = hippox.dplr("legs", 8, H=2, p_init="zeros", **F64)
    assert_close(d.Lambda[1], hippox.diag_init("legs", 8, **F64), rtol=0)
    assert_close(d.B[1], hippox.diag_b_init("legs", 8, **F64), rtol=0)
    assert not np.any(np.asarray(d.P))


def test_dplr_random_parts():
    key = jax.random.key(11)
    N, H, rank = 8, 4, 2
    kw = dict(H=H, rank=rank, conj_sym=False, key=key, **F64)
    d = hippox.dplr("rand", N, b_init="random", p_init="random", **kw)
    again = hippox.dplr("rand", N, b_init="random", p_init="random", **kw)
    for a, b in zip(d, again, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    other = hippox.dplr(
        "rand", N, b_init="random", p_init="random", **{**kw, "key": jax.random.key(12)}
    )
    for name in ("Lambda", "B", "P"):
        assert not np.any(np.asarray(getattr(d, name)) == np.asarray(getattr(other, name)))
    # random parts differ between channels and keep the full layout conjugate-closed
    Lam, P, B = np.asarray(d.Lambda), np.asarray(d.P), np.asarray(d.B)
    assert not np.any(Lam[0, : N // 2] == Lam[1, : N // 2])
    assert not np.any(B[0] == B[1]) and not np.any(P[:, 0] == P[:, 1])
    assert np.array_equal(Lam[:, N // 2 :], Lam[:, : N // 2].conj())
    assert np.array_equal(P[..., N // 2 :], P[..., : N // 2].conj())
    # fixed key streams: B's draw does not depend on whether P is random
    d2 = hippox.dplr("rand", N, b_init="random", **kw)
    assert np.array_equal(np.asarray(d2.B), B) and not np.any(np.asarray(d2.P))
    # any P keeps every channel's A = diag(Λ) - Pᵀ conj(P) stable
    for h in range(H):
        A = np.diag(Lam[h]) - P[:, h].T @ P[:, h].conj()
        assert np.all(np.linalg.eigvals(A).real < 0)
    # jit with a traced key gives the same draw
    jitted = jax.jit(
        lambda k: hippox.dplr("rand", N, b_init="random", p_init="random", **{**kw, "key": k})
    )(key)
    for a, b in zip(jitted, d, strict=True):
        assert_close(a, b, rtol=1e-15)


# ------------------------------------------------------------------------------ S5


@pytest.mark.parametrize("N_block", [2, 8, 16])
@pytest.mark.parametrize("J", [1, 3])
@pytest.mark.parametrize("conj_sym", [True, False])
def test_block_diagonal_reconstructs_hippo_n(N_block, J, conj_sym):
    A, _, P = legs_ref(N_block)
    AN = scipy.linalg.block_diag(*[A + P.T @ P] * J)
    Lam, V, Vinv = (
        np.asarray(x) for x in hippox.block_diagonal_init(N_block, J, conj_sym=conj_sym, **F64)
    )
    M = N_block // 2 if conj_sym else N_block
    assert Lam.shape == (J * M,) and V.shape == (J * N_block, J * M)
    assert Vinv.shape == (J * M, J * N_block)
    assert np.array_equal(Vinv, V.conj().T)
    assert_close(Vinv @ V, np.eye(J * M), rtol=0, atol=1e-12)
    rec = V @ np.diag(Lam) @ Vinv
    if conj_sym:
        rec = 2 * rec.real
    else:
        assert_close(rec.imag, np.zeros_like(AN), atol=1e-10 * N_block)
        rec = rec.real
    assert_close(rec, AN, rtol=0, atol=1e-10 * N_block)
    assert_close(Lam.real, -0.5 * np.ones(J * M), rtol=1e-12)
    half = legs_half_spectrum_ref(N_block)
    block = half if conj_sym else np.concatenate([half, half.conj()])
    assert_close(Lam, np.tile(block, J), rtol=0, atol=1e-10 * N_block)
    # block structure: no coupling between blocks
    mask = scipy.linalg.block_diag(*[np.ones((N_block, M))] * J) == 0
    assert np.all(V[mask] == 0)
    assert_close(hippox.block_diagonal_normal(N_block, J, **F64), AN, rtol=0, atol=1e-13)


@pytest.mark.parametrize("measure", ["lagt", "fout", "legt"])
def test_block_diagonal_other_measures(measure):
    N_block, J = 6, 2
    Lam, V, Vinv = (
        np.asarray(x) for x in hippox.block_diagonal_init(N_block, J, measure=measure, **F64)
    )
    A = np.asarray(hippox.transition(measure, N_block, **F64).A)
    P = np.asarray(hippox.rank_correction(measure, N_block, rank=2, **F64))
    AN = scipy.linalg.block_diag(A + P.T @ P, A + P.T @ P)
    assert_close(2 * (V @ np.diag(Lam) @ Vinv).real, AN, rtol=0, atol=1e-10 * np.abs(AN).max())


# --------------------------------------------------------------------------- errors


KEY = jax.random.key(0)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: hippox.diag_init("foo", 8), ValueError, r"`init` must be one of .*'lin'"),
        (lambda: hippox.diag_init("lin", 7), ValueError, r"`N` must be even.*got 7"),
        (lambda: hippox.diag_init("lin", 0), ValueError, r"`N` must be an integer >= 2"),
        (lambda: hippox.diag_init("lin", 8.0), TypeError, r"`N` must be an integer"),
        (
            lambda: hippox.diag_init("lin", 8, real_scale=0.0),
            ValueError,
            r"`real_scale` must be > 0",
        ),
        (lambda: hippox.diag_init("lin", 8, real_scale=-1.0), ValueError, r"`real_scale`"),
        (lambda: hippox.diag_init("lin", 8, real_scale=float("nan")), ValueError, r"`real_scale`"),
        (
            lambda: hippox.diag_init("lin", 8, imag_scale=-1.0),
            ValueError,
            r"`imag_scale` must be >= 0",
        ),
        (lambda: hippox.diag_init("lin", 8, conj_sym=1), TypeError, r"`conj_sym` must be a bool"),
        (lambda: hippox.diag_init("rand", 8), ValueError, r"`key` must be a jax.random key"),
        (lambda: hippox.diag_init("lin", 8, dtype=jnp.int32), ValueError, r"`dtype`"),
        (lambda: hippox.diag_init("lin", 8, dtype=jnp.complex64), ValueError, r"`dtype`"),
        (lambda: hippox.diag_b_init("ones", 8), ValueError, r"`init` must be one of .*'constant'"),
        (lambda: hippox.diag_b_init("random", 8), ValueError, r"`key`"),
        (lambda: hippox.diag_b_init("constant", 5), ValueError, r"`N` must be even"),
        (lambda: hippox.dplr("foo", 8), ValueError, r"`init` must be one of .*'legt'.*'lin'"),
        (lambda: hippox.dplr("legs", 7), ValueError, r"`N` must be even"),
        (lambda: hippox.dplr("lin", 8, H=0), ValueError, r"`H` must be an integer >= 1"),
        (lambda: hippox.dplr("legs", 8, rank=0), ValueError, r"`rank`"),
        (lambda: hippox.dplr("legt", 8), ValueError, r"`rank` must be >= 2"),
        (lambda: hippox.dplr("lin", 8, p_init="random"), ValueError, r"`key`.*p_init='random'"),
        (lambda: hippox.dplr("rand", 8), ValueError, r"`key`.*init='rand'"),
        (lambda: hippox.dplr("lin", 8, b_init="x"), ValueError, r"`b_init` must be one of"),
        (lambda: hippox.dplr("lin", 8, p_init="ones"), ValueError, r"`p_init` must be one of"),
        (lambda: hippox.dplr("lin", 8, theta=1.0), TypeError, r"takes no measure parameters"),
        (lambda: hippox.dplr("legs", 8, theta=1.0), TypeError, r"`theta`"),
        (lambda: hippox.dplr("legs", 8, real_scale=0), ValueError, r"`real_scale`"),
        (lambda: hippox.block_diagonal_init(7, 2), ValueError, r"`N_block` must be even"),
        (lambda: hippox.block_diagonal_init(8, 0), ValueError, r"`J` must be an integer >= 1"),
        (lambda: hippox.block_diagonal_init(8, 2, measure="lmu"), ValueError, r"`measure`"),
        (lambda: hippox.block_diagonal_init(8, 2, conj_sym="yes"), TypeError, r"`conj_sym`"),
        (lambda: hippox.block_diagonal_normal(8, 2, measure="x"), ValueError, r"`measure`"),
    ],
)
def test_bad_inputs_raise(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_cached_host_arrays_are_not_mutated():
    a = np.asarray(hippox.diag_init("legs", 8, **F64))
    d = hippox.dplr("legs", 8, real_scale=2.0, **F64)
    assert_close(d.Lambda[0].real, 2 * a.real)
    assert np.array_equal(np.asarray(hippox.diag_init("legs", 8, **F64)), a)
