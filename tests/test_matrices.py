"""Specification tests of `hippox.transition` and `hippox.rank_correction`.

Every reference below is written from the published formulas with explicit Python
loops over (n, k) in float64 (`math` / `scipy.special`), independently of the
vectorised builders in ``hippox/_src/matrices.py``. The projection tests check the
meaning of the operators: integrating ``dx/dt = A x + B u`` really produces the
coefficients of the input in the measure's basis.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from scipy import linalg as sla
from scipy import special

import hippox

FOURIER = ("fout", "fourier_decay", "fourier2", "foud")
DETERMINISTIC = ("legs", "legsd", "legt", "lmu", "lagt", "tlagt", "glagt", *FOURIER)
NPLR = ("legs", "legsd", "legt", "lagt", "tlagt", *FOURIER)
SIZES = (1, 2, 3, 8, 64)
DTYPES = (np.float32, np.float64)


# ----------------------------------------------------------------------------- references


def _q(n):
    return math.sqrt(2 * n + 1)


def ref_legs(N):
    A = np.zeros((N, N))
    for n in range(N):
        for k in range(N):
            if n > k:
                A[n, k] = -_q(n) * _q(k)
            elif n == k:
                A[n, k] = -(n + 1)
    return A, np.array([_q(n) for n in range(N)])


def ref_legsd(N):
    A, B = ref_legs(N)
    return A + 0.5 * np.outer(B, B), 0.5 * B


def ref_legt(N, theta=2.0):
    A = np.zeros((N, N))
    for n in range(N):
        for k in range(N):
            sign = 1.0 if n >= k else (-1.0) ** (n - k)
            A[n, k] = -_q(n) * _q(k) * sign / theta
    return A, np.array([_q(n) / theta for n in range(N)])


def ref_lmu(N, theta=1.0):
    A = np.zeros((N, N))
    for n in range(N):
        for k in range(N):
            sign = -1.0 if n < k else (-1.0) ** (n - k + 1)
            A[n, k] = (2 * n + 1) * sign / theta
    return A, np.array([(-1.0) ** n * (2 * n + 1) / theta for n in range(N)])


def ref_tlagt(N, beta=1.0):
    A = np.zeros((N, N))
    for n in range(N):
        for k in range(n + 1):
            A[n, k] = -1.0
        A[n, n] += (1.0 - beta) / 2.0
    return A, np.full(N, beta)


def ref_lagt(N, beta=1.0):
    A, _ = ref_tlagt(N, beta=0.0)  # (1 - 0)/2 I - tril(ones) = I/2 - tril(ones)
    return A, np.full(N, beta)


def ref_glagt(N, alpha=0.0, beta=0.01):
    ell = [math.sqrt(math.gamma(n + alpha + 1) / math.gamma(n + 1)) for n in range(N)]
    A = np.zeros((N, N))
    B = np.zeros(N)
    for n in range(N):
        for k in range(N):
            inner = -(1.0 + beta) / 2.0 if n == k else (-1.0 if n > k else 0.0)
            A[n, k] = inner * ell[k] / ell[n]  # D^-1 M D, D = diag(ell)
        binom = math.gamma(n + alpha + 1) / (math.gamma(n + 1) * math.gamma(alpha + 1))
        B[n] = binom / ell[n] / math.sqrt(math.gamma(1 - alpha)) * beta ** ((1 - alpha) / 2)
    return A, B


def _fourier_R_b(N):
    R = np.zeros((N, N))
    for k in range(1, N // 2):
        R[2 * k, 2 * k + 1] = -math.pi * k
        R[2 * k + 1, 2 * k] = math.pi * k
    b = np.array([(1.0 if n == 0 else math.sqrt(2.0)) if n % 2 == 0 else 0.0 for n in range(N)])
    return R, b


def ref_fout(N):
    R, b = _fourier_R_b(N)
    return R - np.outer(b, b), b


def ref_fourier_decay(N):
    R, b = _fourier_R_b(N)
    return R - 0.5 * np.outer(b, b), b / 2


def ref_fourier2(N):
    A, B = ref_fout(N)
    return 2 * A, 2 * B


def ref_foud(N):
    R, b = _fourier_R_b(N)
    return 2 * R - 0.5 * np.eye(N), b


REFERENCES = {
    "legs": ref_legs,
    "legsd": ref_legsd,
    "legt": ref_legt,
    "lmu": ref_lmu,
    "lagt": ref_lagt,
    "tlagt": ref_tlagt,
    "glagt": ref_glagt,
    "fout": ref_fout,
    "fourier_decay": ref_fourier_decay,
    "fourier2": ref_fourier2,
    "foud": ref_foud,
}

PARAMS = [
    ("legt", {"theta": 1.0}),
    ("legt", {"theta": 0.37}),
    ("legt", {"theta": 5}),
    ("lmu", {"theta": 2.5}),
    ("lmu", {"theta": 0.2}),
    ("lagt", {"beta": 0.3}),
    ("tlagt", {"beta": 0.3}),
    ("tlagt", {"beta": 2.0}),
    ("glagt", {"alpha": 0.5, "beta": 0.2}),
    ("glagt", {"alpha": -0.7, "beta": 1.5}),
    ("glagt", {"alpha": 0.0}),
]


def ref_rank_correction(measure, N, rank, theta=2.0):
    P = np.zeros((rank, N))
    if measure == "legs":
        P[0] = [math.sqrt(n + 0.5) for n in range(N)]
    elif measure == "legt":
        for n in range(N):
            row = 0 if n % 2 else 1  # odd n in row 0, even n in row 1
            P[row, n] = _q(n) / math.sqrt(2.0) * math.sqrt(2.0 / theta)
    elif measure in ("lagt", "tlagt"):
        P[0] = math.sqrt(0.5)
    elif measure in ("fout", "fourier_decay", "fourier2"):
        scale = {"fout": 1.0, "fourier_decay": 1 / math.sqrt(2), "fourier2": math.sqrt(2)}
        P[0] = _fourier_R_b(N)[1] * scale[measure]
    return P


def _tol(dtype):
    return dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)


def _sizes(measure):
    return [N for N in SIZES if measure not in FOURIER or N % 2 == 0]


def _cases(measures):
    return [(m, N) for m in measures for N in _sizes(m)]


# ----------------------------------------------------------------------------- transition


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("measure,N", _cases(DETERMINISTIC))
def test_transition_matches_formula(measure, N, dtype):
    A, B = hippox.transition(measure, N, dtype=dtype)
    assert isinstance(A, jax.Array) and isinstance(B, jax.Array)
    assert A.shape == (N, N) and B.shape == (N,)
    assert A.dtype == dtype and B.dtype == dtype
    A_ref, B_ref = REFERENCES[measure](N)
    np.testing.assert_allclose(np.asarray(A, np.float64), A_ref, **_tol(dtype))
    np.testing.assert_allclose(np.asarray(B, np.float64), B_ref, **_tol(dtype))


@pytest.mark.parametrize("measure,params", PARAMS)
@pytest.mark.parametrize("N", (1, 5, 16))
def test_transition_parameters_match_formula(measure, params, N):
    A, B = hippox.transition(measure, N, dtype=np.float64, **params)
    A_ref, B_ref = REFERENCES[measure](N, **params)
    np.testing.assert_allclose(A, A_ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(B, B_ref, rtol=1e-13, atol=1e-13)


def test_default_dtype_is_float32():
    A, B = hippox.transition("legs", 4)
    assert A.dtype == np.float32 and B.dtype == np.float32


def test_transition_returns_named_tuple():
    out = hippox.transition("legt", 3)
    assert isinstance(out, hippox.Transition)
    assert out.A is out[0] and out.B is out[1]


@pytest.mark.parametrize("N", (1, 2, 7, 32))
def test_legs_eigenvalues_are_minus_one_to_minus_N(N):
    A, _ = hippox.transition("legs", N, dtype=np.float64)
    eig = np.linalg.eigvals(np.asarray(A))
    np.testing.assert_allclose(np.sort(eig.real), -np.arange(N, 0, -1.0), atol=1e-9)
    np.testing.assert_allclose(eig.imag, 0.0, atol=1e-9)


@pytest.mark.parametrize("N", (1, 2, 9, 32))
def test_legsd_is_minus_half_identity_plus_skew(N):
    A, B = (np.asarray(x) for x in hippox.transition("legsd", N, dtype=np.float64))
    S = A + 0.5 * np.eye(N)
    np.testing.assert_allclose(S, -S.T, atol=1e-12)
    np.testing.assert_allclose(B, 0.5 * np.sqrt(2 * np.arange(N) + 1), rtol=1e-14)


def test_fout_check_value_N4():
    A, B = hippox.transition("fout", 4, dtype=np.float64)
    r2, pi = math.sqrt(2), math.pi
    expected = np.array(
        [[-1, 0, -r2, 0], [0, 0, 0, 0], [-r2, 0, -2, -pi], [0, 0, pi, 0]], dtype=np.float64
    )
    np.testing.assert_allclose(A, expected, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(B, [1, 0, r2, 0], rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("alias,name", [("fourier", "fout"), ("fourier_diag", "foud")])
@pytest.mark.parametrize("N", (2, 6))
def test_aliases(alias, name, N):
    for x, y in zip(hippox.transition(alias, N), hippox.transition(name, N), strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(hippox.rank_correction(alias, N), hippox.rank_correction(name, N))


@pytest.mark.parametrize("N", (2, 8))
def test_fourier_family_relations(N):
    f = {m: [np.asarray(x) for x in hippox.transition(m, N, dtype=np.float64)] for m in FOURIER}
    np.testing.assert_allclose(f["fourier2"][0], 2 * f["fout"][0], atol=1e-14)
    np.testing.assert_allclose(f["fourier2"][1], 2 * f["fout"][1], atol=1e-14)
    # fout and fourier_decay share the rotation R and differ by half the rank-one term.
    b = f["fout"][1]
    np.testing.assert_allclose(
        f["fout"][0] - f["fourier_decay"][0], -0.5 * np.outer(b, b), atol=1e-14
    )
    np.testing.assert_allclose(f["fourier_decay"][1], b / 2, atol=1e-14)
    # foud = 2 R - I/2 with R = fout + b b^T
    np.testing.assert_allclose(
        f["foud"][0], 2 * (f["fout"][0] + np.outer(b, b)) - 0.5 * np.eye(N), atol=1e-14
    )


@pytest.mark.parametrize("beta", (0.01, 0.4, 1.0, 3.0))
def test_glagt_alpha_zero_has_tlagt_state_matrix(beta):
    A_g, B_g = hippox.transition("glagt", 6, dtype=np.float64, alpha=0.0, beta=beta)
    A_t, _ = hippox.transition("tlagt", 6, dtype=np.float64, beta=beta)
    np.testing.assert_allclose(A_g, A_t, atol=1e-14)
    np.testing.assert_allclose(B_g, np.full(6, math.sqrt(beta)), rtol=1e-14)


def test_legt_theta_scaling():
    A1, B1 = hippox.transition("legt", 7, dtype=np.float64, theta=1.0)
    A2, B2 = hippox.transition("legt", 7, dtype=np.float64)  # default theta = 2 (S4)
    np.testing.assert_allclose(A1, 2 * A2, rtol=1e-14)
    np.testing.assert_allclose(B1, 2 * B2, rtol=1e-14)


# ----------------------------------------------------------- the ODE projects onto the basis


@pytest.mark.parametrize("t", (0.05, 0.4, 1.0, 3.0))
def test_legs_impulse_response_is_scaled_legendre(t):
    """LTI LegS: expm(tA) B = sqrt(2n+1) P_n(2 e^{-t} - 1) e^{-t}."""
    N = 12
    n = np.arange(N)
    A, B = hippox.transition("legs", N, dtype=np.float64)
    got = sla.expm(t * np.asarray(A)) @ np.asarray(B)
    ref = np.sqrt(2 * n + 1) * special.eval_legendre(n, 2 * np.exp(-t) - 1) * np.exp(-t)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("t", (0.1, 1.0, 4.0))
def test_lagt_impulse_response_is_laguerre(t):
    """LagT: expm(tA) B = L_n(t) e^{-t/2} (Laguerre functions)."""
    N = 10
    n = np.arange(N)
    A, B = hippox.transition("lagt", N, dtype=np.float64)
    got = sla.expm(t * np.asarray(A)) @ np.asarray(B)
    np.testing.assert_allclose(got, special.eval_laguerre(n, t) * np.exp(-t / 2), atol=1e-11)


def _window_projection(u, t, theta, N, kind):
    """Quadrature coefficients of u on the window [t - theta, t] (Gauss-Legendre, exact)."""
    x, w = special.roots_legendre(64)
    s = t - theta / 2 + theta / 2 * x  # x = +1 at the newest time s = t
    n = np.arange(N)
    if kind == "legt":  # x_n = (1/theta) ∫ u(s) sqrt(2n+1) P_n(2(s-t)/theta + 1) ds
        basis = np.sqrt(2 * n + 1) * special.eval_legendre(n[None, :], x[:, None]) / theta
    else:  # lmu: x_n = ((2n+1)/theta) ∫ u(s) P_n(2(t-s)/theta - 1) ds
        basis = (2 * n + 1) * special.eval_legendre(n[None, :], -x[:, None]) / theta
    return (w * theta / 2 * u(s)) @ basis


@pytest.mark.parametrize(
    "measure,theta", [("legt", 2.0), ("legt", 1.0), ("legt", 0.3), ("lmu", 1.0), ("lmu", 0.6)]
)
def test_sliding_window_ode_tracks_polynomial_projection(measure, theta, rng):
    """For a polynomial input of degree < N, LegT/LMU reproduce the window projection exactly.

    The input u(s) = Σ a_j s^j is generated by the nilpotent system z' = J z with
    z_j = s^j / j!, so the augmented system [[A, B cᵀ], [0, J]] is solved exactly by one
    matrix exponential, starting from the exact projection at t = 0.
    """
    N = 8
    a = rng.standard_normal(N)  # degree N - 1
    u = lambda s: np.polynomial.polynomial.polyval(s, a)  # noqa: E731
    A, B = (np.asarray(x) for x in hippox.transition(measure, N, dtype=np.float64, theta=theta))
    c = a * np.array([math.factorial(j) for j in range(N)])
    M = np.block([[A, np.outer(B, c)], [np.zeros((N, N)), np.eye(N, k=-1)]])
    x0 = np.concatenate([_window_projection(u, 0.0, theta, N, measure), np.eye(N)[0]])
    for t in (0.25 * theta, 1.3 * theta):
        got = (sla.expm(t * M) @ x0)[:N]
        ref = _window_projection(u, t, theta, N, measure)
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


# ----------------------------------------------------------------------- random ablations


@pytest.mark.parametrize("measure", ("random", "diagonal"))
@pytest.mark.parametrize("dtype", DTYPES)
def test_random_measures_use_the_key(measure, dtype):
    N = 6
    A1, B1 = hippox.transition(measure, N, key=jax.random.key(1), dtype=dtype)
    A1b, B1b = hippox.transition(measure, N, key=jax.random.key(1), dtype=dtype)
    A2, B2 = hippox.transition(measure, N, key=jax.random.key(2), dtype=dtype)
    assert A1.shape == (N, N) and B1.shape == (N,)
    assert A1.dtype == dtype and B1.dtype == dtype
    np.testing.assert_array_equal(A1, A1b)
    np.testing.assert_array_equal(B1, B1b)
    assert not np.allclose(A1, A2) and not np.allclose(B1, B2)
    assert np.all(np.isfinite(A1)) and np.all(np.isfinite(B1))
    if measure == "diagonal":
        A1 = np.asarray(A1)
        np.testing.assert_array_equal(A1, np.diag(np.diag(A1)))
        assert np.all(np.diag(A1) < 0)


@pytest.mark.parametrize("measure", ("random", "diagonal"))
def test_random_measures_refuse_missing_key(measure):
    with pytest.raises(ValueError, match="`key`"):
        hippox.transition(measure, 4)


def test_deterministic_measure_refuses_key():
    with pytest.raises(ValueError, match="`key`"):
        hippox.transition("legs", 4, key=jax.random.key(0))


# -------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("measure", ("legendre", "LEGS", "", "hippo", None, 3))
def test_unknown_measure(measure):
    with pytest.raises(ValueError, match="`measure`"):
        hippox.transition(measure, 4)


@pytest.mark.parametrize("N", (0, -1, -8))
def test_N_too_small(N):
    with pytest.raises(ValueError, match="`N`"):
        hippox.transition("legs", N)


@pytest.mark.parametrize("N", (3.0, 2.5, True, False, "4", None, np.float64(4.0)))
def test_N_not_an_integer(N):
    with pytest.raises(TypeError, match="`N`"):
        hippox.transition("legs", N)


def test_N_numpy_integer_accepted():
    A, _ = hippox.transition("legs", np.int64(3))
    assert A.shape == (3, 3)


@pytest.mark.parametrize("measure", (*FOURIER, "fourier", "fourier_diag"))
@pytest.mark.parametrize("N", (1, 3, 7))
def test_fourier_measures_need_even_N(measure, N):
    with pytest.raises(ValueError, match="`N`"):
        hippox.transition(measure, N)
    with pytest.raises(ValueError, match="`N`"):
        hippox.rank_correction(measure, N)


@pytest.mark.parametrize(
    "measure,params,arg",
    [
        ("glagt", {"alpha": 1.0}, "alpha"),
        ("glagt", {"alpha": -1.0}, "alpha"),
        ("glagt", {"alpha": 2.5}, "alpha"),
        ("glagt", {"beta": 0.0}, "beta"),
        ("glagt", {"beta": -0.5}, "beta"),
        ("lagt", {"beta": 0.0}, "beta"),
        ("tlagt", {"beta": -1.0}, "beta"),
        ("legt", {"theta": 0.0}, "theta"),
        ("legt", {"theta": -2.0}, "theta"),
        ("lmu", {"theta": 0}, "theta"),
        ("legt", {"theta": float("nan")}, "theta"),
        ("lmu", {"theta": float("inf")}, "theta"),
    ],
)
def test_bad_parameter_values(measure, params, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        hippox.transition(measure, 4, **params)


@pytest.mark.parametrize(
    "measure,params,arg",
    [
        ("legs", {"theta": 1.0}, "theta"),
        ("legt", {"beta": 1.0}, "beta"),
        ("lagt", {"alpha": 0.5}, "alpha"),
        ("fout", {"theta": 1.0}, "theta"),
        ("glagt", {"gamma": 1.0}, "gamma"),
        ("random", {"theta": 1.0}, "theta"),
    ],
)
def test_unknown_parameter_names(measure, params, arg):
    key = jax.random.key(0) if measure == "random" else None
    with pytest.raises(TypeError, match=arg):
        hippox.transition(measure, 4, key=key, **params)


@pytest.mark.parametrize("param", ("theta", "beta"))
def test_non_numeric_parameter(param):
    measure = "legt" if param == "theta" else "lagt"
    with pytest.raises(TypeError, match=f"`{param}`"):
        hippox.transition(measure, 4, **{param: "1.0"})


@pytest.mark.parametrize("dtype", (np.int32, "complex64", np.bool_))
def test_bad_dtype(dtype):
    with pytest.raises((ValueError, TypeError), match="`dtype`"):
        hippox.transition("legs", 4, dtype=dtype)


def test_float64_needs_x64():
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match="`dtype`"):
            hippox.transition("legs", 4, dtype=np.float64)
        with pytest.raises(ValueError, match="`dtype`"):
            hippox.rank_correction("legs", 4, dtype=np.float64)
        A, B = hippox.transition("legs", 4)
        assert A.dtype == np.float32 and B.dtype == np.float32


def test_returned_arrays_do_not_alias_cache():
    """Mutating a returned NumPy copy must not corrupt later calls (the host cache)."""
    A, _ = hippox.transition("legs", 5, dtype=np.float64)
    A_np = np.array(A)
    A_np[:] = 0.0
    A2, _ = hippox.transition("legs", 5, dtype=np.float64)
    np.testing.assert_allclose(A2, ref_legs(5)[0], atol=1e-14)


# ------------------------------------------------------------------------ rank correction


def _natural_rank(measure):
    return 2 if measure == "legt" else 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("measure,N", _cases(NPLR))
def test_rank_correction_matches_formula(measure, N, dtype):
    rank = _natural_rank(measure)
    P = hippox.rank_correction(measure, N, rank=rank, dtype=dtype)
    assert P.shape == (rank, N) and P.dtype == dtype
    np.testing.assert_allclose(
        np.asarray(P, np.float64), ref_rank_correction(measure, N, rank), **_tol(dtype)
    )


@pytest.mark.parametrize("measure", NPLR)
def test_rank_correction_extra_rows_are_zero(measure):
    N = 6
    rank = _natural_rank(measure) + 2
    P = np.asarray(hippox.rank_correction(measure, N, rank=rank, dtype=np.float64))
    assert P.shape == (rank, N)
    np.testing.assert_array_equal(P[_natural_rank(measure) :], 0.0)
    np.testing.assert_allclose(P, ref_rank_correction(measure, N, rank), atol=1e-14)


@pytest.mark.parametrize("theta", (0.5, 1.0, 3.0))
def test_legt_rank_correction_scales_with_theta(theta):
    P = hippox.rank_correction("legt", 5, rank=2, dtype=np.float64, theta=theta)
    np.testing.assert_allclose(P, ref_rank_correction("legt", 5, 2, theta=theta), atol=1e-14)


def _normal_part_check(A, P):
    AP = A + P.T @ P
    c = -np.mean(np.diag(AP))
    sym = 0.5 * (AP + AP.T)
    scale = max(1.0, np.abs(AP).max())
    np.testing.assert_allclose(sym, -c * np.eye(len(A)), atol=1e-12 * scale)
    return c


PARAMETRISED_NPLR = [(m, {}) for m in NPLR] + [
    ("legt", {"theta": 1.0}),
    ("legt", {"theta": 0.3}),
    ("tlagt", {"beta": 0.25}),
    ("lagt", {"beta": 4.0}),
]


@pytest.mark.parametrize(
    "measure,params,N", [(m, p, N) for m, p in PARAMETRISED_NPLR for N in _sizes(m)]
)
def test_A_plus_PtP_is_shifted_skew(measure, params, N):
    A, _ = hippox.transition(measure, N, dtype=np.float64, **params)
    P = hippox.rank_correction(measure, N, rank=_natural_rank(measure), dtype=np.float64, **params)
    c = _normal_part_check(np.asarray(A), np.asarray(P))
    assert c >= -1e-12  # the normal part is (marginally) stable


def test_known_shifts():
    """legs/legsd/foud: c = 1/2; fout and lagt: c = 0; tlagt(beta): c = beta/2."""
    for measure, params, c_ref in [
        ("legs", {}, 0.5),
        ("legsd", {}, 0.5),
        ("foud", {}, 0.5),
        ("fout", {}, 0.0),
        ("lagt", {}, 0.0),
        ("tlagt", {"beta": 0.6}, 0.3),
    ]:
        A, _ = hippox.transition(measure, 8, dtype=np.float64, **params)
        P = hippox.rank_correction(
            measure, 8, dtype=np.float64, rank=_natural_rank(measure), **params
        )
        assert _normal_part_check(np.asarray(A), np.asarray(P)) == pytest.approx(c_ref, abs=1e-13)


@pytest.mark.parametrize("measure", ("lmu", "glagt", "random", "diagonal"))
def test_rank_correction_refuses_non_nplr_measures(measure):
    with pytest.raises(ValueError, match="`measure`"):
        hippox.rank_correction(measure, 4)


def test_rank_correction_refuses_unknown_measure():
    with pytest.raises(ValueError, match="`measure`"):
        hippox.rank_correction("legx", 4)


def test_legt_needs_rank_two():
    with pytest.raises(ValueError, match="`rank`"):
        hippox.rank_correction("legt", 4, rank=1)


@pytest.mark.parametrize(
    "rank,exc", [(0, ValueError), (-1, ValueError), (1.0, TypeError), (True, TypeError)]
)
def test_bad_rank(rank, exc):
    with pytest.raises(exc, match="`rank`"):
        hippox.rank_correction("legs", 4, rank=rank)


@pytest.mark.parametrize("N,exc", [(0, ValueError), (2.0, TypeError)])
def test_rank_correction_bad_N(N, exc):
    with pytest.raises(exc, match="`N`"):
        hippox.rank_correction("legs", N)


def test_rank_correction_validates_parameters():
    with pytest.raises(ValueError, match="`theta`"):
        hippox.rank_correction("legt", 4, rank=2, theta=-1.0)
    with pytest.raises(TypeError, match="alpha"):
        hippox.rank_correction("legs", 4, alpha=0.5)


def test_rank_correction_default_dtype():
    assert hippox.rank_correction("legs", 4).dtype == np.float32
