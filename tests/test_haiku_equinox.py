"""Haiku and Equinox versions of S4D and the HiPPO-RNN cell (hippox/haiku.py, hippox/equinox.py).

Same parameter values -> same outputs as the Flax NNX layers; jit and grad work;
`to_haiku` adapts hippox initializers (with and without an rng).
"""

import equinox as eqx
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import hippox.equinox
import hippox.haiku
import hippox.nnx
from hippox import initializers


def _nnx_params(module):
    return {k: v[...] for k, v in nnx.state(module, nnx.Param).items()}


# ----------------------------------------------------------------------------- to_haiku


def test_to_haiku_deterministic_init_without_rng():
    inits = {
        "Lambda_re": initializers.lambda_re("legs"),
        "Lambda_im": initializers.lambda_im("legs"),
        "B": initializers.b("legs"),
    }
    shapes = {"Lambda_re": (2, 4), "Lambda_im": (2, 4), "B": (2, 4, 2)}

    def f():
        return {
            n: hk.get_parameter(n, shapes[n], jnp.float32, init=hippox.haiku.to_haiku(init))
            for n, init in inits.items()
        }

    params = hk.transform(f).init(None)["~"]
    for n, init in inits.items():
        np.testing.assert_array_equal(params[n], init(None, shapes[n], jnp.float32))


def test_to_haiku_random_init():
    init = hippox.haiku.to_haiku(initializers.c())

    def f():
        a = hk.get_parameter("a", (3, 4, 2), jnp.float32, init=init)
        b = hk.get_parameter("b", (3, 4, 2), jnp.float32, init=init)
        return a, b

    t = hk.transform(f)
    p1 = t.init(jax.random.key(0))["~"]
    p1_again = t.init(jax.random.key(0))["~"]
    p2 = t.init(jax.random.key(1))["~"]
    np.testing.assert_array_equal(p1["a"], p1_again["a"])  # reproducible
    assert not np.allclose(p1["a"], p2["a"])  # depends on the rng
    assert not np.allclose(p1["a"], p1["b"])  # a fresh key per parameter
    with pytest.raises(ValueError, match="must be a jax.random key"):
        t.init(None)
    with pytest.raises(TypeError, match="`init` must be callable"):
        hippox.haiku.to_haiku("lecun_normal")


# ----------------------------------------------------------------------------- S4D


@pytest.mark.parametrize(
    "kw", [dict(ssm_init="legs"), dict(ssm_init="lin", disc="bilinear", bidirectional=True)]
)
def test_s4d_same_params_same_outputs(kw, rng):
    H, N = 3, 8
    layer = hippox.nnx.S4D(H, N, **kw, rngs=nnx.Rngs(int(rng.integers(1000))))
    params = _nnx_params(layer)
    u = jnp.asarray(rng.normal(size=(2, 12, H)), jnp.float32)
    y = layer(u)

    model = hk.transform(lambda u: hippox.haiku.S4D(H, N, **kw)(u))
    hk_params = model.init(jax.random.key(1), u)
    # deterministic leaves (spectrum, B) agree without copying; random ones need the copy
    for name in ("Lambda_re", "Lambda_im", "B"):
        np.testing.assert_array_equal(hk_params["s4d"][name], params[name])
    assert jax.tree.map(jnp.shape, hk_params["s4d"]) == jax.tree.map(jnp.shape, params)
    y_hk = model.apply({"s4d": params}, None, u)
    np.testing.assert_allclose(y_hk, y, rtol=1e-6, atol=1e-6)

    eqx_layer = hippox.equinox.S4D(H, N, **kw, key=jax.random.key(2))
    for name in ("Lambda_re", "Lambda_im", "B"):
        np.testing.assert_array_equal(eqx_layer.params[name], params[name])
    eqx_layer = eqx.tree_at(lambda m: m.params, eqx_layer, params)
    np.testing.assert_allclose(eqx_layer(u), y, rtol=1e-6, atol=1e-6)


