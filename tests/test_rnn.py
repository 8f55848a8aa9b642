"""Tests of the HiPPO-RNN cell: the pure core (memory, layers/rnn), NNX and linen wrappers."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from flax import nnx
from jax.test_util import check_grads

import hippox
import hippox.linen
import hippox.nnx

# ----------------------------------------------------------------------------- references


def _legs_np(N):
    """LegS (A, B) from the closed form (independent of hippox.transition)."""
    q = np.sqrt(2.0 * np.arange(N) + 1.0)
    A = -np.tril(np.outer(q, q), -1) - np.diag(np.arange(1, N + 1.0))
    return A, q


def _gbt_np(A, B, dt, method):
    N = A.shape[0]
    if method == "zoh":
        Ab = scipy.linalg.expm(dt * A)
        Bb = np.linalg.solve(A, (Ab - np.eye(N)) @ B)
        return Ab, Bb
    alpha = {"forward_euler": 0.0, "bilinear": 0.5, "backward_euler": 1.0}[method]
    lhs = np.eye(N) - alpha * dt * A
    return (np.linalg.solve(lhs, np.eye(N) + (1 - alpha) * dt * A), np.linalg.solve(lhs, dt * B))


def _legs_dt(t, schedule):
    return {"shifted": 1.0 / (t + 1), "reference": 1.0 / t, "log": np.log((t + 1.0) / t)}[schedule]


def _cell_np(
    params,
    x,
    *,
    measure,
    N,
    F,
    method="bilinear",
    dt=None,
    gate="N",
    schedule="reference",
    hh=False,
    um=False,
    ux=True,
    hx=True,
    timestamped=False,
):
    """Float64 NumPy HiPPO-RNN over x (L, d_in), dense matrices; returns (hs, cs)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    L, _ = x.shape
    H = p["W_h"].shape[1]
    if measure == "legs":
        A, B = _legs_np(N)
    else:
        A, B = (np.asarray(a, np.float64) for a in hippox.transition(measure, N, dtype=np.float64))
    h, c, t_prev = np.zeros(H), np.zeros((F, N)), 0.0
    hs, cs = [], []
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    for t in range(L):
        xt = x[t]
        if timestamped:
            ts, xt = xt[0], xt[1:]
        u = np.concatenate([xt if ux else xt[:0], h]) @ p["W_u"] + p.get("b_u", 0.0)
        if um:
            u = u + (c * p["W_um"]).sum(-1)
        if timestamped:
            if measure == "legs" and ts == 0:
                c = np.zeros((F, N))
                c[:, 0] = u
            else:
                step = (ts - t_prev) / ts if measure == "legs" else dt * (ts - t_prev)
                Ab, Bb = _gbt_np(A, B, step, method)
                c = c @ Ab.T + u[:, None] * Bb
            t_prev = ts
        elif measure == "legs":
            if t == 0:
                c = np.zeros((F, N))
                c[:, 0] = u
            else:
                Ab, Bb = _gbt_np(A, B, _legs_dt(t, schedule), method)
                c = c @ Ab.T + u[:, None] * Bb
        else:
            Ab, Bb = _gbt_np(A, B, dt, method)
            c = c @ Ab.T + u[:, None] * Bb
        z = np.concatenate([xt if hx else xt[:0], c.reshape(-1)])
        pre = z @ p["W_h"] + p.get("b_h", 0.0)
        if hh:
            pre = pre + h @ p["W_hh"] + p.get("b_hh", 0.0)
        ht = np.tanh(pre)
        if gate != "N":
            zg = np.concatenate([z, h]) if hh else z
            g = sig(zg @ p["W_g"] + p.get("b_g", 0.0))
            if gate in ("R", "UR"):
                r = sig(zg @ p["W_r"] + p.get("b_r", 0.0))
                g = (1 - 2 * r) * g**2 + 2 * r * g
            ht = (1 - g) * h + g * ht
        h = ht
        hs.append(h)
        cs.append(c.copy())
    return np.stack(hs), np.stack(cs)


def _random_params(cfg, rng, dtype=np.float64, scale=0.5):
    shapes = cfg.param_shapes()
    return {n: jnp.asarray(rng.normal(size=s) * scale, dtype) for n, s in shapes.items()}


def _states(cfg, params, x):
    """All intermediate states (scan of cfg.step), for memory comparisons."""

    def body(s, x_t):
        s, h = cfg.step(params, s, x_t)
        return s, (s.c, h)

    s0 = cfg.initial_state(x.shape[:-2], jnp.result_type(*params.values()))
    _, (cs, hs) = jax.lax.scan(body, s0, jnp.moveaxis(x, -2, 0))
    return jnp.moveaxis(cs, 0, -3), jnp.moveaxis(hs, 0, -2)


