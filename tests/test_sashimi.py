"""SaShiMi pooling backbone: causal resampling identities, causality, shapes, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hippox._src.layers import pooling
from hippox.nnx import SaShiMi


def test_fold_unfold_and_shift(rng):
    x = rng.standard_normal((2, 12, 3))
    folded = pooling.fold(jnp.asarray(x), 4)
    # feature s*H + h of coarse position j is feature h of fine position j*4 + s
    j, s, h = 2, 3, 1
    assert folded.shape == (2, 3, 12)
    assert folded[1, j, s * 3 + h] == x[1, j * 4 + s, h]
    np.testing.assert_array_equal(pooling.unfold(folded, 4), x)
    shifted = pooling.shift_right(jnp.asarray(x))
    np.testing.assert_array_equal(shifted[:, 0], 0.0)
    np.testing.assert_array_equal(shifted[:, 1:], x[:, :-1])


@pytest.mark.parametrize("unet", [False, True])
def test_causal_and_shapes(unet, rng):
    model = SaShiMi(
        4, n_layers=1, pool=(2, 2), ff=2, unet=unet, layer_kwargs={"N": 4}, rngs=nnx.Rngs(0)
    )
    u = jnp.asarray(rng.standard_normal((2, 16, 4)), jnp.float32)
    y = model(u)
    assert y.shape == u.shape and y.dtype == jnp.float32
    t = 9
    v = u.at[:, t:].set(jnp.asarray(rng.standard_normal((2, 16 - t, 4)), jnp.float32))
    yv = model(v)
    np.testing.assert_allclose(yv[:, :t], y[:, :t], rtol=1e-5, atol=1e-5)
    assert float(jnp.max(jnp.abs(yv[:, t:] - y[:, t:]))) > 1e-3  # the future does change
    grads = nnx.grad(lambda m: jnp.mean(m(u) ** 2))(model)
    leaves = jax.tree_util.tree_leaves(grads)
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)


def test_bad_input():
    model = SaShiMi(4, n_layers=0, pool=(2,), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`u`"):
        model(jnp.ones((2, 7, 4)))
    with pytest.raises(ValueError, match="`u`"):
        model(jnp.ones((2, 8, 3)))
    with pytest.raises(TypeError, match="`pool`"):
        SaShiMi(4, pool=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`layer`"):
        SaShiMi(4, layer="gru", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`dropout`"):
        SaShiMi(4, dropout=1.0, rngs=nnx.Rngs(0))
