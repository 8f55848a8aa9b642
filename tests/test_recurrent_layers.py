"""The Lipschitz RNN and UnICORNN sequence layers in Haiku and Equinox
(hippox/_haiku_cells.py, hippox/_equinox_cells.py): the same parameter names and
outputs as the NNX layers for equal parameters, and the sequence-layer calling
convention (``seq_lengths``, ``initial_carry``, ``return_carry``, step mode)."""

import equinox as eqx
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import hippox.equinox
import hippox.haiku
from hippox.nnx import cells as nnx_cells

CASES = [
    ("LipschitzRNN", dict(solver="midpoint", beta=0.6, gated=True)),
    pytest.param("UnICORNN", dict(n_layers=2), marks=pytest.mark.slow),  # two-leaf carry
]


def _haiku(name, d, H, opts, method="call"):
    def run(x, n, carry, u_k):
        layer = getattr(hippox.haiku, name)(d, H, **opts)
        if method == "step":
            return layer.step(carry, u_k)
        return layer(x, seq_lengths=n, initial_carry=carry, return_carry=True)

    return hk.transform(run)


@pytest.mark.parametrize("name, opts", CASES, ids=["LipschitzRNN", "UnICORNN"])
def test_layers_equal_nnx(name, opts, rng):
    d, H, L = 3, 4, 7
    x = jnp.asarray(rng.normal(size=(2, L, d)), jnp.float32)
    n = jnp.array([7, 4])
    ref = getattr(nnx_cells, name)(d, H, **opts, rngs=nnx.Rngs(0))
    params = ref.cell_params()
    c_ref, y_ref = ref(x, seq_lengths=n, return_carry=True)
    assert np.all(np.asarray(y_ref[1, 4:]) == 0.0)
    # Haiku: the same parameter names/shapes; equal outputs and carry for equal parameters
    f = _haiku(name, d, H, opts)
    v = f.init(jax.random.key(0), x, n, None, None)
    (mod,) = v
    assert jax.tree.map(jnp.shape, v[mod]) == jax.tree.map(jnp.shape, params)
    c_hk, y_hk = f.apply({mod: params}, None, x, n, None, None)
    np.testing.assert_allclose(y_hk, y_ref, rtol=1e-6, atol=1e-7)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), c_hk, c_ref)
    # chunks with a carry = one call; step mode
    c1, _ = f.apply({mod: params}, None, x[:, :3], None, None, None)
    _, y2 = f.apply({mod: params}, None, x[:, 3:], None, c1, None)
    full = f.apply({mod: params}, None, x, None, None, None)[1]
    np.testing.assert_allclose(y2, full[:, 3:], rtol=1e-5, atol=1e-6)
    g = _haiku(name, d, H, opts, method="step")
    _, y_k = g.apply({mod: params}, None, None, None, c1, x[:, 3])
    np.testing.assert_allclose(y_k, full[:, 3], rtol=1e-5, atol=1e-6)

    # Equinox: same params, same outputs (batched directly and under vmap), chunks, step
    e = getattr(hippox.equinox, name)(d, H, **opts, key=jax.random.key(0))
    assert e.config == ref.config
    assert jax.tree.map(jnp.shape, e.params) == jax.tree.map(jnp.shape, params)
    e = eqx.tree_at(lambda m: m.params, e, params)
    c_e, y_e = e(x, seq_lengths=n, return_carry=True)
    np.testing.assert_allclose(y_e, y_ref, rtol=1e-6, atol=1e-7)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), c_e, c_ref)
    y_v = jax.vmap(lambda xi, ni: e(xi, seq_lengths=ni))(x, n)
    np.testing.assert_allclose(y_v, y_ref, rtol=1e-6, atol=1e-7)
    c1, _ = e(x[:, :3], return_carry=True)
    np.testing.assert_allclose(e(x[:, 3:], initial_carry=c1), full[:, 3:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(e.step(c1, x[:, 3])[1], full[:, 3], rtol=1e-5, atol=1e-6)
    assert jax.tree.map(jnp.shape, e.initialize_carry((2,))) == jax.tree.map(jnp.shape, c1)
    # gradients flow through the Equinox layer as through the pure config
    loss = lambda p, m: jnp.sum(m(x[:, :3]) ** 2)  # noqa: E731
    ge = jax.grad(lambda p: loss(p, eqx.tree_at(lambda m: m.params, e, p)))(params)
    gc = jax.grad(lambda p: jnp.sum(ref.config.apply(p, x[:, :3])[1] ** 2))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), ge, gc)


def test_layers_bad_input():
    e = hippox.equinox.LipschitzRNN(3, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="3"):
        e(jnp.ones((5, 2), jnp.float32))
    with pytest.raises(TypeError, match="return_carry"):
        e(jnp.ones((5, 3), jnp.float32), return_carry="yes")
    with pytest.raises(ValueError, match="beta"):
        hippox.equinox.LipschitzRNN(3, 4, beta=2.0, key=jax.random.key(0))
    bad = hk.transform(lambda x: hippox.haiku.UnICORNN(3, 4, n_layers=0)(x))
    with pytest.raises(ValueError, match="n_layers"):
        bad.init(jax.random.key(0), jnp.ones((2, 5, 3), jnp.float32))
    f = hk.transform(lambda x: hippox.haiku.UnICORNN(3, 4)(x, initial_carry=jnp.zeros(4)))
    with pytest.raises((TypeError, ValueError), match="initial_carry"):
        f.init(jax.random.key(0), jnp.ones((2, 5, 3), jnp.float32))