# ----------------------------------------------------------------------------- memory


MEMORY_CASES = [
    ("legs", "bilinear", None),
    ("legs", "forward_euler", None),
    ("legs", "backward_euler", None),
    ("legt", "bilinear", 0.03),
    ("lmu", "zoh", 0.05),
    ("lagt", "backward_euler", 0.02),
    ("glagt", "bilinear", 0.1),
]


@pytest.mark.parametrize("measure,method,dt", MEMORY_CASES)
def test_memory_equals_hippo_project(measure, method, dt, rng):
    # W_u routes input feature f to memory channel f (identity), h does not feed u:
    # then the cell's memory is the online HiPPO projection of each input feature.
    N, F, L = 8, 2, 40
    sched = {"schedule": "shifted"} if measure == "legs" else {}
    cfg = hippox.HiPPORNNConfig(
        d_in=F, features=3, memory_size=F, N=N, measure=measure, method=method, dt=dt, **sched
    )
    params = _random_params(cfg, rng)
    W_u = np.zeros((F + 3, F))
    W_u[:F, :F] = np.eye(F)
    params.update(W_u=jnp.asarray(W_u), b_u=jnp.zeros(F))
    x = rng.normal(size=(2, L, F))
    cs, _ = _states(cfg, params, jnp.asarray(x))
    kw = {} if measure == "legs" else {"dt": dt}
    ref = hippox.hippo_project(np.moveaxis(x, -1, -2), measure, N, method=method, **kw)
    # ref (2, F, L, N) -> (2, L, F, N)
    np.testing.assert_allclose(cs, np.moveaxis(np.asarray(ref), 1, 2), rtol=1e-10, atol=1e-10)


def test_legs_first_step_is_u0_e0(rng):
    cfg = hippox.HiPPORNNConfig(d_in=2, features=3, memory_size=4, N=5)
    params = _random_params(cfg, rng)
    x = jnp.asarray(rng.normal(size=(1, 2)))
    s, _ = cfg.step(params, cfg.initial_state((1,), jnp.float64), x)
    u = np.concatenate([np.asarray(x)[0], np.zeros(3)]) @ np.asarray(params["W_u"]) + np.asarray(
        params["b_u"]
    )
    expected = np.zeros((4, 5))
    expected[:, 0] = u
    np.testing.assert_allclose(s.c[0], expected, rtol=1e-12, atol=1e-12)
    assert s.t.tolist() == [1]


