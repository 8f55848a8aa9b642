"""Tests of the structured O(N) LegS operations against dense float64 NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.test_util import check_grads

import hippox

ALPHA = {"forward_euler": 0.0, "bilinear": 0.5, "backward_euler": 1.0}


def legs_np(N):
    """LegS (A, B) written out from the formula, independently of hippox."""
    A = np.zeros((N, N))
    for n in range(N):
        for k in range(n + 1):
            A[n, k] = -(n + 1) if n == k else -np.sqrt((2 * n + 1) * (2 * k + 1))
    return A, np.sqrt(2 * np.arange(N) + 1.0)


def dense_legs_memory(f, N, method="bilinear"):
    """Reference LegS memory: c_0 = f_0 e_0, then dense GBT steps with dt = 1/(k+1)."""
    A, B = legs_np(N)
    al = ALPHA[method]
    eye = np.eye(N)
    c = np.zeros(N)
    c[0] = f[0]
    out = np.empty((len(f), N))
    out[0] = c
    for k in range(1, len(f)):
        dt = 1.0 / (k + 1)
        y = c + (1 - al) * dt * (A @ c) + dt * B * f[k]
        c = scipy.linalg.solve_triangular(eye - al * dt * A, y, lower=True, check_finite=False)
        out[k] = c
    return out


@pytest.mark.parametrize("N", [1, 2, 7, 64, 512])
def test_matvec_matches_dense(rng, N):
    A, _ = legs_np(N)
    c = rng.standard_normal((3, N))
    np.testing.assert_allclose(hippox.legs_matvec(c), c @ A.T, rtol=1e-12, atol=1e-12 * N)
    cz = c + 1j * rng.standard_normal((3, N))
    np.testing.assert_allclose(hippox.legs_matvec(cz), cz @ A.T, rtol=1e-12, atol=1e-12 * N)
    c32 = c.astype(np.float32)
    got = hippox.legs_matvec(c32)
    assert got.dtype == jnp.float32
    want = c32.astype(np.float64) @ A.T
    err = np.linalg.norm(got - want, axis=-1) / np.linalg.norm(want, axis=-1)
    assert err.max() < 1e-6


def _solve_scales(rng, N):
    """Log-uniform scales, a = 0, and a = 1/n (where alpha_n is exactly 0)."""
    special = 1.0 / np.array(sorted({1, max(1, N // 3), max(1, N - 1)}))
    return np.concatenate([10.0 ** rng.uniform(-6, 3, 10), special, [0.0]])


@pytest.mark.parametrize("N", [1, 2, 7, 64, 512])
def test_solve_matches_dense(rng, N):
    A, _ = legs_np(N)
    a = _solve_scales(rng, N)
    y = rng.standard_normal((len(a), N))
    x = np.asarray(hippox.legs_solve(y, a))
    for i in range(len(a)):
        want = scipy.linalg.solve_triangular(np.eye(N) - a[i] * A, y[i], lower=True)
        np.testing.assert_allclose(x[i], want, rtol=1e-11, atol=1e-12 * np.abs(want).max())
    # complex right-hand side, one scalar scale for a batch
    yz = y + 1j * rng.standard_normal(y.shape)
    xz = hippox.legs_solve(yz, a[0])
    np.testing.assert_allclose(
        xz, np.linalg.solve(np.eye(N) - a[0] * A, yz.T).T, rtol=1e-11, atol=1e-12
    )


@pytest.mark.parametrize("N", [64, 512])
def test_solve_float32_is_stable(rng, N):
    """Relative error ~ eps32 even where alpha_n = 0 or products of alpha underflow."""
    A, _ = legs_np(N)
    a = _solve_scales(rng, N).astype(np.float32)
    y = rng.standard_normal((len(a), N)).astype(np.float32)
    x = hippox.legs_solve(y, a)
    assert x.dtype == jnp.float32
    for i in range(len(a)):
        want = np.linalg.solve(np.eye(N) - np.float64(a[i]) * A, y[i].astype(np.float64))
        err = np.linalg.norm(np.asarray(x[i], np.float64) - want) / np.linalg.norm(want)
        assert err < 2e-6, (a[i], err)


@pytest.mark.parametrize("method", list(ALPHA))
def test_step_matches_dense_gbt(rng, method):
    N = 9
    A, B = legs_np(N)
    al = ALPHA[method]
    c = rng.standard_normal((4, N)) + 1j * rng.standard_normal((4, N))
    f = rng.standard_normal(4)
    dt = rng.uniform(0.01, 1.0, 4)
    got = hippox.legs_step(c, f, dt, method=method)
    for i in range(4):
        lhs = np.eye(N) - al * dt[i] * A
        rhs = (np.eye(N) + (1 - al) * dt[i] * A) @ c[i] + dt[i] * B * f[i]
        np.testing.assert_allclose(got[i], np.linalg.solve(lhs, rhs), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("method", ["bilinear", "forward_euler", "backward_euler", "zoh"])
def test_transition_matches_formulas(rng, method):
    N = 6
    A, B = legs_np(N)
    k = rng.integers(0, 50)
    dt = 1.0 / (k + 1)
    Ab, Bb = hippox.legs_transition(N, k=k, method=method, dtype=np.float64)
    if method == "zoh":
        E = scipy.linalg.expm(np.block([[A * dt, B[:, None] * dt], [np.zeros((1, N + 1))]]))
        want_A, want_B = E[:N, :N], E[:N, N]
    else:
        al = ALPHA[method]
        lhs = np.eye(N) - al * dt * A
        want_A = np.linalg.solve(lhs, np.eye(N) + (1 - al) * dt * A)
        want_B = np.linalg.solve(lhs, dt * B)
    np.testing.assert_allclose(Ab, want_A, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(Bb, want_B, rtol=1e-11, atol=1e-13)
    Ab2, _ = hippox.legs_transition(N, dt=dt, method=method, dtype=np.float64)
    np.testing.assert_allclose(Ab2, Ab, rtol=1e-14)
    batch = hippox.legs_transition(N, k=np.array([0, k]), method=method, dtype=np.float64)
    assert batch.Ab.shape == (2, N, N) and batch.Bb.shape == (2, N)
    np.testing.assert_allclose(batch.Ab[1], Ab, rtol=1e-13, atol=1e-15)


def test_step_equals_transition_float32(rng):
    N = 16
    c = rng.standard_normal(N).astype(np.float32)
    for k in (0, 3, 999):
        Ab, Bb = hippox.legs_transition(N, k=k)
        got = hippox.legs_step(c, np.float32(0.7), np.float32(1.0 / (k + 1)))
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, Ab @ c + Bb * 0.7, rtol=2e-5, atol=2e-5)


def dense_legs_memory_float32(f, N):
    """The same dense recurrence carried out entirely in float32 (NumPy)."""
    A, B = (x.astype(np.float32) for x in legs_np(N))
    eye = np.eye(N, dtype=np.float32)
    c = np.zeros(N, np.float32)
    c[0] = f[0]
    out = np.empty((len(f), N), np.float32)
    out[0] = c
    for k in range(1, len(f)):
        dt = np.float32(1.0 / (k + 1))
        y = c + np.float32(0.5) * dt * (A @ c) + dt * B * f[k]
        lhs = eye - np.float32(0.5) * dt * A
        c = scipy.linalg.solve_triangular(lhs, y, lower=True, check_finite=False)
        out[k] = c.astype(np.float32)
    return out


def test_on_recurrence_matches_dense_float32_10000_steps(rng):
    """The O(N) skewed recurrence in float32 vs the dense float64 recurrence, N=256.

    Relative error 1e-5 over the trajectory; step by step it stays within 2e-5 and is
    below the error of the dense recurrence computed in float32 (about 3x larger).
    """
    N, L = 256, 10_000
    k = np.arange(L)
    f = (rng.standard_normal(L) + np.sin(k / rng.uniform(100, 1000))).astype(np.float32)
    want = dense_legs_memory(f.astype(np.float64), N)
    got = np.asarray(jax.jit(lambda f: hippox.hippo_project(f, "legs", N))(f), np.float64)
    err = np.linalg.norm(got - want, axis=-1)
    scale = np.linalg.norm(want, axis=-1)
    assert err.max() / scale.max() <= 1e-5, err.max() / scale.max()
    assert (err / scale).max() <= 2e-5, (err / scale).max()
    err32 = np.linalg.norm(dense_legs_memory_float32(f, N) - want, axis=-1)
    assert err.max() <= err32.max(), (err.max(), err32.max())


@pytest.mark.parametrize("method", list(ALPHA))
def test_on_recurrence_matches_dense_float64(rng, method):
    N, L = 24, 300
    f = rng.standard_normal(L)
    want = dense_legs_memory(f, N, method)
    got = hippox.hippo_project(f, "legs", N, method=method)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())
    # The same memory taken one structured step at a time (time-major).
    c = np.zeros(N)
    c[0] = f[0]
    for k in range(1, 40):
        c = hippox.legs_step(c, f[k], 1.0 / (k + 1), method=method)
    np.testing.assert_allclose(c, want[39], rtol=1e-11, atol=1e-13)


def test_jit_vmap_grad():
    rng = np.random.default_rng(0)
    N = 8
    y = rng.standard_normal((5, N))
    a = rng.uniform(0, 2, 5)
    solve = jax.jit(hippox.legs_solve)
    np.testing.assert_allclose(solve(y, a), hippox.legs_solve(y, a), rtol=1e-13)
    vm = jax.vmap(hippox.legs_solve)(y, a)
    np.testing.assert_allclose(vm, hippox.legs_solve(y, a), rtol=1e-13)
    np.testing.assert_allclose(jax.vmap(hippox.legs_matvec)(y), hippox.legs_matvec(y), rtol=1e-13)
    check_grads(lambda y, a: hippox.legs_solve(y, a), (y[:2], a[:2]), order=1, modes=["rev"])
    check_grads(hippox.legs_matvec, (y[:2],), order=1, modes=["rev"])
    check_grads(
        lambda c, f, dt: hippox.legs_step(c, f, dt), (y[0], 0.3, 0.2), order=1, modes=["rev"]
    )


def test_errors():
    with pytest.raises(ValueError, match="`a` must be finite and >= 0"):
        hippox.legs_solve(jnp.ones(3), -0.1)
    with pytest.raises(TypeError, match="`a` must be real"):
        hippox.legs_solve(jnp.ones(3), 1j)
    with pytest.raises(ValueError, match="`a` must broadcast"):
        hippox.legs_solve(jnp.ones((2, 3)), jnp.ones(3))
    with pytest.raises(ValueError, match=r"`y` must have shape \(\.\.\., N\)"):
        hippox.legs_solve(1.0, 0.1)
    with pytest.raises(ValueError, match=r"`c` must have shape \(\.\.\., N\)"):
        hippox.legs_matvec(2.0)
    with pytest.raises(ValueError, match="zoh"):
        hippox.legs_step(jnp.ones(3), 1.0, 0.1, method="zoh")
    with pytest.raises(ValueError, match="`method` must be one of"):
        hippox.legs_step(jnp.ones(3), 1.0, 0.1, method="rk4")
    with pytest.raises(ValueError, match="`dt` must be >= 0"):
        hippox.legs_step(jnp.ones(3), 1.0, -0.1)
    with pytest.raises(ValueError, match="exactly one of `k`"):
        hippox.legs_transition(3)
    with pytest.raises(ValueError, match="exactly one of `k`"):
        hippox.legs_transition(3, k=1, dt=0.5)
    with pytest.raises(TypeError, match="`k` must be an integer"):
        hippox.legs_transition(3, k=1.5)
    with pytest.raises(ValueError, match="`k` must be >= 0"):
        hippox.legs_transition(3, k=-1)
    with pytest.raises(ValueError, match="`N` must be an integer >= 1"):
        hippox.legs_transition(0, k=1)