def test_s4d_step(rng):
    H, N = 2, 4
    layer = hippox.nnx.S4D(H, N, rngs=nnx.Rngs(0))
    params = _nnx_params(layer)
    u = jnp.asarray(rng.normal(size=(3, 5, H)), jnp.float32)
    y = layer(u)

    def run(u):
        mod = hippox.haiku.S4D(H, N)
        carry = mod.initialize_carry((3,))
        out = []
        for k in range(u.shape[1]):
            carry, y_k = mod.step(carry, u[:, k])
            out.append(y_k)
        return jnp.stack(out, 1)

    t = hk.transform(run)
    np.testing.assert_allclose(t.apply({"s4d": params}, None, u), y, rtol=1e-5, atol=1e-6)
    e = eqx.tree_at(lambda m: m.params, hippox.equinox.S4D(H, N, key=jax.random.key(0)), params)
    carry = e.initialize_carry((3,))
    carry, y0 = e.step(carry, u[:, 0])
    np.testing.assert_allclose(y0, y[:, 0], rtol=1e-5, atol=1e-6)


def test_s4d_jit_grad(rng):
    H, N = 2, 4
    u = jnp.asarray(rng.normal(size=(2, 6, H)), jnp.float32)
    model = hk.without_apply_rng(hk.transform(lambda u: hippox.haiku.S4D(H, N)(u)))
    params = model.init(jax.random.key(0), u)
    loss = jax.jit(lambda p: jnp.mean(model.apply(p, u) ** 2))
    g = jax.grad(loss)(params)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(g))
    assert float(jnp.abs(g["s4d"]["log_dt"]).max()) > 0
    np.testing.assert_allclose(
        jax.jit(model.apply)(params, u), model.apply(params, u), rtol=1e-6, atol=1e-6
    )

    layer = hippox.equinox.S4D(H, N, key=jax.random.key(0))
    ge = eqx.filter_jit(eqx.filter_grad(lambda m: jnp.mean(m(u) ** 2)))(layer)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(ge))
    np.testing.assert_allclose(ge.params["C"], g_c_of(layer, u), rtol=1e-5, atol=1e-7)


def g_c_of(layer, u):
    """Gradient w.r.t. C through the pure config (independent of the Equinox plumbing)."""

    def loss(C):
        return jnp.mean(layer.config.apply({**layer.params, "C": C}, u) ** 2)

    return jax.jit(jax.grad(loss))(layer.params["C"])


# ----------------------------------------------------------------------------- HiPPO-RNN


@pytest.mark.parametrize("kw", [dict(), dict(gated=True, measure="legt", dt=0.05, memory_size=2)])
def test_rnn_cell_same_params_same_outputs(kw, rng):
    d_in, H, N, L = 3, 5, 4, 9
    cell = hippox.nnx.HiPPORNNCell(d_in, H, N=N, **kw, rngs=nnx.Rngs(int(rng.integers(1000))))
    params = _nnx_params(cell)
    x = jnp.asarray(rng.normal(size=(2, L, d_in)), jnp.float32)
    h = nnx.RNN(cell)(x)  # (batch, time, H)

    def run(x_tm):
        c = hippox.haiku.HiPPORNNCell(H, N=N, **kw)
        return hk.dynamic_unroll(c, x_tm, c.initial_state(x_tm.shape[1]))[0]

    t = hk.transform(run)
    x_tm = jnp.swapaxes(x, 0, 1)
    hk_params = t.init(jax.random.key(0), x_tm)
    assert jax.tree.map(jnp.shape, hk_params["hippo_rnn_cell"]) == jax.tree.map(jnp.shape, params)
    h_hk = t.apply({"hippo_rnn_cell": params}, None, x_tm)
    np.testing.assert_allclose(jnp.swapaxes(h_hk, 0, 1), h, rtol=1e-6, atol=1e-6)

    e = hippox.equinox.HiPPORNNCell(d_in, H, N=N, **kw, key=jax.random.key(3))
    e = eqx.tree_at(lambda m: m.params, e, params)
    _, states = jax.lax.scan(lambda s, x_t: (e(x_t, s),) * 2, e.initial_state((2,)), x_tm)
    np.testing.assert_allclose(jnp.swapaxes(states.h, 0, 1), h, rtol=1e-6, atol=1e-6)


