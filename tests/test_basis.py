"""Tests of `hippox.basis` and `hippox.reconstruct`.

The decisive tests are independent of the implementation:

* simulation: the memory ``dc/dt = A c + B f`` of `hippox.transition`, discretised
  with `hippox.discretize` (zoh) and run by a NumPy loop (or integrated by SciPy for
  the scaled LegS memory), must reconstruct the past of a smooth input; flipping the
  sign of the odd basis functions must make the error large;
* kernel identity: for the exact memories, ``expm(s A) B = ω(s) g(s)`` (SciPy expm);
* quadrature: Gram matrices under the measure (Gauss quadrature) and projections of a
  known function, with the error decreasing in N;
* closed forms written directly with `scipy.special`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special
from scipy.sparse.linalg import expm_multiply

import hippox

# ------------------------------------------------------------------------------- helpers


_discretize_zoh = jax.jit(lambda A, B, dt: hippox.discretize(A, B, dt, method="zoh"))


def _simulate(measure, N, f, T, dt, **params):
    """Runs c_k = Ab c_{k-1} + Bb f(t_k - dt/2) from c = 0 at t = 0 up to t = T."""
    A, B = hippox.transition(measure, N, dtype=np.float64, **params)
    Ab, Bb = _discretize_zoh(A, B, dt)
    Ab, Bb = np.asarray(Ab), np.asarray(Bb)
    K = int(round(T / dt))
    u = f((np.arange(1, K + 1) - 0.5) * dt)
    c = np.zeros(N)
    for k in range(K):
        c = Ab @ c + Bb * u[k]
    return c


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


def _odd_flip(N):
    return (-1.0) ** np.arange(N)


def _smooth_signal(rng, freq_scale):
    """A random sum of three sines with frequencies in freq_scale * [0.5, 1.5]."""
    amp = rng.uniform(0.5, 1.0, 3)
    freq = freq_scale * rng.uniform(0.5, 1.5, 3)
    phase = rng.uniform(0, 2 * np.pi, 3)
    return lambda t: np.sum(amp * np.sin(np.multiply.outer(t, freq) + phase), axis=-1)


def _envelope(f, T):
    """f times a Gaussian window of the history (width 2.5 before now): for the
    memories with a flat (or slowly decaying) measure, the whole history must be
    smooth and decay."""
    return lambda t: f(t) * np.exp(-0.5 * ((T - t) / 2.5) ** 2)


# ---------------------------------------------------------------------- simulation tests

# (measure, params, window of s checked, signal frequency scale, envelope?, tolerance)
SIMULATION_CASES = [
    ("legs", {}, 3.0, 0.5, True, 1e-2),
    ("legt", {}, 2.0, 2.0, False, 1e-3),
    ("legt", {"theta": 3.0}, 3.0, 2.0, False, 1e-3),
    ("legt", {"theta": 1.0}, 1.0, 3.0, False, 1e-3),
    ("lmu", {}, 1.0, 3.0, False, 1e-3),
    ("lmu", {"theta": 2.5}, 2.5, 2.0, False, 1e-3),
    ("lagt", {}, 10.0, 0.8, True, 1e-2),
    ("lagt", {"beta": 0.5}, 10.0, 0.8, True, 1e-2),
    ("tlagt", {}, 3.0, 0.5, False, 1e-2),
    ("tlagt", {"beta": 0.5}, 10.0, 0.8, True, 1e-2),
    ("glagt", {}, 10.0, 0.8, True, 1e-2),
    ("glagt", {"beta": 0.3}, 10.0, 0.8, True, 1e-2),
]


@pytest.mark.parametrize(
    "measure,params,window,freq,envelope,tol",
    SIMULATION_CASES,
    ids=[f"{m}-{p}" for m, p, *_ in SIMULATION_CASES],
)
def test_simulation_reconstructs_the_past(rng, measure, params, window, freq, envelope, tol):
    N, T, dt = 32, 10.0, 2e-3
    f = _smooth_signal(rng, freq)
    if envelope:
        f = _envelope(f, T)
    c = _simulate(measure, N, f, T, dt, **params)
    s = np.linspace(0.0, window, 301)
    truth = f(T - s)
    err = _rel(hippox.reconstruct(c, measure, s, **params), truth)
    assert err < tol
    # Flipping the sign of the odd basis functions, (-1)^n, must be caught.
    flipped = _rel(hippox.reconstruct(c * _odd_flip(N), measure, s, **params), truth)
    assert flipped > 10 * err
    assert flipped > 0.01


def test_simulation_error_decreases_with_N(rng):
    """The LTI LegS memory is the orthogonal projection of the history in L²(e^{-s} ds),
    so its error in that norm falls with every added state (Bessel's inequality)."""
    # LegS is lower triangular, so the first n states of the N-state memory are exactly
    # the n-state memory: one simulation gives the reconstructions for every n <= N.
    T = 10.0
    f = _smooth_signal(rng, 0.5)
    c = _simulate("legs", 32, f, T, 2e-3)
    y = (np.arange(20000) + 0.5) / 20000  # y = e^{-s}: ∫ h(s) e^{-s} ds = ∫_0^1 h dy
    s = -np.log(y)
    truth = np.where(s < T, f(T - s), 0.0)  # the memory started empty at t = 0
    errs = [_rel(hippox.reconstruct(c[:n], "legs", s), truth) for n in (4, 8, 16, 32)]
    assert errs[0] > errs[1] > errs[2] > errs[3]


@pytest.mark.parametrize(
    "measure,theta", [("fout", 2.0), ("fourier", 2.0), ("fourier_decay", 2.0), ("fourier2", 1.0)]
)
def test_simulation_fourier_periodic_input(rng, measure, theta):
    """A θ-periodic band-limited input is memorised exactly on the window [0, θ]."""
    N, T, dt = 32, 20.0, 1e-3
    w = 2 * np.pi / theta
    k = rng.integers(1, N // 2, 3)
    amp, phase = rng.uniform(0.5, 1.0, 3), rng.uniform(0, 2 * np.pi, 3)
    f = lambda t: 0.3 + np.sum(amp * np.sin(np.multiply.outer(t, w * k) + phase), axis=-1)
    c = _simulate(measure, N, f, T, dt)
    s = np.linspace(0.0, theta, 301)
    truth = f(T - s)
    assert _rel(hippox.reconstruct(c, measure, s), truth) < 1e-3
    # The sine slots' sign is pinned: flipping them must be caught.
    flip = np.where(np.arange(N) % 2 == 1, -1.0, 1.0)
    assert _rel(hippox.reconstruct(c * flip, measure, s), truth) > 0.3
    # Outside the window the basis is zero.
    assert np.all(np.asarray(hippox.reconstruct(c, measure, np.array([theta * 1.01, 5.0]))) == 0)


def test_simulation_scaled_legs(rng):
    """The scaled LegS memory dc/dt = (A c + B f)/t reconstructs the whole history.

    Integrated by SciPy in log time τ = log t (dc/dτ = A c + B f(e^τ)), independently of
    `hippox.discretize`.
    """
    N, T, t0 = 32, 10.0, 1e-6
    f = _smooth_signal(rng, 1.0)
    A, B = (np.asarray(x) for x in hippox.transition("legs", N, dtype=np.float64))
    c0 = np.zeros(N)
    c0[0] = f(np.array(0.0))  # the projection of the (constant) history on [0, t0]
    sol = integrate.solve_ivp(
        lambda tau, c: A @ c + B * f(np.exp(tau)),
        (np.log(t0), np.log(T)),
        c0,
        method="DOP853",
        rtol=1e-11,
        atol=1e-12,
    )
    c = sol.y[:, -1]
    x = np.linspace(0.0, 1.0, 401)
    truth = f(T * (1.0 - x))
    assert _rel(hippox.reconstruct(c, "legs", x, scaled=True), truth) < 1e-4
    assert _rel(hippox.reconstruct(c * _odd_flip(N), "legs", x, scaled=True), truth) > 0.3
    # The LTI basis is a different function of s: using it here must fail.
    assert _rel(hippox.reconstruct(c, "legs", x), truth) > 0.1


# ------------------------------------------------------------------------ kernel identity


# The measures' default parameters (those of hippox.transition).
DEFAULTS = {
    "legt": {"theta": 2.0},
    "lmu": {"theta": 1.0},
    "lagt": {"beta": 1.0},
    "tlagt": {"beta": 1.0},
    "glagt": {"alpha": 0.0, "beta": 0.01},
}


def _with_defaults(measure, params):
    return {**DEFAULTS.get(measure, {}), **params}


def _weight(measure, s, alpha=None, beta=None):
    """ω(s) of the exact memories, written from the measure definitions."""
    if measure == "legs":
        return np.exp(-s)
    if measure == "lagt":
        return beta**2 * np.ones_like(s)
    if measure == "tlagt":
        return beta**2 * np.exp(-beta * s)
    if measure == "glagt":
        kappa2 = beta ** (1.0 - alpha) / special.gamma(1.0 - alpha)
        return kappa2 * s ** (-alpha) * np.exp(-beta * s)
    raise AssertionError(measure)


@pytest.mark.parametrize(
    "measure,params",
    [
        ("legs", {}),
        ("lagt", {}),
        ("lagt", {"beta": 0.7}),
        ("tlagt", {}),
        ("tlagt", {"beta": 0.4}),
        ("glagt", {}),
        ("glagt", {"alpha": 0.5, "beta": 0.2}),
        ("glagt", {"alpha": -0.4, "beta": 0.05}),
    ],
)
@pytest.mark.parametrize("N", [1, 5, 16])
def test_kernel_identity(rng, measure, params, N):
    """For the exact memories, the impulse response expm(sA) B equals ω(s) g(s)."""
    A, B = (np.asarray(x) for x in hippox.transition(measure, N, dtype=np.float64, **params))
    s = np.sort(rng.uniform(0.01, 6.0, 7))
    # expm_multiply, not scipy.linalg.expm: SciPy 1.17's expm returns wrong values for
    # these triangular matrices at N >= 12 (e.g. glagt, alpha=0.5, beta=0.2).
    K = np.stack([expm_multiply(si * A, B) for si in s])
    G = np.asarray(hippox.basis(measure, N, s, **params))
    W = _weight(measure, s, **_with_defaults(measure, params))
    np.testing.assert_allclose(W[:, None] * G, K, rtol=1e-8, atol=1e-10 * np.abs(K).max())


def test_lti_legs_identity(rng):
    """expm(sA) B = sqrt(2n+1) P_n(2 e^{-s} - 1) e^{-s} for the LegS matrix (the brief)."""
    N = 12
    A, B = (np.asarray(x) for x in hippox.transition("legs", N, dtype=np.float64))
    for s in rng.uniform(0.0, 5.0, 4):
        n = np.arange(N)
        ref = np.sqrt(2 * n + 1) * special.eval_legendre(n, 2 * np.exp(-s) - 1) * np.exp(-s)
        np.testing.assert_allclose(expm_multiply(s * A, B), ref, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------- closed forms


def _closed_form(measure, N, s, scaled=False, theta=None, alpha=0.0, beta=None):
    n = np.arange(N)
    q = np.sqrt(2 * n + 1)
    S = s[:, None]
    if measure == "legs" and scaled:
        return np.where(S <= 1, q * special.eval_legendre(n, 1 - 2 * S), 0.0)
    if measure == "legs":
        return q * special.eval_legendre(n, 2 * np.exp(-S) - 1)
    if measure == "legt":
        return np.where(S <= theta, q * special.eval_legendre(n, 1 - 2 * S / theta), 0.0)
    if measure == "lmu":
        return np.where(S <= theta, special.eval_legendre(n, 2 * S / theta - 1), 0.0)
    if measure == "lagt":
        return np.exp(-S / 2) * special.eval_laguerre(n, S) / beta
    if measure == "tlagt":
        return np.exp(-(1 - beta) * S / 2) * special.eval_laguerre(n, S) / beta
    if measure == "glagt":
        norm = np.sqrt(special.gamma(n + alpha + 1) / special.gamma(n + 1))
        kappa = np.sqrt(beta ** (1 - alpha) / special.gamma(1 - alpha))
        L = special.eval_genlaguerre(n, alpha, S)
        return S**alpha * np.exp(-(1 - beta) * S / 2) * L / (kappa * norm)
    raise AssertionError(measure)


@pytest.mark.parametrize(
    "measure,kw",
    [
        ("legs", {}),
        ("legs", {"scaled": True}),
        ("legt", {"theta": 2.0}),
        ("legt", {"theta": 0.7}),
        ("lmu", {"theta": 1.0}),
        ("lmu", {"theta": 3.0}),
        ("lagt", {"beta": 1.0}),
        ("lagt", {"beta": 0.3}),
        ("tlagt", {"beta": 1.0}),
        ("tlagt", {"beta": 0.6}),
        ("glagt", {"alpha": 0.0, "beta": 0.01}),
        ("glagt", {"alpha": 0.6, "beta": 0.5}),
        ("glagt", {"alpha": -0.5, "beta": 0.1}),
    ],
)
def test_closed_forms(rng, measure, kw):
    N = 20
    s = np.concatenate([[0.0] if kw.get("alpha", 0) >= 0 else [], rng.uniform(1e-3, 4.0, 30)])
    params = {k: v for k, v in kw.items() if k != "scaled"}
    G = np.asarray(hippox.basis(measure, N, s, **kw))
    ref = _closed_form(measure, N, s, **kw)
    np.testing.assert_allclose(G, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    # the defaults are the defaults of hippox.transition
    if params and params == DEFAULTS.get(measure):
        np.testing.assert_allclose(np.asarray(hippox.basis(measure, N, s)), G)


def test_fourier_closed_form(rng):
    N = 10
    s = rng.uniform(0.0, 2.0, 25)
    G = np.asarray(hippox.basis("fout", N, s))
    for k in range(N // 2):
        cos = np.ones_like(s) if k == 0 else np.sqrt(2) * np.cos(np.pi * k * s)
        np.testing.assert_allclose(G[:, 2 * k], cos, atol=1e-12)
        np.testing.assert_allclose(G[:, 2 * k + 1], np.sqrt(2) * np.sin(np.pi * k * s), atol=1e-12)
    G2 = np.asarray(hippox.basis("fourier2", N, s / 2))
    np.testing.assert_allclose(G2, G, atol=1e-12)


# ----------------------------------------------------------------------- quadrature tests


def _gauss_legendre(a, b, m):
    x, w = special.roots_legendre(m)
    return a + (b - a) * (x + 1) / 2, w * (b - a) / 2


def _quadrature(measure, m, scaled=False, **params):
    """Nodes s_i and weights W_i with Σ W_i h(s_i) ≈ ∫ h(s) ω(s) ds (ω of the measure)."""
    p = _with_defaults(measure, params)
    theta, alpha, beta = p.get("theta"), p.get("alpha", 0.0), p.get("beta")
    if measure == "legs" and scaled:
        return _gauss_legendre(0.0, 1.0, m)
    if measure == "legs":  # y = e^{-s}: ∫ h(s) e^{-s} ds = ∫_0^1 h(-log y) dy
        y, w = _gauss_legendre(0.0, 1.0, m)
        return -np.log(y), w
    if measure in ("legt", "lmu"):
        s, w = _gauss_legendre(0.0, theta, m)
        return s, w / theta
    if measure in ("fout", "fourier_decay"):
        s, w = _gauss_legendre(0.0, 2.0, m)
        return s, w / 2
    if measure == "fourier2":
        return _gauss_legendre(0.0, 1.0, m)
    if measure in ("lagt", "tlagt", "glagt"):
        a = alpha if measure == "glagt" else 0.0
        x, w = special.roots_genlaguerre(m, a)  # weight x^a e^{-x}
        return x, w * x ** (-a) * np.exp(x) * _weight(measure, x, alpha=alpha, beta=beta)
    raise AssertionError(measure)


GRAM_CASES = [
    ("legs", {}),
    ("legs", {"scaled": True}),
    ("legt", {}),
    ("legt", {"theta": 0.5}),
    ("lmu", {}),
    ("lmu", {"theta": 4.0}),
    ("lagt", {}),
    ("lagt", {"beta": 0.5}),
    ("tlagt", {}),
    ("tlagt", {"beta": 0.3}),
    ("glagt", {}),
    ("glagt", {"alpha": 0.5, "beta": 0.4}),
    ("glagt", {"alpha": -0.5, "beta": 0.4}),
    ("fout", {}),
    ("fourier_decay", {}),
    ("fourier2", {}),
]


@pytest.mark.parametrize("measure,kw", GRAM_CASES, ids=[f"{m}-{k}" for m, k in GRAM_CASES])
def test_gram_matrix(measure, kw):
    """Orthonormality under the measure (lmu: orthogonal with norms 1/(2n+1))."""
    N = 16
    s, w = _quadrature(measure, 80, **kw)
    G = np.asarray(hippox.basis(measure, N, s, **kw))
    gram = G.T @ (w[:, None] * G)
    expected = np.eye(N)
    if measure == "lmu":
        expected = np.diag(1.0 / (2 * np.arange(N) + 1))
    if measure in ("fout", "fourier_decay", "fourier2"):
        expected[1, 1] = 0.0  # the sin(0·s) slot
    np.testing.assert_allclose(gram, expected, atol=1e-9)


PROJECTION_CASES = [
    ("legs", {}, lambda s: np.cos(np.exp(-s) * 3) + np.exp(-s)),
    ("legs", {"scaled": True}, lambda s: np.exp(np.sin(3 * s))),
    ("legt", {"theta": 1.5}, lambda s: np.exp(np.sin(3 * s))),
    ("lmu", {"theta": 1.0}, lambda s: np.cos(5 * s) / (1 + s)),
    ("lagt", {"beta": 0.5}, lambda s: np.exp(-s) * np.cos(s / 2)),
    ("tlagt", {"beta": 1.0}, lambda s: np.cos(s) / (1 + s)),
    ("glagt", {"alpha": 0.5, "beta": 0.2}, lambda s: np.sqrt(s) * np.exp(-0.4 * s) * np.sin(s)),
    ("fout", {}, lambda s: np.exp(np.sin(np.pi * s))),
]


@pytest.mark.parametrize("measure,kw,f", PROJECTION_CASES, ids=[c[0] for c in PROJECTION_CASES])
def test_quadrature_projection(measure, kw, f):
    """Project a known function by quadrature, reconstruct; the error falls with N."""
    s, w = _quadrature(measure, 100, **kw)
    if kw.get("scaled"):
        x = np.linspace(0.0, 1.0, 97)
    elif measure in ("legt", "lmu", "fout"):
        x = np.linspace(0.0, kw.get("theta", 2.0), 97)
    else:  # the infinite supports: where the measure has most of its mass
        x = np.linspace(0.05, {"legs": 3.0, "tlagt": 3.0}.get(measure, 6.0), 97)
    errs = []
    for N in (6, 12, 24):
        G = np.asarray(hippox.basis(measure, N, s, **kw))
        norms = (G**2).T @ w
        norms[norms == 0] = 1.0  # the Fourier sin(0) slot
        c = (G.T @ (w * f(s))) / norms
        errs.append(_rel(hippox.reconstruct(c, measure, x, **kw), f(x)))
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-3


# ----------------------------------------------------------------- transformations, dtypes


def test_reconstruct_jit_vmap_grad(rng):
    N = 8
    s = np.linspace(0.0, 2.0, 11)
    c = rng.normal(size=(3, N))
    eager = hippox.reconstruct(c, "legt", s)
    assert eager.shape == (3, 11)
    np.testing.assert_allclose(eager, c @ np.asarray(hippox.basis("legt", N, s)).T, rtol=1e-12)
    jitted = jax.jit(lambda c: hippox.reconstruct(c, "legt", s))(c)
    np.testing.assert_allclose(jitted, eager, rtol=1e-12)
    mapped = jax.vmap(lambda c: hippox.reconstruct(c, "legt", s))(c)
    np.testing.assert_allclose(mapped, eager, rtol=1e-12)
    grad = jax.grad(lambda c: hippox.reconstruct(c, "legt", s).sum())(c[0])
    np.testing.assert_allclose(grad, np.asarray(hippox.basis("legt", N, s)).sum(0), rtol=1e-12)


@pytest.mark.parametrize("measure", ["legs", "legt", "lmu", "lagt", "tlagt", "glagt", "fout"])
def test_basis_traced_t(rng, measure):
    s = rng.uniform(0.0, 2.0, 9)
    eager = hippox.basis(measure, 6, s)
    traced = jax.jit(lambda t: hippox.basis(measure, 6, t))(s)
    np.testing.assert_allclose(traced, eager, rtol=1e-12, atol=1e-14)


def test_dtypes(rng):
    s32 = np.linspace(0, 1, 5, dtype=np.float32)
    assert hippox.basis("legs", 4, s32).dtype == jnp.float32
    assert hippox.basis("legs", 4, [0.0, 1.0], dtype=jnp.float32).dtype == jnp.float32
    assert hippox.basis("legs", 4, np.linspace(0, 1, 5)).dtype == jnp.float64
    assert hippox.basis("legs", 4, np.array([0, 1])).dtype == jnp.float32
    bf = hippox.basis("legt", 4, s32, dtype=jnp.bfloat16)
    assert bf.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(bf, np.float32), hippox.basis("legt", 4, s32), rtol=1e-2, atol=1e-2
    )
    c32 = rng.normal(size=4).astype(np.float32)
    assert hippox.reconstruct(c32, "legt", np.linspace(0, 1, 5)).dtype == jnp.float32
    c64 = jnp.asarray(rng.normal(size=4) + 1j * rng.normal(size=4), jnp.complex64)
    out = hippox.reconstruct(c64, "legt", s32)
    assert out.dtype == jnp.complex64
    G = np.asarray(hippox.basis("legt", 4, s32))
    np.testing.assert_allclose(out, G @ np.asarray(c64), rtol=1e-5)


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "call,err,match",
    [
        (lambda: hippox.basis("nope", 4, [0.0]), ValueError, "`measure` must be one of"),
        (lambda: hippox.basis("foud", 4, [0.0]), ValueError, "reconstruction basis"),
        (lambda: hippox.basis("random", 4, [0.0]), ValueError, "reconstruction basis"),
        (lambda: hippox.basis("legt", 4, [0.0], scaled=True), ValueError, "`scaled` must be"),
        (lambda: hippox.basis("legs", 4, [0.0], scaled=1), TypeError, "`scaled` must be a bool"),
        (lambda: hippox.basis("legs", 4, [[0.0]]), ValueError, "`t` must be a 1-D"),
        (lambda: hippox.basis("legs", 4, 0.5), ValueError, "`t` must be a 1-D"),
        (lambda: hippox.basis("legs", 4, [0.5, -0.1]), ValueError, "`t` must be >= 0"),
        (lambda: hippox.basis("legs", 4, ["a"]), TypeError, "`t` must be a real array"),
        (lambda: hippox.basis("fout", 5, [0.0]), ValueError, "`N` must be even"),
        (lambda: hippox.basis("legs", 0, [0.0]), ValueError, "`N` must be"),
        (lambda: hippox.basis("legs", 2.0, [0.0]), TypeError, "`N` must be an integer"),
        (lambda: hippox.basis("legt", 4, [0.0], theta=-1.0), ValueError, "`theta` must be > 0"),
        (lambda: hippox.basis("legt", 4, [0.0], beta=1.0), TypeError, "unexpected parameter"),
        (lambda: hippox.basis("legs", 4, [0.0], dtype=jnp.int32), ValueError, "`dtype` must"),
        (lambda: hippox.reconstruct(1.0, "legs", [0.0]), ValueError, "`c` must have shape"),
    ],
)
def test_validation(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_outside_support_is_zero():
    np.testing.assert_array_equal(hippox.basis("legt", 3, [2.5], theta=2.0), np.zeros((1, 3)))
    np.testing.assert_array_equal(hippox.basis("lmu", 3, [1.5]), np.zeros((1, 3)))
    np.testing.assert_array_equal(hippox.basis("legs", 3, [1.5], scaled=True), np.zeros((1, 3)))
    assert np.all(np.isfinite(np.asarray(hippox.basis("lagt", 16, [500.0, 2000.0]))))
