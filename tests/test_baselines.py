"""Tests of the model README's baselines: the Lipschitz RNN, UnICORNN (cells) and CKConv
(hippox/_src/layers/{lipschitz,unicornn,ckconv}.py) and their NNX, linen, Haiku, Equinox
wrappers: float64 NumPy references, padding, jit/vmap/grad, inits, framework agreement,
errors and dtypes, and a short learning run of each inside `hippox.nnx.SequenceModel`."""

import equinox as eqx
import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.test_util import check_grads

from hippox import _equinox_cells, _haiku_cells
from hippox._src.layers.ckconv import CKConvConfig
from hippox._src.layers.lipschitz import LipschitzRNNConfig
from hippox._src.layers.unicornn import UnICORNNConfig, UnICORNNState
from hippox.linen import cells as linen_cells
from hippox.nnx import SequenceModel
from hippox.nnx import cells as nnx_cells


def _params(cfg, rng, scale=0.5):
    return {
        k: jnp.asarray(rng.normal(size=s) * scale, jnp.float64)
        for k, s in cfg.param_shapes().items()
    }


def _np(p):
    return {k: np.asarray(v, np.float64) for k, v in p.items()}


# ----------------------------------------------------------------- NumPy references


def _lipschitz_numpy(
    p, x, *, eps, beta, gamma, alpha, solver, beta_W=None, gamma_W=None, gated=False
):
    """Float64 reference of the Lipschitz RNN (paper / reference formulas; the gated
    variant is the reference's ``LipschitzRNN_gated``)."""
    p = _np(p)
    H = p["M_A"].shape[0]
    I = np.eye(H)

    def ss(M, beta, gamma):
        return beta * (M - M.T) + (1 - beta) * (M + M.T) - gamma * I

    A = ss(p["M_A"], beta, gamma)
    W = ss(p["M_W"], beta if beta_W is None else beta_W, gamma if gamma_W is None else gamma_W)
    h, ys = np.zeros(H), []
    for xt in x:
        z = xt @ p["U"] + p["b"]
        zg = xt @ p["U_g"] + p["b_g"] if gated else None

        def f(h, z=z, zg=zg):
            q = alpha * h @ A + np.tanh(h @ W + z)
            return q / (1 + np.exp(-(h @ W + zg))) if gated else q

        if solver == "euler":
            h = h + eps * f(h)
        else:  # explicit midpoint (torchdiffeq 'midpoint')
            h = h + eps * f(h + eps / 2 * f(h))
        ys.append(h)
    return np.stack(ys)


def _unicornn_numpy(p, x, *, n_layers, dt, alpha):
    """Float64 reference in the reference's order: each layer over the whole sequence
    (its CUDA kernel's loop), then the next layer on that layer's outputs."""
    p = _np(p)
    u = x
    for layer in range(n_layers):
        inp = u @ p[f"V_{layer}"] + p[f"b_{layer}"]
        w, c = p[f"w_{layer}"], p[f"c_{layer}"]
        delta = dt[layer] / (1 + np.exp(-c))
        hy, hz = np.zeros_like(w), np.zeros_like(w)
        out = []
        for t in range(len(x)):
            hz = hz - delta * (np.tanh(hy * w + inp[t]) + alpha * hy)
            hy = hy + delta * hz
            out.append(hy)
        u = np.stack(out)
    return u


def _ckconv_numpy(cfg, p, x, *, r=1.0):
    """Float64 reference: the kernel net on the reference's grid, a direct causal sum."""
    p = _np(p)
    L, H = x.shape
    if cfg.l_max is None:
        pos = np.linspace(-1.0, 1.0, L)[::-1]  # lag m <-> linspace(-1, 1, L)[L-1-m]
    else:
        pos = 1.0 - np.arange(max(L, cfg.l_max)) * 2.0 * r / (cfg.l_max - 1)
    h = pos[:, None]
    for k in (1, 2, 3):
        v = p[f"v{k}"]
        h = h @ (p[f"g{k}"] * v / np.sqrt((v**2).sum(0)))
        if cfg.bias:
            h = h + p[f"b{k}"]
        if k == 3:
            break
        if cfg.activation == "sine":
            h = np.sin(cfg.omega_0 * h)
        else:
            if cfg.norm == "layer":
                h = (h - h.mean()) / np.sqrt(h.var() + 1e-12)
                h = h * p[f"norm{k}_scale"] + p[f"norm{k}_shift"]
            h = np.maximum(h, 0.0)
    K = r * h.reshape(len(pos), H, H)  # (lag, out, in)
    y = np.zeros((L, H))
    for t in range(L):
        for m in range(t + 1):
            y[t] += K[m] @ x[t - m]
    return y + (p["bias"] if cfg.bias else 0.0)