def test_rnn_cell_jit_grad(rng):
    x = jnp.asarray(rng.normal(size=(6, 2)), jnp.float32)
    e = hippox.equinox.HiPPORNNCell(2, 3, N=4, gated=True, key=jax.random.key(0))

    def loss(cell):
        final, _ = jax.lax.scan(lambda s, x_t: (cell(x_t, s), None), cell.initial_state(), x)
        return jnp.sum(final.h**2)

    grad = eqx.filter_jit(eqx.filter_grad(loss))
    g = grad(e)
    assert set(g.params) == {"W_u", "b_u", "W_h", "b_h", "W_g", "b_g"}
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in g.params.values())

    def run(x):
        c = hippox.haiku.HiPPORNNCell(3, N=4, gated=True)
        return hk.dynamic_unroll(c, x, c.initial_state(None))[0]

    t = hk.without_apply_rng(hk.transform(run))
    p = jax.jit(t.init)(jax.random.key(0), x)
    gh = jax.jit(jax.grad(lambda p: jnp.sum(t.apply(p, x)[-1] ** 2)))(p)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(gh))
    # the same parameters give the same gradient in both frameworks
    e2 = eqx.tree_at(lambda m: m.params, e, dict(p["hippo_rnn_cell"]))
    g2 = grad(e2)  # the same compiled gradient, new parameter values
    for name in g2.params:
        np.testing.assert_allclose(
            g2.params[name], gh["hippo_rnn_cell"][name], rtol=1e-5, atol=1e-7
        )


def test_errors():
    with pytest.raises(ValueError, match="`dt` must be None"):
        hk.transform(lambda: hippox.haiku.HiPPORNNCell(3, dt=0.1)).init(None)
    with pytest.raises(ValueError, match="must be a jax.random key"):
        hippox.equinox.S4D(2, 4, key=None)
    with pytest.raises(ValueError, match="`N` must be even"):
        hk.transform(lambda u: hippox.haiku.S4D(2, 5)(u)).init(None, jnp.ones((3, 2)))


# ----------------------------------------------------------------------------- every layer

LAYER_SPECS = {  # name: sizes (HiPPORNN: in_features, hidden_features, N)
    "S4D": (3, 4),
    "S4": (3, 8, 4),
    "S5": (3, 4),
    "LSSL": (3, 3),
    "HiPPORNN": (3, 3, 3),
}


def _layer_kw(name):
    return {"N": 3} if name == "HiPPORNN" else {}


#: the gradient comparison costs ~10-40 s of CPU per layer (three frameworks compiled);
#: S4, LSSL and S5 run it in the slow run and `test_layer_outputs_fast` by default
HEAVY = {"S4", "LSSL", "S5"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in LAYER_SPECS]
)
def test_every_layer_same_outputs_and_gradients(name, rng):
    # Same parameters -> the same outputs (with seq_lengths and a carried state) and the
    # same gradients as NNX, in Haiku and (vmapped, one sequence per call) Equinox.
    sizes = LAYER_SPECS[name][:-1] if name == "HiPPORNN" else LAYER_SPECS[name]
    kw = _layer_kw(name)
    layer = getattr(hippox.nnx, name)(*sizes, **kw, rngs=nnx.Rngs(int(rng.integers(1000))))
    params = _nnx_params(layer)
    u = jnp.asarray(rng.normal(size=(2, 8, 3)), jnp.float32)
    lengths = jnp.asarray([8, 5])
    c0 = layer(u[:, :3], return_carry=True)[0]
    carry, y = layer(u, seq_lengths=lengths, initial_carry=c0, return_carry=True)

    def nnx_loss(p):
        m = nnx.merge(nnx.graphdef(layer), nnx.State(p))
        c, y = m(u, seq_lengths=lengths, initial_carry=c0, return_carry=True)
        return jnp.sum(y**2) + sum(jnp.sum(jnp.abs(x) ** 2) for x in jax.tree.leaves(c)[:1])

    g = jax.jit(jax.grad(nnx_loss))(params)

    cls_hk = getattr(hippox.haiku, name)
    t = hk.without_apply_rng(
        hk.transform(
            lambda u, p=None: cls_hk(*sizes, name="layer", **kw)(
                u, seq_lengths=lengths, initial_carry=c0, return_carry=True
            )
        )
    )
    hk_params = jax.eval_shape(t.init, jax.random.key(0), u)  # only the shapes are used
    assert jax.tree.map(jnp.shape, hk_params["layer"]) == jax.tree.map(jnp.shape, params)
    carry_hk, y_hk = jax.jit(t.apply)({"layer": params}, u)
    np.testing.assert_allclose(y_hk, y, rtol=1e-5, atol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), carry_hk, carry
    )

    def hk_loss(p):
        c, y = t.apply({"layer": p}, u)
        return jnp.sum(y**2) + sum(jnp.sum(jnp.abs(x) ** 2) for x in jax.tree.leaves(c)[:1])

    g_hk = jax.jit(jax.grad(hk_loss))(params)
    for k in params:
        np.testing.assert_allclose(g_hk[k], g[k], rtol=1e-4, atol=1e-6)

    e = getattr(hippox.equinox, name)(*sizes, **kw, key=jax.random.key(1))
    assert jax.tree.map(jnp.shape, e.params) == jax.tree.map(jnp.shape, params)
    e = eqx.tree_at(lambda m: m.params, e, params)

    def eqx_run(m):
        return jax.vmap(lambda u, n, c: m(u, seq_lengths=n, initial_carry=c, return_carry=True))(
            u, lengths, c0
        )

    carry_e, y_e = eqx.filter_jit(eqx_run)(e)
    np.testing.assert_allclose(y_e, y, rtol=1e-5, atol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), carry_e, carry
    )

    def eqx_loss(m):
        c, y = eqx_run(m)
        return jnp.sum(y**2) + sum(jnp.sum(jnp.abs(x) ** 2) for x in jax.tree.leaves(c)[:1])

    g_e = eqx.filter_jit(eqx.filter_grad(eqx_loss))(e)
    for k in params:
        np.testing.assert_allclose(g_e.params[k], g[k], rtol=1e-4, atol=1e-6)
    # step mode continues the carry in both
    sp = e.setup_step()
    _, y_step = jax.vmap(lambda c, x: e.step(c, x, sp))(carry_e, u[:, 0])
    _, y_nnx = layer.step(carry, u[:, 0])
    np.testing.assert_allclose(y_step, y_nnx, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(HEAVY))