def test_memory_transition_and_default_dt():
    mem = hippox.hippo_memory("lmu", 6, method="zoh")
    assert mem.dt == 1e-2
    Ab, Bb = mem.transition(np.float64)
    A, B = (np.asarray(a) for a in hippox.transition("lmu", 6, dtype=np.float64))
    Ab_ref = scipy.linalg.expm(1e-2 * A)
    np.testing.assert_allclose(Ab, Ab_ref, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(A @ Bb, (Ab_ref - np.eye(6)) @ B, rtol=1e-9, atol=1e-13)
    with pytest.raises(ValueError, match="time-invariant"):
        hippox.hippo_memory("legs", 4).transition()


# ----------------------------------------------------------------------------- full cell


@pytest.mark.parametrize("gate", ["N", "G", "UR"])
@pytest.mark.parametrize("measure,method,dt", [("legs", "bilinear", None), ("legt", "zoh", 0.05)])
def test_cell_matches_numpy(measure, method, dt, gate, rng):
    d_in, H, F, N, L = 3, 4, 2, 6, 25
    cfg = hippox.HiPPORNNConfig(
        d_in=d_in, features=H, memory_size=F, N=N, measure=measure, method=method, dt=dt, gate=gate
    )
    params = _random_params(cfg, rng)
    x = rng.normal(size=(L, d_in))
    state, h = cfg.apply(params, jnp.asarray(x))
    hs, cs = _cell_np(params, x, measure=measure, N=N, F=F, method=method, dt=dt, gate=gate)
    np.testing.assert_allclose(h, hs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(state.c, cs[-1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(state.h, hs[-1], rtol=1e-10, atol=1e-12)
    assert int(state.t) == L


def test_gate_limits(rng):
    d_in, H, F, N, L = 2, 3, 1, 4, 12
    base = hippox.HiPPORNNConfig(d_in=d_in, features=H, memory_size=F, N=N, gate="N")
    gated = hippox.HiPPORNNConfig(d_in=d_in, features=H, memory_size=F, N=N)
    params = _random_params(gated, rng)
    x = jnp.asarray(rng.normal(size=(L, d_in)))
    plain = {k: v for k, v in params.items() if k not in ("W_g", "b_g")}
    _, h_plain = base.apply(plain, x)
    zero_w = jnp.zeros_like(params["W_g"])
    # gate fully open (g = 1): the plain cell; closed (g = 0): h stays at its start, 0.
    _, h_open = gated.apply({**params, "W_g": zero_w, "b_g": jnp.full(H, 60.0)}, x)
    _, h_closed = gated.apply({**params, "W_g": zero_w, "b_g": jnp.full(H, -60.0)}, x)
    np.testing.assert_allclose(h_open, h_plain, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_closed, 0.0, atol=1e-20)
    # half-open gate: exact convex combination at every step
    _, h_half = gated.apply({**params, "W_g": zero_w, "b_g": jnp.zeros(H)}, x)
    hs, _ = _cell_np(
        {**params, "W_g": zero_w, "b_g": jnp.zeros(H)},
        np.asarray(x),
        measure="legs",
        N=N,
        F=F,
        gate="G",
    )
    np.testing.assert_allclose(h_half, hs, rtol=1e-10, atol=1e-12)


def test_batch_shapes_jit_vmap(rng):
    cfg = hippox.HiPPORNNConfig(d_in=2, features=3, memory_size=2, N=4)
    params = _random_params(cfg, rng)
    x = jnp.asarray(rng.normal(size=(2, 3, 7, 2)))
    state, h = cfg.apply(params, x)
    assert h.shape == (2, 3, 7, 3) and state.c.shape == (2, 3, 2, 4) and state.t.shape == (2, 3)
    state_j, h_j = jax.jit(cfg.apply)(params, x)
    np.testing.assert_allclose(h_j, h, rtol=1e-12, atol=1e-13)
    h_v = jax.vmap(lambda xi: cfg.apply(params, xi)[1])(x.reshape(6, 7, 2))
    np.testing.assert_allclose(h_v.reshape(h.shape), h, rtol=1e-12, atol=1e-13)
    # every batch element is the unbatched computation
    _, h0 = cfg.apply(params, x[1, 2])
    np.testing.assert_allclose(h[1, 2], h0, rtol=1e-12, atol=1e-13)


def test_chunked_equals_full(rng):
    # Carrying the state (including the step counter) across calls continues the sequence.
    cfg = hippox.HiPPORNNConfig(d_in=1, features=2, memory_size=1, N=6)
    params = _random_params(cfg, rng)
    x = jnp.asarray(rng.normal(size=(20, 1)))
    _, h = cfg.apply(params, x)
    s, h1 = cfg.apply(params, x[:8])
    _, h2 = cfg.apply(params, x[8:], s)
    np.testing.assert_allclose(jnp.concatenate([h1, h2]), h, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("measure", ["legs", "lagt"])
def test_grads(measure, rng):
    dt = None if measure == "legs" else 0.05
    cfg = hippox.HiPPORNNConfig(
        d_in=2, features=2, memory_size=1, N=3, measure=measure, dt=dt, gated=True
    )
    params = _random_params(cfg, rng)
    x = jnp.asarray(rng.normal(size=(6, 2)))

    @jax.jit
    def loss(p, x):
        return jnp.sum(cfg.apply(p, x)[1] ** 2)

    check_grads(loss, (params, x), order=1, modes=["rev", "fwd"], atol=1e-6, rtol=1e-6)
    g = jax.grad(loss)(jax.tree.map(lambda a: a.astype(jnp.float32), params), x.astype(jnp.float32))
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in g.values())


def test_dtypes(rng):
    cfg = hippox.HiPPORNNConfig(d_in=2, features=3, N=4)
    p32 = _random_params(cfg, rng, np.float32)
    x = rng.normal(size=(5, 2))
    s, h = cfg.apply(p32, jnp.asarray(x, jnp.float32))
    assert h.dtype == jnp.float32 and s.c.dtype == jnp.float32 and s.h.dtype == jnp.float32
    # bfloat16 activations: computed in float32, returned in bfloat16, state float32
    s, hb = cfg.apply(p32, jnp.asarray(x, jnp.bfloat16))
    assert hb.dtype == jnp.bfloat16 and s.c.dtype == jnp.float32
    np.testing.assert_allclose(hb.astype(np.float32), h, atol=3e-2)
    s, h64 = cfg.apply(_random_params(cfg, rng), jnp.asarray(x))
    assert h64.dtype == jnp.float64 and s.c.dtype == jnp.float64


def test_errors(rng):
    with pytest.raises(ValueError, match="random ablation"):
        hippox.hippo_memory("diagonal", 4)
    with pytest.raises(ValueError, match="`dt` must be None"):
        hippox.hippo_memory("legs", 4, dt=0.1)
    with pytest.raises(ValueError, match="`l_max` is for 'legs' with method 'zoh'"):
        hippox.hippo_memory("legs", 4, l_max=10)
    with pytest.raises(ValueError, match="`dt` must be > 0"):
        hippox.hippo_memory("legt", 4, dt=-1.0)
    with pytest.raises(ValueError, match="`measure` must be one of"):
        hippox.hippo_memory("nope", 4)
    with pytest.raises(ValueError, match="`N` must be"):
        hippox.HiPPORNNConfig(d_in=1, features=2, N=0)
    with pytest.raises(TypeError, match="`gated` must be a bool"):
        hippox.HiPPORNNConfig(d_in=1, features=2, gated=1)
    with pytest.raises(TypeError, match="takes no parameters|unknown|parameter"):
        hippox.HiPPORNNConfig(d_in=1, features=2, measure_params=(("theta", 1.0),))
    cfg = hippox.HiPPORNNConfig(d_in=2, features=3, N=4)
    params = _random_params(cfg, rng)
    s = cfg.initial_state((1,))
    with pytest.raises(ValueError, match=r"`params\['W_h'\]` must have shape \(6, 3\)"):
        cfg.step({**params, "W_h": jnp.zeros((5, 3))}, s, jnp.ones((1, 2)))
    with pytest.raises(ValueError, match="missing 'b_u'"):
        cfg.step({k: v for k, v in params.items() if k != "b_u"}, s, jnp.ones((1, 2)))
    with pytest.raises(ValueError, match=r"`x` must have shape \(\.\.\., d_in\) with d_in=2"):
        cfg.step(params, s, jnp.ones((1, 3)))
    with pytest.raises(TypeError, match="`x` must be a real floating"):
        cfg.step(params, s, jnp.ones((1, 2), jnp.int32))
    with pytest.raises(TypeError, match="HiPPORNNState"):
        cfg.step(params, (s.h, s.c, s.t), jnp.ones((1, 2)))
    with pytest.raises(ValueError, match=r"`x` must have shape \(\.\.\., L, d_in\)"):
        cfg.apply(params, jnp.ones((2,)))


def test_measure_params(rng):
    cfg = hippox.HiPPORNNConfig(
        d_in=1, features=2, N=5, measure="legt", dt=0.02, measure_params={"theta": 1.0}
    )
    assert cfg.measure_params == (("theta", 1.0),)
    hash(cfg)
    params = _random_params(cfg, rng)
    W_u = np.zeros((3, 1))
    W_u[0, 0] = 1.0
    params.update(W_u=jnp.asarray(W_u), b_u=jnp.zeros(1))
    x = rng.normal(size=(15, 1))
    cs, _ = _states(cfg, params, jnp.asarray(x))
    ref = hippox.hippo_project(x[:, 0], "legt", 5, dt=0.02, theta=1.0)
    np.testing.assert_allclose(cs[:, 0], ref, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- Flax


def _nnx_params(module):
    return {k: v[...] for k, v in nnx.state(module, nnx.Param).items()}


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("measure,dt", [("legs", None), ("lmu", 0.05)])
def test_nnx_equals_linen_and_wrappers(measure, dt, gated, rng):
    d_in, H, L = 3, 5, 9
    kw = dict(memory_size=2, N=4, measure=measure, dt=dt, gated=gated)
    cell = hippox.nnx.HiPPORNNCell(d_in, H, **kw, rngs=nnx.Rngs(int(rng.integers(1000))))
    x = jnp.asarray(rng.normal(size=(2, L, d_in)), jnp.float32)
    # nnx.RNN wrapper == the pure core on the same params
    h_nnx = nnx.RNN(cell)(x)
    params = _nnx_params(cell)
    _, h_core = cell.config.apply(params, x)
    np.testing.assert_allclose(h_nnx, h_core, rtol=1e-6, atol=1e-6)
    # linen nn.RNN wrapper with the copied params
    lcell = hippox.linen.HiPPORNNCell(features=H, **kw)
    rnn = nn.RNN(lcell)
    variables = rnn.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, variables["params"]["cell"]) == jax.tree.map(jnp.shape, params)
    h_linen = rnn.apply({"params": {"cell": params}}, x)
    np.testing.assert_allclose(h_linen, h_nnx, rtol=1e-6, atol=1e-6)
    # one manual step each
    c_n = cell.initialize_carry((2, d_in))
    c_l = lcell.initialize_carry(jax.random.key(1), (2, d_in))
    c_n, y_n = cell(c_n, x[:, 0])
    c_l, y_l = lcell.apply({"params": params}, c_l, x[:, 0])
    np.testing.assert_allclose(y_n, h_nnx[:, 0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(y_l, y_n, rtol=1e-6, atol=1e-6)
    # sequence layers
    seq = hippox.nnx.HiPPORNN(d_in, H, **kw, rngs=nnx.Rngs(0))
    for name, value in params.items():
        getattr(seq, name)[...] = value
    np.testing.assert_allclose(seq(x), h_nnx, rtol=1e-6, atol=1e-6)
    lseq = hippox.linen.HiPPORNN(in_features=d_in, features=H, **kw)
    np.testing.assert_allclose(lseq.apply({"params": params}, x), h_nnx, rtol=1e-6, atol=1e-6)


def test_sequence_layer_step_equals_call(rng):
    layer = hippox.nnx.HiPPORNN(2, 3, N=5, rngs=nnx.Rngs(3))
    x = jnp.asarray(rng.normal(size=(4, 11, 2)), jnp.float32)
    y = layer(x)
    carry = layer.initialize_carry((4,))
    sp = layer.setup_step()
    ys = []
    for k in range(11):
        carry, y_k = layer.step(carry, x[:, k], sp)
        ys.append(y_k)
    np.testing.assert_allclose(jnp.stack(ys, 1), y, rtol=1e-6, atol=1e-6)
    llayer = hippox.linen.HiPPORNN(in_features=2, features=3, N=5)
    variables = {"params": _nnx_params(layer)}
    carry = llayer.initialize_carry((4,))
    sp = llayer.apply(variables, method="setup_step")
    carry, y0 = llayer.apply(variables, carry, x[:, 0], sp, method="step")
    np.testing.assert_allclose(y0, y[:, 0], rtol=1e-6, atol=1e-6)


def test_flax_grad_and_jit(rng):
    cell = hippox.nnx.HiPPORNNCell(2, 3, N=4, gated=True, rngs=nnx.Rngs(0))
    rnn = nnx.RNN(cell)
    x = jnp.asarray(rng.normal(size=(2, 6, 2)), jnp.float32)

    @nnx.jit
    def loss_and_grad(model, x):
        return nnx.value_and_grad(lambda m: jnp.mean(m(x) ** 2))(model)

    value, grads = loss_and_grad(rnn, x)
    assert np.isfinite(float(value))
    leaves = jax.tree.leaves(grads)
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(float(jnp.abs(g).max()) > 0 for g in leaves)


def test_flax_errors():
    with pytest.raises(ValueError, match="`dt` must be None"):
        hippox.nnx.HiPPORNNCell(2, 3, dt=0.1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`dt` must be None"):
        hippox.linen.HiPPORNNCell(features=3, dt=0.1)
    with pytest.raises(TypeError, match="`rngs` must be a flax.nnx.Rngs"):
        hippox.nnx.HiPPORNNCell(2, 3, rngs=0)
    cell = hippox.nnx.HiPPORNNCell(2, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"`input_shape` must be \(\.\.\., 2\)"):
        cell.initialize_carry((4, 3))
    carry = cell.initialize_carry(
        (4, 2), rngs=nnx.Rngs(carry=1), carry_init=jax.nn.initializers.ones
    )
    np.testing.assert_array_equal(carry.h, 1.0)
    np.testing.assert_array_equal(carry.c, 0.0)


# ----------------------------------------------------------------------------- seq_lengths


@pytest.mark.parametrize("gated", [False, True])
def test_seq_lengths_equal_unpadded(gated, rng):
    cfg = hippox.HiPPORNNConfig(d_in=2, features=3, memory_size=2, N=4, gated=gated)
    params = _random_params(cfg, rng)
    L, lengths = 9, np.array([[9, 0, 4], [1, 6, 7]])
    x = jnp.asarray(rng.normal(size=(2, 3, L, 2)))
    state, h = cfg.apply(params, x, seq_lengths=jnp.asarray(lengths))
    assert h.shape == (2, 3, L, 3)
    for i in range(2):
        for j in range(3):
            n = int(lengths[i, j])
            # padding outputs are exactly zero
            np.testing.assert_array_equal(h[i, j, n:], 0.0)
            if n == 0:
                s0 = cfg.initial_state((), jnp.float64)
                for a, b in zip(state, s0, strict=True):
                    np.testing.assert_array_equal(a[i, j], b)
                continue
            s_ref, h_ref = cfg.apply(params, x[i, j, :n])
            np.testing.assert_allclose(h[i, j, :n], h_ref, rtol=1e-12, atol=1e-13)
            np.testing.assert_allclose(state.h[i, j], s_ref.h, rtol=1e-12, atol=1e-13)
            np.testing.assert_allclose(state.c[i, j], s_ref.c, rtol=1e-12, atol=1e-13)
            assert int(state.t[i, j]) == n
    # changing the padding values changes nothing
    x2 = jnp.where(jnp.arange(L)[:, None] < jnp.asarray(lengths)[..., None, None], x, 7.0)
    state2, h2 = jax.jit(lambda x, n: cfg.apply(params, x, seq_lengths=n))(x2, lengths)
    np.testing.assert_allclose(h2, h, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(state2.c, state.c, rtol=1e-12, atol=1e-13)


def test_seq_lengths_grads(rng):
    cfg = hippox.HiPPORNNConfig(d_in=2, features=2, memory_size=1, N=3, gated=True)
    params = _random_params(cfg, rng)
    x = jnp.asarray(rng.normal(size=(2, 6, 2)))
    lengths = jnp.array([4, 6])

    def loss(p, x):
        s, h = cfg.apply(p, x, seq_lengths=lengths)
        return jnp.sum(h**2) + jnp.sum(s.h**2)

    def loss_ref(p, x):
        out = 0.0
        for b, n in enumerate([4, 6]):
            s, h = cfg.apply(p, x[b, :n])
            out = out + jnp.sum(h**2) + jnp.sum(s.h**2)
        return out

    check_grads(loss, (params, x), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
    g, gx = jax.grad(loss, argnums=(0, 1))(params, x)
    g_ref, gx_ref = jax.grad(loss_ref, argnums=(0, 1))(params, x)
    for k in g:
        np.testing.assert_allclose(g[k], g_ref[k], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(gx[0, 4:], 0.0)  # padding has no influence


def test_seq_lengths_errors(rng):
    cfg = hippox.HiPPORNNConfig(d_in=2, features=3, N=4)
    params = _random_params(cfg, rng)
    x = jnp.ones((2, 5, 2))
    with pytest.raises(TypeError, match="`seq_lengths` must be an integer"):
        cfg.apply(params, x, seq_lengths=jnp.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"`seq_lengths` must have the batch shape \(2,\)"):
        cfg.apply(params, x, seq_lengths=jnp.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"`seq_lengths` must lie in \[0, L\] with L=5"):
        cfg.apply(params, x, seq_lengths=np.array([1, 6]))
    with pytest.raises(ValueError, match=r"`seq_lengths` must lie in \[0, L\]"):
        cfg.apply(params, x, seq_lengths=np.array([-1, 2]))
    with pytest.raises(TypeError, match="`seq_lengths` must be"):
        cfg.apply(params, x, seq_lengths="3")


def test_check_state(rng):
    cfg = hippox.HiPPORNNConfig(d_in=2, features=3, memory_size=2, N=4)
    s = cfg.initial_state((5,), jnp.float32)
    out = cfg.check_state(s, (5,), jnp.float32)
    assert isinstance(out, hippox.HiPPORNNState)
    cfg.check_state(s, (5,))
    with pytest.raises(TypeError, match="`state` must be a HiPPORNNState"):
        cfg.check_state(tuple(s), (5,))
    with pytest.raises(ValueError, match=r"`state.h` must have shape \(4, 3\)"):
        cfg.check_state(s, (4,))
    with pytest.raises(ValueError, match=r"`carry.c` must have shape \(5, 2, 4\)"):
        cfg.check_state(s._replace(c=jnp.zeros((5, 2, 3))), (5,), name="carry")
    with pytest.raises(TypeError, match="`state.t` must be an integer"):
        cfg.check_state(s._replace(t=jnp.zeros(5)), (5,))
    with pytest.raises(TypeError, match="`state.h` must be real floating"):
        cfg.check_state(s._replace(h=jnp.zeros((5, 3), jnp.int32)), (5,))
    with pytest.raises(TypeError, match="share one dtype"):
        cfg.check_state(s._replace(h=s.h.astype(jnp.float64)), (5,))
    with pytest.raises(TypeError, match="must have dtype float64"):
        cfg.check_state(s, (5,), jnp.float64)


# ----------------------------------------------------------------------------- reference options


from hippox._src.layers.rnn import hippo_cell_options  # noqa: E402  (exported by the lead)


@pytest.mark.parametrize(
    "kw",
    [
        dict(gate="R", hh=True, um=True),
        dict(gate="N", ux=False, hx=False, bias=False),
        dict(gate="UR", hh=True, bias=False),
    ],
)
def test_architecture_flags_match_numpy(kw, rng):
    d_in, H, F, N, L = 2, 3, 2, 4, 12
    cfg = hippox.HiPPORNNConfig(d_in, H, memory_size=F, N=N, **kw)
    params = _random_params(cfg, rng)
    x = rng.normal(size=(L, d_in))
    _, h = cfg.apply(params, jnp.asarray(x))
    flags = {k: v for k, v in kw.items() if k in ("gate", "hh", "um", "ux", "hx")}
    hs, _ = _cell_np(params, x, measure="legs", N=N, F=F, **flags)
    np.testing.assert_allclose(h, hs, rtol=1e-10, atol=1e-12)


def test_timestamped_cell_matches_numpy(rng):
    for name, measure, dt in [("tlsi", "legs", None), ("tlti", "legt", 1.0)]:
        cfg = hippox.HiPPORNNConfig(3, 4, memory_size=2, N=5, **hippo_cell_options(name))
        params = _random_params(cfg, rng)
        ts = np.concatenate([[0.0], np.cumsum(rng.uniform(0.1, 1.0, size=9))])
        x = np.concatenate([ts[:, None], rng.normal(size=(10, 2))], axis=1)
        state, h = cfg.apply(params, jnp.asarray(x))
        hs, _ = _cell_np(params, x, measure=measure, N=5, F=2, dt=dt, gate="G", timestamped=True)
        np.testing.assert_allclose(h, hs, rtol=1e-9, atol=1e-11)
        assert state.t.dtype == jnp.float64 and float(state.t) == ts[-1]


def _moments_ok(w, *, std=None, bound=None):
    w = np.asarray(w, np.float64).ravel()
    if bound is not None:
        assert np.abs(w).max() <= bound * (1 + 1e-6) and np.abs(w).max() > 0.95 * bound
        std = bound / np.sqrt(3.0)
    np.testing.assert_allclose(w.std(), std, rtol=0.08)
    assert abs(w.mean()) < 4 * std / np.sqrt(w.size)


def test_reference_initializers():
    # the authors' cell: W_u Kaiming uniform (linear gain), W_h Xavier normal, gate nn.Linear
    # default U(+-1/sqrt(fan_in)), biases U(+-1/sqrt(fan_in)) of their layer, W_um zero
    d_in, H, F, N = 30, 40, 8, 25
    cfg = hippox.HiPPORNNConfig(d_in, H, memory_size=F, N=N, hh=True, um=True)
    p = cfg.init_params(jax.random.key(0), param_dtype=jnp.float64)
    fu, fh, fg = d_in + H, d_in + F * N, d_in + F * N + H
    _moments_ok(p["W_u"], bound=np.sqrt(3.0 / fu))
    _moments_ok(p["W_h"], std=np.sqrt(2.0 / (fh + H)))
    _moments_ok(p["W_hh"], std=np.sqrt(2.0 / (2 * H)))
    _moments_ok(p["W_g"], bound=1 / np.sqrt(fg))
    assert np.abs(p["b_u"]).max() <= 1 / np.sqrt(fu) and np.abs(p["b_h"]).max() <= 1 / np.sqrt(fh)
    assert np.abs(p["b_g"]).max() <= 1 / np.sqrt(fg) and np.abs(p["b_hh"]).max() <= 1 / np.sqrt(H)
    np.testing.assert_array_equal(p["W_um"], 0.0)
    # tanh memory activation: Kaiming gain 5/3
    p2 = hippox.HiPPORNNConfig(d_in, H, memory_size=F, N=N, memory_activation="tanh").init_params(
        jax.random.key(1), param_dtype=jnp.float64
    )
    _moments_ok(p2["W_u"], bound=5 / 3 * np.sqrt(3.0 / fu))
    # legacy hippox init: LeCun (truncated) normal weights, zero biases
    p3 = hippox.HiPPORNNConfig(d_in, H, memory_size=F, N=N, init="lecun").init_params(
        jax.random.key(2), param_dtype=jnp.float64
    )
    _moments_ok(p3["W_h"], std=1 / np.sqrt(fh))
    np.testing.assert_array_equal(p3["b_h"], 0.0)


def test_lmu_preset_and_init():
    # the LMU's wiring and initialisation (authors' LMU cell): e_x = 1, e_h = e_m = 0,
    # W_x = W_h = 0, W_m Xavier normal over the memory rows; no bias, no gate; zoh dt = 1/theta
    d_in, H, N = 3, 20, 30
    cfg = hippox.HiPPORNNConfig(d_in, H, N=N, **hippo_cell_options("lmu", theta=50.0))
    assert (cfg.gate, cfg.method, cfg.bias, cfg.hh, cfg.um) == ("N", "zoh", False, True, True)
    assert cfg.dt == pytest.approx(1 / 50)
    p = cfg.init_params(jax.random.key(0), param_dtype=jnp.float64)
    np.testing.assert_array_equal(p["W_u"][:d_in], 1.0)
    np.testing.assert_array_equal(p["W_u"][d_in:], 0.0)
    np.testing.assert_array_equal(p["W_h"][:d_in], 0.0)
    np.testing.assert_array_equal(p["W_hh"], 0.0)
    np.testing.assert_array_equal(p["W_um"], 0.0)
    _moments_ok(p["W_h"][d_in:], std=np.sqrt(2.0 / (N + H)))
    # the LMU matrices (Voelker et al.): A_ij = (2i+1) * (-1 if i < j else (-1)^(i-j+1)),
    # B_i = (2i+1) (-1)^i, here scaled by dt = 1/theta and discretised with zoh
    i, j = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    A = (2 * i + 1) * np.where(i < j, -1.0, (-1.0) ** (i - j + 1))
    B = (2 * np.arange(N) + 1) * (-1.0) ** np.arange(N)
    Ab, Bb = cfg.memory.transition(np.float64)
    np.testing.assert_allclose(Ab, scipy.linalg.expm(A / 50), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(A @ Bb, (np.asarray(Ab) - np.eye(N)) @ B, rtol=1e-8, atol=1e-8)


def test_presets_and_options_errors():
    assert hippox.HiPPORNNConfig(2, 6, N=-1).N == 6
    assert hippox.HiPPORNNConfig(2, 6, gated=False).gate == "N"
    assert hippox.HiPPORNNConfig(2, 6, gated=True).gated is None
    cfg = hippox.HiPPORNNConfig(2, 6, N=4, **hippo_cell_options("random", seed=jax.random.key(3)))
    assert isinstance(cfg.seed, int) and hash(cfg)
    with pytest.raises(ValueError, match="`gate` must be one of"):
        hippox.HiPPORNNConfig(2, 6, gate="X")
    with pytest.raises(ValueError, match="contradicts"):
        hippox.HiPPORNNConfig(2, 6, gate="UR", gated=False)
    with pytest.raises(ValueError, match="`name` must be one of"):
        hippo_cell_options("gru")
    with pytest.raises(ValueError, match="`theta` is an option of the 'lmu' cell only"):
        hippo_cell_options("legt", theta=10.0)
    with pytest.raises(TypeError, match="`hh` must be a bool"):
        hippox.HiPPORNNConfig(2, 6, hh="yes")
    with pytest.raises(ValueError, match="`init` must be one of"):
        hippox.HiPPORNNConfig(2, 6, init="he")


def test_rand_preset_is_the_reference_lti_cell():
    """HiPPO-Rand (`hippo_cell_options('random')`) is the authors' ``RandomCell``: A with
    N(0, 1/N) entries, B N(0, 1), discretised as their LTICell (scipy's ``cont2discrete``
    zoh at dt = 0.01). No stabilisation: the memory's growth over L steps is
    exp(L dt max Re eig(A)) (> 1 for such a matrix), which the docstring reports."""
    import scipy.signal

    N, seed = 24, 5
    cfg = hippox.HiPPORNNConfig(1, 8, N=N, **hippo_cell_options("random", seed=seed))
    assert (cfg.method, cfg.dt) == ("zoh", 0.01)
    A, B = (np.asarray(a, np.float64) for a in cfg.memory.continuous(np.float64))
    Ab, Bb = (np.asarray(a, np.float64) for a in cfg.memory.transition(np.float64))
    C, D = np.ones((1, N)), np.zeros((1,))
    dA, dB, *_ = scipy.signal.cont2discrete((A, B[:, None], C, D), dt=0.01, method="zoh")
    np.testing.assert_allclose(Ab, dA, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(Bb, dB[:, 0], rtol=1e-10, atol=1e-12)
    # zoh maps eigenvalues exactly: rho(Ab) = exp(dt max Re eig(A))
    lam = np.linalg.eigvals(A)
    rho = np.abs(np.linalg.eigvals(Ab)).max()
    np.testing.assert_allclose(rho, np.exp(0.01 * lam.real.max()), rtol=1e-9)
