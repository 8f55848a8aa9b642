"""Non-finite data stays causal (issue 10, class 8), and traced checks under checkify (class 9).

Policy (``hippox/_src/conv.py``): `causal_conv` gives the outputs of the finite prefix
before the first non-finite sample of a sequence (or lag of its kernel) and NaN from
there on, as the step mode does; `bidirectional_conv` gives NaN for the whole affected
sequence only; `basis` / `reconstruct` give NaN at ``t = NaN``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import hippox


def _direct_causal(u, K, D=None):
    """Float64 direct sum ``y_l = Σ_{j<=l} K[l-j] u_j (+ D u_l)`` (the reference)."""
    u, K = np.broadcast_arrays(np.asarray(u, np.float64), np.asarray(K, np.float64))
    L = u.shape[-1]
    y = np.zeros(u.shape)
    for l in range(L):
        y[..., l] = np.sum(K[..., : l + 1][..., ::-1] * u[..., : l + 1], axis=-1)
    if D is not None:
        y = y + np.asarray(D)[..., None] * u
    return y


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_causal_conv_nonfinite_input_is_causal(rng, bad):
    B, H, L = 3, 2, 24
    u = rng.standard_normal((B, H, L))
    K = rng.standard_normal((H, L)) * 0.5 ** np.arange(L)
    D = rng.standard_normal(H)
    first = rng.integers(1, L, size=(B, H))
    first[0, 0] = L  # one clean sequence
    for b in range(B):
        for h in range(H):
            if first[b, h] < L:
                u[b, h, first[b, h]] = bad
                u[b, h, rng.integers(first[b, h], L)] = np.nan  # more after it: irrelevant
    y = np.asarray(hippox.causal_conv(u, K, D=D))
    for b in range(B):
        for h in range(H):
            p = first[b, h]
            ref = _direct_causal(u[b, h, :p], K[h, :p], D[h])
            np.testing.assert_allclose(y[b, h, :p], ref, rtol=1e-10, atol=1e-10)
            assert np.all(np.isnan(y[b, h, p:]))


def test_causal_conv_nonfinite_kernel_lag(rng):
    H, L = 2, 16
    u = rng.standard_normal((H, L))
    K = rng.standard_normal((H, L))
    K[1, 5] = np.inf
    y = np.asarray(hippox.causal_conv(u, K))
    np.testing.assert_allclose(y[0], _direct_causal(u[0], K[0]), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y[1, :5], _direct_causal(u[1, :5], K[1, :5]), rtol=1e-10)
    assert np.all(np.isnan(y[1, 5:]))


def test_causal_conv_nonfinite_grad_finite_before(rng):
    """Gradients of the clean outputs stay finite with a NaN later in the sequence."""
    u = jnp.asarray(rng.standard_normal((1, 12)))
    u = u.at[0, 7].set(jnp.nan)
    K = jnp.asarray(rng.standard_normal((1, 12)))
    g = jax.grad(lambda v: hippox.causal_conv(v, K)[0, :7].sum())(u)
    assert np.all(np.isfinite(np.asarray(g)))


def test_bidirectional_conv_poisons_only_the_sequence(rng):
    H, L = 3, 10
    u = rng.standard_normal((H, L))
    Kf, Kb = rng.standard_normal((H, L)), rng.standard_normal((H, L))
    clean = np.asarray(hippox.bidirectional_conv(u, Kf, Kb))
    u[1, 4] = np.nan
    y = np.asarray(hippox.bidirectional_conv(u, Kf, Kb))
    assert np.all(np.isnan(y[1]))
    np.testing.assert_allclose(y[[0, 2]], clean[[0, 2]], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("form", ["diag", "dense"])
def test_chunks_match_step_mode_before_nan(rng, form):
    H, M, L, p = 2, 3, 20, 9
    if form == "diag":
        Lam = -rng.uniform(0.1, 1, (H, M)) + 1j * rng.standard_normal((H, M))
        params = hippox.diag_step_params(
            Lam, np.ones((H, M)), rng.standard_normal((H, M)), np.full(H, 0.2)
        )
        chunk = hippox.forward_chunk_diag
    else:
        A, b = hippox.transition("legt", 4)
        Ab, Bb = hippox.discretize(A, b, np.full(H, 0.1))
        params = hippox.dense_step_params(Ab, Bb, rng.standard_normal(4))
        chunk = hippox.forward_chunk_dense
    u = rng.standard_normal((H, L))
    u[0, p] = np.nan
    y_chunk, _ = chunk(params, u)
    y_step, _ = hippox.scan_steps(params, u)
    y_chunk, y_step = np.asarray(y_chunk), np.asarray(y_step)
    np.testing.assert_allclose(y_chunk[0, :p], y_step[0, :p], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(y_chunk[1], y_step[1], rtol=1e-9, atol=1e-12)
    assert np.all(~np.isfinite(y_chunk[0, p:])) and np.all(~np.isfinite(y_step[0, p:]))


def test_s4d_layer_conv_mode_nan_is_causal(rng):
    """The S4D layer (conv mode, via causal_conv) agrees with its step mode before a NaN."""
    config = hippox.S4DConfig(2, 8)
    params = config.init_params(jax.random.key(0), param_dtype=jnp.float64)
    L, p = 16, 6
    u = rng.standard_normal((L, 2))
    u[p, 1] = np.nan
    y = np.asarray(config.apply(params, jnp.asarray(u)))
    sp = config.step_params(params)
    x = config.initial_state((), jnp.float64)
    ys = []
    for k in range(L):
        x, yk = config.step(sp, x, jnp.asarray(u[k]))
        ys.append(np.asarray(yk))
    ys = np.stack(ys)
    np.testing.assert_allclose(y[:, 0], ys[:, 0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(y[:p, 1], ys[:p, 1], rtol=1e-8, atol=1e-10)
    assert np.all(np.isnan(y[p:, 1]))


@pytest.mark.parametrize("measure", ["legs", "legt", "lagt", "fout"])
def test_basis_nan_time_gives_nan(measure):
    t = np.array([0.0, np.nan, 0.5])
    for G in (hippox.basis(measure, 4, t), jax.jit(lambda s: hippox.basis(measure, 4, s))(t)):
        G = np.asarray(G)
        assert np.all(np.isnan(G[1])) and np.all(np.isfinite(G[[0, 2]]))
    r = np.asarray(hippox.reconstruct(np.ones(4), measure, t))
    assert np.isnan(r[1]) and np.all(np.isfinite(r[[0, 2]]))


# ------------------------------------------------------------------ class 9: checkify

_LAM = jnp.array([[-0.5 - 1.0j, -0.3 - 2.0j]])
_ONES = jnp.ones((1, 2), jnp.complex64)


@pytest.mark.parametrize(
    "fn, bad, good, arg",
    [
        (
            lambda dt: hippox.kernel_diag(_LAM, _ONES, _ONES, dt, 8),
            jnp.array([-0.1]),
            jnp.array([0.1]),
            "dt",
        ),
        (
            lambda dt: hippox.kernel_dplr(_LAM, 0.1 * _ONES[None], _ONES, _ONES, dt, 8),
            jnp.array([jnp.inf]),
            jnp.array([0.1]),
            "dt",
        ),
        (
            lambda dt: hippox.discretize_diag(_LAM, _ONES, dt).Ab,
            jnp.array([jnp.nan]),
            jnp.array([0.1]),
            "dt",
        ),
        (
            lambda dt: hippox.discretize(jnp.eye(2), jnp.ones(2), dt).Ab,
            jnp.array(0.0),
            jnp.array(0.1),
            "dt",
        ),
        (
            lambda dt: hippox.diag_step_params(_LAM, _ONES, _ONES, dt).Ab,
            jnp.array([-1.0]),
            jnp.array([0.1]),
            "dt",
        ),
        (lambda t: hippox.basis("legt", 4, t), jnp.array([-1.0, 0.5]), jnp.array([0.0, 0.5]), "t"),
        (
            lambda lam: hippox.kernel_diag(lam, _ONES, _ONES, jnp.array([0.1]), 8),
            -_LAM,
            _LAM,
            "Lambda",
        ),
    ],
)
def test_checkify_catches_traced_values(fn, bad, good, arg):
    f = checkify.checkify(jax.jit(fn))
    err, _ = f(bad)
    assert err.get() is not None and f"`{arg}`" in err.get()
    err, _ = f(good)
    assert err.get() is None
    # without checkify the same jitted function runs (the checks are compiled out)
    jax.block_until_ready(jax.jit(fn)(good))


def test_hippo_project_treats_inf_as_missing_like_nan():
    """±inf in the signal skips its step exactly as NaN does (it never poisons the memory)."""
    f = np.sin(np.linspace(0, 3, 50)).astype(np.float32)
    g, h = f.copy(), f.copy()
    g[20], h[20] = np.inf, np.nan
    c_inf = np.asarray(hippox.hippo_project(g, "legs", 8))
    c_nan = np.asarray(hippox.hippo_project(h, "legs", 8))
    assert np.all(np.isfinite(c_inf))
    np.testing.assert_array_equal(c_inf, c_nan)
    np.testing.assert_array_equal(c_inf[:20], np.asarray(hippox.hippo_project(f[:20], "legs", 8)))
