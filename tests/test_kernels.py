"""Tests of hippox._src.kernels against float64 NumPy references built from the conventions.

The references never call hippox code: the discretised matrices are formed with the
formulas of the SSM conventions (zoh / bilinear / dss for diagonal systems, dense bilinear
for DPLR) and the kernel is the explicit product ``C Ab^l Bb``, step by step.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import hippox
from hippox._src import kernels

# --------------------------------------------------------------------------- references


def ref_kernel(Ab, Bb, C, L):
    """K[h, l] = C[h] Ab[h]^l Bb[h] with dense (H, M, M) Ab, complex, step by step."""
    H, M = Bb.shape
    out = np.zeros((H, L), np.complex128)
    x = Bb.astype(np.complex128).copy()
    for l in range(L):
        out[:, l] = np.einsum("hm,hm->h", C, x)
        x = np.einsum("hnm,hm->hn", Ab, x)
    return out


def ref_diag_system(Lam, B, dt, method, L):
    """Dense (H, M, M) Ab and (H, M) Bb of a diagonal system (conventions formulas)."""
    x = dt[:, None] * Lam
    if method == "zoh":
        ab = np.exp(x)
        bb = (ab - 1) / Lam * B
    elif method == "bilinear":
        ab = (1 + x / 2) / (1 - x / 2)
        bb = dt[:, None] / (1 - x / 2) * B
    else:  # dss
        ab = np.exp(x)
        bb = (ab - 1) / Lam * B / (ab**L - 1)
    return np.array([np.diag(a) for a in ab]), bb


def ref_dplr_system(Lam, P, B, dt):
    """Dense bilinear (Ab, Bb) of A = diag(Lambda) - Pᵀ conj(P); P (R, H, M)."""
    H, M = Lam.shape
    eye = np.eye(M)
    Ab = np.zeros((H, M, M), complex)
    Bb = np.zeros((H, M), complex)
    for h in range(H):
        A = np.diag(Lam[h]) - P[:, h].T @ P[:, h].conj()
        lhs = eye - dt[h] / 2 * A
        Ab[h] = np.linalg.solve(lhs, eye + dt[h] / 2 * A)
        Bb[h] = np.linalg.solve(lhs, dt[h] * B[h])
    return Ab, Bb


def ref_c_tilde(C, Ab, L):
    return np.array(
        [C[h] @ (np.eye(C.shape[1]) - np.linalg.matrix_power(Ab[h], L)) for h in range(C.shape[0])]
    )


def crandn(rng, *shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def random_lambda(rng, H, M, scale_im=3.0):
    return -rng.uniform(0.05, 1.0, (H, M)) + 1j * scale_im * rng.standard_normal((H, M))


def rel_err(K, Kref):
    K = np.asarray(K, np.float64)
    return np.max(np.abs(K - Kref)) / np.max(np.abs(Kref))


def real_out(Kc, conj_sym):
    return 2 * Kc.real if conj_sym else Kc.real


def closed(x, axis=-1):
    """Conjugate-closed copy of a half system: concat(x, conj(x)) along the mode axis."""
    return np.concatenate([x, np.conj(x)], axis=axis)


LENGTHS = [1, 2, 7, 64, 100]  # 1, even, odd, power of two, not a power of two


# --------------------------------------------------------------------------- kernel_naive


@pytest.mark.parametrize("diagonal", [False, True])
def test_kernel_naive_matches_matrix_powers(rng, diagonal):
    H, N, L = 3, 4, 9
    Ab = 0.4 * crandn(rng, H, N) if diagonal else 0.4 * crandn(rng, H, N, N)
    Bb, C = crandn(rng, H, N), crandn(rng, H, N)
    K = hippox.kernel_naive(Ab, Bb, C, L)
    dense = np.array([np.diag(a) for a in Ab]) if diagonal else Ab
    ref = np.array(
        [[C[h] @ np.linalg.matrix_power(dense[h], l) @ Bb[h] for l in range(L)] for h in range(H)]
    )
    assert K.shape == (H, L) and np.iscomplexobj(K)
    np.testing.assert_allclose(K, ref, rtol=1e-12, atol=1e-12)


def test_kernel_naive_broadcast_and_override(rng):
    N, L = 3, 5
    Ab = 0.5 * rng.standard_normal((N, N))  # a (N, N) batch of diagonals with shared Bb
    Bb, C = rng.standard_normal(N), rng.standard_normal(N)
    K = hippox.kernel_naive(Ab, Bb, C, L, diagonal=True)
    ref = np.array([[C @ (Ab[i] ** l * Bb) for l in range(L)] for i in range(N)])
    np.testing.assert_allclose(K, ref, rtol=1e-12)
    Kd = hippox.kernel_naive(Ab, Bb, C, L)  # inferred dense
    np.testing.assert_allclose(
        Kd, [C @ np.linalg.matrix_power(Ab, l) @ Bb for l in range(L)], rtol=1e-12
    )


# --------------------------------------------------------------------------- kernel_diag


@pytest.mark.parametrize("L", LENGTHS)
@pytest.mark.parametrize("method", ["zoh", "bilinear", "dss"])
def test_kernel_diag_float64(rng, method, L):
    H, M = 3, 5
    Lam = random_lambda(rng, H, M)
    if method == "dss":  # dss allows either sign of Re(Lambda)
        Lam.real *= rng.choice([-1.0, 1.0], Lam.shape) * 3
    B, C = crandn(rng, H, M), crandn(rng, H, M)
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(0.5), H))
    Ab, Bb = ref_diag_system(Lam, B, dt, method, L)
    ref = 2 * ref_kernel(Ab, Bb, C, L).real
    K = hippox.kernel_diag(Lam, B, C, dt, L, method=method)
    assert K.shape == (H, L) and K.dtype == np.float64
    assert rel_err(K, ref) <= 1e-10
    if L in (7, 100):
        # Forced small blocks and the single-block Vandermonde give the same values.
        for cs in (1, 3, L):
            Kc = hippox.kernel_diag(Lam, B, C, dt, L, method=method, chunk_size=cs)
            np.testing.assert_allclose(Kc, K, rtol=0, atol=1e-12 * np.max(np.abs(ref)))
        # conj_sym=False: the conjugate-closed system (N = 2M modes), output Re.
        Lf, Bf, Cf = closed(Lam), closed(B), closed(C)
        Ab, Bb = ref_diag_system(Lf, Bf, dt, method, L)
        ref = ref_kernel(Ab, Bb, Cf, L).real
        Kf = hippox.kernel_diag(Lf, Bf, Cf, dt, L, method=method, conj_sym=False)
        assert rel_err(Kf, ref) <= 1e-10
        # ... and for a system that is not closed, exactly Re of the complex kernel.
        Ab, Bb = ref_diag_system(Lam, B, dt, method, L)
        Kr = hippox.kernel_diag(Lam, B, C, dt, L, method=method, conj_sym=False)
        assert rel_err(Kr, ref_kernel(Ab, Bb, C, L).real) <= 1e-10


@pytest.mark.parametrize("method", ["zoh", "bilinear", "dss"])
def test_kernel_diag_float32(rng, method):
    H, M, L = 4, 8, 300
    Lam = random_lambda(rng, H, M)
    B, C = crandn(rng, H, M), crandn(rng, H, M)
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(0.1), H))
    Ab, Bb = ref_diag_system(Lam, B, dt, method, L)
    ref = 2 * ref_kernel(Ab, Bb, C, L).real
    K = hippox.kernel_diag(
        Lam.astype(np.complex64),
        B.astype(np.complex64),
        C.astype(np.complex64),
        dt.astype(np.float32),
        L,
        method=method,
    )
    assert K.dtype == np.float32
    assert rel_err(K, ref) <= 1e-4


@pytest.mark.parametrize("method", ["zoh", "dss"])
def test_kernel_diag_float32_small_dt(rng, method):
    """zoh/dss in float32 at dt |Lambda| ~ 1e-6: Bb via expm1 keeps full relative precision
    (exp(dtΛ) - 1 in float32 would lose every digit)."""
    H, M, L = 2, 4, 16
    Lam = random_lambda(rng, H, M, scale_im=1.0)
    B, C = crandn(rng, H, M), crandn(rng, H, M)
    dt = np.array([1e-6, 3e-7])
    Ab, Bb = ref_diag_system(Lam, B, dt, "zoh", L)
    x = dt[:, None] * Lam  # Bb exactly, from expm1 of the real part and sines (float64)
    em1 = np.expm1(x.real) * np.cos(x.imag) - 2 * np.sin(x.imag / 2) ** 2
    Bb = (em1 + 1j * np.exp(x.real) * np.sin(x.imag)) / Lam * B
    if method == "dss":
        xL = L * x
        Bb = Bb / (
            np.expm1(xL.real) * np.cos(xL.imag)
            - 2 * np.sin(xL.imag / 2) ** 2
            + 1j * np.exp(xL.real) * np.sin(xL.imag)
        )
    ref = 2 * ref_kernel(Ab, Bb, C, L).real
    c64 = lambda a: a.astype(np.complex64)  # noqa: E731
    K = hippox.kernel_diag(c64(Lam), c64(B), c64(C), dt.astype(np.float32), L, method=method)
    assert rel_err(K, ref) <= 1e-4


def test_kernel_diag_no_64bit_in_32bit_graph(rng):
    H, M, L = 2, 4, 16
    args = (
        random_lambda(rng, H, M).astype(np.complex64),
        crandn(rng, H, M).astype(np.complex64),
        crandn(rng, H, M).astype(np.complex64),
        np.full(H, 0.1, np.float32),
    )
    for method in ("zoh", "bilinear", "dss"):
        fn = lambda *a, m=method: hippox.kernel_diag(*a, L, method=m)  # noqa: E731
        jaxpr = str(jax.make_jaxpr(fn)(*args))
        assert "f64" not in jaxpr and "c128" not in jaxpr, method


def test_kernel_diag_hippo_spectrum(rng):
    """S4D with the eigenvalues of the NPLR form of HiPPO-LegS (real part -1/2)."""
    N, H, L = 16, 3, 50
    Lam = np.asarray(hippox.nplr("legs", N, dtype=jnp.float64).Lambda)
    B, C = np.ones((H, N // 2), complex), crandn(rng, H, N // 2)
    dt = np.array([1e-3, 1e-2, 1e-1])
    LamH = np.broadcast_to(Lam, (H, N // 2))
    for method in ("zoh", "bilinear"):
        Ab, Bb = ref_diag_system(LamH, B, dt, method, L)
        K = hippox.kernel_diag(Lam, B, C, dt, L, method=method)  # Lambda (M,) broadcast
        assert rel_err(K, 2 * ref_kernel(Ab, Bb, C, L).real) <= 1e-10


def test_kernel_diag_dss_large_positive_real_part(rng):
    """Re(dt Lambda) L far beyond exp overflow: only the last lags survive (closed form)."""
    H, M, L = 2, 3, 400
    Lam = rng.uniform(2.0, 4.0, (H, M)) + 1j * rng.standard_normal((H, M))
    B, C = crandn(rng, H, M), crandn(rng, H, M)
    dt = np.array([1.0, 3.0])  # Re(dt Lambda) L >= 800: exp overflows even float64
    K = np.asarray(hippox.kernel_diag(Lam, B, C, dt, L, method="dss"))
    assert np.all(np.isfinite(K))
    # Ab^l Bb / (Ab^L - 1) = (1 - e^{-dtΛ})/Λ e^{-dtΛ j} B (1 + O(e^{-dtΛ L})), j = L-1-l.
    j = np.arange(L)[::-1]
    x = dt[:, None] * Lam
    ref = (
        2 * np.einsum("hm,hml->hl", C * B * (1 - np.exp(-x)) / Lam, np.exp(-x[..., None] * j)).real
    )
    np.testing.assert_allclose(K, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    # Moderately large in float32 (overflows exp in float32, not in float64).
    Lam2 = rng.uniform(0.2, 0.5, (H, M)) + 1j * rng.standard_normal((H, M))
    Ab, Bb = ref_diag_system(Lam2, B, dt, "dss", L)
    ref2 = 2 * ref_kernel(Ab, Bb, C, L).real
    K32 = hippox.kernel_diag(
        Lam2.astype(np.complex64),
        B.astype(np.complex64),
        C.astype(np.complex64),
        dt.astype(np.float32),
        L,
        method="dss",
    )
    assert np.all(np.isfinite(K32)) and rel_err(K32, ref2) <= 1e-4


@pytest.mark.slow  # ~30 s of compiles; jit/vmap of kernel_diag also run in the layer tests
def test_kernel_diag_jit_vmap(rng):
    H, M, L = 4, 3, 20
    Lam, B, C = random_lambda(rng, H, M), crandn(rng, H, M), crandn(rng, H, M)
    dt = rng.uniform(0.01, 0.2, H)
    K = hippox.kernel_diag(Lam, B, C, dt, L, method="bilinear")
    Kj = jax.jit(hippox.kernel_diag, static_argnames=("L", "method"))(
        Lam, B, C, dt, L=L, method="bilinear"
    )
    Kv = jax.vmap(lambda *a: hippox.kernel_diag(*a, L, method="bilinear"))(Lam, B, C, dt)
    np.testing.assert_allclose(Kj, K, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(Kv, K, rtol=1e-13, atol=1e-14)
    assert jax.eval_shape(lambda *a: hippox.kernel_diag(*a, L), Lam, B, C, dt).shape == (H, L)


@pytest.mark.parametrize("method", ["bilinear", "dss"])
def test_kernel_diag_grads(rng, method):
    H, M, L = 2, 2, 6
    lre, lim = -rng.uniform(0.2, 1.0, (H, M)), rng.standard_normal((H, M))
    B, C = crandn(rng, H, M), crandn(rng, H, M)
    dt = rng.uniform(0.05, 0.3, H)

    def f(lre, lim, cre, dt):
        return hippox.kernel_diag(
            lre + 1j * lim, B, cre + 1j * C.imag, dt, L, method=method, chunk_size=4
        )

    check_grads(f, (lre, lim, C.real, dt), order=1, modes=["rev"])
    g = jax.grad(lambda x: jnp.sum(f(x, lim, C.real, dt) ** 2))(lre)
    assert np.all(np.isfinite(g))


# --------------------------------------------------------------------------- kernel_dplr


def ref_dplr(Lam, P, B, C, dt, L, conj_sym):
    """Reference real kernel (H, L) of the DPLR system the conventions define.

    conj_sym=True: the conjugate-closed 2M-mode system (arrays concatenated with their
    conjugates, low-rank term coupling the halves); its kernel is real up to rounding.
    conj_sym=False: the M-mode system, real part of its kernel.
    """
    if conj_sym:
        Lam, P, B, C = closed(Lam), closed(P), closed(B), closed(C)
    Ab, Bb = ref_dplr_system(Lam, P, B, dt)
    Kc = ref_kernel(Ab, Bb, C, L)
    if conj_sym:
        assert np.max(np.abs(Kc.imag)) <= 1e-12 * np.max(np.abs(Kc))
    return Kc.real


def ref_c_tilde_dplr(C, Lam, P, dt, L, conj_sym):
    """C̃ = C (I - Ab^L); for conj_sym=True on the closed system, first half returned."""
    M = C.shape[-1]
    if conj_sym:
        Lam, P, C = closed(Lam), closed(P), closed(C)
    Ab, _ = ref_dplr_system(Lam, P, np.zeros_like(C), dt)
    Ct = ref_c_tilde(C, Ab, L)
    if conj_sym:  # the closed C̃ is conjugate-symmetric, so its first half determines it
        np.testing.assert_allclose(Ct[:, M:], Ct[:, :M].conj(), rtol=1e-12, atol=1e-12)
    return Ct[:, :M]


@pytest.mark.parametrize(
    ("rank", "conj_sym", "L"),
    [(1, True, L) for L in LENGTHS]
    + [(2, True, 7), (2, False, 100), (3, False, 7)]
    # each case compiles kernel_dplr afresh (several seconds): the rest run with -m slow
    + [
        pytest.param(*case, marks=pytest.mark.slow)
        for case in [(2, True, L) for L in (1, 2, 64, 100)]
        + [(1, False, 2), (2, False, 7), (3, True, 64)]
    ],
)
def test_kernel_dplr_float64(rng, rank, conj_sym, L):
    H, M = 3, 5
    Lam = random_lambda(rng, H, M)
    P = 0.5 * crandn(rng, rank, H, M)
    B, C = crandn(rng, H, M), crandn(rng, H, M)
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(0.5), H))
    ref = ref_dplr(Lam, P, B, C, dt, L, conj_sym)
    Ct = ref_c_tilde_dplr(C, Lam, P, dt, L, conj_sym)
    K = hippox.kernel_dplr(Lam, P, B, Ct, dt, L, conj_sym=conj_sym)
    assert K.shape == (H, L) and K.dtype == np.float64
    assert rel_err(K, ref) <= 1e-10
    for cs in (1, 3) if L in (7, 100) else ():
        Kc = hippox.kernel_dplr(Lam, P, B, Ct, dt, L, conj_sym=conj_sym, chunk_size=cs)
        np.testing.assert_allclose(Kc, K, rtol=0, atol=1e-12 * np.max(np.abs(ref)))
    if conj_sym and L in (7, 64):
        # The half arrays with conj_sym=True are the closed arrays with conj_sym=False.
        Kf = hippox.kernel_dplr(
            closed(Lam), closed(P), closed(B), closed(Ct), dt, L, conj_sym=False
        )
        assert rel_err(Kf, ref) <= 1e-10


def test_kernel_dplr_halves_are_coupled(rng):
    """conj_sym=True is not 2 Re of the uncoupled half system (old convention) when P != 0,
    and reduces to the diagonal S4D bilinear kernel when P = 0."""
    H, M, L = 2, 4, 32
    Lam, P = random_lambda(rng, H, M), 0.5 * crandn(rng, 1, H, M)
    B, C = crandn(rng, H, M), crandn(rng, H, M)
    dt = np.array([0.05, 0.3])
    Ab, Bb = ref_dplr_system(Lam, P, B, dt)  # the uncoupled M-mode half system
    half = 2 * ref_kernel(Ab, Bb, C, L).real
    K = hippox.kernel_dplr(Lam, P, B, ref_c_tilde_dplr(C, Lam, P, dt, L, True), dt, L)
    assert rel_err(K, half) > 1e-3
    Z = np.zeros_like(P)
    Ab, Bb = ref_diag_system(Lam, B, dt, "bilinear", L)
    K0 = hippox.kernel_dplr(Lam, Z, B, ref_c_tilde(C, Ab, L), dt, L)
    assert rel_err(K0, 2 * ref_kernel(Ab, Bb, C, L).real) <= 1e-10


@pytest.mark.parametrize("rank", [1, 2])
def test_kernel_dplr_float32(rng, rank):
    H, M, L = 4, 8, 301
    Lam = random_lambda(rng, H, M)
    P = 0.5 * crandn(rng, rank, H, M)
    B, C = crandn(rng, H, M), crandn(rng, H, M)
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(0.1), H))
    ref = ref_dplr(Lam, P, B, C, dt, L, True)
    Ct = ref_c_tilde_dplr(C, Lam, P, dt, L, True)
    c64 = lambda x: x.astype(np.complex64)  # noqa: E731
    K = hippox.kernel_dplr(c64(Lam), c64(P), c64(B), c64(Ct), dt.astype(np.float32), L)
    assert K.dtype == np.float32
    assert rel_err(K, ref) <= 1e-4
    jaxpr = str(
        jax.make_jaxpr(lambda *a: hippox.kernel_dplr(*a, L))(
            c64(Lam), c64(P), c64(B), c64(Ct), dt.astype(np.float32)
        )
    )
    assert "f64" not in jaxpr and "c128" not in jaxpr
    # dplr_c_tilde in complex64 on the closed system.
    Ct32 = hippox.dplr_c_tilde(c64(C), c64(Lam), c64(P), dt.astype(np.float32), L)
    assert Ct32.dtype == np.complex64
    np.testing.assert_allclose(Ct32, Ct, rtol=0, atol=1e-4 * np.max(np.abs(Ct)))


def ref_real_bilinear_kernel(A, b, c, dt, L):
    """K[h, l] = c[h] Ab^l Bb of the real bilinear discretisation of (A, b), float64."""
    N = A.shape[0]
    out = np.zeros((len(dt), L))
    for h in range(len(dt)):
        lhs = np.eye(N) - dt[h] / 2 * A
        ab = np.linalg.solve(lhs, np.eye(N) + dt[h] / 2 * A)
        x = np.linalg.solve(lhs, dt[h] * b)
        for l in range(L):
            out[h, l] = c[h] @ x
            x = ab @ x
    return out


@pytest.mark.parametrize(
    ("measure", "rank", "L"), [("legs", 1, 64), ("legs", 1, 75), ("legt", 2, 33)]
)
def test_kernel_dplr_hippo_real_system(rng, measure, rank, L):
    """NPLR arrays with conj_sym=True are exactly the real HiPPO system: C = c V."""
    N, H = 8, 2
    Lam, P, B, V = (np.asarray(x) for x in hippox.nplr(measure, N, rank=rank, dtype=jnp.float64))
    A, b = (np.asarray(x) for x in hippox.transition(measure, N, dtype=jnp.float64))
    dt = np.array([0.01, 0.1])
    c = rng.standard_normal((H, N))
    ref = ref_real_bilinear_kernel(A, b, c, dt, L)
    C = c @ V  # (H, N/2): c V_full = [c V, conj(c V)]
    P = P[:, None]  # (rank, 1, M): shared by the channels (a 2-D P with rank == H is ambiguous)
    Ct = hippox.dplr_c_tilde(C, Lam, P, dt, L)
    K = hippox.kernel_dplr(Lam, P, B, Ct, dt, L)
    assert rel_err(K, ref) <= 1e-10
    np.testing.assert_allclose(hippox.dplr_c_from_tilde(Ct, Lam, P, dt, L), C, atol=1e-11)
    # The same with the closed arrays and conj_sym=False.
    Ctf = hippox.dplr_c_tilde(closed(C), closed(Lam), closed(P), dt, L, conj_sym=False)
    np.testing.assert_allclose(Ctf, closed(np.asarray(Ct)), rtol=1e-10, atol=1e-11)
    Kf = hippox.kernel_dplr(closed(Lam), closed(P), closed(B), Ctf, dt, L, conj_sym=False)
    assert rel_err(Kf, ref) <= 1e-10


def test_dplr_shared_p_broadcasts_over_channels(rng):
    """A (rank, M) P is shared by all channels (its rank axis is not matched to H)."""
    H, M, R, L = 3, 4, 2, 12
    Lam, P = random_lambda(rng, H, M), 0.5 * crandn(rng, R, M)
    B, C = crandn(rng, H, M), crandn(rng, H, M)
    dt = rng.uniform(0.05, 0.3, H)
    Pb = np.broadcast_to(P[:, None], (R, H, M))
    Ct = hippox.dplr_c_tilde(C, Lam, P, dt, L)
    np.testing.assert_allclose(
        Ct, ref_c_tilde_dplr(C, Lam, Pb, dt, L, True), rtol=1e-11, atol=1e-12
    )
    K = hippox.kernel_dplr(Lam, P, B, Ct, dt, L)
    assert rel_err(K, ref_dplr(Lam, Pb, B, C, dt, L, True)) <= 1e-10


@pytest.mark.parametrize("conj_sym", [True, False])
def test_c_tilde_round_trip_and_kernel(rng, conj_sym):
    H, M, R, L = 3, 6, 2, 40
    Lam, P = random_lambda(rng, H, M), 0.5 * crandn(rng, R, H, M)
    B, C = crandn(rng, H, M), crandn(rng, H, M)
    dt = rng.uniform(0.01, 0.3, H)
    Ct = hippox.dplr_c_tilde(C, Lam, P, dt, L, conj_sym=conj_sym)
    np.testing.assert_allclose(
        Ct, ref_c_tilde_dplr(C, Lam, P, dt, L, conj_sym), rtol=1e-11, atol=1e-12
    )
    np.testing.assert_allclose(
        hippox.dplr_c_from_tilde(Ct, Lam, P, dt, L, conj_sym=conj_sym), C, rtol=1e-10, atol=1e-11
    )
    ref = ref_dplr(Lam, P, B, C, dt, L, conj_sym)
    K = hippox.kernel_dplr(Lam, P, B, Ct, dt, L, conj_sym=conj_sym)
    assert rel_err(K, ref) <= 1e-10
    # L = 1 and an odd length exercise the repeated squaring.
    for Lx in (1, 13):
        np.testing.assert_allclose(
            hippox.dplr_c_tilde(C, Lam, P, dt, Lx, conj_sym=conj_sym),
            ref_c_tilde_dplr(C, Lam, P, dt, Lx, conj_sym),
            rtol=1e-11,
            atol=1e-12,
        )


def test_kernel_dplr_jit_vmap(rng):
    H, M, R, L = 3, 4, 1, 24
    Lam, P = random_lambda(rng, H, M), 0.5 * crandn(rng, R, H, M)
    B, Ct = crandn(rng, H, M), crandn(rng, H, M)
    dt = rng.uniform(0.01, 0.2, H)
    K = hippox.kernel_dplr(Lam, P, B, Ct, dt, L)
    Kj = jax.jit(hippox.kernel_dplr, static_argnames=("L",))(Lam, P, B, Ct, dt, L=L)
    Kv = jax.vmap(
        lambda lam, p, b, c, d: hippox.kernel_dplr(lam, p, b, c, d, L), in_axes=(0, 1, 0, 0, 0)
    )(Lam, P, B, Ct, dt)
    np.testing.assert_allclose(Kj, K, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(Kv, K, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("rank", [1, 3])
def test_kernel_dplr_grads(rng, rank):
    H, M, L = 2, 2, 6
    lre, lim = -rng.uniform(0.2, 1.0, (H, M)), rng.standard_normal((H, M))
    P, B, C = 0.5 * crandn(rng, rank, H, M), crandn(rng, H, M), crandn(rng, H, M)
    dt = rng.uniform(0.05, 0.3, H)

    def f(lre, pre, cre, dt):
        return hippox.kernel_dplr(
            lre + 1j * lim, pre + 1j * P.imag, B, cre + 1j * C.imag, dt, L, chunk_size=3
        )

    check_grads(f, (lre, P.real, C.real, dt), order=1, modes=["rev"])
    if rank > 1:
        return
    check_grads(
        lambda c, d: hippox.dplr_c_tilde(c + 0j, lre + 1j * lim, P, d, 5).real,
        (C.real, dt),
        order=1,
        modes=["rev"],
    )


def test_small_memory_budget_groups_channels(rng, monkeypatch):
    """With a tiny budget the channels are processed in lax.map groups (padded): same values."""
    monkeypatch.setattr(kernels, "MEMORY_BUDGET", 300)  # diag: 2 channels per group (1 padded)
    H, M, L = 5, 3, 37  # shapes used by no other test, so nothing comes from the jit cache
    Lam, P = random_lambda(rng, H, M), 0.5 * crandn(rng, 1, H, M)
    B, C = crandn(rng, H, M), crandn(rng, H, M)
    dt = rng.uniform(0.01, 0.3, H)
    Ab, Bb = ref_diag_system(Lam, B, dt, "dss", L)
    K = hippox.kernel_diag(Lam, B, C, dt, L, method="dss")
    assert rel_err(K, 2 * ref_kernel(Ab, Bb, C, L).real) <= 1e-10
    ref = ref_dplr(Lam, P, B, C, dt, L, True)
    K = hippox.kernel_dplr(Lam, P, B, ref_c_tilde_dplr(C, Lam, P, dt, L, True), dt, L)
    assert rel_err(K, ref) <= 1e-10


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_dplr_equal_across_memory_budgets(dtype, rng):
    """`kernel_dplr(memory_budget=)`: every budget gives the dense reference's kernel, and
    the budget really sets the node chunks (a tiny one maps, a huge one does not)."""
    H, M, L, R = 5, 6, 37, 2
    Lam, P = random_lambda(rng, H, M), 0.3 * crandn(rng, R, H, M)
    B, C = crandn(rng, H, M), crandn(rng, H, M)
    dt = rng.uniform(0.05, 0.3, H)
    Ct = ref_c_tilde_dplr(C, Lam, P, dt, L, False)
    ref = ref_dplr(Lam, P, B, C, dt, L, False)
    cd = np.complex64 if dtype == np.float32 else np.complex128
    args = [jnp.asarray(a, cd) for a in (Lam, P, B, Ct)] + [jnp.asarray(dt, dtype)]
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for budget in (64, 4096, 1 << 40):
        K = hippox.kernel_dplr(*args, L, conj_sym=False, memory_budget=budget)
        assert K.dtype == np.dtype(dtype)
        assert rel_err(K, ref) <= tol, budget

    def n_maps(budget):
        fn = lambda *a: hippox.kernel_dplr(*a, L, conj_sym=False, memory_budget=budget)  # noqa: E731
        return str(jax.make_jaxpr(fn)(*args)).count("scan[")

    assert n_maps(64) >= 1 and n_maps(1 << 40) == 0
    with pytest.raises(ValueError, match="`memory_budget`"):
        hippox.kernel_dplr(*args, L, memory_budget=0)


def test_kernels_do_not_materialise_hnl():
    """The compiled kernels need far less scratch memory than one (H, M, L) array."""
    H, M, L = 64, 32, 8192
    full = H * M * L * 8  # bytes of an (H, M, L) complex64 array: 128 MiB
    f32 = jax.ShapeDtypeStruct
    lam, vec, dt = f32((H, M), jnp.complex64), f32((H, M), jnp.complex64), f32((H,), jnp.float32)
    p = f32((1, H, M), jnp.complex64)
    for fn, args in (
        (lambda a, b, c, d: hippox.kernel_diag(a, b, c, d, L), (lam, vec, vec, dt)),
        (lambda a, p, b, c, d: hippox.kernel_dplr(a, p, b, c, d, L), (lam, p, vec, vec, dt)),
    ):
        ma = jax.jit(fn).lower(*args).compile().memory_analysis()
        if ma is None:  # pragma: no cover - backend without memory analysis
            pytest.skip("no memory analysis on this backend")
        assert ma.temp_size_in_bytes < full / 2, ma.temp_size_in_bytes


# --------------------------------------------------------------------------- errors


def test_errors(rng):
    Lam, B, C, dt = random_lambda(rng, 2, 3), crandn(rng, 2, 3), crandn(rng, 2, 3), np.ones(2)
    with pytest.raises(ValueError, match="`L` must be an integer >= 1"):
        hippox.kernel_diag(Lam, B, C, dt, 0)
    with pytest.raises(TypeError, match="`L` must be an integer"):
        hippox.kernel_diag(Lam, B, C, dt, 4.0)
    with pytest.raises(ValueError, match="`method` must be one of"):
        hippox.kernel_diag(Lam, B, C, dt, 4, method="euler")
    with pytest.raises(ValueError, match="`B` must have shape"):
        hippox.kernel_diag(Lam, B[:, :2], C, dt, 4)
    with pytest.raises(ValueError, match="must broadcast together"):
        hippox.kernel_diag(Lam, B, C, np.ones(3), 4)
    with pytest.raises(TypeError, match="`dt` must be real"):
        hippox.kernel_diag(Lam, B, C, dt + 0j, 4)
    with pytest.raises(ValueError, match="`chunk_size` must be an integer >= 1"):
        hippox.kernel_diag(Lam, B, C, dt, 4, chunk_size=0)
    with pytest.raises(ValueError, match="`P` must have shape"):
        hippox.kernel_dplr(Lam, B[0], B, C, dt, 4)
    with pytest.raises(ValueError, match="`C_tilde` must have shape"):
        hippox.kernel_dplr(Lam, B[None], B, C[:, :1], dt, 4)
    with pytest.raises(ValueError, match="`C` must have shape"):
        hippox.dplr_c_tilde(C[:, :1], Lam, B[None], dt, 4)
    with pytest.raises(ValueError, match="`Ab` \\(dense\\) must have shape"):
        hippox.kernel_naive(np.ones((2, 3, 4)), np.ones((2, 3)), np.ones((2, 3)), 4, diagonal=False)
    with pytest.raises(ValueError, match="`C` must have shape"):
        hippox.kernel_naive(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 4)), 4)