# ------------------------------------------------------------------- the maths


@pytest.mark.parametrize(
    "solver, extra",
    [
        ("euler", {}),
        ("midpoint", {}),
        ("euler", dict(beta_W=0.2, gamma_W=0.4, gated=True)),
        ("midpoint", dict(beta_W=0.9, gated=True)),
    ],
    ids=["euler", "midpoint", "euler-own-W-gated", "midpoint-gated"],
)
def test_lipschitz_matches_numpy(solver, extra, rng):
    opts = dict(eps=0.1, beta=0.6, gamma=0.05, alpha=0.7, solver=solver, **extra)
    cfg = LipschitzRNNConfig(3, 5, **opts)
    p = _params(cfg, rng)
    x = rng.normal(size=(2, 7, 3))
    state, y = jax.jit(lambda p, x: cfg.apply(p, x))(p, jnp.asarray(x))
    for b in range(2):
        np.testing.assert_allclose(y[b], _lipschitz_numpy(p, x[b], **opts), rtol=1e-10)
    np.testing.assert_allclose(state.h, y[:, -1], rtol=1e-12)
    if solver != "euler" or extra:
        return
    # padding, vmap, grad (the step rule does not matter for these)
    # compiled (op-by-op, every primitive was compiled on its own per shape)
    st, yp = jax.jit(lambda p, x, n: cfg.apply(p, x, seq_lengths=n))(p, x, jnp.array([7, 3]))
    np.testing.assert_allclose(yp[1, :3], y[1, :3], rtol=1e-12)
    np.testing.assert_array_equal(yp[1, 3:], 0.0)
    np.testing.assert_allclose(st.h[1], y[1, 2], rtol=1e-12)
    yv = jax.jit(jax.vmap(lambda xi: cfg.apply(p, xi)[1]))(x)
    np.testing.assert_allclose(yv, y, rtol=1e-12)
    loss = jax.jit(lambda p: jnp.sum(cfg.apply(p, jnp.asarray(x[:, :4]))[1] ** 2))
    check_grads(loss, (p,), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


def test_lipschitz_parameterisation_and_init():
    cfg = LipschitzRNNConfig(4, 64, beta=1.0, gamma=0.3, init_std=2.0)
    p = cfg.init_params(jax.random.key(0), param_dtype=jnp.float64)
    A, W = cfg.matrices(p)
    # beta = 1: purely skew plus -gamma I, so A + A^T = -2 gamma I (eigenvalues -gamma + i w)
    np.testing.assert_allclose(A + A.T, -0.6 * np.eye(64), atol=1e-12)
    np.testing.assert_allclose(np.linalg.eigvals(np.asarray(W)).real, -0.3, atol=1e-10)
    # beta = 0: symmetric
    A0, _ = LipschitzRNNConfig(4, 64, beta=0.0).matrices(p)
    np.testing.assert_allclose(A0, A0.T, atol=1e-14)
    # the reference's inits: N(0, (init_std / H)^2); nn.Linear's U(+-1/sqrt(d_in))
    np.testing.assert_allclose(float(jnp.std(p["M_A"])), 2.0 / 64, rtol=0.05)
    assert float(jnp.abs(p["U"]).max()) <= 0.5 and float(jnp.abs(p["b"]).max()) <= 0.5
    np.testing.assert_allclose(float(jnp.std(p["U"])), 0.5 / np.sqrt(3), rtol=0.15)
    # W's own beta / gamma (the paper's A_{beta_A, gamma_A}, W_{beta_W, gamma_W})
    cw = LipschitzRNNConfig(4, 64, beta=1.0, gamma=0.3, beta_W=0.0, gamma_W=0.1)
    A2, W2 = cw.matrices(p)
    np.testing.assert_allclose(A2, A, atol=1e-14)
    M = np.asarray(p["M_W"])
    np.testing.assert_allclose(W2, M + M.T - 0.1 * np.eye(64), atol=1e-14)
    # gated: the gate's input map has nn.Linear's init; orthogonal init: M^T M = I
    cg = LipschitzRNNConfig(4, 64, gated=True, init="orthogonal")
    q = cg.init_params(jax.random.key(1), param_dtype=jnp.float64)
    assert q["U_g"].shape == (4, 64) and q["b_g"].shape == (64,)
    assert float(jnp.abs(q["U_g"]).max()) <= 0.5 and float(jnp.abs(q["b_g"]).max()) <= 0.5
    for name in ("M_A", "M_W"):
        np.testing.assert_allclose(q[name].T @ q[name], np.eye(64), atol=1e-5)
    assert not np.allclose(q["M_A"], q["M_W"])


def test_unicornn_matches_numpy(rng):
    opts = dict(n_layers=2, dt=(0.3, 0.5), alpha=2.0)
    cfg = UnICORNNConfig(3, 4, **opts)
    p = _params(cfg, rng, scale=1.0)
    x = rng.normal(size=(2, 9, 3))
    apply = jax.jit(cfg.apply)  # op-by-op, every primitive was compiled on its own per shape
    state, y = apply(p, jnp.asarray(x))
    for b in range(2):
        np.testing.assert_allclose(y[b], _unicornn_numpy(p, x[b], **opts), rtol=1e-10)
    np.testing.assert_allclose(state.y[:, -1], y[:, -1], rtol=1e-12)
    assert isinstance(state, UnICORNNState) and state.z.shape == (2, 2, 4)
    st, yp = jax.jit(lambda p, x, n: cfg.apply(p, x, seq_lengths=n))(p, x, jnp.array([9, 4]))
    np.testing.assert_allclose(yp[1, :4], y[1, :4], rtol=1e-12)
    np.testing.assert_array_equal(yp[1, 4:], 0.0)
    s4, _ = apply(p, jnp.asarray(x[1, :4]))
    np.testing.assert_allclose(st.z[1], s4.z, rtol=1e-12)
    yv = jax.jit(jax.vmap(lambda xi: cfg.apply(p, xi)[1]))(x)
    np.testing.assert_allclose(yv, y, rtol=1e-12)
    loss = jax.jit(lambda p: jnp.sum(cfg.apply(p, jnp.asarray(x[:, :4]))[1] ** 2))
    check_grads(loss, (p,), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)
    # the reference's inits
    q = jax.jit(UnICORNNConfig(16, 32).init_params, static_argnames="param_dtype")(
        jax.random.key(1), param_dtype=jnp.float64
    )
    bound0 = np.sqrt(2 / 65) * np.sqrt(3 / 16)
    assert bound0 / 1.2 < float(jnp.abs(q["V_0"]).max()) <= bound0
    assert float(jnp.abs(q["V_2"]).max()) <= np.sqrt(2 / 65) * np.sqrt(3 / 32)
    assert 0.0 <= float(q["w_1"].min()) and float(q["w_1"].max()) <= 1.0
    assert float(jnp.abs(q["c_0"]).max()) <= 0.1 and not np.any(np.asarray(q["b_2"]))


@pytest.mark.parametrize(
    "opts",
    [
        dict(l_max=12),  # the reference's default kernel net (SIREN)
        dict(l_max=None, omega_0=3.0),
        pytest.param(
            dict(l_max=12, activation="relu", norm="layer", bias=False), marks=pytest.mark.slow
        ),
    ],
    ids=["siren", "siren-own-length", "relu-layernorm"],
)
def test_ckconv_matches_numpy(opts, rng):
    cfg = CKConvConfig(3, hidden=6, **opts)
    p = _params(cfg, rng)
    x = rng.normal(size=(2, 10, 3))
    y = jax.jit(lambda p, x: cfg.apply(p, x))(p, jnp.asarray(x))
    for b in range(2):
        np.testing.assert_allclose(y[b], _ckconv_numpy(cfg, p, x[b]), rtol=1e-9, atol=1e-9)
    # compiled (op-by-op, every primitive was compiled on its own per shape)
    yv = jax.jit(jax.vmap(lambda xi: cfg.apply(p, xi)))(x)
    np.testing.assert_allclose(yv, y, atol=1e-12)
    if cfg.l_max is None:
        return
    apply = jax.jit(lambda p, x, n=None: cfg.apply(p, x, seq_lengths=n))
    # padding = unpadded (the grid does not depend on L); padding outputs 0
    yp = apply(p, x, jnp.array([10, 4]))
    np.testing.assert_allclose(yp[1, :4], apply(p, x[1, :4]), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(yp[1, 4:], 0.0)
    # step_rescale: positions spaced r times wider, kernel scaled by r
    y2 = jax.jit(lambda p, x: cfg.apply(p, x, step_rescale=2.0))(p, x[0])
    np.testing.assert_allclose(y2, _ckconv_numpy(cfg, p, x[0], r=2.0), rtol=1e-9, atol=1e-9)
    if cfg.activation != "sine":
        return
    loss = jax.jit(lambda p: jnp.sum(cfg.apply(p, jnp.asarray(x[:, :5])) ** 2))
    check_grads(loss, (p,), order=1, modes=["rev"], eps=1e-6, atol=1e-5, rtol=1e-5)


def test_ckconv_siren_init():
    cfg = CKConvConfig(2, hidden=256)
    p = cfg.init_params(jax.random.key(0), param_dtype=jnp.float64)
    # first layer (fan_in 1): W = g sign(v) ~ U(-1, 1); later ones U(+-sqrt(6/fan_in)/w0)
    W1 = np.asarray(p["g1"] * p["v1"] / jnp.abs(p["v1"]))
    assert np.abs(W1).max() <= 1.0
    np.testing.assert_allclose(W1.std(), 1 / np.sqrt(3), rtol=0.15)
    b2 = np.sqrt(6 / 256) / 40
    assert float(jnp.abs(p["v2"]).max()) <= b2
    np.testing.assert_allclose(float(jnp.mean(p["g2"])), b2 * np.sqrt(256 / 3), rtol=0.05)
    assert float(jnp.abs(p["b1"]).max()) <= 1.0 and not np.any(np.asarray(p["bias"]))
    np.testing.assert_allclose(float(jnp.std(p["b2"])), 1 / np.sqrt(3), rtol=0.15)


# ---------------------------------------------------------------- the wrappers


def _haiku_unroll(cls, H, x, **opts):
    def run(xt):
        cell = cls(H, **opts)
        return hk.dynamic_unroll(cell, xt, cell.initial_state(xt.shape[1]))[0]

    return hk.transform(run)


@pytest.mark.parametrize(
    "name, opts",
    [
        ("LipschitzRNN", dict(solver="midpoint", gated=True, beta_W=0.3)),
        ("UnICORNN", dict(n_layers=2, dt=0.2)),
    ],
)
def test_cells_frameworks_agree(name, opts, rng):
    d, H, L = 3, 4, 6
    x = jnp.asarray(rng.normal(size=(2, L, d)), jnp.float32)
    ncell = getattr(nnx_cells, f"{name}Cell")(d, H, **opts, rngs=nnx.Rngs(0))
    # compiled forwards (op-by-op, every primitive was compiled on its own per shape)
    y = nnx.jit(lambda c, x: nnx.RNN(c)(x))(ncell, x)
    params = ncell.cell_params()
    # the NNX sequence layer: same parameters, same outputs; chunks with a carry = one call
    layer = getattr(nnx_cells, name)(d, H, **opts, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(layer(x), y, rtol=1e-6)
    if name == "UnICORNN":  # the two-leaf carry; the wrapper code is shared
        c, y1 = layer(x[:, :2], return_carry=True)
        _, y2 = layer.step(c, x[:, 2])
        np.testing.assert_allclose(y2, y[:, 2], rtol=1e-5, atol=1e-7)
        y3 = layer(x[:, 2:], initial_carry=c)
        np.testing.assert_allclose(y3, y[:, 2:], rtol=1e-5, atol=1e-7)
    # linen cell and layer
    lrnn = nn.RNN(getattr(linen_cells, f"{name}Cell")(features=H, **opts))
    v = jax.eval_shape(lrnn.init, jax.random.key(0), x)  # only the shapes are used
    assert jax.tree.map(jnp.shape, v["params"]["cell"]) == jax.tree.map(jnp.shape, params)
    y_lin = jax.jit(lrnn.apply)({"params": {"cell": params}}, x)
    np.testing.assert_allclose(y_lin, y, rtol=1e-6)
    if name == "LipschitzRNN":
        llayer = getattr(linen_cells, name)(in_features=d, features=H, **opts)
        np.testing.assert_allclose(jax.jit(llayer.apply)({"params": params}, x), y, rtol=1e-6)
    # haiku
    f = _haiku_unroll(getattr(_haiku_cells, f"{name}Cell"), H, x, **opts)
    xt = jnp.swapaxes(x, 0, 1)
    key = next(iter(jax.eval_shape(f.init, jax.random.key(0), xt)))
    y_hk = jax.jit(f.apply)({key: params}, None, xt)
    np.testing.assert_allclose(jnp.swapaxes(y_hk, 0, 1), y, rtol=1e-6)
    # equinox
    ecell = getattr(_equinox_cells, f"{name}Cell")(d, H, **opts, key=jax.random.key(0))
    assert ecell.config == ncell.config
    ecell = eqx.tree_at(lambda m: m.params, ecell, params)
    out = jax.jit(
        lambda xt: jax.lax.scan(lambda s, x_: (ecell(x_, s),) * 2, ecell.initial_state((2,)), xt)
    )(xt)[1]
    y_eqx = out.h if name == "LipschitzRNN" else out.y[..., -1, :]
    np.testing.assert_allclose(jnp.swapaxes(y_eqx, 0, 1), y, rtol=1e-6)


def test_ckconv_frameworks_agree(rng):
    H, L = 3, 8
    opts = dict(hidden=8, l_max=8, omega_0=10.0)
    u = jnp.asarray(rng.normal(size=(2, L, H)), jnp.float32)
    n = jnp.array([8, 5])
    layer = nnx_cells.CKConv(H, **opts, rngs=nnx.Rngs(0))
    y = layer(u, seq_lengths=n)
    params = layer.conv_params()
    np.testing.assert_allclose(
        y, CKConvConfig(H, **opts).apply(params, u, seq_lengths=n), rtol=1e-6
    )
    np.testing.assert_allclose(layer.kernel(L)[0], layer.config.kernel(params, 1)[0], rtol=1e-6)
    ll = linen_cells.CKConv(H=H, **opts)
    v = ll.init(jax.random.key(0), u)
    assert jax.tree.map(jnp.shape, v["params"]) == jax.tree.map(jnp.shape, params)
    np.testing.assert_allclose(ll.apply({"params": params}, u, seq_lengths=n), y, rtol=1e-6)
    f = hk.transform(lambda u, n: _haiku_cells.CKConv(H, **opts)(u, seq_lengths=n))
    hp = f.init(jax.random.key(0), u, n)
    assert set(hp["ckconv"]) == set(params)
    np.testing.assert_allclose(f.apply({"ckconv": params}, None, u, n), y, rtol=1e-6)
    e = _equinox_cells.CKConv(H, **opts, key=jax.random.key(0))
    e = eqx.tree_at(lambda m: m.params, e, params)
    y_e = jax.vmap(lambda ui, ni: e(ui, seq_lengths=ni))(u, n)
    np.testing.assert_allclose(y_e, y, rtol=1e-5, atol=1e-6)


def test_errors_and_dtypes():
    with pytest.raises(ValueError, match="`eps` must be > 0"):
        LipschitzRNNConfig(2, 3, eps=0.0)
    with pytest.raises(ValueError, match="`beta` must be <= 1"):
        LipschitzRNNConfig(2, 3, beta=1.5)
    with pytest.raises(ValueError, match="`beta_W` must be <= 1"):
        LipschitzRNNConfig(2, 3, beta_W=1.5)
    with pytest.raises(ValueError, match="`gamma_W` must be >= 0"):
        LipschitzRNNConfig(2, 3, gamma_W=-0.1)
    with pytest.raises(TypeError, match="`gated` must be a bool"):
        LipschitzRNNConfig(2, 3, gated="yes")
    with pytest.raises(ValueError, match=r"`init` must be one of \('gaussian', 'orthogonal'\)"):
        LipschitzRNNConfig(2, 3, init="cayley")
    with pytest.raises(ValueError, match=r"`solver` must be one of \('euler', 'midpoint'\)"):
        nnx_cells.LipschitzRNNCell(2, 3, solver="rk4", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`dt` must be a positive number or a sequence of"):
        UnICORNNConfig(2, 3, n_layers=2, dt=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match=r"`dt\[1\]` must be > 0"):
        UnICORNNConfig(2, 3, n_layers=2, dt=(0.1, -0.2))
    with pytest.raises(ValueError, match="`activation` must be one of"):
        CKConvConfig(2, activation="tanh")
    with pytest.raises(ValueError, match="`norm` must be one of"):
        CKConvConfig(2, norm="group")
    with pytest.raises(ValueError, match="`l_max` must be an integer >= 2"):
        CKConvConfig(2, l_max=1)
    with pytest.raises(TypeError, match="`bias` must be a bool"):
        CKConvConfig(2, bias=1)
    layer = nnx_cells.CKConv(2, hidden=4, rngs=nnx.Rngs(0))
    u = jnp.ones((2, 5, 2), jnp.float32)
    with pytest.raises(ValueError, match="CKConv has no recurrent state"):
        layer(u, return_carry=True)
    with pytest.raises(ValueError, match=r"`u` must have shape \(\.\.\., L, H\)"):
        layer(jnp.ones((2, 5, 3)))
    with pytest.raises(ValueError, match=r"`seq_lengths` must lie in \[0, L\]"):
        layer(u, seq_lengths=jnp.array([6, 1]))
    with pytest.raises(ValueError, match="`step_rescale` must be > 0"):
        layer(u, step_rescale=0.0)
    with pytest.raises(TypeError, match="step mode needs every layer to define"):
        SequenceModel(
            2,
            2,
            d_model=4,
            n_layers=1,
            layer=lambda H, rngs: nnx_cells.CKConv(H, rngs=rngs),
            rngs=nnx.Rngs(0),
        ).initialize_carry((1,))
    rnn = nnx_cells.UnICORNN(2, 3, n_layers=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"`initial_carry.y` must have shape \(2, 2, 3\)"):
        rnn(u, initial_carry=rnn.initialize_carry((3,)))
    with pytest.raises(TypeError, match="`initial_carry` must be a UnICORNNState"):
        rnn(u, initial_carry=nnx_cells.LipschitzRNN(2, 3, rngs=nnx.Rngs(0)).initialize_carry((2,)))
    with pytest.raises(ValueError, match=r"`x` must have shape \(\.\.\., L, d_in\)"):
        rnn(jnp.ones((2, 5, 4)))
    # dtypes: bfloat16 in, bfloat16 out (float32 compute); float32 carry
    c, yb = rnn(u.astype(jnp.bfloat16), return_carry=True)
    assert yb.dtype == jnp.bfloat16 and c.y.dtype == jnp.float32
    assert layer(u.astype(jnp.bfloat16)).dtype == jnp.bfloat16


# --------------------------------------------------------------------- learning


@pytest.mark.parametrize(
    "make",
    [
        lambda H, rngs: nnx_cells.LipschitzRNN(H, H, rngs=rngs),
        lambda H, rngs: nnx_cells.UnICORNN(H, H, n_layers=1, dt=0.5, alpha=1.0, rngs=rngs),
        lambda H, rngs: nnx_cells.CKConv(H, hidden=8, l_max=16, omega_0=10.0, rngs=rngs),
        pytest.param(
            lambda H, rngs: nnx_cells.CKBlock(H, hidden=8, l_max=16, omega_0=10.0, rngs=rngs),
            marks=pytest.mark.slow,
        ),
    ],
    ids=["lipschitz", "unicornn", "ckconv", "ckblock"],
)
def test_learns_in_sequence_model(make):
    """A few Adam steps on a tiny task (regress 4 x the sequence mean) cut the loss."""
    key = jax.random.key(0)
    u = jax.random.normal(key, (32, 16, 1), jnp.float32)
    target = jnp.mean(u, axis=(1, 2))[:, None] * 4.0
    model = SequenceModel(1, 1, d_model=8, n_layers=1, layer=make, pooling="last", rngs=nnx.Rngs(1))
    opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, opt):
        def loss_fn(m):
            return jnp.mean((m(u) - target) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    losses = [float(train_step(model, opt)) for _ in range(40)]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0], losses
