"""Tests of `hippox.hippo_project`: projections, convergence, sampling, missing values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.test_util import check_grads
from scipy.special import eval_laguerre, eval_legendre

import hippox

ALPHA = {"forward_euler": 0.0, "bilinear": 0.5, "backward_euler": 1.0}
LTI = ("legt", "lmu", "lagt", "glagt", "fout", "legsd")


def transition64(measure, N, **params):
    A, B = hippox.transition(measure, N, dtype=np.float64, **params)
    return np.asarray(A), np.asarray(B)


def np_discretize(A, B, dt, method):
    N = A.shape[0]
    if method == "zoh":
        E = scipy.linalg.expm(np.block([[A * dt, B[:, None] * dt], [np.zeros((1, N + 1))]]))
        return E[:N, :N], E[:N, N]
    al = ALPHA[method]
    lhs = np.eye(N) - al * dt * A
    return np.linalg.solve(lhs, np.eye(N) + (1 - al) * dt * A), np.linalg.solve(lhs, dt * B)


def np_project(f, measure, N, *, dt=None, t=None, method="bilinear"):
    """Float64 loop implementing the documented semantics (dense matrices, NaN skip)."""
    L = len(f)
    if t is None:
        t = np.arange(1, L + 1) * (1.0 if measure == "legs" else dt)
    A, B = transition64(measure, N)
    c = np.zeros(N)
    out = np.zeros((L, N))
    started = False
    for k in range(L):
        step = t[k] - (t[k - 1] if k else 0.0)
        if not np.isnan(f[k]):
            if measure != "legs":
                Ab, Bb = np_discretize(A, B, step, method)
                c = Ab @ c + Bb * f[k]
            elif not started:
                c = np.zeros(N)
                c[0] = f[k]
            else:
                Ab, Bb = np_discretize(A, B, step / t[k], method)
                c = Ab @ c + Bb * f[k]
            started = True
        out[k] = c
    return out


def legendre_reconstruct(c, x):
    """Σ_n c_n sqrt(2n+1) P_n(2x - 1), the scaled LegS basis on [0, 1]."""
    n = np.arange(c.shape[-1])
    return (c * np.sqrt(2 * n + 1) * eval_legendre(n, 2 * x[:, None] - 1)).sum(-1)


# ----------------------------------------------------------------------------- LegS


@pytest.mark.parametrize("method", list(ALPHA))
def test_legs_polynomial_projection_converges(rng, method):
    """Degree-d polynomial, d < N: higher coefficients vanish, error ~ 1/L."""
    N, d = 12, 5
    p = np.polynomial.Polynomial(rng.standard_normal(d + 1))
    x = np.linspace(0, 1, 101)
    gx, gw = np.polynomial.legendre.leggauss(32)
    xs, ws = (gx + 1) / 2, gw / 2
    n = np.arange(N)
    phi = np.sqrt(2 * n[:, None] + 1) * eval_legendre(n[:, None], 2 * xs - 1)
    exact = (ws * p(xs) * phi).sum(1)
    np.testing.assert_allclose(exact[d + 1 :], 0.0, atol=1e-13)
    slope = np.abs(p.deriv()(x)).max() + np.abs(p(x)).max()
    curv = slope + np.abs(p.deriv(2)(x)).max()
    errs = []
    for L in (200, 2000):
        f = p(np.arange(1, L + 1) / L)  # samples at t_k = k + 1, f(s) = p(s / L)
        c = np.asarray(hippox.hippo_project(f, "legs", N, method=method, final_only=True))
        err = np.abs(legendre_reconstruct(c, x) - p(x)).max()
        assert err <= 2.0 * slope / L, (L, err)
        assert np.abs(c - exact).max() <= 1.0 * slope / L
        # components beyond the degree stay (nearly) zero: O(1/L^2) or exactly 0
        assert np.abs(c[d + 1 :]).max() <= curv / L**2 + 1e-13
        errs.append(err)
    assert errs[0] / errs[1] > 7.0  # (at least) first order in 1/L: converges to the projection


def test_legs_constant_is_exact(rng):
    value = rng.standard_normal()
    c = hippox.hippo_project(np.full(500, value), "legs", 8)
    want = np.zeros((500, 8))
    want[:, 0] = value
    np.testing.assert_allclose(c, want, atol=1e-13)


def test_legs_scale_invariance_of_timestamps(rng):
    N, L = 10, 60
    f = rng.standard_normal(L)
    base = hippox.hippo_project(f, "legs", N)
    tau = rng.uniform(0.01, 100.0)
    scaled = hippox.hippo_project(f, "legs", N, timestamps=tau * np.arange(1, L + 1))
    np.testing.assert_allclose(scaled, base, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("method", list(ALPHA))
def test_legs_irregular_timestamps_and_nans_match_dense_loop(rng, method):
    N, L = 9, 80
    t = np.cumsum(rng.uniform(0.05, 2.0, L))
    f = rng.standard_normal(L)
    f[[0, 1, 17, 18, 50]] = np.nan  # leading NaNs: the first observed sample initialises
    got = hippox.hippo_project(f, "legs", N, timestamps=t, method=method)
    want = np_project(f, "legs", N, t=t, method=method)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[:2], 0.0)
    np.testing.assert_allclose(got[18], got[16])


def test_legs_irregular_sampling_converges_to_projection(rng):
    """Smooth signal, random sample times: coefficients -> the continuous projection."""
    N = 6
    fun = lambda s: np.sin(3 * s) + s**2  # noqa: E731
    gx, gw = np.polynomial.legendre.leggauss(64)
    xs, ws = (gx + 1) / 2, gw / 2
    n = np.arange(N)[:, None]
    errs = []
    for L in (300, 3000):
        t = np.sort(rng.uniform(0, 2.0, L))
        t = t[t > 1e-3]
        exact = (ws * fun(xs * t[-1]) * np.sqrt(2 * n + 1) * eval_legendre(n, 2 * xs - 1)).sum(1)
        c = hippox.hippo_project(fun(t), "legs", N, timestamps=t, final_only=True)
        errs.append(np.abs(np.asarray(c) - exact).max())
    assert errs[1] < errs[0] / 3 and errs[1] < 5e-3, errs


def test_legs_batch_and_final_only(rng):
    N, L = 7, 40
    f = rng.standard_normal((2, 3, L))
    f[0, 1, :4] = np.nan
    f[1, 2, 10] = np.nan
    full = hippox.hippo_project(f, "legs", N)
    assert full.shape == (2, 3, L, N)
    last = hippox.hippo_project(f, "legs", N, final_only=True)
    np.testing.assert_allclose(last, full[..., -1, :], rtol=1e-13, atol=1e-15)
    for i, j in np.ndindex(2, 3):
        np.testing.assert_allclose(
            full[i, j], np_project(f[i, j], "legs", N), rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize("measure,kw", [("legs", {}), ("lagt", {"dt": 0.3})])
@pytest.mark.parametrize("N,L", [(1, 5), (4, 1), (1, 1)])
def test_edge_sizes(rng, measure, kw, N, L):
    f = rng.standard_normal(L)
    got = hippox.hippo_project(f, measure, N, **kw)
    assert got.shape == (L, N)
    np.testing.assert_allclose(got, np_project(f, measure, N, dt=kw.get("dt")), rtol=1e-12)
    np.testing.assert_allclose(hippox.hippo_project(f, measure, N, final_only=True, **kw), got[-1])


# ------------------------------------------------------------------ time-invariant


def exact_lti_state(A, B, f_of_s, T, nodes=400):
    """x(T) = ∫_0^T expm((T - s) A) B f(s) ds by Gauss-Legendre quadrature."""
    gx, gw = np.polynomial.legendre.leggauss(nodes)
    s, w = (gx + 1) / 2 * T, gw * T / 2
    return sum(
        wi * fi * (scipy.linalg.expm((T - si) * A) @ B)
        for si, wi, fi in zip(s, w, f_of_s(s), strict=True)
    )


def test_lagt_is_the_laguerre_projection(rng):
    """LagT coefficients -> ∫ f(s) exp(-(T-s)/2) L_n(T-s) ds as dt -> 0."""
    N, T = 6, 3.0
    a, b = rng.uniform(1, 4, 2)
    fun = lambda s: np.sin(a * s) + 0.5 * np.cos(b * s)  # noqa: E731
    gx, gw = np.polynomial.legendre.leggauss(200)
    s, w = (gx + 1) / 2 * T, gw * T / 2
    exact = np.array(
        [(w * fun(s) * np.exp(-(T - s) / 2) * eval_laguerre(n, T - s)).sum() for n in range(N)]
    )
    errs = []
    for L in (100, 200, 400):
        dt = T / L
        c = hippox.hippo_project(fun(np.arange(1, L + 1) * dt), "lagt", N, dt=dt, final_only=True)
        errs.append(np.abs(np.asarray(c) - exact).max() / np.abs(exact).max())
    assert errs[2] < 0.05
    for e0, e1 in zip(errs[:-1], errs[1:], strict=True):
        assert 1.7 < e0 / e1 < 2.3, errs  # first order (samples held over each step)


@pytest.mark.parametrize("measure", LTI)
@pytest.mark.parametrize("method", ["bilinear", "zoh", "backward_euler"])
def test_lti_converges_to_exact_ode_solution(rng, measure, method):
    N, T = 6, 2.0
    a = rng.uniform(1, 4)
    fun = lambda s: np.sin(a * s) + 0.3 * s  # noqa: E731
    A, B = transition64(measure, N)
    exact = exact_lti_state(A, B, fun, T, nodes=150)
    errs = []
    for L in (200, 800):
        dt = T / L
        c = hippox.hippo_project(
            fun(np.arange(1, L + 1) * dt), measure, N, dt=dt, method=method, final_only=True
        )
        errs.append(np.abs(np.asarray(c) - exact).max() / np.abs(exact).max())
    assert errs[1] < errs[0] / 2.5, errs  # first order: 4x smaller for 4x smaller dt
    assert errs[1] < 0.06, errs


@pytest.mark.parametrize("measure", ["legt", "lagt", "fout"])
def test_zoh_is_exact_for_piecewise_constant_input_irregular_times(rng, measure):
    """zoh + timestamps solves the ODE exactly for input held on (t_{k-1}, t_k]."""
    N, L = 6, 25
    t = np.cumsum(rng.uniform(0.01, 0.2, L))
    f = rng.standard_normal(L)
    A, B = transition64(measure, N)
    gx, gw = np.polynomial.legendre.leggauss(20)
    x = np.zeros(N)
    edges = np.concatenate([[0.0], t])
    for k in range(L):  # exact: sum of integrals over each hold interval
        lo, hi = edges[k], edges[k + 1]
        s, w = (gx + 1) / 2 * (hi - lo) + lo, gw * (hi - lo) / 2
        kernel = [scipy.linalg.expm((t[-1] - si) * A) @ B for si in s]
        x += f[k] * np.tensordot(w, kernel, axes=1)
    got = hippox.hippo_project(f, measure, N, timestamps=t, method="zoh", final_only=True)
    np.testing.assert_allclose(got, x, rtol=1e-10, atol=1e-12 * np.abs(x).max())


@pytest.mark.parametrize("method", ["bilinear", "zoh", "forward_euler"])
def test_lti_matches_dense_loop_with_nans_and_timestamps(rng, method):
    N, L = 6, 30
    f = rng.standard_normal(L)
    f[[0, 7, 8, 29]] = np.nan
    dt = 0.05
    got = hippox.hippo_project(f, "legt", N, dt=dt, method=method)
    np.testing.assert_allclose(
        got, np_project(f, "legt", N, dt=dt, method=method), rtol=1e-10, atol=1e-13
    )
    t = np.cumsum(rng.uniform(0.01, 0.1, L))
    got_t = hippox.hippo_project(f, "legt", N, timestamps=t, method=method)
    np.testing.assert_allclose(
        got_t, np_project(f, "legt", N, t=t, method=method), rtol=1e-10, atol=1e-13
    )
    # uniform timestamps reproduce the dt path
    t_uni = np.arange(1, L + 1) * dt
    np.testing.assert_allclose(
        hippox.hippo_project(f, "legt", N, timestamps=t_uni, method=method),
        got,
        rtol=1e-9,
        atol=1e-12,
    )


def test_large_absolute_timestamps_keep_their_resolution_in_float32(rng):
    """Steps are formed in float64 on the host, then cast (float32 resolution at 1e8 is 8)."""
    L = 40
    t = np.concatenate([[1.0], 1e8 + np.cumsum(rng.uniform(0.5, 2.0, L - 1))])
    f = rng.standard_normal(L).astype(np.float32)
    for measure, method in (("lagt", "backward_euler"), ("legs", "bilinear")):
        got = hippox.hippo_project(f, measure, 6, timestamps=t, method=method)
        assert got.dtype == jnp.float32
        want = np_project(f.astype(np.float64), measure, 6, t=t, method=method)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_lti_per_channel_dt_and_batch(rng):
    N, L = 4, 20
    f = rng.standard_normal((3, L))
    dt = np.array([0.01, 0.1, 0.3])
    got = hippox.hippo_project(f, "lmu", N, dt=dt)
    assert got.shape == (3, L, N)
    for h in range(3):
        np.testing.assert_allclose(
            got[h], np_project(f[h], "lmu", N, dt=dt[h]), rtol=1e-11, atol=1e-13
        )
    last = hippox.hippo_project(f, "lmu", N, dt=dt, final_only=True)
    np.testing.assert_allclose(last, got[:, -1], rtol=1e-13, atol=1e-15)
    # measure parameters pass through
    wide = hippox.hippo_project(f[0], "legt", N, dt=0.1, theta=5.0)
    A, B = transition64("legt", N)
    assert not np.allclose(wide, hippox.hippo_project(f[0], "legt", N, dt=0.1))


# --------------------------------------------------------------- dtypes, transforms


@pytest.mark.parametrize("measure,kw", [("legs", {}), ("legt", {"dt": 0.01})])
def test_dtypes_jit_vmap(rng, measure, kw):
    N, L = 8, 50
    f = rng.standard_normal((4, L))
    f32 = hippox.hippo_project(f.astype(np.float32), measure, N, **kw)
    assert f32.dtype == jnp.float32
    f64 = hippox.hippo_project(f, measure, N, **kw)
    assert f64.dtype == jnp.float64
    np.testing.assert_allclose(f32, f64, rtol=1e-4, atol=1e-5 * np.abs(f64).max())
    jitted = jax.jit(lambda x: hippox.hippo_project(x, measure, N, **kw))(f)
    np.testing.assert_allclose(jitted, f64, rtol=1e-12, atol=1e-14)
    vm = jax.vmap(lambda x: hippox.hippo_project(x, measure, N, **kw))(f)
    np.testing.assert_allclose(vm, f64, rtol=1e-12, atol=1e-14)
    ints = hippox.hippo_project(np.arange(L), measure, N, **kw)
    assert jnp.issubdtype(ints.dtype, jnp.floating)


@pytest.mark.parametrize(
    "measure,kw",
    [
        ("legs", {}),
        ("lagt", {"dt": 0.1}),
        ("legs", {"timestamps": np.array([0.5, 1.0, 3.0, 3.5])}),
        ("fout", {"timestamps": np.array([0.1, 0.3, 0.4, 0.9])}),
    ],
)
def test_grads(rng, measure, kw):
    N, L = 4, 4
    f = rng.standard_normal(L)
    w = rng.standard_normal((L, N))

    def loss(x):
        return jnp.sum(w * hippox.hippo_project(x, measure, N, **kw))

    check_grads(loss, (f,), order=1, modes=["rev"])
    # The map f -> c is linear: the gradient is the transposed dense recurrence.
    basis = np.stack(
        [np_project(e, measure, N, dt=kw.get("dt"), t=kw.get("timestamps")) for e in np.eye(L)]
    )
    np.testing.assert_allclose(jax.grad(loss)(f), (basis * w).sum((1, 2)), rtol=1e-10, atol=1e-12)
    if "timestamps" in kw:
        g = jax.grad(lambda t: jnp.sum(w * hippox.hippo_project(f, measure, N, timestamps=t)))(
            jnp.asarray(kw["timestamps"])
        )
        assert np.all(np.isfinite(g))


def test_nan_gradient_is_finite(rng):
    f = rng.standard_normal(12)
    f[3] = np.nan
    g = jax.grad(lambda x: jnp.sum(hippox.hippo_project(x, "legs", 5, final_only=True)))(f)
    assert np.all(np.isfinite(np.delete(np.asarray(g), 3)))
    assert np.asarray(g)[3] == 0.0


def test_errors():
    f = np.ones(10)
    with pytest.raises(ValueError, match="`measure` must be one of"):
        hippox.hippo_project(f, "legx", 4)
    with pytest.raises(ValueError, match="random ablation"):
        hippox.hippo_project(f, "random", 4, dt=0.1)
    with pytest.raises(ValueError, match="`dt` must be None for the scale-invariant"):
        hippox.hippo_project(f, "legs", 4, dt=0.1)
    with pytest.raises(ValueError, match="`dt` .* or `timestamps` must be given"):
        hippox.hippo_project(f, "legt", 4)
    with pytest.raises(ValueError, match="mutually exclusive"):
        hippox.hippo_project(f, "legt", 4, dt=0.1, timestamps=np.arange(1, 11.0))
    with pytest.raises(ValueError, match="`dt` must be finite and > 0"):
        hippox.hippo_project(f, "legt", 4, dt=-0.1)
    with pytest.raises(ValueError, match="`dt` must broadcast"):
        hippox.hippo_project(np.ones((3, 10)), "legt", 4, dt=np.ones(2))
    with pytest.raises(ValueError, match="strictly increasing"):
        hippox.hippo_project(f, "legs", 4, timestamps=np.r_[1.0, 1.0, np.arange(3, 11.0)])
    with pytest.raises(ValueError, match="strictly increasing"):
        hippox.hippo_project(f, "legs", 4, timestamps=np.arange(0, 10.0))  # t_0 = 0
    with pytest.raises(ValueError, match="`timestamps` must have shape"):
        hippox.hippo_project(f, "legs", 4, timestamps=np.arange(1, 5.0))
    with pytest.raises(ValueError, match="zoh"):
        hippox.hippo_project(f, "legs", 4, method="zoh")
    with pytest.raises(ValueError, match="`method` must be one of"):
        hippox.hippo_project(f, "legt", 4, dt=0.1, method="gbt")
    with pytest.raises(ValueError, match="`N` must be even"):
        hippox.hippo_project(f, "fout", 5, dt=0.1)
    with pytest.raises(ValueError, match="`N` must be an integer >= 1"):
        hippox.hippo_project(f, "legs", 0)
    with pytest.raises(TypeError, match="unexpected parameter"):
        hippox.hippo_project(f, "legt", 4, dt=0.1, beta=2.0)
    with pytest.raises(TypeError, match="takes no parameters"):
        hippox.hippo_project(f, "legs", 4, theta=2.0)
    with pytest.raises(TypeError, match="float32 or float64"):
        hippox.hippo_project(jnp.ones(10, jnp.bfloat16), "legs", 4)
    with pytest.raises(TypeError, match="`f` must be real"):
        hippox.hippo_project(np.ones(10) * 1j, "legs", 4)
    with pytest.raises(ValueError, match=r"`f` must have shape \(\.\.\., L\)"):
        hippox.hippo_project(np.ones(0), "legs", 4)
    with pytest.raises(TypeError, match="`final_only` must be a bool"):
        hippox.hippo_project(f, "legs", 4, final_only=1)
