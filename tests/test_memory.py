"""Tests of the HiPPO-RNN memory (hippox/_src/memory.py) and the LegS step schedules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from numpy.polynomial import legendre

import hippox
from hippox._src.legs import legs_dt  # exported as hippox.legs_dt by the lead


def _legs_np(N):
    q = np.sqrt(2.0 * np.arange(N) + 1.0)
    return -np.tril(np.outer(q, q), -1) - np.diag(np.arange(1, N + 1.0)), q


def _gbt(A, B, dt, method):
    N = A.shape[0]
    if method == "zoh":
        Ab = scipy.linalg.expm(dt * A)
        return Ab, np.linalg.solve(A, (Ab - np.eye(N)) @ B)
    a = {"forward_euler": 0.0, "bilinear": 0.5, "backward_euler": 1.0}[method]
    lhs = np.eye(N) - a * dt * A
    return np.linalg.solve(lhs, np.eye(N) + (1 - a) * dt * A), np.linalg.solve(lhs, dt * B)


def _memory_np(f, N, schedule, method):
    """Dense float64 LegS memory of a scalar signal with the given schedule."""
    A, B = _legs_np(N)
    c = np.zeros(N)
    out = []
    for t, ft in enumerate(f):
        if t == 0:
            c = np.zeros(N)
            c[0] = ft
        else:
            dt = {"shifted": 1 / (t + 1), "reference": 1 / t, "log": np.log((t + 1) / t)}[schedule]
            Ab, Bb = _gbt(A, B, dt, method)
            c = Ab @ c + Bb * ft
        out.append(c.copy())
    return np.stack(out)


def _run_memory(mem, f):
    def body(c, inputs):
        t, ft = inputs
        c = mem.update(c, ft, t)
        return c, c

    _, cs = jax.lax.scan(body, jnp.zeros(mem.N, f.dtype), (jnp.arange(len(f)), f))
    return cs


def test_impulse_numbers_of_the_issue():
    # impulse at t = 0, first coefficient after 40 samples (t = 0 ... 39)
    f = jnp.zeros(40, jnp.float64).at[0].set(1.0)
    got = {}
    for schedule, method in [("reference", "bilinear"), ("shifted", "bilinear"), ("log", "zoh")]:
        mem = hippox.hippo_memory("legs", 8, method=method, schedule=schedule)
        got[schedule] = float(_run_memory(mem, f)[-1, 0])
    # closed forms: c_0 decouples (A[0, 0] = -1): bilinear multipliers (1 - dt/2)/(1 + dt/2)
    # telescope to 1/(2T+1) (dt = 1/t) and 3/(2T+3) (dt = 1/(t+1)); zoh log: prod t/(t+1).
    T = 39
    np.testing.assert_allclose(got["reference"], 1 / (2 * T + 1), rtol=1e-12)
    np.testing.assert_allclose(got["shifted"], 3 / (2 * T + 3), rtol=1e-12)
    np.testing.assert_allclose(got["log"], 1 / (T + 1), rtol=1e-12)
    assert [round(got[k], 4) for k in ("reference", "shifted", "log")] == [0.0127, 0.037, 0.025]


@pytest.mark.parametrize("schedule", ["shifted", "reference", "log"])
@pytest.mark.parametrize("method", ["bilinear", "backward_euler", "zoh"])
def test_schedules_match_dense_numpy(schedule, method, rng):
    N, L = 6, 30
    f = rng.normal(size=L)
    mem = hippox.hippo_memory(
        "legs", N, method=method, schedule=schedule, **({"l_max": 12} if method == "zoh" else {})
    )
    cs = _run_memory(mem, jnp.asarray(f))
    if method == "zoh":  # tabulated for t < 12, then the bilinear step of the schedule
        ref_tab = _memory_np(f[:12], N, schedule, "zoh")
        np.testing.assert_allclose(cs[:12], ref_tab, rtol=1e-9, atol=1e-11)
        A, B = _legs_np(N)
        c = ref_tab[-1]
        for t in range(12, L):
            dt = {"shifted": 1 / (t + 1), "reference": 1 / t, "log": np.log((t + 1) / t)}[schedule]
            Ab, Bb = _gbt(A, B, dt, "bilinear")
            c = Ab @ c + Bb * f[t]
            np.testing.assert_allclose(cs[t], c, rtol=1e-9, atol=1e-11)
    else:
        np.testing.assert_allclose(cs, _memory_np(f, N, schedule, method), rtol=1e-9, atol=1e-11)


def test_zoh_log_is_the_exact_projection(rng):
    # zoh with dt = log((t+1)/t) integrates the piecewise-constant signal exactly: c after
    # sample k is the scaled-Legendre projection of f(s) = f_j on [j, j+1) over [0, k+1]:
    # c_n = (1/T) int_0^T f(s) sqrt(2n+1) P_n(2s/T - 1) ds (integrated with Legendre
    # antiderivatives, independent of any matrix).
    N, L = 7, 25
    f = rng.normal(size=L)
    mem = hippox.hippo_memory("legs", N, method="zoh", schedule="log")
    cs = np.asarray(_run_memory(mem, jnp.asarray(f)))
    for k in (0, 1, 5, L - 1):
        T = k + 1.0
        coef = np.zeros(N)
        for n in range(N):
            P = legendre.Legendre.basis(n).integ()  # antiderivative in x = 2s/T - 1
            edges = 2 * np.arange(k + 2) / T - 1
            coef[n] = np.sum(f[: k + 1] * np.diff(P(edges))) * np.sqrt(2 * n + 1) / 2
        np.testing.assert_allclose(cs[k], coef, rtol=1e-8, atol=1e-10)


def test_legs_dt_and_transition(rng):
    k = np.arange(1, 6)
    np.testing.assert_allclose(legs_dt(k, schedule="reference", dtype=np.float64), 1 / k)
    np.testing.assert_allclose(legs_dt(k, dtype=np.float64), 1 / (k + 1))
    np.testing.assert_allclose(
        legs_dt(k, schedule="log", dtype=np.float64), np.log((k + 1) / k), rtol=1e-14
    )
    A, B = _legs_np(5)
    Ab, Bb = hippox.legs_transition(5, k=3, method="zoh", schedule="log", dtype=np.float64)
    Ab_ref, Bb_ref = _gbt(A, B, np.log(4 / 3), "zoh")
    np.testing.assert_allclose(Ab, Ab_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(Bb, Bb_ref, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="`k` must be >= 1 for schedule 'reference'"):
        legs_dt(0, schedule="reference")
    with pytest.raises(ValueError, match="`schedule` must be one of"):
        hippox.legs_transition(4, k=2, schedule="nope")
    with pytest.raises(TypeError, match="`k` must be an integer"):
        legs_dt(1.5)


@pytest.mark.parametrize("schedule", ["reference", "log"])
def test_hippo_project_schedule(schedule, rng):
    f = rng.normal(size=(2, 20))
    got = hippox.hippo_project(f, "legs", 5, schedule=schedule)
    for b in range(2):
        np.testing.assert_allclose(
            got[b], _memory_np(f[b], 5, schedule, "bilinear"), rtol=1e-9, atol=1e-11
        )
    exact = hippox.hippo_project(f, "legs", 5, schedule="log", method="zoh")
    np.testing.assert_allclose(exact[0], _memory_np(f[0], 5, "log", "zoh"), rtol=1e-9, atol=1e-11)
    with pytest.raises(ValueError, match="`schedule` must be one of"):
        hippox.hippo_project(f, "legs", 5, schedule="bad")
    with pytest.raises(ValueError, match="`schedule`"):
        hippox.hippo_project(f, "legt", 5, dt=0.1, schedule="log")


def test_reference_schedule_equals_timestamps_trick(rng):
    # The reference schedule is hippo_project with timestamps t_k = k from the second
    # sample on, which the named option replaces.
    f = rng.normal(size=15)
    named = hippox.hippo_project(f, "legs", 4, schedule="reference")
    ts = np.arange(15.0) + 1e-300  # t_0 ~ 0 (init step), then dt_k = 1/k
    trick = hippox.hippo_project(f, "legs", 4, timestamps=ts)
    np.testing.assert_allclose(named, trick, rtol=1e-9, atol=1e-11)


def test_random_memory(rng):
    mem = hippox.hippo_memory("random", 64, method="zoh", dt=0.01, seed=3)
    A, B = mem.continuous(np.float64)
    assert abs(float(jnp.std(A)) * 8 - 1) < 0.05 and abs(float(jnp.std(B)) - 1) < 0.25
    A2, _ = hippox.hippo_memory("random", 64, seed=3).continuous(np.float64)
    A3, _ = hippox.hippo_memory("random", 64, seed=4).continuous(np.float64)
    np.testing.assert_array_equal(A, A2)
    assert not np.allclose(A, A3)
    Ab, Bb = mem.transition(np.float64)
    np.testing.assert_allclose(Ab, scipy.linalg.expm(0.01 * np.asarray(A)), rtol=1e-10)
    with pytest.raises(ValueError, match="`seed` is for measure 'random' only"):
        hippox.hippo_memory("legt", 4, seed=1)


@pytest.mark.parametrize("max_real", [-0.1, 0.3])
def test_random_memory_max_real_shifts_the_spectrum(max_real):
    # The authors' matrix, shifted by a multiple of I: same eigenvectors, every
    # eigenvalue moved by the same real amount, the rightmost at max_real.
    N, seed = 48, int(np.random.default_rng().integers(1000))
    A0, B0 = hippox.hippo_memory("random", N, seed=seed).continuous(np.float64)
    mem = hippox.hippo_memory("random", N, seed=seed, method="zoh", max_real=max_real)
    A, B = mem.continuous(np.float64)
    A0, A, B0, B = (np.asarray(a) for a in (A0, A, B0, B))
    np.testing.assert_array_equal(B, B0)
    shift = A - A0
    np.testing.assert_allclose(shift, shift[0, 0] * np.eye(N), atol=1e-14)
    assert abs(np.linalg.eigvals(A).real.max() - max_real) < 1e-10
    Ab, _ = mem.transition(np.float64)
    radius = np.abs(np.linalg.eigvals(np.asarray(Ab))).max()
    np.testing.assert_allclose(radius, np.exp(0.01 * max_real), rtol=1e-9)
    with pytest.raises(TypeError, match="only the parameter `max_real`"):
        hippox.hippo_memory("random", N, theta=1.0)
    with pytest.raises(ValueError, match="`max_real` must be finite"):
        hippox.hippo_memory("random", N, max_real=float("nan"))


@pytest.mark.parametrize("measure", ["legs", "legt", "lagt"])
def test_timed_update_matches_numpy(measure, rng):
    N = 5
    dt = None if measure == "legs" else 0.7
    mem = hippox.hippo_memory(measure, N, dt=dt, timestamped=True)
    A, B = (
        _legs_np(N)
        if measure == "legs"
        else (np.asarray(a) for a in hippox.transition(measure, N, dtype=np.float64))
    )
    c = rng.normal(size=(3, N))
    u = rng.normal(size=3)
    t0 = np.array([0.5, 1.0, 0.0])
    t1 = np.array([0.9, 1.3, 0.0]) if measure == "legs" else np.array([0.9, 1.3, 0.2])
    got = mem.update_timed(jnp.asarray(c), jnp.asarray(u), jnp.asarray(t0), jnp.asarray(t1))
    for b in range(3):
        if measure == "legs" and t1[b] == 0:
            ref = np.zeros(N)
            ref[0] = u[b]
        else:
            step = (t1[b] - t0[b]) / t1[b] if measure == "legs" else 0.7 * (t1[b] - t0[b])
            Ab, Bb = _gbt(A, B, step, "bilinear")
            ref = Ab @ c[b] + Bb * u[b]
        np.testing.assert_allclose(got[b], ref, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="`method` must be one of"):
        hippox.hippo_memory(measure, N, dt=dt, method="zoh", timestamped=True)
