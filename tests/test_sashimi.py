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


# ----------------------------------------------------------------------------- step mode


def _scan_steps(model, carry, us):
    """``model.step`` over ``us`` ``(B, L, H)`` under one jit (a lax.scan)."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, carry, us):
        m = nnx.merge(graphdef, state)
        sp = m.setup_step()
        return jax.lax.scan(lambda c, x: m.step(c, x, sp), carry, jnp.moveaxis(us, 1, 0))

    carry, ys = run(state, carry, us)
    return carry, jnp.moveaxis(ys, 0, 1)


@pytest.mark.parametrize("unet", [False, True])
def test_step_prefill_and_chunks_equal_one_call(unet, rng):
    # float64 end to end: the step loop (buffers, lax.cond per level) and the chunked
    # call (fold / shifted unfold with carried buffers) are two computations of one map
    model = SaShiMi(
        3,
        n_layers=1,
        pool=(2, 3),
        ff=1,
        unet=unet,
        layer_kwargs={"N": 4},
        param_dtype=jnp.float64,
        rngs=nnx.Rngs(1),
    )
    u = jnp.asarray(rng.standard_normal((2, 18, 3)))
    y = model(u)
    # every position stepped from zeros
    carry_s, ys = _scan_steps(model, model.initialize_carry((2,)), u)
    np.testing.assert_allclose(ys, y, rtol=1e-10, atol=1e-10)
    # prefill 6 positions in one call, step the rest
    carry6, y6 = model(u[:, :6], return_carry=True)
    carry_p, yp = _scan_steps(model, carry6, u[:, 6:])
    np.testing.assert_allclose(y6, y[:, :6], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(yp, y[:, 6:], rtol=1e-10, atol=1e-10)
    # chunks of 6 and 12 with the carry passed along; the carry equals the stepped one
    carry_c, yc = model(u[:, 6:], initial_carry=carry6, return_carry=True)
    np.testing.assert_allclose(yc, y[:, 6:], rtol=1e-10, atol=1e-10)
    assert int(carry_c.count) == int(carry_s.count) == int(carry_p.count) == 18
    for a, b in zip(jax.tree.leaves(carry_c), jax.tree.leaves(carry_s), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)
    # a call accepts a carry produced by step (at a pooling boundary)
    _, y_after = model(
        u[:, 12:], initial_carry=_scan_steps(model, carry6, u[:, 6:12])[0], return_carry=True
    )
    np.testing.assert_allclose(y_after, y[:, 12:], rtol=1e-10, atol=1e-10)


def test_step_float32_and_generation_loop(rng):
    # float32 (the default): prefill + step within 1e-5 of one call; a sampler-style loop
    # (prefill, then feed each output back as the next input under lax.scan) equals the
    # full forward on the growing sequence
    model = SaShiMi(
        4, n_layers=1, pool=(2, 2), ff=0, layer="s5", layer_kwargs={"N": 4}, rngs=nnx.Rngs(2)
    )
    u = jnp.asarray(rng.standard_normal((1, 8, 4)), jnp.float32)
    y = model(u)
    carry, _ = model(u[:, :4], return_carry=True)
    _, ys = _scan_steps(model, carry, u[:, 4:])
    np.testing.assert_allclose(ys, y[:, 4:], rtol=1e-5, atol=1e-5)

    graphdef, state = nnx.split(model)

    @jax.jit
    def generate(state, prompt, steps=4):
        m = nnx.merge(graphdef, state)
        carry, yp = m(prompt, return_carry=True)
        sp = m.setup_step()

        def body(c_x, _):
            c, x = c_x
            c, y = m.step(c, x, sp)
            return (c, y), y

        _, out = jax.lax.scan(body, (carry, yp[:, -1]), None, length=steps)
        return jnp.moveaxis(out, 0, 1)

    out = generate(state, u[:, :4])
    seq, ref = u[:, :4], []
    x = model(seq)[:, -1:]
    for _ in range(4):  # the slow reference: the full forward on the growing sequence
        seq = jnp.concatenate([seq, x], axis=1)
        L = seq.shape[1]
        padded = jnp.pad(seq, ((0, 0), (0, -L % 4), (0, 0)))  # causal: padding is harmless
        x = model(padded)[:, L - 1 : L]
        ref.append(x)
    np.testing.assert_allclose(out, jnp.concatenate(ref, axis=1), rtol=1e-5, atol=2e-5)


# ----------------------------------------------------------------------------- frameworks


def test_linen_haiku_equinox_equal_nnx(rng):
    # the same parameters (the NNX tree, grouped for linen/Haiku) give the same outputs
    # and step outputs in every framework; float64 so any wiring difference shows
    import equinox as eqx
    import haiku as hk

    import hippox.equinox
    import hippox.haiku
    import hippox.linen
    from hippox._src.layers import sashimi as core

    kw = dict(n_layers=1, pool=(2,), ff=1, unet=True, layer_kwargs={"N": 4})
    model = SaShiMi(3, **kw, param_dtype=jnp.float64, rngs=nnx.Rngs(3))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    grouped = core.group_params(params)
    u = jnp.asarray(rng.standard_normal((2, 4, 3)))
    carry, y = model(u[:, :2], return_carry=True)
    _, y_step = model.step(carry, u[:, 2])
    y = jnp.concatenate([y, model(u[:, 2:], initial_carry=carry)], axis=1)

    f64 = dict(param_dtype=jnp.float64)
    eq = hippox.equinox.SaShiMi(3, **kw, **f64, key=jax.random.key(0))
    eq = eqx.tree_at(lambda m: m.params, eq, params)
    np.testing.assert_allclose(jax.vmap(eq)(u), y, rtol=1e-12, atol=1e-12)
    eq_carry = eq.initialize_carry((2,))
    eq_carry, _ = eq(u[:, :2], initial_carry=eq_carry, return_carry=True)
    np.testing.assert_allclose(eq.step(eq_carry, u[:, 2])[1], y_step, rtol=1e-12, atol=1e-12)

    def hk_fn(u, c):
        m = hippox.haiku.SaShiMi(3, **kw, **f64)
        c2, y0 = m(u[:, :2], initial_carry=c, return_carry=True)
        return m(u), m.step(c2, u[:, 2])[1]

    f = hk.transform(hk_fn)
    c0 = model.initialize_carry((2,))
    hk_params = f.init(jax.random.key(0), u, c0)
    assert set(hk_params) == {f"sashimi/~/{g}" for g in grouped}
    hk_y, hk_step = f.apply({f"sashimi/~/{g}": v for g, v in grouped.items()}, None, u, c0)
    np.testing.assert_allclose(hk_y, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hk_step, y_step, rtol=1e-12, atol=1e-12)

    ln = hippox.linen.SaShiMi(3, **kw, **f64, deterministic=True)
    variables = ln.init(jax.random.key(0), u)
    assert set(variables["params"]) == set(grouped)
    np.testing.assert_allclose(ln.apply({"params": grouped}, u), y, rtol=1e-12, atol=1e-12)
    ln_carry, _ = ln.apply({"params": grouped}, u[:, :2], return_carry=True)
    ln_step = ln.apply({"params": grouped}, ln_carry, u[:, 2], method="step")[1]
    np.testing.assert_allclose(ln_step, y_step, rtol=1e-12, atol=1e-12)


def test_step_bad_carry_and_chunk_start():
    model = SaShiMi(4, n_layers=1, pool=(2,), ff=0, layer_kwargs={"N": 4}, rngs=nnx.Rngs(0))
    carry = model.initialize_carry((2,))
    with pytest.raises(ValueError, match="`carry"):
        model.step(model.initialize_carry((3,)), jnp.ones((2, 4), jnp.float32))
    with pytest.raises(TypeError, match="`carry`"):
        model.step((carry,), jnp.ones((2, 4), jnp.float32))
    with pytest.raises(ValueError, match="`u_k`"):
        model.step(carry, jnp.ones((2, 5), jnp.float32))
    carry1, _ = model.step(carry, jnp.ones((2, 4), jnp.float32))
    with pytest.raises(ValueError, match="`initial_carry` must have seen a multiple"):
        model(jnp.ones((2, 4, 4), jnp.float32), initial_carry=carry1)
    other = SaShiMi(4, n_layers=1, pool=(2,), ff=0, layer_kwargs={"N": 6}, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`initial_carry"):
        model(jnp.ones((2, 4, 4), jnp.float32), initial_carry=other.initialize_carry((2,)))
