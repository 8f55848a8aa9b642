"""SaShiMi pooling backbone: causal resampling identities, causality, shapes, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hippox._src.layers import pooling
from hippox.nnx import SaShiMi

#: the default-run model (built once: every block's initialisation and eager op compiles
#: are shared by the tests below); P = prod(pool) = 4 positions per chunk
KW64 = dict(n_layers=1, pool=(2, 2), ff=1, layer_kwargs={"N": 4}, param_dtype=jnp.float64)


@pytest.fixture(scope="module")
def model64():
    return SaShiMi(3, **KW64, rngs=nnx.Rngs(1))


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


@pytest.mark.parametrize("unet", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_causal_and_shapes(unet, model64, rng):
    model = model64 if not unet else SaShiMi(3, **KW64, unet=True, rngs=nnx.Rngs(0))
    u = jnp.asarray(rng.standard_normal((2, 12, 3)))
    y = _call(model, u)
    assert y.shape == u.shape and y.dtype == jnp.float64
    t = 5
    v = u.at[:, t:].set(jnp.asarray(rng.standard_normal((2, 12 - t, 3))))
    yv = _call(model, v)
    np.testing.assert_allclose(yv[:, :t], y[:, :t], rtol=1e-12, atol=1e-12)
    assert float(jnp.max(jnp.abs(yv[:, t:] - y[:, t:]))) > 1e-3  # the future does change
    if not unet:
        return  # gradients once (slow run): finite through every block and both poolings
    grads = nnx.jit(nnx.grad(lambda m: jnp.mean(m(u) ** 2)))(model)
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
    with pytest.raises(ValueError, match="`layer_kwargs` must give l_max"):
        SaShiMi(4, layer="s4", layer_kwargs={"N": 4}, rngs=nnx.Rngs(0))


# ----------------------------------------------------------------------------- step mode


@functools.partial(jax.jit, static_argnums=0)
def _run_steps(graphdef, state, carry, us):
    m = nnx.merge(graphdef, state)
    sp = m.setup_step()
    carry, ys = jax.lax.scan(lambda c, x: m.step(c, x, sp), carry, jnp.moveaxis(us, 1, 0))
    return carry, jnp.moveaxis(ys, 0, 1)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _run_call(graphdef, state, u, carry, return_carry):
    return nnx.merge(graphdef, state)(u, initial_carry=carry, return_carry=return_carry)


def _call(model, u, carry=None, return_carry=False):
    """``model(u, initial_carry=carry, return_carry=...)`` under one (cached) jit."""
    return _run_call(*nnx.split(model), u, carry, return_carry)


def _scan_steps(model, carry, us):
    """``model.step`` over ``us`` ``(B, L, H)``: a lax.scan under one (cached) jit."""
    return _run_steps(*nnx.split(model), carry, us)


def _check_step_and_chunks(model, P, rng):
    u = jnp.asarray(rng.standard_normal((2, 3 * P, 3)))
    y = _call(model, u)
    # P positions stepped from zeros give the outputs and the carry of one call on them
    carry_s, ys = _scan_steps(model, model.initialize_carry((2,)), u[:, :P])
    carry_p, yp = _call(model, u[:, :P], return_carry=True)
    np.testing.assert_allclose(ys, y[:, :P], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(yp, y[:, :P], rtol=1e-10, atol=1e-10)
    assert int(carry_s.count) == int(carry_p.count) == P
    for a, b in zip(jax.tree.leaves(carry_p), jax.tree.leaves(carry_s), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)
    # prefill then step; a call continues from the stepped carry; chunks equal one call
    carry_2p, y2 = _scan_steps(model, carry_p, u[:, P : 2 * P])
    np.testing.assert_allclose(y2, y[:, P : 2 * P], rtol=1e-10, atol=1e-10)
    y3 = _call(model, u[:, 2 * P :], carry_2p)
    np.testing.assert_allclose(y3, y[:, 2 * P :], rtol=1e-10, atol=1e-10)
    yc = _call(model, u[:, P:], carry_p)
    np.testing.assert_allclose(yc, y[:, P:], rtol=1e-10, atol=1e-10)


def test_step_prefill_and_chunks_equal_one_call(model64, rng):
    # float64 end to end: the step loop (buffers, a lax.cond per coarse level) and the
    # chunked call (fold / shifted unfold with carried buffers) are two computations of
    # one map; two resolutions below the input
    _check_step_and_chunks(model64, 4, rng)


@pytest.mark.slow
@pytest.mark.parametrize(
    "layer, kwargs", [("s4", {"N": 4, "l_max": 8}), ("s5", {"N": 4}), ("lssl", {"N": 3})]
)
def test_step_prefill_and_chunks_other_layers(layer, kwargs, rng):
    opts = {**KW64, "ff": 0, "layer_kwargs": kwargs}
    model = SaShiMi(3, **opts, layer=layer, rngs=nnx.Rngs(4))
    _check_step_and_chunks(model, 4, rng)


@pytest.mark.slow
def test_step_prefill_and_chunks_unet(rng):
    model = SaShiMi(3, **{**KW64, "pool": (2, 3)}, unet=True, rngs=nnx.Rngs(2))
    _check_step_and_chunks(model, 6, rng)


@pytest.mark.slow
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


def test_linen_haiku_equinox_equal_nnx(model64, rng):
    # the same parameters (the NNX tree, grouped for linen/Haiku) give the same outputs,
    # chunked outputs and step outputs in every framework; float64 so any wiring
    # difference shows
    import equinox as eqx
    import haiku as hk

    import hippox.equinox
    import hippox.haiku
    import hippox.linen
    from hippox._src.layers import sashimi as core

    model, P = model64, 4
    kw = {k: v for k, v in KW64.items()}
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    grouped = core.group_params(params)
    u = jnp.asarray(rng.standard_normal((2, 3 * P, 3)))
    y = _call(model, u)
    carry, _ = _call(model, u[:, :P], return_carry=True)
    _, y_step = _scan_steps(model, carry, u[:, P : P + 1])
    y_step = y_step[:, 0]

    eq = hippox.equinox.SaShiMi(3, **kw, key=jax.random.key(0))
    eq = eqx.tree_at(lambda m: m.params, eq, params)

    @eqx.filter_jit
    def eq_run(eq, u):  # one sequence per call, vmapped (Equinox's convention)
        def one(u):
            c, _ = eq(u[:P], initial_carry=eq.initialize_carry(), return_carry=True)
            return eq(u), eq.step(c, u[P])[1]

        return jax.vmap(one)(u)

    eq_y, eq_step = eq_run(eq, u)
    np.testing.assert_allclose(eq_y, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(eq_step, y_step, rtol=1e-12, atol=1e-12)

    def hk_fn(u, c):
        m = hippox.haiku.SaShiMi(3, **kw)
        c2, _ = m(u[:, :P], initial_carry=c, return_carry=True)
        return m(u), m.step(c2, u[:, P])[1]

    f = hk.transform(hk_fn)
    c0 = model.initialize_carry((2,))
    hk_params = jax.eval_shape(f.init, jax.random.key(0), u, c0)
    assert set(hk_params) == {f"sashimi/~/{g}" for g in grouped}
    hk_tree = {f"sashimi/~/{g}": v for g, v in grouped.items()}
    hk_y, hk_step = jax.jit(f.apply)(hk_tree, None, u, c0)
    np.testing.assert_allclose(hk_y, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hk_step, y_step, rtol=1e-12, atol=1e-12)

    ln = hippox.linen.SaShiMi(3, **kw, deterministic=True)
    assert set(jax.eval_shape(ln.init, jax.random.key(0), u)["params"]) == set(grouped)

    @jax.jit
    def ln_run(params, u):
        v = {"params": params}
        c, _ = ln.apply(v, u[:, :P], return_carry=True)
        return ln.apply(v, u), ln.apply(v, c, u[:, P], method="step")[1]

    ln_y, ln_step = ln_run(grouped, u)
    np.testing.assert_allclose(ln_y, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ln_step, y_step, rtol=1e-12, atol=1e-12)


def test_step_bad_carry_and_chunk_start(model64):
    model = model64
    carry = model.initialize_carry((2,))
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match="`carry"):
        model.step(model.initialize_carry((3,)), x)
    with pytest.raises(TypeError, match="`carry`"):
        model.step((carry,), x)
    with pytest.raises(ValueError, match="`u_k`"):
        model.step(carry, jnp.ones((2, 5)))
    carry1, _ = model.step(carry, x)
    with pytest.raises(ValueError, match="`initial_carry` must have seen a multiple"):
        model(jnp.ones((2, 4, 3)), initial_carry=carry1)
    # a carry of a layer of another size
    path = next(iter(carry.layers))
    wrong = carry._replace(layers={**carry.layers, path: carry.layers[path][..., :1]})
    with pytest.raises(ValueError, match="`initial_carry"):
        model(jnp.ones((2, 4, 3)), initial_carry=wrong)
