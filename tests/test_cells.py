"""Tests of the baseline cells (hippox/_src/layers/cells.py) and their NNX, linen, Haiku,
Equinox wrappers; the HiPPO presets through every framework's HiPPO-RNN cell."""

import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from flax import nnx
from jax.test_util import check_grads

import hippox.equinox
import hippox.haiku
import hippox.linen
import hippox.nnx
from hippox import _equinox_cells, _haiku_cells
from hippox._src.layers import cells
from hippox._src.layers.rnn import hippo_cell_options
from hippox.linen import cells as linen_cells
from hippox.nnx import cells as nnx_cells

NAMES = ["RNN", "GRU", "LSTM", "MGU", "MinimalRNN", "ExpRNN"]
CONFIGS = {
    "RNN": cells.RNNConfig,
    "GRU": cells.GRUConfig,
    "LSTM": cells.LSTMConfig,
    "MGU": cells.MGUConfig,
    "MinimalRNN": cells.MinimalRNNConfig,
    "ExpRNN": cells.ExpRNNConfig,
}


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def _numpy_run(name, p, x):
    """Float64 NumPy reference of each cell (module docstring equations)."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    H = p["W_hx"].shape[1] if "W_hx" in p else p["W_hh"].shape[0]
    h, c = np.zeros(H), np.zeros(H)
    ys = []
    for xt in x:
        xh = np.concatenate([xt, h])
        if name == "RNN":
            h = np.tanh(xt @ p["W_hx"] + p["b_hx"] + h @ p["W_hh"] + p["b_hh"])
        elif name == "GRU":
            r, g = _sig(xh @ p["W_r"] + p["b_r"]), _sig(xh @ p["W_g"] + p["b_g"])
            new = np.tanh(xt @ p["W_hx"] + p["b_hx"] + (r * h) @ p["W_hh"] + p["b_hh"])
            h = (1 - g) * h + g * new
        elif name == "LSTM":
            z = xt @ p["W_ih"] + p["b_ih"] + h @ p["W_hh"] + p["b_hh"]
            i, f, gg, o = np.split(z, 4)
            c = _sig(f) * c + _sig(i) * np.tanh(gg)
            h = _sig(o) * np.tanh(c)
        elif name == "MGU":
            f = _sig(xh @ p["W_f"] + p["b_f"])
            new = np.tanh(xt @ p["W_hx"] + p["b_hx"] + (f * h) @ p["W_hh"] + p["b_hh"])
            h = (1 - f) * h + f * new
        elif name == "MinimalRNN":
            z = np.tanh(xt @ p["W_hx"] + p["b_hx"])
            g = _sig(xh @ p["W_g"] + p["b_g"])
            h = (1 - g) * h + g * z
        else:  # ExpRNN
            T = np.triu(p["W_S"], 1)
            Q = scipy.linalg.expm(T - T.T)
            pre = xt @ p["W_hx"] + h @ Q
            h = np.sign(pre) * np.maximum(np.abs(pre) + p["b"], 0.0)
        ys.append(h)
    return np.stack(ys)


def _params(cfg, rng, dtype=np.float64):
    return {k: jnp.asarray(rng.normal(size=s) * 0.5, dtype) for k, s in cfg.param_shapes().items()}


@pytest.mark.parametrize("name", [*NAMES[:-1], pytest.param("ExpRNN", marks=pytest.mark.slow)])
def test_cell_matches_numpy_and_seq_lengths(name, rng):
    cfg = CONFIGS[name](3, 4)
    p = _params(cfg, rng)
    x = rng.normal(size=(2, 7, 3))
    state, y = cfg.apply(p, jnp.asarray(x))
    for b in range(2):
        np.testing.assert_allclose(y[b], _numpy_run(name, p, x[b]), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(state.h, y[:, -1], rtol=1e-12)
    # padding: equal outputs, zero padding, final state of the unpadded run
    st, yp = jax.jit(lambda p, x, n: cfg.apply(p, x, seq_lengths=n))(p, x, jnp.array([7, 3]))
    np.testing.assert_allclose(yp[0], y[0], rtol=1e-12)
    np.testing.assert_array_equal(yp[1, 3:], 0.0)
    s3, _ = cfg.apply(p, jnp.asarray(x[1, :3]))
    for a, b_ in zip(st, s3, strict=True):
        np.testing.assert_allclose(a[1], b_, rtol=1e-12)
    # vmap and grad
    yv = jax.vmap(lambda xi: cfg.apply(p, xi)[1])(jnp.asarray(x))
    np.testing.assert_allclose(yv, y, rtol=1e-12, atol=1e-13)
    check_grads(
        lambda p: jnp.sum(cfg.apply(p, jnp.asarray(x[:, :4]))[1] ** 2),
        (p,),
        order=1,
        modes=["rev"],
        atol=1e-5,
        rtol=1e-5,
    )


def test_exprnn_orthogonal_and_inits():
    cfg = cells.ExpRNNConfig(3, 6)
    p = cfg.init_params(jax.random.key(0), param_dtype=jnp.float64)
    Q = cells.orthogonal_from(p["W_S"])
    np.testing.assert_allclose(Q @ Q.T, np.eye(6), atol=1e-12)
    np.testing.assert_array_equal(p["b"], 0.0)
    # LSTM: PyTorch's U(+-1/sqrt(H)); GRU gates: nn.Linear U(+-1/sqrt(fan_in))
    lp = cells.LSTMConfig(5, 64).init_params(jax.random.key(1), param_dtype=jnp.float64)
    assert all(float(jnp.abs(v).max()) <= 1 / 8 for v in lp.values())
    np.testing.assert_allclose(float(jnp.std(lp["W_hh"])), 1 / 8 / np.sqrt(3), rtol=0.05)
    gp = cells.GRUConfig(36, 64).init_params(jax.random.key(2), param_dtype=jnp.float64)
    np.testing.assert_allclose(float(jnp.std(gp["W_g"])), 1 / 10 / np.sqrt(3), rtol=0.05)
    np.testing.assert_allclose(float(jnp.std(gp["W_hh"])), np.sqrt(2 / 128), rtol=0.05)


@pytest.mark.parametrize("name", ["GRU", pytest.param("LSTM", marks=pytest.mark.slow)])
def test_frameworks_agree(name, rng):
    d, H, L = 3, 5, 6
    x = jnp.asarray(rng.normal(size=(2, L, d)), jnp.float32)
    ncell = getattr(nnx_cells, f"{name}Cell")(d, H, rngs=nnx.Rngs(0))
    y_nnx = nnx.RNN(ncell)(x)
    params = ncell.cell_params()
    # linen
    lrnn = nn.RNN(getattr(linen_cells, f"{name}Cell")(features=H))
    v = lrnn.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, v["params"]["cell"]) == jax.tree.map(jnp.shape, params)
    np.testing.assert_allclose(lrnn.apply({"params": {"cell": params}}, x), y_nnx, rtol=1e-6)

    # haiku
    def run(xt):
        cell = getattr(_haiku_cells, f"{name}Cell")(H)
        return hk.dynamic_unroll(cell, xt, cell.initial_state(xt.shape[1]))[0]

    f = hk.transform(run)
    xt = jnp.swapaxes(x, 0, 1)
    hp = f.init(jax.random.key(0), xt)
    key = next(iter(hp))
    assert set(hp[key]) == set(params)
    y_hk = f.apply({key: params}, None, xt)
    np.testing.assert_allclose(jnp.swapaxes(y_hk, 0, 1), y_nnx, rtol=1e-6)
    # equinox
    ecell = getattr(_equinox_cells, f"{name}Cell")(d, H, key=jax.random.key(0))
    ecell = ecell.__class__.__new__(ecell.__class__)
    object.__setattr__(ecell, "params", params)
    object.__setattr__(ecell, "config", ncell.config)

    def scan_one(xs):
        return jax.lax.scan(lambda s, x_t: (ecell(x_t, s),) * 2, ecell.initial_state(), xs)[1]

    y_eqx = jax.vmap(scan_one)(x).h
    np.testing.assert_allclose(y_eqx, y_nnx, rtol=1e-6)


def test_wrappers_errors_and_dtypes(rng):
    with pytest.raises(TypeError, match="`rngs` must be a flax.nnx.Rngs"):
        nnx_cells.GRUCell(2, 3, rngs=0)
    cell = nnx_cells.LSTMCell(2, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"`input_shape` must be \(\.\.\., 2\)"):
        cell.initialize_carry((4, 3))
    carry = cell.initialize_carry((4, 2))
    assert isinstance(carry, cells.LSTMState) and carry.c.shape == (4, 3)
    with pytest.raises(ValueError, match=r"`x` must have shape \(\.\.\., d_in\) with d_in=2"):
        cell(carry, jnp.ones((4, 3)))
    with pytest.raises(TypeError, match="`state` must be a LSTMState"):
        cell(carry.h, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="`features` must be an integer >= 1"):
        cells.GRUConfig(2, 0)
    cfg = cells.MGUConfig(2, 3)
    with pytest.raises(ValueError, match=r"`state.h` must have shape \(5, 3\)"):
        cfg.check_state(cfg.initial_state((4,)), (5,))
    p32 = cfg.init_params(jax.random.key(0))
    _, yb = cfg.apply(p32, jnp.ones((2, 4, 2), jnp.bfloat16))
    assert yb.dtype == jnp.bfloat16
    s, y = cfg.apply(p32, jnp.ones((2, 4, 2), jnp.float32))
    assert y.dtype == jnp.float32 and s.h.dtype == jnp.float32


@pytest.mark.parametrize("preset", ["lmu", pytest.param("tlsi", marks=pytest.mark.slow)])
def test_hippo_presets_in_every_framework(preset, rng):
    d, H, L = 3, 4, 5
    opts = dict(hippo_cell_options(preset), N=4)
    x = (
        np.abs(rng.normal(size=(2, L, d))).cumsum(1)
        if preset == "tlsi"
        else rng.normal(size=(2, L, d))
    )
    x = jnp.asarray(x, jnp.float32)
    ncell = hippox.nnx.HiPPORNNCell(d, H, **opts, rngs=nnx.Rngs(0))
    y = nnx.RNN(ncell)(x)
    params = ncell.rnn_params()
    # linen names the `init` option `weight_init` (`init` is linen's own method)
    lopts = {("weight_init" if k == "init" else k): v for k, v in opts.items()}
    lrnn = nn.RNN(hippox.linen.HiPPORNNCell(features=H, **lopts))
    np.testing.assert_allclose(lrnn.apply({"params": {"cell": params}}, x), y, rtol=1e-5)

    def run(xt):
        cell = hippox.haiku.HiPPORNNCell(H, **opts)
        return hk.dynamic_unroll(cell, xt, cell.initial_state(xt.shape[1]))[0]

    f = hk.transform(run)
    xt = jnp.swapaxes(x, 0, 1)
    key = next(iter(f.init(jax.random.key(0), xt)))
    np.testing.assert_allclose(jnp.swapaxes(f.apply({key: params}, None, xt), 0, 1), y, rtol=1e-5)
    ecell = hippox.equinox.HiPPORNNCell(d, H, **opts, key=jax.random.key(0))
    assert ecell.config == ncell.config
