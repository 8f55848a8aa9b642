"""Tests of `hippox.linear_recurrence` against a plain float64 NumPy loop."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import hippox

LAYOUTS = ("dense", "diag_real", "diag_complex")


def np_recurrence(Ab, Bu, x0, *, diagonal, time_varying):
    """x_k = Ab_k x_{k-1} + Bu_k with an explicit Python loop over time and batch."""
    Ab, Bu = np.asarray(Ab), np.asarray(Bu)
    L, N = Bu.shape[-2:]
    core = (1 if diagonal else 2) + int(time_varying)
    batch = np.broadcast_shapes(Ab.shape[: Ab.ndim - core], Bu.shape[:-2], np.shape(x0)[:-1])
    Ab = np.broadcast_to(Ab, batch + Ab.shape[Ab.ndim - core :])
    Bu = np.broadcast_to(Bu, batch + (L, N))
    x0 = np.broadcast_to(x0, batch + (N,))
    dtype = np.result_type(Ab, Bu, x0)
    out = np.zeros(batch + (L, N), dtype)
    for idx in np.ndindex(*batch):
        x = x0[idx].astype(dtype)
        for k in range(L):
            A = Ab[idx][k] if time_varying else Ab[idx]
            x = (A * x if diagonal else A @ x) + Bu[idx][k]
            out[idx][k] = x
    return out


def random_system(rng, layout, *, N, L, batch_ab, time_varying):
    """A stable random system (spectral radius < 1) in float64 / complex128."""
    shape = batch_ab + ((L,) if time_varying else ())
    if layout == "dense":
        M = rng.standard_normal(shape + (N, N))
        return 0.9 * M / (np.sqrt(N) * 2.2), False
    mag = rng.uniform(0.2, 0.97, shape + (N,))
    if layout == "diag_real":
        return mag * rng.choice([-1.0, 1.0], shape + (N,)), True
    return mag * np.exp(1j * rng.uniform(-np.pi, np.pi, shape + (N,))), True


@pytest.mark.parametrize(
    "layout,time_varying,method",
    list(itertools.product(LAYOUTS, (False, True), ("sequential", "associative"))),
)
def test_matches_numpy_loop_float64(rng, layout, time_varying, method):
    N, L = 5, 23  # odd L exercises the tree reduction's identity padding
    Ab, diagonal = random_system(rng, layout, N=N, L=L, batch_ab=(3,), time_varying=time_varying)
    Bu = rng.standard_normal((2, 3, L, N))
    x0 = rng.standard_normal((3, N))
    want = np_recurrence(Ab, Bu, x0, diagonal=diagonal, time_varying=time_varying)
    kw = dict(diagonal=diagonal, time_varying=time_varying, method=method)
    got = hippox.linear_recurrence(Ab, Bu, x0=x0, **kw)
    assert got.shape == (2, 3, L, N)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    last = hippox.linear_recurrence(Ab, Bu, x0=x0, final_only=True, **kw)
    assert last.shape == (2, 3, N)
    np.testing.assert_allclose(last, want[..., -1, :], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout,time_varying", list(itertools.product(LAYOUTS, (False, True))))
def test_associative_equals_sequential_float32(rng, layout, time_varying):
    N, L = 8, 300
    Ab, diagonal = random_system(rng, layout, N=N, L=L, batch_ab=(), time_varying=time_varying)
    cdtype = np.complex64 if layout == "diag_complex" else np.float32
    Ab = jnp.asarray(Ab, cdtype)
    Bu = jnp.asarray(rng.standard_normal((4, L, N)), np.float32)
    kw = dict(diagonal=diagonal, time_varying=time_varying)
    seq = hippox.linear_recurrence(Ab, Bu, method="sequential", **kw)
    asc = hippox.linear_recurrence(Ab, Bu, method="associative", **kw)
    assert seq.dtype == asc.dtype == cdtype
    want = np_recurrence(
        np.asarray(Ab, np.complex128 if diagonal else np.float64),
        np.asarray(Bu, np.float64),
        np.zeros(N),
        diagonal=diagonal,
        time_varying=time_varying,
    )
    scale = np.abs(want).max()
    np.testing.assert_allclose(seq, want, atol=2e-5 * scale)
    np.testing.assert_allclose(asc, want, atol=2e-5 * scale)
    np.testing.assert_allclose(asc, seq, atol=2e-5 * scale)


def test_x0_zero_default_and_x0_is_the_state_before_step_0(rng):
    N, L = 4, 6
    Ab = rng.uniform(-0.9, 0.9, N)
    Bu = rng.standard_normal((L, N))
    x0 = rng.standard_normal(N)
    no_x0 = hippox.linear_recurrence(Ab, Bu, diagonal=True)
    np.testing.assert_allclose(no_x0[0], Bu[0], rtol=1e-14)
    with_x0 = hippox.linear_recurrence(Ab, Bu, x0=x0, diagonal=True)
    np.testing.assert_allclose(with_x0[0], Ab * x0 + Bu[0], rtol=1e-14)
    # Linearity: the x0 response is Ab^(k+1) x0.
    k = np.arange(L)[:, None]
    np.testing.assert_allclose(with_x0 - no_x0, Ab ** (k + 1) * x0, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["sequential", "associative"])
def test_broadcasting_of_batch_axes(rng, method):
    N, L = 3, 7
    Ab = rng.uniform(-0.9, 0.9, (4, 1, N))  # channels broadcast against Bu's (4, 5)
    Bu = rng.standard_normal((1, 5, L, N))
    x0 = rng.standard_normal((5, N))
    got = hippox.linear_recurrence(Ab, Bu, x0=x0, diagonal=True, method=method)
    assert got.shape == (4, 5, L, N)
    want = np_recurrence(Ab, Bu, x0, diagonal=True, time_varying=False)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_associative_without_x0_broadcasts_and_matches_loop(rng, layout):
    # No x0: the associative path skips the x0 fold; the batch comes from Ab and Bu only.
    N, L = 4, 9
    Ab, diagonal = random_system(rng, layout, N=N, L=L, batch_ab=(3, 1), time_varying=False)
    Bu = rng.standard_normal((1, 2, L, N))
    want = np_recurrence(Ab, Bu, np.zeros(N), diagonal=diagonal, time_varying=False)
    got = hippox.linear_recurrence(Ab, Bu, diagonal=diagonal, method="associative")
    assert got.shape == (3, 2, L, N)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    kw = dict(diagonal=diagonal, method="associative", final_only=True)
    last = hippox.linear_recurrence(Ab, Bu, **kw)
    np.testing.assert_allclose(last, want[..., -1, :], rtol=1e-12, atol=1e-13)


def test_unroll_gives_same_result(rng):
    N, L = 6, 50
    Ab = rng.standard_normal((N, N)) / 6
    Bu = rng.standard_normal((L, N))
    base = hippox.linear_recurrence(Ab, Bu)
    for unroll in (2, 7):
        np.testing.assert_allclose(
            hippox.linear_recurrence(Ab, Bu, unroll=unroll), base, rtol=1e-13, atol=1e-13
        )


def test_single_step_and_dtypes(rng):
    N = 4
    Ab = jnp.asarray(rng.uniform(-1, 1, N) + 1j * rng.uniform(-1, 1, N), jnp.complex64)
    Bu = jnp.asarray(rng.standard_normal((1, N)), jnp.float32)
    for method in ("sequential", "associative"):
        out = hippox.linear_recurrence(Ab, Bu, diagonal=True, method=method)
        assert out.dtype == jnp.complex64 and out.shape == (1, N)
        np.testing.assert_allclose(out[0], Bu[0], rtol=1e-7)
        last = hippox.linear_recurrence(Ab, Bu, diagonal=True, method=method, final_only=True)
        np.testing.assert_allclose(last, Bu[0], rtol=1e-7)
    bf = hippox.linear_recurrence(
        jnp.ones(N, jnp.bfloat16) * 0.5, jnp.ones((3, N), jnp.bfloat16), diagonal=True
    )
    assert bf.dtype == jnp.bfloat16  # no silent promotion
    ints = hippox.linear_recurrence(np.eye(2, dtype=np.int32), np.ones((3, 2), np.int32))
    assert jnp.issubdtype(ints.dtype, jnp.floating)
    np.testing.assert_allclose(ints[:, 0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("method", ["sequential", "associative"])
def test_jit_vmap(rng, method):
    N, L = 4, 9
    Ab = rng.standard_normal((N, N)) / 4
    Bu = rng.standard_normal((3, L, N))
    fn = jax.jit(lambda A, b: hippox.linear_recurrence(A, b, method=method))
    batched = hippox.linear_recurrence(Ab, Bu, method=method)
    np.testing.assert_allclose(fn(Ab, Bu), batched, rtol=1e-12)
    vm = jax.vmap(lambda b: hippox.linear_recurrence(Ab, b, method=method))(Bu)
    np.testing.assert_allclose(vm, batched, rtol=1e-12, atol=1e-14)
    # vmap over per-example matrices equals the batched (..., N, N) layout.
    Abs = rng.standard_normal((3, N, N)) / 4
    vm2 = jax.vmap(lambda A, b: hippox.linear_recurrence(A, b, method=method))(Abs, Bu)
    np.testing.assert_allclose(
        vm2, hippox.linear_recurrence(Abs, Bu, method=method), rtol=1e-12, atol=1e-14
    )


@pytest.mark.parametrize(
    "layout,time_varying,method",
    list(itertools.product(("dense", "diag_real"), (False, True), ("sequential", "associative"))),
)
def test_check_grads(rng, layout, time_varying, method):
    N, L = 3, 5
    Ab, diagonal = random_system(rng, layout, N=N, L=L, batch_ab=(), time_varying=time_varying)
    Bu = rng.standard_normal((2, L, N))
    x0 = rng.standard_normal(N)
    w = rng.standard_normal((2, L, N))
    kw = dict(diagonal=diagonal, time_varying=time_varying, method=method)

    def loss(A, b, x):
        return jnp.sum(w * hippox.linear_recurrence(A, b, x0=x, **kw))

    check_grads(loss, (Ab, Bu, x0), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)

    def loss_final(A, b, x):
        return jnp.sum(w[:, 0] * hippox.linear_recurrence(A, b, x0=x, final_only=True, **kw))

    check_grads(loss_final, (Ab, Bu, x0), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["sequential", "associative"])
def test_grad_of_complex_diagonal_matches_finite_differences(rng, method):
    N, L = 3, 6
    re, im = rng.uniform(-0.6, 0.6, N), rng.uniform(-0.6, 0.6, N)
    Bu = rng.standard_normal((L, N))
    w = rng.standard_normal((L, N)) + 1j * rng.standard_normal((L, N))

    def loss(re, im):
        x = hippox.linear_recurrence(re + 1j * im, Bu, diagonal=True, method=method)
        return jnp.real(jnp.sum(w * x))

    check_grads(loss, (re, im), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)
    g = jax.grad(loss)(re, im)
    assert np.all(np.isfinite(g))
    # Analytic: d/dz sum_k w_k x_k with x_k = sum_{j<=k} z^(k-j) Bu_j.
    z = re + 1j * im
    dz = np.zeros(N, complex)
    for k in range(L):
        for j in range(k):
            dz += w[k] * (k - j) * z ** (k - j - 1) * Bu[j]
    np.testing.assert_allclose(g, np.real(dz), rtol=1e-10, atol=1e-12)


def test_errors():
    Bu = jnp.ones((5, 3))
    with pytest.raises(ValueError, match=r"`Ab` must have shape \(\.\.\., N, N\).*diagonal=True"):
        hippox.linear_recurrence(jnp.ones(3), Bu)
    with pytest.raises(ValueError, match=r"`Ab` must have shape \(\.\.\., N\) \(diagonal"):
        hippox.linear_recurrence(jnp.ones(4), Bu, diagonal=True)
    with pytest.raises(ValueError, match=r"`Ab` must have shape \(\.\.\., L, N, N\)"):
        hippox.linear_recurrence(jnp.ones((4, 3, 3)), Bu, time_varying=True)
    with pytest.raises(ValueError, match="time_varying=True"):
        hippox.linear_recurrence(jnp.ones((5, 3)), Bu, diagonal=True)  # forgot time_varying
    with pytest.raises(ValueError, match="`Bu` must have shape"):
        hippox.linear_recurrence(jnp.ones(3), jnp.ones(3), diagonal=True)
    with pytest.raises(ValueError, match="at least one time step"):
        hippox.linear_recurrence(jnp.ones(3), jnp.ones((0, 3)), diagonal=True)
    with pytest.raises(ValueError, match="`x0` must have shape"):
        hippox.linear_recurrence(jnp.ones(3), Bu, x0=jnp.ones(4), diagonal=True)
    with pytest.raises(ValueError, match="must broadcast together"):
        hippox.linear_recurrence(jnp.ones((2, 3)), jnp.ones((4, 5, 3)), diagonal=True)
    with pytest.raises(ValueError, match="`method` must be one of"):
        hippox.linear_recurrence(jnp.ones(3), Bu, diagonal=True, method="parallel")
    with pytest.raises(ValueError, match="`unroll` is only used"):
        hippox.linear_recurrence(jnp.ones(3), Bu, diagonal=True, method="associative", unroll=4)
    with pytest.raises(ValueError, match="`unroll` must be an integer >= 1"):
        hippox.linear_recurrence(jnp.ones(3), Bu, diagonal=True, unroll=0)
    with pytest.raises(TypeError, match="`diagonal` must be a bool"):
        hippox.linear_recurrence(jnp.ones(3), Bu, diagonal=1)
    with pytest.raises(TypeError, match="`final_only` must be a bool"):
        hippox.linear_recurrence(jnp.ones(3), Bu, diagonal=True, final_only="yes")
    with pytest.raises(TypeError, match="`Bu` must be a numeric array"):
        hippox.linear_recurrence(jnp.ones(3), jnp.ones((5, 3), bool), diagonal=True)