def test_layer_outputs_fast(name, rng):
    # the default run's case for the heavy layers: the NNX parameters give the same
    # outputs (with seq_lengths) in Haiku and, one sequence per call, Equinox
    layer = getattr(hippox.nnx, name)(*LAYER_SPECS[name], rngs=nnx.Rngs(int(rng.integers(99))))
    params = _nnx_params(layer)
    u = jnp.asarray(rng.normal(size=(2, 8, 3)), jnp.float32)
    lengths = jnp.asarray([8, 5])
    y = layer(u, seq_lengths=lengths)
    t = hk.without_apply_rng(
        hk.transform(
            lambda u: getattr(hippox.haiku, name)(*LAYER_SPECS[name], name="layer")(
                u, seq_lengths=lengths
            )
        )
    )
    np.testing.assert_allclose(t.apply({"layer": params}, u), y, rtol=1e-5, atol=1e-6)
    e = getattr(hippox.equinox, name)(*LAYER_SPECS[name], key=jax.random.key(1))
    e = eqx.tree_at(lambda m: m.params, e, params)
    y_e = jax.vmap(lambda u, n: e(u, seq_lengths=n))(u, lengths)
    np.testing.assert_allclose(y_e, y, rtol=1e-5, atol=1e-6)


# 12-23 s of CPU each; test_sequence_options.test_frameworks_agree runs by default
@pytest.mark.slow
@pytest.mark.parametrize("layer", ["s5", "hippo_rnn"])
def test_sequence_model_same_outputs_and_gradients(layer, rng):
    kw = dict(
        d_model=4,
        n_layers=2,
        layer=layer,
        layer_kwargs={"N": 4} if layer == "s5" else {"N": 3},
        pooling="mean" if layer == "s5" else None,
        activation="glu" if layer == "s5" else "gelu",
    )
    model = hippox.nnx.SequenceModel(3, 2, **kw, deterministic=True, rngs=nnx.Rngs(0))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    u = jnp.asarray(rng.normal(size=(2, 6, 3)), jnp.float32)
    lengths = jnp.asarray([6, 4])
    carry, y = model(u, seq_lengths=lengths, return_carry=True)

    gd, p0, rest = nnx.split(model, nnx.Param, ...)

    def nnx_loss(p):
        return jnp.sum(nnx.merge(gd, p, rest)(u, seq_lengths=lengths) ** 2)

    g = jax.jit(jax.grad(nnx_loss))(p0)
    g = nnx.to_pure_dict(g)

    # Equinox: params is the NNX pure dict as it is
    e = hippox.equinox.SequenceModel(3, 2, **kw, inference=True, key=jax.random.key(0))
    assert jax.tree.map(jnp.shape, e.params) == jax.tree.map(jnp.shape, params)
    e = eqx.tree_at(lambda m: m.params, e, params)

    def eqx_run(m):
        return jax.vmap(lambda u, n: m(u, seq_lengths=n, return_carry=True))(u, lengths)

    carry_e, y_e = eqx_run(e)
    np.testing.assert_allclose(y_e, y, rtol=1e-5, atol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), carry_e, carry
    )
    g_e = eqx.filter_jit(eqx.filter_grad(lambda m: jnp.sum(eqx_run(m)[1] ** 2)))(e)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g_e.params, g)

    # Haiku: sub-modules encoder, layers_i, mixers_i, norms_i, final_norm, decoder
    t = hk.without_apply_rng(
        hk.transform(
            lambda u: hippox.haiku.SequenceModel(3, 2, **kw)(
                u, seq_lengths=lengths, return_carry=True
            )
        )
    )
    hk_init = t.init(jax.random.key(0), u)

    def to_haiku(p):
        out = {}
        for k, v in p.items():
            if all(isinstance(i, int) for i in v):
                out.update({f"sequence_model/~/{k}_{i}": sub for i, sub in v.items()})
            else:
                out[f"sequence_model/~/{k}"] = v
        return out

    hk_params = to_haiku(params)
    assert jax.tree.map(jnp.shape, hk_init) == jax.tree.map(jnp.shape, hk_params)
    carry_h, y_h = t.apply(hk_params, u)
    np.testing.assert_allclose(y_h, y, rtol=1e-5, atol=1e-6)
    g_h = jax.jit(jax.grad(lambda p: jnp.sum(t.apply(p, u)[1] ** 2)))(hk_params)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g_h, to_haiku(g)
    )
    # step mode continues the carry (Equinox, one sequence)
    sp = e.setup_step()
    c0 = jax.tree.map(lambda x: x[0], carry_e)
    _, y_k = e.step(c0, u[0, 0], sp)
    _, y_n = model.step(carry, u[:, 0])
    np.testing.assert_allclose(y_k, y_n[0], rtol=1e-5, atol=1e-6)


