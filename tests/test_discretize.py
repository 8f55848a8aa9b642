"""Specification tests of `hippox.discretize` and `hippox.discretize_diag`.

References: `scipy.linalg.expm`, ``A⁻¹(e^{dtA} - I) B``, Gauss-Legendre quadrature of
``∫_0^dt e^{sA} ds B``, and the GBT formula solved with `numpy.linalg.solve`, all in
float64 NumPy; plus the convergence order of each method towards the exact (zoh)
solution as dt -> 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import linalg as sla
from scipy import special

import hippox

DTYPES = (np.float32, np.float64)
GBT_ALPHA = {"forward_euler": 0.0, "bilinear": 0.5, "backward_euler": 1.0}
# Every new (shape, dtype) costs an XLA compilation (~1 s for expm/solve on a loaded
# CPU), so the sizes below are shared between tests on purpose: N in {1, 2, 3, 8, 64}.
MEASURE_SIZES = [
    ("legs", 1),
    ("legs", 2),
    ("legs", 3),
    ("legs", 8),
    ("legs", 64),
    ("legt", 3),
    ("legt", 8),
    ("lagt", 8),
    ("lmu", 8),
    ("fout", 8),
    ("foud", 8),
]


def _tol(dtype, scale=1.0):
    if dtype == np.float32:
        return dict(rtol=2e-5, atol=2e-5 * scale)
    return dict(rtol=1e-11, atol=1e-11 * scale)


def _np(x):
    return np.asarray(x, dtype=np.result_type(np.asarray(x).dtype, np.float64))


def _stable_random(rng, N, M=None):
    """A random A with spectrum in Re < 0 (shifted Gaussian) and a random B."""
    A = rng.standard_normal((N, N)) / np.sqrt(N)
    A = A - (np.abs(np.linalg.eigvals(A).real).max() + 0.5) * np.eye(N)
    B = rng.standard_normal(N if M is None else (N, M))
    return A, B


def gbt_ref(A, B, dt, alpha):
    N = A.shape[0]
    lhs = np.eye(N) - alpha * dt * A
    Ab = np.linalg.solve(lhs, np.eye(N) + (1 - alpha) * dt * A)
    Bb = np.linalg.solve(lhs, dt * B)
    return Ab, Bb


def zoh_quadrature_B(A, B, dt, order=40):
    """∫_0^dt expm(sA) ds B by Gauss-Legendre quadrature."""
    x, w = special.roots_legendre(order)
    s = dt / 2 * (x + 1)
    return sum(wi * dt / 2 * sla.expm(si * A) @ B for si, wi in zip(s, w, strict=True))


# ------------------------------------------------------------------------- check values


@pytest.mark.parametrize("dtype", DTYPES)
def test_legs_bilinear_check_values(dtype):
    A, B = hippox.transition("legs", 3, dtype=dtype)
    Ab, Bb = hippox.discretize(A, B, 0.1, method="bilinear")
    assert Ab.dtype == dtype and Bb.dtype == dtype
    Ab_ref = [[0.904762, 0, 0], [-0.149961, 0.818182, 0], [-0.159930, -0.306165, 0.739130]]
    np.testing.assert_allclose(Ab, Ab_ref, atol=1e-6)
    np.testing.assert_allclose(Bb, [0.095238, 0.149961, 0.159930], atol=1e-6)


# ------------------------------------------------------------------ references per method


@pytest.mark.parametrize(
    "measure,N,dtype",
    [(m, N, np.float64) for m, N in MEASURE_SIZES if N != 2]
    + [(m, 8, np.float32) for m in ("legs", "legt", "lagt", "fout")],
)
def test_zoh_matches_expm(measure, N, dtype):
    A, B = hippox.transition(measure, N, dtype=dtype)
    dt = 0.03
    Ab, Bb = hippox.discretize(A, B, dt, method="zoh")
    assert Ab.shape == (N, N) and Bb.shape == (N,)
    assert Ab.dtype == dtype and Bb.dtype == dtype
    A64, B64 = _np(A), _np(B)
    E = sla.expm(dt * A64)
    np.testing.assert_allclose(_np(Ab), E, **_tol(dtype, np.abs(E).max()))
    Bb_ref = zoh_quadrature_B(A64, B64, dt)
    np.testing.assert_allclose(_np(Bb), Bb_ref, **_tol(dtype, np.abs(Bb_ref).max()))
    if measure == "legs":  # invertible A: closed form A⁻¹ (e^{dtA} - I) B
        np.testing.assert_allclose(
            _np(Bb),
            np.linalg.solve(A64, (E - np.eye(N)) @ B64),
            **_tol(dtype, np.abs(Bb_ref).max()),
        )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ("bilinear", "forward_euler", "backward_euler"))
@pytest.mark.parametrize("measure,N", MEASURE_SIZES)
def test_named_gbt_methods_match_formula(measure, N, method, dtype):
    A, B = hippox.transition(measure, N, dtype=dtype)
    dt = 0.01
    Ab, Bb = hippox.discretize(A, B, dt, method=method)
    assert Ab.dtype == dtype and Bb.dtype == dtype
    Ab_ref, Bb_ref = gbt_ref(_np(A), _np(B), dt, GBT_ALPHA[method])
    np.testing.assert_allclose(_np(Ab), Ab_ref, **_tol(dtype, np.abs(Ab_ref).max()))
    np.testing.assert_allclose(_np(Bb), Bb_ref, **_tol(dtype, np.abs(Bb_ref).max()))


@pytest.mark.parametrize("alpha", (0.0, 0.2, 0.5, 0.75, 1.0))
@pytest.mark.parametrize("N", (1, 3, 8))
def test_gbt_random_system(alpha, N, rng):
    A, B = _stable_random(rng, N)
    dt = float(rng.uniform(0.01, 0.5))
    Ab, Bb = hippox.discretize(A, B, dt, method="gbt", alpha=alpha)
    Ab_ref, Bb_ref = gbt_ref(A, B, dt, alpha)
    np.testing.assert_allclose(Ab, Ab_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Bb, Bb_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("N", (1, 3, 8))
def test_zoh_random_system(N, rng):
    A, B = _stable_random(rng, N)
    dt = float(rng.uniform(0.05, 0.8))
    Ab, Bb = hippox.discretize(A, B, dt, method="zoh")
    np.testing.assert_allclose(Ab, sla.expm(dt * A), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Bb, zoh_quadrature_B(A, B, dt), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method,alpha", list(GBT_ALPHA.items()))
def test_gbt_endpoints_equal_named_methods(method, alpha, dtype):
    A, B = hippox.transition("legt", 8, dtype=dtype)
    named = hippox.discretize(A, B, 0.07, method=method)
    gbt = hippox.discretize(A, B, 0.07, method="gbt", alpha=alpha)
    for x, y in zip(named, gbt, strict=True):
        np.testing.assert_array_equal(x, y)


def test_default_method_is_bilinear():
    A, B = hippox.transition("legs", 3, dtype=np.float64)
    for x, y in zip(
        hippox.discretize(A, B, 0.1), hippox.discretize(A, B, 0.1, method="bilinear"), strict=True
    ):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------- convergence order


@pytest.mark.parametrize(
    "method,order", [("forward_euler", 1), ("backward_euler", 1), ("bilinear", 2), ("gbt", 1)]
)
def test_convergence_order(method, order):
    """Global error at T = 1 of the free response Ab^K and of the step response Σ Ab^k Bb.

    Halving dt divides the error by 2**order (order 1 for Euler and GBT alpha != 1/2,
    order 2 for bilinear); zoh is exact for piecewise-constant input.
    """
    A, B = (np.asarray(x) for x in hippox.transition("legs", 3, dtype=np.float64))
    N, T = 3, 1.0
    exact_free = sla.expm(T * A)
    exact_step = np.linalg.solve(A, (exact_free - np.eye(N)) @ B)  # ∫_0^T e^{sA} ds B
    kwargs = {"alpha": 0.3} if method == "gbt" else {}
    errors = []
    for K in (32, 64, 128):
        Ab, Bb = (np.asarray(x) for x in hippox.discretize(A, B, T / K, method=method, **kwargs))
        free = np.linalg.matrix_power(Ab, K)
        step = np.linalg.solve(np.eye(N) - Ab, (np.eye(N) - free) @ Bb)  # Σ_{k<K} Ab^k Bb
        errors.append([np.abs(free - exact_free).max(), np.abs(step - exact_step).max()])
    errors = np.array(errors)
    ratios = errors[:-1] / errors[1:]
    np.testing.assert_allclose(ratios, 2.0**order, rtol=0.15)
    # zoh is exact at every step size
    Ab, Bb = (np.asarray(x) for x in hippox.discretize(A, B, T / 32, method="zoh"))
    free = np.linalg.matrix_power(Ab, 32)
    np.testing.assert_allclose(free, exact_free, atol=1e-12)
    np.testing.assert_allclose(
        np.linalg.solve(np.eye(N) - Ab, (np.eye(N) - free) @ Bb), exact_step, atol=1e-12
    )


# -------------------------------------------------------------------- shapes and batching


@pytest.mark.parametrize("method", ("zoh", "bilinear", "backward_euler"))
def test_batch_of_dt(method, rng):
    A, B = hippox.transition("legs", 8, dtype=np.float64)
    dt = rng.uniform(0.001, 0.1, size=(3,))
    Ab, Bb = hippox.discretize(A, B, dt, method=method)
    assert Ab.shape == (3, 8, 8) and Bb.shape == (3, 8)
    for i in range(3):
        Ab_i, Bb_i = hippox.discretize(A, B, float(dt[i]), method=method)
        np.testing.assert_allclose(Ab[i], Ab_i, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(Bb[i], Bb_i, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("method", ("zoh", "bilinear", "forward_euler"))
def test_batched_A_with_per_system_dt(method, rng):
    H, N = 3, 8
    systems = [_stable_random(rng, N) for _ in range(H)]
    A = np.stack([s[0] for s in systems])
    B = np.stack([s[1] for s in systems])
    dt = rng.uniform(0.01, 0.2, size=(H,))
    Ab, Bb = hippox.discretize(A, B, dt, method=method)
    assert Ab.shape == (H, N, N) and Bb.shape == (H, N)
    for h in range(H):
        ref = hippox.discretize(A[h], B[h], float(dt[h]), method=method)
        np.testing.assert_allclose(Ab[h], ref.Ab, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(Bb[h], ref.Bb, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("method", ("zoh", "bilinear", "forward_euler", "backward_euler"))
def test_matrix_B(method, rng):
    N, M = 8, 2
    A, B = _stable_random(rng, N, M)
    Ab, Bb = hippox.discretize(A, B, 0.05, method=method)
    assert Ab.shape == (N, N) and Bb.shape == (N, M)
    for m in range(M):
        Ab_m, Bb_m = hippox.discretize(A, B[:, m], 0.05, method=method)
        np.testing.assert_allclose(Ab_m, Ab, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(Bb[:, m], Bb_m, rtol=1e-12, atol=1e-13)
    if method == "zoh":
        np.testing.assert_allclose(Bb, zoh_quadrature_B(A, B, 0.05), rtol=1e-11, atol=1e-12)
    else:
        np.testing.assert_allclose(
            Bb, gbt_ref(A, B, 0.05, GBT_ALPHA[method])[1], rtol=1e-12, atol=1e-13
        )


def test_matrix_B_with_batch_of_dt():
    A, _ = hippox.transition("legs", 8, dtype=np.float64)
    B = np.arange(16.0).reshape(8, 2)
    dt = np.array([0.1, 0.2, 0.3])
    Ab, Bb = hippox.discretize(A, B, dt, method="bilinear")
    assert Ab.shape == (3, 8, 8) and Bb.shape == (3, 8, 2)
    np.testing.assert_allclose(Bb[2], gbt_ref(np.asarray(A), B, 0.3, 0.5)[1], rtol=1e-12)


# ------------------------------------------------------------------------ transformations


@pytest.mark.parametrize("method", ("zoh", "bilinear", "forward_euler", "backward_euler"))
def test_jit_and_vmap(method):
    A, B = hippox.transition("legs", 8, dtype=np.float64)
    dts = jnp.array([0.01, 0.1, 0.5])
    eager = hippox.discretize(A, B, dts, method=method)
    jitted = jax.jit(lambda a, b, d: hippox.discretize(a, b, d, method=method))(A, B, dts)
    vmapped = jax.vmap(lambda d: hippox.discretize(A, B, d, method=method))(dts)
    for x, y, z in zip(eager, jitted, vmapped, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(x, z, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("method", ("zoh", "bilinear", "forward_euler", "backward_euler"))
def test_grad_wrt_dt(method):
    A, B = hippox.transition("legs", 3, dtype=np.float64)
    # zoh's forward mode is checked against the closed form in test_zoh_derivative_closed_form
    modes = ("rev",) if method == "zoh" else ("fwd", "rev")
    check_grads(lambda d: hippox.discretize(A, B, d, method=method), (0.1,), order=1, modes=modes)


def test_grad_wrt_system_bilinear():
    A, B = hippox.transition("legs", 3, dtype=np.float64)
    check_grads(
        lambda a, b: hippox.discretize(a, b, 0.1, method="bilinear"),
        (A, B),
        order=1,
        modes=("rev",),
    )


@pytest.mark.slow
@pytest.mark.parametrize("method", ("zoh", "bilinear", "forward_euler", "backward_euler"))
def test_second_order_grads(method):
    A, B = hippox.transition("legs", 3, dtype=np.float64)
    check_grads(
        lambda d: hippox.discretize(A, B, d, method=method), (0.1,), order=2, modes=("fwd", "rev")
    )
    check_grads(
        lambda a, b: hippox.discretize(a, b, 0.1, method=method),
        (A, B),
        order=2,
        modes=("fwd", "rev"),
    )


def test_zoh_derivative_closed_form():
    """d/d dt exp(dt A) = A exp(dt A) and d/d dt Bb = exp(dt A) B."""
    A, B = (np.asarray(x) for x in hippox.transition("legs", 3, dtype=np.float64))
    dt = 0.3
    dAb, dBb = jax.jacfwd(lambda d: hippox.discretize(A, B, d, method="zoh"))(dt)
    E = sla.expm(dt * A)
    np.testing.assert_allclose(dAb, A @ E, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(dBb, E @ B, rtol=1e-11, atol=1e-12)


def test_eval_shape():
    A = jax.ShapeDtypeStruct((6, 6), jnp.float32)
    B = jax.ShapeDtypeStruct((6, 2), jnp.float32)
    dt = jax.ShapeDtypeStruct((5,), jnp.float32)
    out = jax.eval_shape(lambda a, b, d: hippox.discretize(a, b, d, method="zoh"), A, B, dt)
    assert out.Ab.shape == (5, 6, 6) and out.Bb.shape == (5, 6, 2)
    assert out.Ab.dtype == jnp.float32


def test_dtype_follows_inputs():
    A, B = hippox.transition("legs", 3)  # float32
    assert hippox.discretize(A, B, 0.1).Ab.dtype == np.float32  # Python float is weak
    assert hippox.discretize(A, B, jnp.float32(0.1), method="zoh").Bb.dtype == np.float32
    A64, B64 = hippox.transition("legs", 3, dtype=np.float64)
    assert hippox.discretize(A64, B64, 0.1).Ab.dtype == np.float64
    Ab, Bb = hippox.discretize(
        np.eye(3, dtype=np.int32) * -1, np.ones(3, np.int32), 1, method="backward_euler"
    )
    assert jnp.issubdtype(Ab.dtype, jnp.floating)
    np.testing.assert_allclose(Ab, 0.5 * np.eye(3))
    np.testing.assert_allclose(Bb, [0.5, 0.5, 0.5])


# ---------------------------------------------------------------------------------- errors


def _legs(N=3):
    return hippox.transition("legs", N, dtype=np.float64)


@pytest.mark.parametrize("method", ("euler", "ZOH", "", None, "dss"))
def test_bad_method(method):
    with pytest.raises(ValueError, match="`method`"):
        hippox.discretize(*_legs(), 0.1, method=method)


@pytest.mark.parametrize("method", ("zoh", "bilinear", "forward_euler", "backward_euler"))
def test_alpha_only_with_gbt(method):
    with pytest.raises(ValueError, match="`alpha`"):
        hippox.discretize(*_legs(), 0.1, method=method, alpha=0.5)


@pytest.mark.parametrize(
    "alpha,exc",
    [
        (None, ValueError),
        (-0.1, ValueError),
        (1.5, ValueError),
        ("0.5", TypeError),
        (float("nan"), ValueError),
    ],
)
def test_bad_gbt_alpha(alpha, exc):
    with pytest.raises(exc, match="`alpha`"):
        hippox.discretize(*_legs(), 0.1, method="gbt", alpha=alpha)


@pytest.mark.parametrize("shape", [(3,), (3, 4), (2, 3, 4), ()])
def test_bad_A_shape(shape):
    with pytest.raises(ValueError, match="`A`"):
        hippox.discretize(np.ones(shape), np.ones(3), 0.1, method="zoh")


@pytest.mark.parametrize("shape", [(4,), (2,), (4, 2), (2, 2, 3, 1), ()])
def test_bad_B_shape(shape):
    with pytest.raises(ValueError, match="`B`"):
        hippox.discretize(-np.eye(3), np.ones(shape), 0.1, method="bilinear")


# ------------------------------------------------------------------------ discretize_diag


def _diag_system(rng, N, M=None):
    Lam = -rng.uniform(0.1, 2.0, N) + 1j * rng.uniform(-10.0, 10.0, N)
    shape = (N,) if M is None else (N, M)
    B = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return Lam, B


@pytest.mark.parametrize("method", ("zoh", "bilinear"))
@pytest.mark.parametrize("N,M", [(1, None), (8, None), (8, 2)])
def test_diag_matches_dense(method, N, M, rng):
    Lam, B = _diag_system(rng, N, M)
    dt = float(rng.uniform(0.01, 0.3))
    Ab, Bb = hippox.discretize_diag(Lam, B, dt, method=method)
    assert Ab.shape == (N,) and Bb.shape == B.shape
    assert Ab.dtype == np.complex128 and Bb.dtype == np.complex128
    dense = hippox.discretize(np.diag(Lam), B, dt, method=method)
    np.testing.assert_allclose(np.diag(np.asarray(dense.Ab)), Ab, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.asarray(dense.Ab) - np.diag(np.asarray(Ab)), 0, atol=1e-13)
    np.testing.assert_allclose(dense.Bb, Bb, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("method", ("zoh", "bilinear"))
def test_diag_scalar_formulas_on_nplr_spectrum(method):
    """On the LegS NPLR eigenvalues: zoh = exp(dtΛ), (e^{dtΛ}-1)/Λ B; bilinear = Tustin."""
    Lam, _, B, _ = (np.asarray(x) for x in hippox.nplr("legs", 16, dtype=np.float64))
    dt = 0.02
    Ab, Bb = hippox.discretize_diag(Lam, B, dt, method=method)
    if method == "zoh":
        Ab_ref = np.exp(dt * Lam)
        Bb_ref = np.array([(np.exp(dt * lam) - 1) / lam * b for lam, b in zip(Lam, B, strict=True)])
    else:
        Ab_ref = (1 + dt * Lam / 2) / (1 - dt * Lam / 2)
        Bb_ref = dt / (1 - dt * Lam / 2) * B
    np.testing.assert_allclose(Ab, Ab_ref, rtol=1e-13)
    np.testing.assert_allclose(Bb, Bb_ref, rtol=1e-12)


@pytest.mark.parametrize("L", (1, 16, 1000))
def test_dss_normalisation(L, rng):
    Lam, B = _diag_system(rng, 6)
    dt = 0.05
    Ab, Bb = hippox.discretize_diag(Lam, B, dt, method="dss", L=L)
    Ab_zoh, Bb_zoh = (np.asarray(x) for x in hippox.discretize_diag(Lam, B, dt, method="zoh"))
    np.testing.assert_allclose(Ab, Ab_zoh, rtol=1e-14)
    np.testing.assert_allclose(Bb, Bb_zoh / (Ab_zoh**L - 1), rtol=1e-10)


def test_dss_kernel_sums_to_geometric_series(rng):
    """DSS normalisation: Σ_{l<L} Ab^l Bb = Bb_zoh (Ab^L - 1)/(Ab - 1)/(Ab^L - 1) = B/Λ."""
    Lam, B = _diag_system(rng, 4)
    for dt, L in ((0.1, 50), (0.03, 7)):
        Ab, Bb = (np.asarray(x) for x in hippox.discretize_diag(Lam, B, dt, method="dss", L=L))
        series = sum(Ab**l for l in range(L)) * Bb
        np.testing.assert_allclose(series, B / Lam, rtol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_diag_batch_of_dt(dtype, rng):
    H, N = 4, 6
    Lam, B = _diag_system(rng, N)
    cdtype = np.complex64 if dtype == np.float32 else np.complex128
    Lam, B = Lam.astype(cdtype), B.astype(cdtype)
    dt = rng.uniform(0.001, 0.1, size=(H,)).astype(dtype)
    for method, kw in (("zoh", {}), ("bilinear", {}), ("dss", {"L": 8})):
        Ab, Bb = hippox.discretize_diag(Lam, B, dt, method=method, **kw)
        assert Ab.shape == (H, N) and Bb.shape == (H, N)
        assert Ab.dtype == cdtype and Bb.dtype == cdtype
        for h in range(H):
            Ab_h, Bb_h = hippox.discretize_diag(Lam, B, dt[h], method=method, **kw)
            np.testing.assert_allclose(Ab[h], Ab_h, rtol=1e-6 if dtype == np.float32 else 1e-14)
            np.testing.assert_allclose(Bb[h], Bb_h, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_diag_per_channel_systems(rng):
    H, N = 3, 4
    Lam = np.stack([_diag_system(rng, N)[0] for _ in range(H)])
    B = np.stack([_diag_system(rng, N)[1] for _ in range(H)])
    dt = rng.uniform(0.01, 0.1, size=(H,))
    Ab, Bb = hippox.discretize_diag(Lam, B, dt, method="zoh")
    assert Ab.shape == (H, N) and Bb.shape == (H, N)
    np.testing.assert_allclose(Ab, np.exp(dt[:, None] * Lam), rtol=1e-13)
    np.testing.assert_allclose(Bb, (np.exp(dt[:, None] * Lam) - 1) / Lam * B, rtol=1e-12)


def test_diag_real_float32():
    Lam = -jnp.arange(1.0, 5.0, dtype=jnp.float32)
    Ab, Bb = hippox.discretize_diag(Lam, jnp.ones(4, jnp.float32), 0.1, method="zoh")
    assert Ab.dtype == np.float32 and Bb.dtype == np.float32
    lam = -np.arange(1.0, 5.0)
    np.testing.assert_allclose(Ab, np.exp(0.1 * lam), rtol=1e-6)
    np.testing.assert_allclose(Bb, np.expm1(0.1 * lam) / lam, rtol=1e-5)


@pytest.mark.parametrize("method", ("zoh", "bilinear", "dss"))
def test_diag_jit_vmap_grad(method, rng):
    Lam, B = _diag_system(rng, 5)
    kw = {"L": 10} if method == "dss" else {}
    dts = jnp.array([0.01, 0.05, 0.2])
    eager = hippox.discretize_diag(Lam, B, dts, method=method, **kw)
    jitted = jax.jit(lambda d: hippox.discretize_diag(Lam, B, d, method=method, **kw))(dts)
    vmapped = jax.vmap(lambda d: hippox.discretize_diag(Lam, B, d, method=method, **kw))(dts)
    for x, y, z in zip(eager, jitted, vmapped, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-13)
        np.testing.assert_allclose(x, z, rtol=1e-13)
    # |Im Lambda| up to 10 makes the third derivative large: a small finite-difference step
    check_grads(
        lambda d: hippox.discretize_diag(Lam, B, d, method=method, **kw),
        (0.1,),
        order=1,
        modes=("fwd", "rev"),
        eps=1e-6,
    )


@pytest.mark.slow
@pytest.mark.parametrize("method", ("zoh", "bilinear", "dss"))
def test_diag_second_order_grads(method, rng):
    Lam, B = _diag_system(rng, 5)
    kw = {"L": 10} if method == "dss" else {}
    check_grads(
        lambda d: hippox.discretize_diag(Lam, B, d, method=method, **kw),
        (0.1,),
        order=2,
        modes=("fwd", "rev"),
        eps=1e-5,
        rtol=1e-4,
    )
    check_grads(
        lambda lr, li: hippox.discretize_diag(lr + 1j * li, B, 0.1, method=method, **kw),
        (Lam.real, Lam.imag),
        order=2,
        modes=("fwd", "rev"),
        eps=1e-5,
        rtol=1e-4,
    )


def test_dss_needs_L():
    with pytest.raises(ValueError, match="`L`"):
        hippox.discretize_diag(-np.ones(3), np.ones(3), 0.1, method="dss")


@pytest.mark.parametrize("method", ("zoh", "bilinear"))
def test_L_only_with_dss(method):
    with pytest.raises(ValueError, match="`L`"):
        hippox.discretize_diag(-np.ones(3), np.ones(3), 0.1, method=method, L=8)


@pytest.mark.parametrize("L,exc", [(0, ValueError), (-3, ValueError), (8.0, TypeError)])
def test_bad_L(L, exc):
    with pytest.raises(exc, match="`L`"):
        hippox.discretize_diag(-np.ones(3), np.ones(3), 0.1, method="dss", L=L)


@pytest.mark.parametrize("method", ("forward_euler", "ZOH", None))
def test_diag_bad_method(method):
    with pytest.raises(ValueError, match="`method`"):
        hippox.discretize_diag(-np.ones(3), np.ones(3), 0.1, method=method)


@pytest.mark.parametrize(
    "Lam_shape,B_shape",
    [((3,), (4,)), ((3,), (2, 3, 1, 1)), ((), (3,)), ((3,), ()), ((3,), (4, 2))],
)
def test_diag_bad_shapes(Lam_shape, B_shape):
    with pytest.raises(ValueError, match="`B`|`Lambda`"):
        hippox.discretize_diag(-np.ones(Lam_shape), np.ones(B_shape), 0.1, method="zoh")