def test_backbone_framework_errors():
    # (BatchNorm is offered by the Haiku and Equinox models too now: no refusal to test)
    e = hippox.equinox.SequenceModel(
        3, 2, d_model=4, n_layers=1, dropout=0.5, layer_kwargs={"N": 4}, key=jax.random.key(0)
    )
    u = jnp.ones((5, 3), jnp.float32)
    with pytest.raises(ValueError, match="`key` must be"):
        e(u)
    call = eqx.filter_jit(lambda m, u, key=None: m(u, key=key))  # compiled once per mode
    y1, y2 = call(e, u, key=jax.random.key(1)), call(e, u, key=jax.random.key(2))
    assert not np.allclose(y1, y2)
    ei = eqx.nn.inference_mode(e)
    np.testing.assert_array_equal(call(ei, u), call(ei, u))
    with pytest.raises(ValueError, match="d_input=3"):
        ei(jnp.ones((5, 4), jnp.float32))


# ----------------------------------------------------------------------------- RNNCore view


@pytest.mark.parametrize("name", list(LAYER_SPECS))
def test_haiku_layer_core_dynamic_unroll_equals_call(name, rng):
    # layer.core() is the layer's step mode as an hk.RNNCore over the same parameters:
    # hk.dynamic_unroll over the sequence (time-major) equals the layer's sequence call
    sizes = LAYER_SPECS[name][:-1] if name == "HiPPORNN" else LAYER_SPECS[name]
    cls = getattr(hippox.haiku, name)

    def f(u):
        layer = cls(*sizes, name="layer", param_dtype=jnp.float64, **_layer_kw(name))
        core = layer.core()
        assert isinstance(core, hk.RNNCore)
        ys, state = hk.dynamic_unroll(core, jnp.swapaxes(u, 0, 1), core.initial_state(u.shape[0]))
        carry, y = layer(u, return_carry=True)
        return jnp.swapaxes(ys, 0, 1), state, y, carry

    t = hk.transform(f)
    u = jnp.asarray(rng.normal(size=(2, 6, 3)), jnp.float64)
    params = jax.jit(t.init)(jax.random.key(int(rng.integers(1000))), u)
    assert list(params) == ["layer"]  # the core has no parameters of its own
    ys, state, y, carry = jax.jit(t.apply)(params, None, u)
    np.testing.assert_allclose(ys, y, rtol=1e-9, atol=1e-10)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10), state, carry)
